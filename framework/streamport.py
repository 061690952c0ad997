"""The listening-port and connector bases shared by every stream transport (TCP, UNIX).

``StreamPort`` accepts connections in batches (``ACCEPT_BATCH``), hands each to the factory and
backs off (``ACCEPT_BACKOFF``) when the process runs out of descriptors, shedding the waiting
clients with a reserve descriptor. ``BaseConnector`` drives a ``ClientFactory`` through one or
more ``ConnectAttempt`` objects (non-blocking connect, several addresses of a name in turn, timeout).
The transports built are ``framework.stream.Connection`` subclasses chosen by the subclass.
"""

from __future__ import annotations

import errno
import logging
import math
import numbers
import os
import socket
import time
from typing import Any, Callable

from framework import error
from framework.address import from_sockaddr
from framework.defer import Deferred, succeed
from framework.failure import Failure
from framework.interfaces import IConnector, IListeningPort, IReadDescriptor, IWriteDescriptor
from framework.main import global_reactor
from framework.stream import Connection, ReadToggle

__all__ = ["ACCEPT_BACKOFF", "ACCEPT_BATCH", "BaseConnector", "ConnectAttempt", "StreamPort"]

log = logging.getLogger("framework.stream")

#: Most connections accepted per read event of a listening port.
ACCEPT_BATCH = 64
#: Seconds a listening port stops accepting after running out of file descriptors.
ACCEPT_BACKOFF = 0.1
# Errors from accept() that concern only the connection being accepted.
_ACCEPT_TRANSIENT = frozenset(
    {errno.ECONNABORTED, errno.EPERM, errno.EPROTO, errno.ENETDOWN, errno.EHOSTUNREACH,
     errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENOPROTOOPT, errno.EOPNOTSUPP}
    | ({errno.ENONET} if hasattr(errno, "ENONET") else set())
)
_CONNECT_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY})


# -- listening ----------------------------------------------------------------------------


class StreamPort(ReadToggle, IReadDescriptor, IListeningPort):
    """A listening stream socket: accepts connections and hands each to ``factory``.

    Subclasses (``tcp.Port``, ``unix.Port``) say how to create and bind the socket
    (``createInternetSocket``, ``_bindAddress``), the transport class of accepted connections
    (``transport``) and their socket options (``_configure``).
    """

    #: The transport class of accepted connections: ``(sock, protocol, peer, port, sessionno,
    #: reactor)``.
    transport: type[Connection]
    #: The address ``type`` of IP addresses this port reports.
    addressKind = "TCP"
    #: The logger of this kind of port.
    _log = log

    def __init__(self, port: Any, factory: Any, backlog: int = 50, interface: str = "",
                 reactor: Any = None) -> None:
        if reactor is None:
            reactor = global_reactor()
        self.port = port
        self.factory = factory
        self.backlog = backlog
        self.interface = interface
        self.reactor = reactor
        self.socket: socket.socket | None = None
        self.connected = False
        self.disconnecting = False
        self.sessionno = 0
        self._fd = -1
        self._accept: Callable[[], tuple[socket.socket, Any]] | None = None
        self._reading = False
        self._backoffCall: Any = None
        self._lastFdLog = 0.0
        self._fdLogSuppressed = 0
        self._realPort: Any = None
        self._hostAddress: Any = None
        self._held = False

    def __repr__(self) -> str:
        where = self._realPort if self._realPort is not None else self.port
        state = "listening" if self.connected else "not listening"
        return f"<{type(self.factory).__name__} on {where!r} ({state})>"

    # -- setup ---------------------------------------------------------------------------

    def _bindAddress(self) -> Any:
        return self.port

    def createInternetSocket(self) -> socket.socket:
        """A new socket to bind and listen on."""
        raise NotImplementedError

    def startListening(self) -> None:
        """Bind and listen now; raises ``CannotListenError`` naming the address and reason."""
        if self.connected:
            raise error.AlreadyListened(f"{self!r} is already listening")
        try:
            sock = self.createInternetSocket()
        except OSError as e:
            raise error.CannotListenError(self.interface, self.port, e) from e
        try:
            sock.bind(self._bindAddress())
            sock.listen(self.backlog)
            sock.setblocking(False)
        except (OSError, OverflowError, TypeError) as e:
            sock.close()
            raise error.CannotListenError(self.interface, self.port, e) from e
        self._listening(sock)

    def _listening(self, sock: socket.socket) -> None:
        self._hostAddress = self._boundAddress(sock)
        self._realPort = self._describeBound(sock)
        try:
            self.factory.doStart()
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        self._fd = sock.fileno()
        self._accept = sock.accept
        self.connected = True
        _takeReserve()
        self._startReading()
        if getattr(self.factory, "noisy", False):
            self._log.info("%s starting on %r", self._factoryName(), self._realPort)

    def _describeBound(self, sock: socket.socket) -> Any:
        return self.port

    def stopReading(self) -> None:
        """Stop accepting (new connections wait in the kernel's backlog) until
        ``startReading``; e.g. to cap the number of open connections."""
        self._held = True
        self._stopReading()

    def startReading(self) -> None:
        """Accept again after ``stopReading``."""
        self._held = False
        if self.connected and not self.disconnecting and self._backoffCall is None:
            self._startReading()

    # -- accepting -------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return f"{self._factoryName()} (port {self._realPort})"

    def _factoryName(self) -> str:
        """The factory's ``logPrefix()`` (a wrapper passes on the wrapped factory's), else its
        class name: a log line never fails because of it."""
        try:
            return str(self.factory.logPrefix())
        except Exception:
            return type(self.factory).__name__

    def doRead(self) -> Any:
        for _ in range(ACCEPT_BATCH):
            accept = self._accept
            if accept is None or not self._reading:
                return None
            try:
                sock, addr = accept()
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as e:
                if e.errno in _ACCEPT_TRANSIENT:
                    continue
                self._acceptFailed(e)
                return None
            self._accepted(sock, sock.family, addr)
        return None

    def _accepted(self, sock: socket.socket, family: int, addr: Any) -> None:
        try:
            sock.setblocking(False)
            self._configure(sock)
            peer = self._peerAddress(family, addr)
        except OSError:
            sock.close()  # the peer is already gone
            return
        self.sessionno += 1
        factory = self.factory
        try:
            protocol = factory.buildProtocol(peer)
        except Exception:
            self._log.error("Unhandled exception in %s.buildProtocol for %r; closing that connection",
                      type(factory).__name__, peer, exc_info=True)
            sock.close()
            return
        if protocol is None:
            sock.close()
            return
        try:
            transport = self.transport(sock, protocol, peer, self, self.sessionno, self.reactor)  # type: ignore[call-arg]
        except Exception:
            self._log.error("Cannot serve %r with %r from %s.buildProtocol; closing that connection",
                      peer, protocol, type(factory).__name__, exc_info=True)
            sock.close()
            return
        cap = getattr(factory, "maxWriteBuffer", None)
        if cap:
            transport._maxBuffer = cap
        transport._start()

    def _configure(self, sock: socket.socket) -> None:
        """Options for an accepted socket (``OSError``: the peer is gone, drop it)."""

    def _peerAddress(self, family: int, addr: Any) -> Any:
        return from_sockaddr(family, addr, self.addressKind)

    def _acceptFailed(self, e: OSError) -> None:
        """Stop accepting for ``ACCEPT_BACKOFF`` seconds (out of descriptors, or an unexpected
        error), so the loop never spins on a listener it cannot serve; log at most once a
        second, with the number of lines left out.

        Out of descriptors, the reserve descriptor is freed to accept and close the waiting
        clients (they learn at once instead of hanging in the backlog), then taken again."""
        shed = 0
        if e.errno in (errno.EMFILE, errno.ENFILE):
            shed = _shedBacklog(self.socket)
        now = time.monotonic()
        self._fdLogSuppressed += 1
        if now - self._lastFdLog >= 1.0:
            self._lastFdLog = now
            suppressed = self._fdLogSuppressed - 1
            self._fdLogSuppressed = 0
            self._log.error("%s cannot accept connections: %s; closed %d waiting connection(s); "
                      "pausing accept for %gs (%d similar message(s) suppressed)",
                      self.logPrefix(), e, shed, ACCEPT_BACKOFF, suppressed)
        self._stopReading()
        if self._backoffCall is None:
            self._backoffCall = self.reactor.callLater(ACCEPT_BACKOFF, self._endBackoff)

    def _endBackoff(self) -> None:
        self._backoffCall = None
        if self.connected and not self.disconnecting and not self._held:
            self._startReading()

    # -- stopping --------------------------------------------------------------------------

    def stopListening(self) -> Deferred:
        """Stop accepting and close the socket; the returned Deferred has fired once it is
        closed (already, since closing is synchronous)."""
        if self.connected and not self.disconnecting:
            self.connectionLost(Failure(error.ConnectionDone("port closed")))
        return succeed(None)

    loseConnection = stopListening

    def connectionLost(self, reason: Failure) -> None:
        """Close the listening socket and stop the factory (once)."""
        if not self.connected:
            return
        self.disconnecting = True
        self._stopReading()
        if self._backoffCall is not None:
            if self._backoffCall.active():
                self._backoffCall.cancel()
            self._backoffCall = None
        self.connected = False
        self._fd = -1
        self._accept = None
        if self.socket is not None:
            self.socket.close()
        self._cleanup()
        try:
            self.factory.doStop()
        except Exception:
            self._log.exception("Error stopping factory %r", self.factory)
        finally:
            self.disconnecting = False

    def _cleanup(self) -> None:
        """Subclass hook run after the socket is closed (e.g. unlink a UNIX socket file)."""

    def _boundAddress(self, sock: socket.socket) -> Any:
        return from_sockaddr(sock.family, sock.getsockname(), self.addressKind)

    def getHost(self) -> Any:
        """The address listened on (with the real port); still known after stopping."""
        if self._hostAddress is None:
            raise RuntimeError(f"{self!r} has never listened")
        return self._hostAddress


# One spare descriptor per process, freed when accept() runs out of descriptors (EMFILE).
_reserveFd = -1


def _takeReserve() -> None:
    global _reserveFd
    if _reserveFd < 0:
        try:
            _reserveFd = os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            _reserveFd = -1


def _shedBacklog(sock: socket.socket | None, limit: int = 1024) -> int:
    """Free the reserve descriptor, accept and close up to ``limit`` waiting connections,
    take the reserve again; returns how many were closed."""
    global _reserveFd
    if sock is None or _reserveFd < 0:
        return 0
    os.close(_reserveFd)
    _reserveFd = -1
    shed = 0
    try:
        while shed < limit:
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno in _ACCEPT_TRANSIENT:
                    continue
                break
            conn.close()
            shed += 1
    finally:
        _takeReserve()
    return shed


# -- connecting ---------------------------------------------------------------------------


class ConnectAttempt(IWriteDescriptor):
    """One attempt of a ``Connector``: resolve, create the socket, wait until it connects."""

    __slots__ = ("connector", "reactor", "sock", "_fd", "done", "_writing", "candidates")

    def __init__(self, connector: BaseConnector) -> None:
        self.connector = connector
        self.reactor = connector.reactor
        self.sock: socket.socket | None = None
        self._fd = -1
        self.done = False
        self._writing = False
        #: Further ``(family, sockaddr)`` to try if this one fails (a name's other addresses).
        self.candidates: list[tuple[int, Any]] = []

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return f"connecting to {self.connector.getDestination()!r}"

    def connectTo(self, family: int, sockaddr: Any) -> None:
        """Create the socket and start the non-blocking connect (never reports synchronously)."""
        if self.done:
            return
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            self.failSoon(error.ConnectError(string=f"cannot create socket: {e}"))
            return
        self.sock = sock
        self._fd = sock.fileno()
        try:
            sock.setblocking(False)
            self.connector._prepareSocket(sock)
        except OSError as e:
            self.failSoon(error.ConnectBindError(e.errno, e.strerror or str(e)))
            return
        try:
            err = sock.connect_ex(sockaddr)
        except (OSError, OverflowError, TypeError) as e:
            self.failSoon(error.ConnectError(string=str(e)))
            return
        if err == 0 or err in self.connector._inProgress:
            # Even an immediate success is reported from doWrite, after startedConnecting.
            self._writing = True
            self.reactor.addWriter(self)
        else:
            self.reactor.callLater(0, self._addressFailed, self.connector._connectError(err))

    def doWrite(self) -> Any:
        if self.done or self.sock is None:
            return None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._addressFailed(self.connector._connectError(err))
            return None
        self._stopWriting()
        sock = self.sock
        self.done = True
        self.sock = None
        self._fd = -1
        self.connector._connectionMade(sock)
        return None

    def _stopWriting(self) -> None:
        if self._writing:
            self._writing = False
            self.reactor.removeWriter(self)

    def _addressFailed(self, exc: BaseException) -> None:
        """Connecting to this address failed: try the next one, if any, else give up."""
        if self.done:
            return
        if not self.candidates:
            self.fail(exc)
            return
        self._stopWriting()
        self._fd = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        family, sockaddr = self.candidates.pop(0)
        self.connectTo(family, sockaddr)

    def failSoon(self, exc: BaseException) -> None:
        """Report the failure on the next turn of the loop (we may be inside ``connect``)."""
        self.reactor.callLater(0, self.fail, exc)

    def fail(self, exc: BaseException) -> None:
        """Abandon this attempt (if still running) and report ``exc`` to the connector."""
        if self.done:
            return
        self.done = True
        self._stopWriting()
        self._fd = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.connector._connectionFailed(Failure(exc))

    def connectionLost(self, reason: Failure) -> None:
        self._writing = False
        self.fail(error.ConnectError(string=reason.getErrorMessage()))


class BaseConnector(IConnector):
    """Connects a ``ClientFactory`` (possibly again and again) to one destination.

    States: ``'disconnected'``, ``'connecting'``, ``'connected'``. ``connect()`` from
    ``clientConnectionFailed``/``clientConnectionLost`` tries again.
    """

    #: The transport class of the connection made: ``(sock, protocol, peer, reactor, connector)``.
    transportClass: type[Connection]
    #: The logger of this kind of connector.
    _log = log
    _inProgress = _CONNECT_IN_PROGRESS

    def __init__(self, factory: Any, timeout: float | None, reactor: Any) -> None:
        # Checked here, before the factory is started: a bad argument is the caller's error.
        if timeout is not None:
            if not isinstance(timeout, numbers.Real) or isinstance(timeout, bool):
                raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
            if not 0 <= timeout < math.inf:
                raise ValueError(f"timeout must be a finite number of seconds >= 0, not {timeout!r}")
        self.factory = factory
        self.timeout = timeout
        self.reactor = reactor
        self.state = "disconnected"
        self.transport: Any = None
        self.factoryStarted = False
        self._timeoutCall: Any = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} to {self.getDestination()!r} ({self.state})>"

    def connect(self) -> None:
        """Start a connection attempt; progress is reported to the factory."""
        if self.state != "disconnected":
            raise RuntimeError(f"cannot connect in state {self.state!r}")
        self.state = "connecting"
        if not self.factoryStarted:
            self.factory.doStart()
            self.factoryStarted = True
        attempt = ConnectAttempt(self)
        self.transport = attempt
        if self.timeout is not None:
            self._timeoutCall = self.reactor.callLater(
                self.timeout, attempt.fail,
                error.TimeoutError(string=f"no connection after {self.timeout}s"))
        self._begin(attempt)
        try:
            self.factory.startedConnecting(self)
        except Exception:
            self._log.exception("Error in %s.startedConnecting", type(self.factory).__name__)

    def _begin(self, attempt: ConnectAttempt) -> None:
        raise NotImplementedError

    def _prepareSocket(self, sock: socket.socket) -> None:
        """Bind, set options... before connecting. ``OSError`` fails the attempt."""

    def _connectError(self, err: int) -> error.ConnectError:
        return error.getConnectError((err, os.strerror(err)))

    def stopConnecting(self) -> None:
        """Abandon the attempt in progress (``clientConnectionFailed`` gets ``UserError``)."""
        if self.state != "connecting":
            raise error.NotConnectingError("not trying to connect")
        self.transport.fail(error.UserError(string="connection attempt cancelled"))

    def disconnect(self) -> None:
        """Stop connecting, or close the connection made."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected":
            self.transport.loseConnection()

    def buildProtocol(self, addr: Any) -> Any:
        return self.factory.buildProtocol(addr)

    def _cancelTimeout(self) -> None:
        call = self._timeoutCall
        self._timeoutCall = None
        if call is not None and call.active():
            call.cancel()

    def _peerAddress(self, sock: socket.socket) -> Any:
        raise NotImplementedError

    def _connectionMade(self, sock: socket.socket) -> None:
        self._cancelTimeout()
        try:
            peer = self._peerAddress(sock)
            self._configure(sock)
        except OSError as e:
            sock.close()
            self._connectionFailed(Failure(self._connectError(e.errno or errno.ENOTCONN)))
            return
        try:
            protocol = self.buildProtocol(peer)
        except Exception:
            reason = Failure()
            self._log.error("Unhandled exception in %s.buildProtocol for %r", type(self.factory).__name__,
                      peer, exc_info=True)
            sock.close()
            self._connectionFailed(reason)
            return
        if protocol is None:
            sock.close()
            self._connectionFailed(Failure(error.ConnectError(
                string=f"{type(self.factory).__name__}.buildProtocol returned None")))
            return
        try:
            transport = self.transportClass(sock, protocol, peer, self.reactor, self)
        except Exception:
            reason = Failure()
            self._log.error("Cannot serve %r with %r from %s.buildProtocol", peer, protocol,
                      type(self.factory).__name__, exc_info=True)
            sock.close()
            self._connectionFailed(reason)
            return
        cap = getattr(self.factory, "maxWriteBuffer", None)
        if cap:
            transport._maxBuffer = cap
        self.state = "connected"
        self.transport = transport
        transport._start()

    def _configure(self, sock: socket.socket) -> None:
        """Options for the connected socket."""

    def _connectionFailed(self, reason: Failure) -> None:
        self._cancelTimeout()
        self.state = "disconnected"
        self.transport = None
        try:
            self.factory.clientConnectionFailed(self, reason)
        except Exception:
            self._log.exception("Error in %s.clientConnectionFailed", type(self.factory).__name__)
        self._maybeStopFactory()

    def _connectionLost(self, reason: Failure) -> None:
        self.state = "disconnected"
        try:
            self.factory.clientConnectionLost(self, reason)
        except Exception:
            self._log.exception("Error in %s.clientConnectionLost", type(self.factory).__name__)
        self._maybeStopFactory()

    def _maybeStopFactory(self) -> None:
        if self.state == "disconnected" and self.factoryStarted:
            self.factoryStarted = False
            try:
                self.factory.doStop()
            except Exception:
                self._log.exception("Error stopping factory %r", self.factory)

    def getDestination(self) -> Any:
        raise NotImplementedError
