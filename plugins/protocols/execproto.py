"""``exec``: one child process per connection, inetd style (socat's ``EXEC:``).

``reactor-serve --protocol exec --option cmd="grep --line-buffered foo"`` runs the command for
every connection: the client's bytes are its standard input, its standard output goes back to
the client, its standard error to the server log (logger ``reactor_framework_plugins.exec``),
one line at a time. The command is split like a shell would split it (``shlex``) but never run
through a shell; the program must exist when the server starts. The child gets the server's
environment and working directory.

Flow control holds both ways: a child that does not read stops the server reading from the
client, a client that does not read stops the server reading the child's output. The client
closing its sending side (half-close) closes the child's standard input; the child exiting ends
the connection once its output has been sent. A client that goes away (noticed when sending
to it fails, or by ``--idle-timeout``) makes the child see end of input, then ``SIGTERM``, then
``SIGKILL`` after ``kill_after`` seconds. When the server
stops listening (graceful shutdown) every child gets ``SIGTERM`` at once; the connections of
those still running when the grace ends are aborted, which kills them.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from typing import Any

from framework import hookimpl
from framework.interfaces import IHalfCloseableProtocol
from framework.options import Option
from framework.protocol import Factory, ProcessProtocol, Protocol
from framework.registries import ProtocolRegistry

__all__ = ["ExecFactory", "ExecProtocol", "command", "register_protocols"]

log = logging.getLogger("reactor_framework_plugins.exec")

DEFAULT_PORT = 8024
#: Seconds between SIGTERM and SIGKILL for a child whose client went away.
DEFAULT_KILL_AFTER = 5.0
#: Longest stderr line logged as one record (longer ones are split).
MAX_LOG_LINE = 4096


def command(text: str) -> list[str]:
    """Option type for ``cmd=``: split with ``shlex``; the program must be found now."""
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise ValueError(f"cannot split the command {text!r}: {e}") from None
    if not argv:
        raise ValueError("the command is empty: give the program to run, e.g. cmd=\"cat\"")
    program = argv[0]
    found = shutil.which(program)
    if found is None:
        where = "is not an executable file" if os.sep in program else "was not found on PATH"
        raise ValueError(f"the program {program!r} {where}")
    argv[0] = found
    return argv


command.__name__ = "command"


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise ValueError("expected seconds, more than 0 and at most 3600")
    return value


_seconds.__name__ = "seconds"


class _Child(ProcessProtocol):
    """The process side of one connection."""

    def __init__(self, connection: ExecProtocol) -> None:
        self.connection = connection
        self.pending_err = b""

    def outReceived(self, data: bytes) -> None:
        transport = self.connection.transport
        if transport is not None:
            transport.write(data)

    def errReceived(self, data: bytes) -> None:
        lines = (self.pending_err + data).split(b"\n")
        self.pending_err = lines.pop()
        if len(self.pending_err) > MAX_LOG_LINE:
            lines.append(self.pending_err)
            self.pending_err = b""
        for line in lines:
            self._log(line)

    def _log(self, line: bytes) -> None:
        log.info("%s: %s", self.connection.describe(), line.rstrip(b"\r").decode("utf-8", "backslashreplace"))

    def errConnectionLost(self) -> None:
        if self.pending_err:
            self._log(self.pending_err)
            self.pending_err = b""

    def processEnded(self, reason: Any) -> None:
        self.errConnectionLost()
        self.connection.childEnded(reason)


class ExecProtocol(Protocol, IHalfCloseableProtocol):
    """Relays one connection to one child process."""

    def __init__(self) -> None:
        self.process: Any = None
        self.child: _Child | None = None
        self.kill_call: Any = None

    def describe(self) -> str:
        pid = getattr(self.process, "pid", None)
        peer = self.transport.getPeer() if self.transport is not None else None
        where = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}" if peer is not None else "?"
        return f"exec[{pid}] for {where}"

    def connectionMade(self) -> None:
        factory: ExecFactory = self.factory
        self.child = _Child(self)
        try:
            self.process = factory.reactor().spawnProcess(
                self.child, factory.argv[0], factory.argv, env=dict(os.environ), path=None)
        except OSError as e:
            log.error("cannot start %r for a connection: %s", factory.argv[0], e)
            self.transport.loseConnection()
            return
        factory.children.add(self)
        # Each side paces the other: a full pipe pauses the socket, a full socket the pipes.
        self.process.registerProducer(self.transport, True)
        self.transport.registerProducer(self.process, True)

    def dataReceived(self, data: bytes) -> None:
        if self.process is not None:
            self.process.write(data)

    def readConnectionLost(self) -> None:
        """The client finished sending: the child sees end of input."""
        if self.process is not None:
            self.process.unregisterProducer()  # nothing more comes from the socket
            self.process.closeStdin()

    def writeConnectionLost(self) -> None:
        pass

    def childEnded(self, reason: Any) -> None:
        self.factory.children.discard(self)
        if self.kill_call is not None and self.kill_call.active():
            self.kill_call.cancel()
        self.process = None
        transport = self.transport
        if transport is not None:
            transport.unregisterProducer()
            transport.loseConnection()

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM), and kill it ``kill_after`` seconds later."""
        process = self.process
        if process is None or process.pid is None:
            return
        try:
            process.signalProcess("TERM")
        except Exception:
            return
        if self.kill_call is None:
            self.kill_call = self.factory.reactor().callLater(self.factory.kill_after, self._kill)

    def _kill(self) -> None:
        self.kill_call = None
        process = self.process
        if process is not None and process.pid is not None:
            try:
                process.signalProcess("KILL")
            except Exception:
                pass

    def connectionLost(self, reason: Any = None) -> None:
        process = self.process
        if process is None:
            return
        process.unregisterProducer()
        process.closeStdin()
        self.terminate()


class ExecFactory(Factory):
    """Runs ``cmd`` (already split, or a string to split) for every connection."""

    protocol = ExecProtocol
    noisy = False

    def __init__(self, cmd: str | list[str], kill_after: float = DEFAULT_KILL_AFTER,
                 reactor: Any = None) -> None:
        self.argv = command(cmd) if isinstance(cmd, str) else list(cmd)
        if not self.argv:
            raise ValueError("the command is empty")
        self.kill_after = kill_after
        self._reactor = reactor
        self.children: set[ExecProtocol] = set()

    def reactor(self) -> Any:
        if self._reactor is None:
            # reason: the global reactor, installed by reactor-serve before any connection
            from framework import reactor

            self._reactor = reactor
        return self._reactor

    def stopFactory(self) -> None:
        """The server stopped listening: ask every child to finish."""
        for connection in list(self.children):
            connection.terminate()


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "exec",
        ExecFactory,
        description="run a program per connection: socket <-> its stdin/stdout (inetd style)",
        default_port=DEFAULT_PORT,
        options=(
            Option("cmd", type=command, required=True,
                   help="the program and its arguments, split like a shell would (no shell runs)"),
            Option("kill_after", type=_seconds, default=DEFAULT_KILL_AFTER,
                   help="seconds from SIGTERM to SIGKILL for a child whose client went away"),
        ),
    )
