"""A line-based chat room.

Every line a client sends goes to all the other clients, prefixed with the sender's nickname.
Commands: ``/nick NAME`` (change nickname), ``/who`` (list who is here), ``/quit`` (leave).
Server notices start with ``* ``, errors with ``! ``. Join and leave notices are coalesced: they
are queued on the factory and sent together, one write per client holding all of them
(``* a, b joined``; more than ``NOTICE_NAMES`` names become ``* 2000 users joined``), so a crowd
arriving or timing out costs each client one write per batch, not one per newcomer. A batch
waits ``NOTICE_DELAY_PER_CLIENT`` seconds per client in the room (at most ``MAX_NOTICE_DELAY``):
sending a batch costs time in proportion to the room too, so notices never take more than a
fixed share of the server's time, however many clients join or time out at once. A client
is not told of its own arrival, one that joins and leaves in the same turn is not announced at
all, and pending notices are sent before any other broadcast so the order is kept. A client
whose write buffer is over the high-water mark (it does not read) misses join/leave notices,
never messages. A line longer than ``max_line`` bytes is
refused with an error line; the client stays connected and the lines before and after it are
delivered as usual. Lines may end in CRLF or a bare LF.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any

import framework
from framework import hookimpl
from framework.registries import ProtocolRegistry
from framework.basic import LineReceiver
from framework.plugins import Option
from framework.protocol import Factory
from framework.stream import HIGH_WATER

__all__ = ["Chat", "ChatFactory", "register_protocols"]

DEFAULT_PORT = 8023
_NICK = re.compile(r"[A-Za-z0-9_.\-]{1,32}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]")
_HELP = "commands: /nick NAME, /who, /quit"
#: At most this many names are listed in one join (or leave) notice; beyond it, a count.
NOTICE_NAMES = 20
#: A batch of join/leave notices waits this long per client in the room before it is sent
#: (about 4 times what writing it to one client costs), and never longer than MAX_NOTICE_DELAY.
NOTICE_DELAY_PER_CLIENT = 20e-6
MAX_NOTICE_DELAY = 0.25


class Chat(LineReceiver):
    """One chat participant. Framing is done here (not by the base class) so that an over-long
    line costs only that line, never the connection or the lines queued behind it."""

    delimiter = b"\r\n"
    MAX_LENGTH = 1024
    nick = ""
    _chat_buffer = b""
    _discarded = 0  # bytes dropped of an over-long line whose newline has not come yet
    _gone = False

    def connectionMade(self) -> None:
        factory = self.factory
        self.MAX_LENGTH = factory.max_line
        factory.guests += 1
        nick = f"guest{factory.guests}"
        while nick in factory.clients:
            factory.guests += 1
            nick = f"guest{factory.guests}"
        self.nick = nick
        factory.clients[nick] = self
        self.notice(f"welcome, you are {nick}; {_HELP}")
        factory.queue_join(self)

    def connectionLost(self, reason: Any = None) -> None:
        self._gone = True
        factory = self.factory
        clients = factory.clients
        if clients.get(self.nick) is self:
            del clients[self.nick]
            factory.queue_leave(self)

    def dataReceived(self, data: bytes) -> None:
        buf = self._chat_buffer + data if self._chat_buffer else data
        limit = self.MAX_LENGTH
        start = 0
        while not self._gone:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 1
            if self._discarded:
                self._discarded = 0  # the tail of a line already refused
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                self.lineLengthExceeded(line)
            else:
                self.lineReceived(line)
        rest = buf[start:]
        if len(rest) > limit + 1 and not self._gone:
            # No newline in sight and already too long: refuse now, drop until the next newline.
            if not self._discarded:
                self.lineLengthExceeded(rest)
            self._discarded += len(rest)
            rest = b""
        self._chat_buffer = rest

    def pending_message_bytes(self) -> int:
        """Bytes of the incomplete line (for message deadlines), the dropped part of an
        over-long one included: it stays unfinished until its newline arrives."""
        return len(self._chat_buffer) + self._discarded

    def lineLengthExceeded(self, line: bytes) -> None:
        self.error(f"line too long (more than {self.MAX_LENGTH} bytes), not sent")

    def lineReceived(self, line: bytes) -> None:
        # Control characters (a bare CR, escape sequences) could rewrite other users' screens.
        text = _CONTROL.sub("", line.decode("utf-8", "replace"))
        if text.startswith("/"):
            command, _, arg = text.partition(" ")
            handler = getattr(self, "do_" + command[1:].lower(), None)
            if handler is None:
                self.error(f"unknown command {command}; {_HELP}")
            else:
                handler(arg.strip())
        elif text.strip():
            self.broadcast(f"<{self.nick}> {text}")

    def do_nick(self, name: str) -> None:
        clients = self.factory.clients
        if not _NICK.match(name):
            self.error("usage: /nick NAME (1-32 letters, digits, '_', '.', '-')")
        elif name == self.nick:
            self.notice(f"you are already {name}")
        elif name in clients:
            self.error(f"nickname {name} is taken")
        else:
            old = self.nick
            del clients[old]
            self.nick = name
            clients[name] = self
            self.notice(f"you are now {name}")
            self.broadcast(f"* {old} is now {name}")

    def do_who(self, arg: str) -> None:
        self.factory.flush_notices()  # arrivals already listed are announced first
        self.notice("here: " + ", ".join(sorted(self.factory.clients)))

    def do_quit(self, arg: str) -> None:
        self.notice("bye")
        self._gone = True
        self.transport.loseConnection()

    def notice(self, text: str) -> None:
        self.sendLine(f"* {text}".encode("utf-8"))

    def error(self, text: str) -> None:
        self.sendLine(f"! {text}".encode("utf-8"))

    def broadcast(self, text: str) -> None:
        """Send ``text`` to every client except this one (pending join/leave notices first)."""
        self.factory.flush_notices()
        data = text.encode("utf-8")
        for client in list(self.factory.clients.values()):
            if client is not self and not client._gone:
                client.sendLine(data)


def positive_int(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return n


positive_int.__name__ = "int"


class ChatFactory(Factory):
    """The room: ``clients`` maps nicknames to connected :class:`Chat` protocols."""

    protocol = Chat
    noisy = False

    def __init__(self, max_line: int = 1024, reactor: Any = None) -> None:
        if max_line <= 0:
            raise ValueError("max_line must be a positive number of bytes")
        self.max_line = max_line
        self.clients: dict[str, Chat] = {}
        self.guests = 0
        self.reactor = reactor
        # Join/leave notices not sent yet, in order: [joined?, nick, protocol]; a join whose
        # client left in the same turn is blanked (nick None) rather than removed.
        self._pending: list[list[Any]] = []
        self._pending_join: dict[Chat, int] = {}  # protocol -> index of its pending join
        self._flush_call: Any = None

    def clock(self, client: Chat | None = None) -> Any:
        """The reactor (``IReactorTime``) the flush is scheduled on: ``reactor`` if given, else
        the one serving ``client``'s transport, else the global one (looked up when needed)."""
        if self.reactor is None:
            self.reactor = getattr(getattr(client, "transport", None), "reactor", None)
            if self.reactor is None:
                self.reactor = framework.reactor
        return self.reactor

    def queue_join(self, client: Chat) -> None:
        """Announce ``client`` (already in ``clients``) with the next batch of notices."""
        if len(self.clients) > 1:  # else nobody is there to tell
            self._pending_join[client] = len(self._pending)
            self._queue([True, client.nick, client])

    def queue_leave(self, client: Chat) -> None:
        """Announce that ``client`` (already out of ``clients``) left, with the next batch."""
        index = self._pending_join.pop(client, None)
        if index is not None:
            self._pending[index][1] = None  # joined and left within one batch: say nothing
        elif self.clients:
            self._queue([False, client.nick, client])

    def _queue(self, entry: list[Any]) -> None:
        self._pending.append(entry)
        if self._flush_call is None:
            delay = min(MAX_NOTICE_DELAY, len(self.clients) * NOTICE_DELAY_PER_CLIENT)
            self._flush_call = self.clock(entry[2]).callLater(delay, self._flush_later)

    def _flush_later(self) -> None:
        self._flush_call = None
        self.flush_notices()

    def flush_notices(self) -> None:
        """Send the pending join/leave notices now: one write per client, each client told
        only of what happened after it arrived, its own arrival excluded."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._pending_join = {}
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        joins: list[int] = []  # indexes into pending, ascending
        leaves: list[int] = []
        for i, (joined, nick, _) in enumerate(pending):
            if nick is not None:
                (joins if joined else leaves).append(i)
        if not joins and not leaves:
            return
        first_join = {pending[i][2]: i for i in joins}
        everything = self._notice_bytes(pending, joins, 0, leaves, 0)
        for client in list(self.clients.values()):
            if client._gone:
                continue
            start = first_join.get(client)
            if start is None:
                data = everything
            else:  # arrived in this batch: only what came after it
                data = self._notice_bytes(pending, joins, bisect_right(joins, start),
                                          leaves, bisect_right(leaves, start))
            if not data:
                continue
            transport = client.transport
            size = getattr(transport, "get_write_buffer_size", None)
            if size is not None and size() > HIGH_WATER:
                continue  # not reading: notices are expendable, its buffer is not
            transport.write(data)

    @staticmethod
    def _notice_bytes(pending: list[list[Any]], joins: list[int], jstart: int,
                      leaves: list[int], lstart: int) -> bytes:
        """``* a, b joined`` / ``* c left`` lines for ``joins[jstart:]`` and ``leaves[lstart:]``
        (a count instead of names beyond ``NOTICE_NAMES``), in time bounded by that cap."""
        lines = []
        for indexes, start, verb in ((joins, jstart, "joined"), (leaves, lstart, "left")):
            count = len(indexes) - start
            if count > NOTICE_NAMES:
                lines.append(f"* {count} users {verb}\r\n")
            elif count > 0:
                names = ", ".join(pending[indexes[i]][1] for i in range(start, len(indexes)))
                lines.append(f"* {names} {verb}\r\n")
        return "".join(lines).encode("utf-8")


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "chat",
        ChatFactory,
        description="line-based chat room: /nick NAME, /who, /quit",
        default_port=DEFAULT_PORT,
        options=(Option("max_line", type=positive_int, default=1024, help="longest accepted line, in bytes"),),
    )
