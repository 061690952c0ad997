"""UNIX stream sockets: listening ports, connectors and the transport.

The transport is ``framework.stream.Connection`` (the write path, flow control, half-close,
abort and error semantics TCP shares) without the TCP socket options; ports and connectors are
``framework.streamport``'s bases. Nothing here depends on ``framework.tcp``. Addresses are filesystem paths or, on Linux,
abstract names (a leading NUL: ``"\\0name"`` or ``b"\\0name"``).

A socket file left behind by a process that died is detected when listening: if the path is a
socket that nobody accepts connections on (connecting to it is refused), it is removed and
the port binds; if something is listening there, or the path is not a socket, listening fails
with ``CannotListenError``. ``stopListening`` removes the socket file it created.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from typing import Any

from framework import error
from framework.address import UNIXAddress
from framework.failure import Failure
from framework.stream import Connection
from framework.streamport import BaseConnector, ConnectAttempt, StreamPort

__all__ = ["Client", "Connector", "Port", "Server", "connectUNIX", "listenUNIX"]

log = logging.getLogger("framework.unix")

Address = str | bytes


def _isAbstract(address: Address) -> bool:
    return address[:1] in ("\0", b"\0")


def _lockPath(address: Address) -> str:
    return os.fsdecode(address) + ".lock"


def _pidAlive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _readLockPID(address: Address) -> int | None:
    try:
        with open(_lockPath(address)) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


class Server(Connection):
    """A connection accepted by a UNIX ``Port``."""

    __slots__ = ("server",)

    _log = log

    def __init__(self, sock: socket.socket, protocol: Any, peer: Any, server: Port,
                 sessionno: int, reactor: Any) -> None:
        Connection.__init__(self, sock, protocol, peer, reactor, None, sessionno)
        self.server = server

    def getHost(self) -> Any:
        host = self._host
        if host is None:
            host = self._host = UNIXAddress(self.server.port)
        return host


class Client(Connection):
    """An outgoing UNIX connection made by a ``Connector``."""

    __slots__ = ()

    _log = log

    def getHost(self) -> Any:
        host = self._host
        if host is None:
            host = self._host = UNIXAddress(self.socket.getsockname() or None)
        return host


class Port(StreamPort):
    """A listening UNIX stream socket."""

    transport = Server
    _log = log

    def __init__(self, address: Address, factory: Any, backlog: int = 50, mode: int = 0o666,
                 reactor: Any = None, wantPID: bool = False) -> None:
        if not isinstance(address, (str, bytes)) or not address:
            raise ValueError(f"a UNIX socket address must be a non-empty str or bytes, not {address!r}")
        StreamPort.__init__(self, address, factory, backlog, "", reactor)
        self.mode = mode
        self.wantPID = wantPID
        self._ownsFile = False
        self._ownsLock = False

    def __repr__(self) -> str:
        state = "listening" if self.connected else "not listening"
        return f"<{type(self.factory).__name__} on {self.port!r} ({state})>"

    def logPrefix(self) -> str:
        return f"{self._factoryName()} (unix {self.port!r})"

    def createInternetSocket(self) -> socket.socket:
        return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def _bindAddress(self) -> Any:
        return self.port

    def _describeBound(self, sock: socket.socket) -> Any:
        return self.port

    def startListening(self) -> None:
        """Bind now, removing a stale socket file first (see the module docstring)."""
        address = self.port
        if not _isAbstract(address):
            if self.wantPID:
                self._takeLock()
            try:
                _removeStaleSocket(address)
            except error.CannotListenError:
                self._releaseLock()
                raise
        try:
            StreamPort.startListening(self)
        except error.CannotListenError:
            self._releaseLock()
            raise
        if not _isAbstract(address):
            self._ownsFile = True
            try:
                os.chmod(address, self.mode)
            except OSError as e:
                self.connectionLost(Failure(e))
                raise error.CannotListenError("", address, e) from e

    def _takeLock(self) -> None:
        pid = _readLockPID(self.port)
        if pid is not None and pid != os.getpid() and _pidAlive(pid):
            raise error.CannotListenError("", self.port, OSError(
                errno.EADDRINUSE, f"the lock file {_lockPath(self.port)!r} is held by process {pid}"))
        try:
            with open(_lockPath(self.port), "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as e:
            raise error.CannotListenError("", self.port, e) from e
        self._ownsLock = True

    def _releaseLock(self) -> None:
        if self._ownsLock:
            self._ownsLock = False
            try:
                os.unlink(_lockPath(self.port))
            except OSError:
                pass

    def _configure(self, sock: socket.socket) -> None:
        pass

    def _peerAddress(self, family: int, addr: Any) -> Any:
        return UNIXAddress(addr or None)

    def _cleanup(self) -> None:
        if self._ownsFile:
            self._ownsFile = False
            try:
                os.unlink(self.port)
            except OSError:
                pass
        self._releaseLock()

    def _boundAddress(self, sock: socket.socket) -> Any:
        return UNIXAddress(self.port)


def _removeStaleSocket(address: Address) -> None:
    """Make way for a new listener at the filesystem path ``address``: remove a socket file
    nobody listens on; raise ``CannotListenError`` for a live listener or a non-socket (which is
    left alone)."""
    try:
        st = os.stat(address)
    except FileNotFoundError:
        return
    except OSError as e:
        raise error.CannotListenError("", address, e) from e
    if not stat.S_ISSOCK(st.st_mode):
        raise error.CannotListenError("", address, OSError(
            errno.ENOTSOCK, "the path exists and is not a socket"))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        err = probe.connect_ex(address)
    finally:
        probe.close()
    if err in (errno.ECONNREFUSED, errno.ENOENT):
        log.info("Removing stale UNIX socket file %r (nothing listens there)", address)
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        return
    raise error.CannotListenError("", address, OSError(
        errno.EADDRINUSE, "another process is listening on this socket"))


def listenUNIX(reactor: Any, address: Address, factory: Any, backlog: int = 50,
               mode: int = 0o666, wantPID: bool = False) -> Port:
    """Listen on the UNIX socket ``address`` now; raises ``CannotListenError`` on failure.

    ``mode`` is applied to the socket file; ``wantPID`` also writes ``address + ".lock"``
    holding this process's PID (refusing to start while a live process holds it).
    """
    p = Port(address, factory, backlog, mode, reactor, wantPID)
    p.startListening()
    return p


class Connector(BaseConnector):
    """A UNIX connector (``connectUNIX``'s result)."""

    transportClass = Client
    _log = log
    # A non-blocking AF_UNIX connect either completes or fails at once; EAGAIN means the
    # listener's backlog is full.
    _inProgress = frozenset({errno.EINPROGRESS})

    def __init__(self, address: Address, factory: Any, timeout: float | None, reactor: Any,
                 checkPID: bool = False) -> None:
        if not isinstance(address, (str, bytes)) or not address:
            raise ValueError(f"a UNIX socket address must be a non-empty str or bytes, not {address!r}")
        self.address = address
        self.checkPID = checkPID
        BaseConnector.__init__(self, factory, timeout, reactor)

    def getDestination(self) -> Any:
        return UNIXAddress(self.address)

    def _begin(self, attempt: ConnectAttempt) -> None:
        if self.checkPID and not _isAbstract(self.address):
            pid = _readLockPID(self.address)
            if pid is None or not _pidAlive(pid):
                attempt.failSoon(error.BadFileError(
                    string=f"no live process holds the lock file {_lockPath(self.address)!r}"))
                return
        attempt.connectTo(socket.AF_UNIX, self.address)

    def _connectError(self, err: int) -> error.ConnectError:
        if err == errno.EAGAIN:
            return error.ConnectError(err, "the listener's backlog is full")
        return error.getConnectError((err, os.strerror(err)))

    def _peerAddress(self, sock: socket.socket) -> Any:
        return UNIXAddress(self.address)


def connectUNIX(reactor: Any, address: Address, factory: Any, timeout: float | None = 30,
                checkPID: bool = False) -> Connector:
    """Connect ``factory`` to the UNIX socket ``address``; returns the ``Connector`` at once.

    Failures reach ``factory.clientConnectionFailed``. ``checkPID`` first checks that a live
    process holds ``address + ".lock"`` (see ``listenUNIX(wantPID=True)``).
    """
    c = Connector(address, factory, timeout, reactor, checkPID)
    c.connect()
    return c
