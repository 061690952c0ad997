"""A line-based chat room.

Every line a client sends goes to all the other clients, prefixed with the sender's nickname.
Commands: ``/nick NAME`` (change nickname), ``/who`` (list who is here), ``/quit`` (leave).
Server notices start with ``* ``, errors with ``! ``. A line longer than ``max_line`` bytes is
refused with an error line; the client stays connected and the lines before and after it are
delivered as usual. Lines may end in CRLF or a bare LF.
"""

from __future__ import annotations

import re
from typing import Any

from framework import hookimpl
from framework.basic import LineReceiver
from framework.plugins import Option
from framework.protocol import Factory

__all__ = ["Chat", "ChatFactory", "register_protocols"]

DEFAULT_PORT = 8023
_NICK = re.compile(r"[A-Za-z0-9_.\-]{1,32}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]")
_HELP = "commands: /nick NAME, /who, /quit"


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
        self.broadcast(f"* {nick} joined")

    def connectionLost(self, reason: Any = None) -> None:
        self._gone = True
        clients = self.factory.clients
        if clients.get(self.nick) is self:
            del clients[self.nick]
            self.broadcast(f"* {self.nick} left")

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
        """Send ``text`` to every client except this one."""
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

    def __init__(self, max_line: int = 1024) -> None:
        if max_line <= 0:
            raise ValueError("max_line must be a positive number of bytes")
        self.max_line = max_line
        self.clients: dict[str, Chat] = {}
        self.guests = 0


@hookimpl
def register_protocols(registry: Any) -> None:
    registry.add(
        "chat",
        ChatFactory,
        description="line-based chat room: /nick NAME, /who, /quit",
        default_port=DEFAULT_PORT,
        options=(Option("max_line", type=positive_int, default=1024, help="longest accepted line, in bytes"),),
    )
