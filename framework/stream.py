"""The stream-connection base: what every connected byte-stream socket shares.

``Connection`` holds, once, for TCP (``framework.tcp``), UNIX sockets (``framework.unix``) and any
later stream transport: the read loop, the write path (send at once when nothing is buffered,
else a list of chunks handed to ``sendmsg`` without joining), producer/consumer flow control
(``HIGH_WATER``/``LOW_WATER``), the write-buffer cap (``MAX_WRITE_BUFFER``), half-close,
abort, ``connectionLost`` exactly once, and the public PROXY-protocol address setter
(``set_addresses``). Semantics follow ``twisted.internet.abstract.FileDescriptor`` and
``tcp.Connection``; see ``docs/transports.md``.

Hot paths (``doRead``, ``write``, ``doWrite``) are kept flat: the protocol's ``dataReceived``
is cached as a bound method after ``connectionMade``, ``write`` sends at once when nothing is
buffered, and the write buffer is a list of chunks plus a byte count.

STARTTLS: ``Connection.startTLS`` calls ``framework.tls.startTLS`` directly. The TLS layer is a
protocol wrapper that imports no transport module (only protocol-level modules and
``framework.tlscontext``), so it sits *below* this module in the layers and this module-level
import makes no cycle; nothing needs registering at run time.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from typing import Any, Callable

from framework import error, tls
from framework.address import IPv4Address, IPv6Address, UNIXAddress, from_sockaddr, host_port
from framework.failure import Failure
from framework.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    IReadWriteDescriptor,
    ITransport,
)
from framework.main import CONNECTION_DONE
from framework.writing import SequenceWriter

__all__ = [
    "HIGH_WATER",
    "LOW_WATER",
    "MAX_WRITE_BUFFER",
    "READ_SIZE",
    "Connection",
]

log = logging.getLogger("framework.stream")

#: Most bytes read per read event.
READ_SIZE = 65536
# The fast paths use os.read/os.write on the descriptor: on a connected socket read(2) and
# write(2) do what recv/send do, with less interpreter overhead (docs/benchmarks-echo.md).
# The descriptor is only used while the transport owns the socket (``_fd`` is -1 once closed).
_read = os.read
_write = os.write
# SO_LINGER on, timeout 0: close() resets the connection (see Connection._closeSoon).
_LINGER_RESET = struct.pack("ii", 1, 0)
#: The high-water mark: a streaming producer is paused when more than this many bytes are
#: buffered (protocols that fan out, like the chat plugin, use it as "this peer is slow")...
HIGH_WATER = 65536
#: ...and resumed when the buffer drains below this.
LOW_WATER = 16384
#: Default cap (bytes) on a connection's write buffer: beyond it the connection is aborted
#: (the peer does not read and the protocol ignores flow control). Per factory:
#: ``factory.maxWriteBuffer``; per transport: ``transport.maxWriteBuffer``.
MAX_WRITE_BUFFER = 16 * 1024 * 1024
#: Most buffers handed to one ``sendmsg`` call (POSIX guarantees IOV_MAX >= 16; Linux: 1024).
try:
    _IOV_MAX = max(16, min(os.sysconf("SC_IOV_MAX"), 1024))
except (AttributeError, ValueError, OSError):
    _IOV_MAX = 16

_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")


class _Unwatchable:
    """A WARNING for connections refused because the backend cannot watch their descriptor:
    at most one a second, the next one with the number left out."""

    last = float("-inf")
    suppressed = 0

    def __call__(self, log: logging.Logger, e: Exception, peer: str) -> None:
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
    transport._log.error("Unhandled exception in %s (peer %s); closing that connection", what,
              transport._describePeer(), exc_info=True)


class ReadToggle:
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


class Connection(SequenceWriter, ReadToggle, IReadWriteDescriptor, ITransport, IConsumer,
                 IPushProducer):
    """A connected stream socket: reads into ``protocol.dataReceived``, buffers writes.

    Also an ``IPushProducer`` of its own incoming data: ``pauseProducing`` stops reading from
    the socket, ``resumeProducing`` starts again, ``stopProducing`` closes the connection.
    Subclasses (``tcp.TCPConnection``, ``unix.Server``...) add socket options and addresses.
    """

    #: The logger of this kind of transport (``framework.tcp``, ``framework.unix``...).
    _log = log

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
            _unwatchableLog(self._log, e, self._describePeer())
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
    startReading = ReadToggle._startReading
    stopReading = ReadToggle._stopReading
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
        self._log.warning("%s (peer %s): write buffer over %d bytes (the peer does not read and the "
                    "protocol ignores flow control); aborting the connection",
                    type(self._protocol).__name__, self._describePeer(), self._maxBuffer)
        self._closeSoon(Failure(error.ConnectionAborted(
            f"write buffer over {self._maxBuffer} bytes")), reset=True)

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
                    self._log.exception("Error in %r.stopProducing", producer)
        self._fd = -1
        if self._host is None:  # getHost() keeps working in connectionLost and after
            try:
                self.getHost()
            except OSError:
                pass
        try:
            self.socket.close()
        except OSError:
            pass
        protocol = self._protocol
        try:
            protocol.connectionLost(reason)
        except Exception:
            self._log.exception("Error in %s.connectionLost (peer %s)", type(protocol).__name__,
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
        return tls.startTLS(self, contextFactory, normal)

    # -- addresses ------------------------------------------------------------------------

    def getPeer(self) -> Any:
        return self._peer

    def set_addresses(self, peer: Any, host: Any) -> None:
        """Make ``getPeer()``/``getHost()`` report ``peer``/``host`` from now on (e.g. the
        original client and the address it connected to, read from a PROXY protocol header).

        ``None`` keeps that side as it is. Log lines and ``logPrefix`` follow ``peer``."""
        if peer is not None:
            self._peer = peer
        if host is not None:
            self._host = host

    def getHost(self) -> Any:
        host = self._host
        if host is None:
            sock = self.socket
            kind = "TCP"
            host = self._host = from_sockaddr(sock.family, sock.getsockname(), kind)
        return host
