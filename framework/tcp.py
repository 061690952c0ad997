"""TCP: the stream transport, listening ports and outgoing connectors.

The stream ``Connection`` here is shared with UNIX sockets (``framework.unix``). Semantics
follow ``twisted.internet.tcp``; see ``docs/transports.md`` for the write path, flow control,
half-close and error reporting.

Hot paths (``doRead``, ``write``, ``doWrite``) are kept flat: the protocol's ``dataReceived``
is cached as a bound method after ``connectionMade``, ``write`` sends at once when nothing is
buffered, and the write buffer is a list of chunks plus a byte count, handed to ``sendmsg``
without joining.
"""

from __future__ import annotations

import errno
import logging
import math
import numbers
import operator
import os
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from framework import error
from framework.address import IPv4Address, IPv6Address, UNIXAddress, host_port, isIPAddress, isIPv6Address
from framework.failure import Failure
from framework.interfaces import (
    IConnector,
    IConsumer,
    IHalfCloseableProtocol,
    IListeningPort,
    IPushProducer,
    IReadDescriptor,
    IReadWriteDescriptor,
    ITCPTransport,
    ITransport,
    IWriteDescriptor,
)
from framework.main import CONNECTION_DONE

if TYPE_CHECKING:
    from framework.defer import Deferred

__all__ = [
    "Client",
    "Connection",
    "Connector",
    "Port",
    "Server",
    "TCPConnection",
    "connectTCP",
    "listenTCP",
]

log = logging.getLogger("framework.tcp")

#: Most bytes read per read event.
READ_SIZE = 65536
# The fast paths use os.read/os.write on the descriptor: on a connected socket read(2) and
# write(2) do what recv/send do, with less interpreter overhead (docs/benchmarks-echo.md).
# The descriptor is only used while the transport owns the socket (``_fd`` is -1 once closed).
_read = os.read
_write = os.write
# SO_LINGER on, timeout 0: close() resets the connection (see Connection._closeSoon).
_LINGER_RESET = struct.pack("ii", 1, 0)
#: A streaming producer is paused when more than this many bytes are buffered...
HIGH_WATER = 65536
#: ...and resumed when the buffer drains below this.
LOW_WATER = 16384
#: Default cap (bytes) on a connection's write buffer: beyond it the connection is aborted
#: (the peer does not read and the protocol ignores flow control). Per factory:
#: ``factory.maxWriteBuffer``; per transport: ``transport.maxWriteBuffer``.
MAX_WRITE_BUFFER = 16 * 1024 * 1024
#: Most connections accepted per read event of a listening port.
ACCEPT_BATCH = 64
#: Seconds a listening port stops accepting after running out of file descriptors.
ACCEPT_BACKOFF = 0.1
#: Most buffers handed to one ``sendmsg`` call (POSIX guarantees IOV_MAX >= 16; Linux: 1024).
try:
    _IOV_MAX = max(16, min(os.sysconf("SC_IOV_MAX"), 1024))
except (AttributeError, ValueError, OSError):
    _IOV_MAX = 16

_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
_intern = sys.intern
# Errors from accept() that concern only the connection being accepted.
_ACCEPT_TRANSIENT = frozenset(
    {errno.ECONNABORTED, errno.EPERM, errno.EPROTO, errno.ENETDOWN, errno.EHOSTUNREACH,
     errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENOPROTOOPT, errno.EOPNOTSUPP}
    | ({errno.ENONET} if hasattr(errno, "ENONET") else set())
)
_CONNECT_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY})


def _address(family: int, sockaddr: Any, kind: str = "TCP") -> Any:
    """The address object for a socket address of ``family``."""
    # Host strings are interned: thousands of connections from one peer share one string.
    if family == socket.AF_INET:
        return IPv4Address(kind, _intern(sockaddr[0]), sockaddr[1])  # type: ignore[arg-type]
    if family == socket.AF_INET6:
        return IPv6Address(kind, _intern(sockaddr[0]), sockaddr[1], sockaddr[2], sockaddr[3])  # type: ignore[arg-type]
    if family == getattr(socket, "AF_UNIX", None):
        return UNIXAddress(sockaddr or None)
    raise ValueError(f"unsupported address family {family!r}")


class _Unwatchable:
    """A WARNING for connections refused because the backend cannot watch their descriptor:
    at most one a second, the next one with the number left out."""

    last = float("-inf")
    suppressed = 0

    def __call__(self, e: Exception, peer: str) -> None:
        now = time.monotonic()
        if now - self.last < 1.0:
            self.suppressed += 1
            return
        self.last = now
        log.warning("refusing the connection from %s: %s (%d similar message(s) suppressed)",
                    peer, e, self.suppressed)
        self.suppressed = 0


_unwatchableLog = _Unwatchable()


def _logProtocolError(what: str, transport: Any) -> None:
    log.error("Unhandled exception in %s (peer %s); closing that connection", what,
              transport._describePeer(), exc_info=True)


class _ReadToggle:
    """Read interest registered with the reactor at most once (``_reading`` tracks it)."""

    __slots__ = ()

    def _startReading(self: Any) -> None:
        if not self._reading:
            self._reading = True
            self.reactor.addReader(self)

    def _stopReading(self: Any) -> None:
        if self._reading:
            self._reading = False
            self.reactor.removeReader(self)


class Connection(_ReadToggle, IReadWriteDescriptor, ITransport, IConsumer, IPushProducer):
    """A connected stream socket: reads into ``protocol.dataReceived``, buffers writes.

    Also an ``IPushProducer`` of its own incoming data: ``pauseProducing`` stops reading from
    the socket, ``resumeProducing`` starts again, ``stopProducing`` closes the connection.
    """

    __slots__ = (
        "socket", "reactor", "connector", "connected", "disconnecting", "disconnected",
        "_protocol", "_dataReceived", "_halfClose", "_fd",
        "_buf", "_buflen", "_reading", "_writing", "_readPaused", "_lost", "_closing", "_fast",
        "_readDisconnected", "_writeDisconnecting", "_writeDisconnected",
        "_producer", "_streaming", "_producerPaused", "_peer", "_host", "sessionno",
        "_maxBuffer", "__weakref__",
    )

    def __init__(self, sock: socket.socket, protocol: Any, peer: Any, reactor: Any,
                 connector: Any = None, sessionno: int = 0) -> None:
        self.socket = sock
        self.reactor = reactor
        self.connector = connector
        self.sessionno = sessionno
        self.connected = 1
        self.disconnecting = 0
        self.disconnected = 0
        self._fd = sock.fileno()
        # The write buffer is created on first use: most connections never need one, and
        # an idle connection costs less memory without it.
        self._buf: list[Any] | None = None
        self._buflen = 0
        self._reading = False
        self._writing = False
        self._readPaused = False
        self._lost = False
        self._closing = False
        # True while write() may send directly: open for writing, no pull producer.
        self._fast = True
        self._readDisconnected = False
        self._writeDisconnecting = False
        self._writeDisconnected = False
        self._producer: Any = None
        self._streaming = False
        self._producerPaused = False
        self._peer = peer
        self._host: Any = None
        self._protocol = protocol
        self._dataReceived: Callable[[bytes], Any] = protocol.dataReceived
        self._halfClose = isinstance(protocol, IHalfCloseableProtocol)
        self._maxBuffer = MAX_WRITE_BUFFER

    # -- the protocol -------------------------------------------------------------------

    @property
    def protocol(self) -> Any:
        """The protocol fed by this transport (assignable, to switch protocols)."""
        return self._protocol

    @protocol.setter
    def protocol(self, protocol: Any) -> None:
        self._protocol = protocol
        self._dataReceived = protocol.dataReceived
        self._halfClose = isinstance(protocol, IHalfCloseableProtocol)

    def _start(self) -> bool:
        """Start reading and call ``makeConnection``; ``False`` if that raised (the
        connection is then closed with the exception as the reason)."""
        try:
            self._startReading()
        except ValueError as e:  # the backend cannot watch this fd (select above FD_SETSIZE)
            self._reading = False
            _unwatchableLog(e, self._describePeer())
            self._dropNow(Failure(error.ConnectionLost(str(e))))
            return False
        protocol = self._protocol
        try:
            protocol.makeConnection(self)
        except Exception:
            reason = Failure()
            _logProtocolError(f"{type(protocol).__name__}.connectionMade", self)
            self._dropNow(reason)
            return False
        # connectionMade may have replaced dataReceived (or the protocol); cache the result.
        if self._protocol is protocol and not self._lost:
            self._dataReceived = protocol.dataReceived
        return True

    # -- reactor plumbing ---------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def getHandle(self) -> socket.socket:
        """The underlying socket."""
        return self.socket

    def _startWriting(self) -> None:
        if not self._writing:
            self._writing = True
            self.reactor.addWriter(self)

    def _stopWriting(self) -> None:
        if self._writing:
            self._writing = False
            self.reactor.removeWriter(self)

    # Twisted's FileDescriptor names, for code that drives a transport directly.
    startReading = _ReadToggle._startReading
    stopReading = _ReadToggle._stopReading
    startWriting = _startWriting
    stopWriting = _stopWriting

    def logPrefix(self) -> str:
        proto = type(self._protocol).__name__
        return f"{proto},{self.sessionno},{self._describePeer()}"

    def _describePeer(self) -> str:
        peer = self._peer
        if isinstance(peer, (IPv4Address, IPv6Address)):
            return host_port(peer.host, peer.port)
        if isinstance(peer, UNIXAddress):
            return repr(peer.name)
        return repr(peer)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"<{type(self).__name__} {self.logPrefix()} fd={self._fd} {state}>"

    # -- reading --------------------------------------------------------------------------

    def doRead(self) -> Any:
        if not self._reading:
            return None  # a readiness event reported before we stopped reading
        try:
            data = _read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            return Failure(error.ConnectionLost(e))
        if data:
            try:
                self._dataReceived(data)
            except Exception:
                reason = Failure()
                _logProtocolError(f"{type(self._protocol).__name__}.dataReceived", self)
                # After abortConnection the pending ConnectionAborted stays the reason.
                return None if self._closing else reason
            return None
        return self._readEOF()

    def _readEOF(self) -> Any:
        """The peer sent FIN."""
        if not self._halfClose:
            return CONNECTION_DONE
        self._readDisconnected = True
        self._stopReading()
        # The hook runs even when our side has already half-closed: ported Twisted code does its
        # end-of-input work there. With both halves closed, the connection is then done.
        try:
            self._protocol.readConnectionLost()
        except Exception:
            reason = Failure()
            _logProtocolError(f"{type(self._protocol).__name__}.readConnectionLost", self)
            return reason
        if self._closing:
            return None  # the hook aborted: the pending ConnectionAborted stays the reason
        return CONNECTION_DONE if self._writeDisconnected else None

    # -- writing --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` now if nothing is buffered, else append it to the buffer."""
        if data.__class__ is not bytes:
            data = self._coerce(data)
        if self._fast and not self._buflen:
            try:
                sent = _write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                self._closeSoon(Failure(error.ConnectionLost(e)))
                return
            if sent == len(data):
                return
            if sent:
                data = memoryview(data)[sent:]  # type: ignore[assignment]
        elif not data or self._writeDisconnected or not self.connected or self._closing:
            return
        buf = self._buf
        if buf is None:
            buf = self._buf = []
        buf.append(data)
        self._buflen += len(data)
        if self._buflen > self._maxBuffer:
            self._overflow()
            return
        if not self._writing:
            self._writing = True
            self.reactor.addWriter(self)
        if self._buflen > HIGH_WATER and self._streaming and not self._producerPaused:
            producer = self._producer
            if producer is not None:
                self._producerPaused = True
                producer.pauseProducing()

    @property
    def maxWriteBuffer(self) -> int:
        """The write-buffer cap in bytes (default ``MAX_WRITE_BUFFER``)."""
        return self._maxBuffer

    @maxWriteBuffer.setter
    def maxWriteBuffer(self, limit: int) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"maxWriteBuffer must be an integer >= 1, got {limit!r}")
        self._maxBuffer = limit

    def _overflow(self) -> None:
        """The buffer went over the cap: abort (dropping it) and say so once."""
        log.warning("%s (peer %s): write buffer over %d bytes (the peer does not read and the "
                    "protocol ignores flow control); aborting the connection",
                    type(self._protocol).__name__, self._describePeer(), self._maxBuffer)
        self._closeSoon(Failure(error.ConnectionAborted(
            f"write buffer over {self._maxBuffer} bytes")), reset=True)

    @staticmethod
    def _coerce(data: Any) -> bytes:
        if isinstance(data, str):
            raise TypeError(
                "write() takes bytes, not str: encode the text first (e.g. data.encode('utf-8'))"
            )
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data)  # the caller may mutate it after write() returns
        if isinstance(data, bytes):
            return data
        raise TypeError(f"write() takes bytes, not {type(data).__name__}")

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Write every chunk of ``data``, in order, as one write."""
        chunks = list(data)
        for chunk in chunks:
            if isinstance(chunk, str):
                raise TypeError(
                    "writeSequence() takes bytes chunks, not str: encode the text first"
                )
        self.write(b"".join(chunks))

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return self._buflen

    def doWrite(self) -> Any:
        if self._lost or self._closing:
            return None
        if self._buf:
            buf = self._buf
            try:
                if len(buf) == 1:
                    sent = self.socket.send(buf[0])
                elif _HAS_SENDMSG:
                    sent = self.socket.sendmsg(buf[:_IOV_MAX] if len(buf) > _IOV_MAX else buf)
                else:
                    joined = b"".join(buf)
                    buf[:] = [joined]
                    sent = self.socket.send(joined)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as e:
                return Failure(error.ConnectionLost(e))
            remaining = self._buflen - sent
            self._buflen = remaining
            if remaining:
                self._consume(sent)
                if remaining < LOW_WATER and self._producerPaused and self._streaming:
                    self._producerPaused = False
                    self._producer.resumeProducing()
                return None
            buf.clear()
        # The buffer is empty.
        self._stopWriting()
        producer = self._producer
        if producer is not None:
            if not self._streaming:
                producer.resumeProducing()
                return None
            if self._producerPaused:
                self._producerPaused = False
                producer.resumeProducing()
            if self._buf:
                return None
        if self.disconnecting:
            return CONNECTION_DONE
        if self._writeDisconnecting and not self._writeDisconnected:
            return self._shutdownWrite()
        return None

    def _consume(self, sent: int) -> None:
        """Drop the first ``sent`` bytes from the buffer."""
        buf = self._buf
        assert buf is not None
        i = 0
        while sent:
            n = len(buf[i])
            if sent < n:
                buf[i] = memoryview(buf[i])[sent:]
                break
            sent -= n
            i += 1
        if i:
            del buf[:i]

    def _shutdownWrite(self) -> Any:
        self._writeDisconnected = True
        self._fast = False
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as e:
            return Failure(error.ConnectionLost(e))
        if self._halfClose:
            try:
                self._protocol.writeConnectionLost()
            except Exception:
                reason = Failure()
                _logProtocolError(f"{type(self._protocol).__name__}.writeConnectionLost", self)
                return reason
        if self._closing:
            return None  # the hook aborted: the pending ConnectionAborted stays the reason
        return CONNECTION_DONE if self._readDisconnected else None

    # -- closing --------------------------------------------------------------------------

    def loseConnection(self, _reason: Any = None) -> None:
        """Close once everything buffered is sent (``connectionLost`` gets ``ConnectionDone``).

        Stops reading at once. With a pull producer registered, waits for it to unregister.
        """
        if not self.connected or self.disconnecting or self._closing:
            return
        self.disconnecting = 1
        self._stopReading()
        self._startWriting()

    def loseWriteConnection(self) -> None:
        """Half-close: send FIN once the buffer is flushed; reading goes on."""
        if not self.connected or self._writeDisconnecting or self._closing:
            return
        self._writeDisconnecting = True
        self._startWriting()

    def abortConnection(self) -> None:
        """Close now, dropping anything buffered (``connectionLost`` gets
        ``ConnectionAborted``)."""
        if not self.connected or self._closing:
            return
        self._closeSoon(Failure(error.ConnectionAborted()), reset=True)

    def _closeSoon(self, reason: Failure, reset: bool = False) -> None:
        """Stop all I/O now and call ``connectionLost(reason)`` on the next turn of the loop
        (never from inside the caller's stack, so protocols are not re-entered).

        ``reset``: an abort. The close sends a TCP RST and the kernel drops what it has not sent
        yet, so the peer sees an error instead of a clean end after part of the data."""
        if self._closing or self._lost:
            return
        if reset and getattr(self.socket, "family", None) in (socket.AF_INET, socket.AF_INET6):
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:
                pass
        self._closing = True
        self._fast = False
        self._buf = None
        self._buflen = 0
        self._stopReading()
        self._stopWriting()
        self.reactor.callLater(0, self.connectionLost, reason)

    def _dropNow(self, reason: Failure) -> None:
        self._stopReading()
        self._stopWriting()
        self.connectionLost(reason)

    def connectionLost(self, reason: Failure) -> None:
        """Close the socket and tell the protocol (then the connector); runs once."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._fast = False
        self.connected = 0
        self.disconnected = 1
        if self._reading:
            self._reading = False
            self.reactor.removeReader(self)
        if self._writing:
            self._writing = False
            self.reactor.removeWriter(self)
        self._buf = None
        self._buflen = 0
        producer = self._producer
        if producer is not None:
            self._producer = None
            if producer is not self:
                try:
                    producer.stopProducing()
                except Exception:
                    log.exception("Error in %r.stopProducing", producer)
        self._fd = -1
        try:
            self.socket.close()
        except OSError:
            pass
        protocol = self._protocol
        try:
            protocol.connectionLost(reason)
        except Exception:
            log.exception("Error in %s.connectionLost (peer %s)", type(protocol).__name__,
                          self._describePeer())
        connector = self.connector
        if connector is not None:
            connector._connectionLost(reason)

    # -- producer/consumer ----------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register ``producer`` to be paused while the buffer is over ``HIGH_WATER`` (streaming)
        or asked for more each time the buffer drains (pull)."""
        if self._producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}: producer {self._producer!r} "
                "was never unregistered"
            )
        if not self.connected or self._closing:
            producer.stopProducing()
            return
        self._producer = producer
        self._streaming = bool(streaming)
        if not streaming:
            self._fast = False  # a pull producer is driven by doWrite: always buffer
        self._producerPaused = False
        if not streaming:
            producer.resumeProducing()
        elif self._buflen > HIGH_WATER:
            self._producerPaused = True
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        """Forget the producer; a pending ``loseConnection`` can now complete."""
        self._producer = None
        self._streaming = False
        self._fast = not (self._writeDisconnected or self._closing or self._lost)
        self._producerPaused = False
        if self.connected and (self.disconnecting or self._writeDisconnecting):
            self._startWriting()

    @property
    def producer(self) -> Any:
        return self._producer

    @property
    def streamingProducer(self) -> bool:
        return self._streaming

    def pauseProducing(self) -> None:
        """Stop reading from the socket (flow control of the peer)."""
        self._readPaused = True
        self._stopReading()

    def resumeProducing(self) -> None:
        """Read from the socket again."""
        self._readPaused = False
        if self.connected and not self.disconnecting and not self._readDisconnected \
                and not self._closing:
            self._startReading()

    def stopProducing(self) -> None:
        self.loseConnection()

    def startTLS(self, contextFactory: Any, normal: bool = True) -> Any:
        """Switch this connection to TLS now (STARTTLS); see ``framework.tls.startTLS``."""
        from framework import tls

        return tls.startTLS(self, contextFactory, normal)

    # -- addresses ------------------------------------------------------------------------

    def getPeer(self) -> Any:
        return self._peer

    def getHost(self) -> Any:
        host = self._host
        if host is None:
            sock = self.socket
            kind = "TCP"
            host = self._host = _address(sock.family, sock.getsockname(), kind)
        return host


class TCPConnection(Connection, ITCPTransport):
    """A TCP connection: adds the TCP socket options."""

    __slots__ = ()

    def getTcpNoDelay(self) -> bool:
        return bool(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(bool(enabled)))

    def getTcpKeepAlive(self) -> bool:
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(bool(enabled)))


class Server(TCPConnection):
    """A connection accepted by a listening ``Port``."""

    __slots__ = ("server",)

    def __init__(self, sock: socket.socket, protocol: Any, peer: Any, server: Port,
                 sessionno: int, reactor: Any) -> None:
        TCPConnection.__init__(self, sock, protocol, peer, reactor, None, sessionno)
        self.server = server


class Client(TCPConnection):
    """An outgoing connection made by a ``Connector``."""

    __slots__ = ()


# -- listening ----------------------------------------------------------------------------


class Port(_ReadToggle, IReadDescriptor, IListeningPort):
    """A listening stream socket: accepts connections and hands each to ``factory``."""

    transport: type[Connection] = Server
    addressKind = "TCP"

    def __init__(self, port: Any, factory: Any, backlog: int = 50, interface: str = "",
                 reactor: Any = None) -> None:
        if reactor is None:
            from framework import reactor as global_reactor

            reactor = global_reactor
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

    def _family(self) -> int:
        iface = self.interface
        return socket.AF_INET6 if iface and isIPv6Address(iface) else socket.AF_INET

    def _bindAddress(self) -> Any:
        return (self.interface, self.port)

    def createInternetSocket(self) -> socket.socket:
        family = self._family()
        sock = socket.socket(family, socket.SOCK_STREAM)
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return sock

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
            log.info("%s starting on %r", self._factoryName(), self._realPort)

    def _describeBound(self, sock: socket.socket) -> Any:
        return sock.getsockname()[1]

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
            log.error("Unhandled exception in %s.buildProtocol for %r; closing that connection",
                      type(factory).__name__, peer, exc_info=True)
            sock.close()
            return
        if protocol is None:
            sock.close()
            return
        try:
            transport = self.transport(sock, protocol, peer, self, self.sessionno, self.reactor)  # type: ignore[call-arg]
        except Exception:
            log.error("Cannot serve %r with %r from %s.buildProtocol; closing that connection",
                      peer, protocol, type(factory).__name__, exc_info=True)
            sock.close()
            return
        cap = getattr(factory, "maxWriteBuffer", None)
        if cap:
            transport._maxBuffer = cap
        transport._start()

    def _configure(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _peerAddress(self, family: int, addr: Any) -> Any:
        return _address(family, addr, self.addressKind)

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
            log.error("%s cannot accept connections: %s; closed %d waiting connection(s); "
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
        from framework.defer import succeed

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
            log.exception("Error stopping factory %r", self.factory)
        finally:
            self.disconnecting = False

    def _cleanup(self) -> None:
        """Subclass hook run after the socket is closed (e.g. unlink a UNIX socket file)."""

    def _boundAddress(self, sock: socket.socket) -> Any:
        return _address(sock.family, sock.getsockname(), self.addressKind)

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


def listenTCP(reactor: Any, port: int, factory: Any, backlog: int = 50,
              interface: str = "") -> Port:
    """Listen for TCP connections on ``interface:port`` (port 0: any free port) now.

    Raises ``CannotListenError`` if the address cannot be bound.
    """
    p = Port(port, factory, backlog, interface, reactor)
    p.startListening()
    return p


# -- connecting ---------------------------------------------------------------------------


class _ConnectAttempt(IWriteDescriptor):
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

    transportClass: type[Connection] = Client
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
        attempt = _ConnectAttempt(self)
        self.transport = attempt
        if self.timeout is not None:
            self._timeoutCall = self.reactor.callLater(
                self.timeout, attempt.fail,
                error.TimeoutError(string=f"no connection after {self.timeout}s"))
        self._begin(attempt)
        try:
            self.factory.startedConnecting(self)
        except Exception:
            log.exception("Error in %s.startedConnecting", type(self.factory).__name__)

    def _begin(self, attempt: _ConnectAttempt) -> None:
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
            log.error("Unhandled exception in %s.buildProtocol for %r", type(self.factory).__name__,
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
            log.error("Cannot serve %r with %r from %s.buildProtocol", peer, protocol,
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
            log.exception("Error in %s.clientConnectionFailed", type(self.factory).__name__)
        self._maybeStopFactory()

    def _connectionLost(self, reason: Failure) -> None:
        self.state = "disconnected"
        try:
            self.factory.clientConnectionLost(self, reason)
        except Exception:
            log.exception("Error in %s.clientConnectionLost", type(self.factory).__name__)
        self._maybeStopFactory()

    def _maybeStopFactory(self) -> None:
        if self.state == "disconnected" and self.factoryStarted:
            self.factoryStarted = False
            try:
                self.factory.doStop()
            except Exception:
                log.exception("Error stopping factory %r", self.factory)

    def getDestination(self) -> Any:
        raise NotImplementedError


class Connector(BaseConnector):
    """A TCP connector (``connectTCP``'s result)."""

    def __init__(self, host: str, port: int, factory: Any, timeout: float | None,
                 bindAddress: tuple[str, int] | None, reactor: Any) -> None:
        if isinstance(port, str):
            try:
                port = socket.getservbyname(port, "tcp")
            except OSError as e:
                raise error.ServiceNameUnknownError(string=f"{port} ({e})") from e
        if isinstance(host, bytes):
            host = host.decode("ascii")
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a host name or IP address (str), not {host!r}")
        port = _portNumber(port, 1)
        if bindAddress is not None:
            if not (isinstance(bindAddress, tuple) and len(bindAddress) in (2, 4)
                    and isinstance(bindAddress[0], (str, bytes))):
                raise TypeError(f"bindAddress must be a (host, port) tuple or None, not {bindAddress!r}")
            _portNumber(bindAddress[1], 0)
        self.host = host
        self.port = port
        self.bindAddress = bindAddress
        BaseConnector.__init__(self, factory, timeout, reactor)

    def getDestination(self) -> Any:
        if isIPv6Address(self.host):
            return IPv6Address("TCP", self.host, self.port)
        return IPv4Address("TCP", self.host, self.port)

    def _begin(self, attempt: _ConnectAttempt) -> None:
        host, port = self.host, self.port
        if isIPAddress(host):
            attempt.connectTo(socket.AF_INET, (host, port))
            return
        if isIPv6Address(host):
            try:
                info = socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_STREAM, 0,
                                          socket.AI_NUMERICHOST)
            except OSError as e:
                attempt.failSoon(error.DNSLookupError(f"bad IPv6 address {host!r}: {e}"))
                return
            attempt.connectTo(socket.AF_INET6, info[0][4])
            return
        reactor = self.reactor

        def lookup() -> None:  # in a worker thread
            try:
                infos = reactor.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except Exception as e:
                reactor.callFromThread(resolved, None, e)
            else:
                reactor.callFromThread(resolved, infos, None)

        def resolved(infos: Any, exc: BaseException | None) -> None:
            if attempt.done:
                return
            if exc is not None or not infos:
                attempt.fail(error.DNSLookupError(f"address {host!r} not found: {exc}"))
                return
            addresses = [(info[0], info[4]) for info in infos]
            attempt.candidates = addresses[1:]
            attempt.connectTo(*addresses[0])

        reactor.callInThread(lookup)

    def _prepareSocket(self, sock: socket.socket) -> None:
        if self.bindAddress is not None:
            sock.bind(self.bindAddress)

    def _configure(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _peerAddress(self, sock: socket.socket) -> Any:
        return _address(sock.family, sock.getpeername(), "TCP")


def _portNumber(port: Any, lowest: int) -> int:
    """``port`` as an int (anything with ``__index__``: an IntEnum, a numpy integer) in
    ``lowest``-65535; TypeError or ValueError naming it otherwise."""
    try:
        number = operator.index(port)
    except TypeError:
        raise TypeError(f"port must be an integer, not {port!r}") from None
    if not lowest <= number <= 65535:
        raise ValueError(f"port must be an integer {lowest}-65535, not {port!r}")
    return number


def connectTCP(reactor: Any, host: str, port: int, factory: Any, timeout: float | None = 30,
               bindAddress: tuple[str, int] | None = None) -> Connector:
    """Connect ``factory`` to ``host:port``; returns the ``Connector`` at once.

    Network failures never raise here: they reach ``factory.clientConnectionFailed``.
    """
    c = Connector(host, port, factory, timeout, bindAddress, reactor)
    c.connect()
    return c
