"""The TLS layer of one connection, with the standard library's ``ssl`` memory BIOs.

``TLSMemoryBIOProtocol`` is the protocol of a stream transport (TCP, UNIX...) and the transport
of the user's protocol. It imports no transport module: it only talks to the transport below it
through the ``ITransport`` methods (``write``, ``loseConnection``, ``abortConnection``,
producers) and ``transport.reactor.callLater`` for its timeouts. ``framework.tls`` builds the
factories, ``startTLS``, ``listenSSL``/``connectSSL`` and the endpoints on it.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from framework import error
from framework.failure import Failure
from framework.interfaces import IConsumer, IPushProducer, ITCPTransport
from framework.tlscontext import HANDSHAKE_TIMEOUT, SHUTDOWN_TIMEOUT, describe_error
from framework.writing import SequenceWriter

__all__ = ["READ_SIZE", "TLSMemoryBIOProtocol"]

log = logging.getLogger("framework.tls")

#: Most plaintext bytes taken from the TLS layer per read call.
READ_SIZE = 65536


# -- the protocol / transport ----------------------------------------------------------------


class TLSMemoryBIOProtocol(SequenceWriter, ITCPTransport, IConsumer, IPushProducer):
    """The TLS layer of one connection: the TCP transport's protocol, and the transport of
    the user's protocol (``wrappedProtocol``).

    Attributes the TCP transport has and this layer does not (socket options, ``reactor``,
    ``sessionno``...) are read from the TCP transport.
    """

    __slots__ = (
        "transport", "wrappedProtocol", "factory", "connected", "disconnecting", "disconnected",
        "_wrappedFactory", "_addr", "_context", "_serverSide", "_hostname",
        "_handshakeTimeout", "_shutdownTimeout", "_incoming", "_outgoing", "_tls",
        "_handshakeDone", "_appConnected", "_appData", "_writable", "_pending",
        "_closeRequested", "_closeSent", "_peerClosed", "_dead", "_lost", "_failReason",
        "_lostReason", "_handshakeCall", "_shutdownCall", "_producer", "_streaming", "_gotData",
        "__weakref__",
    )

    def __init__(self, context: ssl.SSLContext, serverSide: bool, *,
                 wrappedProtocol: Any = None, wrappedFactory: Any = None, addr: Any = None,
                 hostname: str | None = None,
                 handshakeTimeout: float | None = HANDSHAKE_TIMEOUT,
                 shutdownTimeout: float | None = SHUTDOWN_TIMEOUT,
                 factory: Any = None) -> None:
        self.transport: Any = None
        self.wrappedProtocol = wrappedProtocol
        self.factory = factory
        self.connected = 0
        self.disconnecting = 0
        self.disconnected = 0
        self._wrappedFactory = wrappedFactory
        self._addr = addr
        self._context = context
        self._serverSide = serverSide
        self._hostname = hostname
        self._handshakeTimeout = handshakeTimeout
        self._shutdownTimeout = shutdownTimeout
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls: Any = None
        self._handshakeDone = False
        # True when the user's protocol was connected already (startTLS).
        self._appConnected = wrappedProtocol is not None
        self._appData: Any = None
        self._writable = False
        self._pending: list[bytes] = []
        self._closeRequested = False
        self._closeSent = False
        self._peerClosed = False
        self._dead = False
        self._lost = False
        self._failReason: Failure | None = None
        self._lostReason: Failure | None = None
        self._handshakeCall: Any = None
        self._shutdownCall: Any = None
        self._producer: Any = None
        self._streaming = False
        self._gotData = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "transport":
            raise AttributeError(name)
        transport = self.transport
        if transport is None:
            raise AttributeError(name)
        return getattr(transport, name)

    def __repr__(self) -> str:
        side = "server" if self._serverSide else "client"
        return f"<TLS {side} over {self.transport!r}>"

    def logPrefix(self) -> str:
        proto = self.wrappedProtocol
        return f"{type(proto).__name__ if proto is not None else 'TLS'} (TLS)"

    def _peer(self) -> str:
        describe = getattr(self.transport, "_describePeer", None)
        if callable(describe):
            return str(describe())
        try:
            return str(self.transport.getPeer())
        except Exception:
            return "?"

    # -- the TCP side: protocol ---------------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        """Start the handshake on ``transport`` (the client sends its hello at once)."""
        self.transport = transport
        self.connected = 1
        register = getattr(self.factory, "registerProtocol", None)
        if register is not None:
            register(self)
        self._tls = self._context.wrap_bio(
            self._incoming, self._outgoing, server_side=self._serverSide,
            server_hostname=None if self._serverSide else self._hostname)
        if self._handshakeTimeout is not None:
            self._handshakeCall = transport.reactor.callLater(
                self._handshakeTimeout, self._handshakeTimedOut)
        self._handshake()

    def connectionMade(self) -> None:
        """Nothing: the user's protocol is connected when the handshake completes."""

    def dataReceived(self, data: bytes) -> None:
        if self._dead:
            return
        self._incoming.write(data)
        if not self._handshakeDone:
            self._gotData = True
            self._handshake()
            if not self._handshakeDone or self._dead:
                return
        self._readPlaintext()

    def _readPlaintext(self) -> None:
        read = self._tls.read
        incoming = self._incoming
        chunks = []
        try:
            while True:
                chunk = read(READ_SIZE)
                if not chunk:
                    self._closeNotifyReceived()
                    break
                chunks.append(chunk)
                if not incoming.pending and not self._tls.pending():
                    break
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._closeNotifyReceived()
        except ssl.SSLError as e:
            self._fatal(e, "TLS error from %s: %s")
        if self._outgoing.pending:
            self._flush()
        if chunks and self._appData is not None:
            self._appData(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self.transport.write(data)

    def _handshake(self) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError) as e:
            self._fatal(e, "TLS handshake with %s failed: %s")
            return
        self._flush()
        self._handshakeDone = True
        self._cancel("_handshakeCall")
        self._writable = not self._closeSent
        pending, self._pending = self._pending, []
        for data in pending:
            self.write(data)
        self._connectApp()

    def _connectApp(self) -> None:
        proto = self.wrappedProtocol
        if proto is None:
            try:
                proto = self._wrappedFactory.buildProtocol(self._addr)
            except Exception:
                log.error("Unhandled exception in %s.buildProtocol for %s; closing that connection",
                          type(self._wrappedFactory).__name__, self._peer(), exc_info=True)
                self._dead = True
                self.transport.abortConnection()
                return
            if proto is None:
                self._dead = True
                self.transport.loseConnection()
                return
            self.wrappedProtocol = proto
        if not self._appConnected:
            self._appConnected = True
            try:
                proto.makeConnection(self)
            except Exception:
                self._failReason = Failure()
                log.error("Unhandled exception in %s.connectionMade (peer %s); closing that "
                          "connection", type(proto).__name__, self._peer(), exc_info=True)
                self._dead = True
                self.transport.abortConnection()
                return
        else:
            completed = getattr(proto, "handshakeCompleted", None)
            if callable(completed):
                completed()
        if not self._lost:
            self._appData = proto.dataReceived
            if self._closeRequested:
                self._maybeShutdown()

    def _fatal(self, exc: BaseException, message: str) -> None:
        """The TLS session failed: log one INFO line, send any alert, close."""
        if self._dead:
            return
        self._dead = True
        self._writable = False
        self._cancel("_handshakeCall")
        self._failReason = Failure(exc)
        log.info(message, self._peer(), describe_error(exc))
        self._flush()
        self.transport.loseConnection()
        self._armShutdownTimer()

    def _handshakeTimedOut(self) -> None:
        self._handshakeCall = None
        if self._handshakeDone or self._dead:
            return
        self._dead = True
        self._failReason = Failure(error.TimeoutError(
            string=f"TLS handshake not complete after {self._handshakeTimeout:g} s"))
        log.info("TLS handshake with %s timed out after %g s; closing", self._peer(),
                 self._handshakeTimeout)
        self.transport.abortConnection()

    def _closeNotifyReceived(self) -> None:
        """The peer ended the TLS session: answer with ours and close."""
        self._peerClosed = True
        self._dead = True
        if not self._closeSent:
            self._sendCloseNotify()
        self.transport.loseConnection()
        self._armShutdownTimer()

    def connectionLost(self, reason: Failure) -> None:
        """The TCP connection is gone: tell the user's protocol (if it was connected)."""
        if self._lost:
            return
        self._lost = True
        self._dead = True
        self._writable = False
        self.connected = 0
        self.disconnected = 1
        self._pending = []
        self._appData = None
        self._cancel("_handshakeCall")
        self._cancel("_shutdownCall")
        unregister = getattr(self.factory, "unregisterProtocol", None)
        if unregister is not None:
            unregister(self)
        if not self._handshakeDone and self._failReason is None:
            detail = reason.getErrorMessage()
            self._failReason = Failure(error.SSLError(
                string=f"connection closed during the TLS handshake ({detail})"))
            if self._serverSide:
                # A TCP health check (connect, close) says nothing: not worth an INFO line.
                log.log(logging.INFO if self._gotData else logging.DEBUG,
                        "TLS handshake with %s failed: connection closed (%s)", self._peer(), detail)
        self._lostReason = appReason = self._appReason(reason)
        proto = self.wrappedProtocol
        if self._appConnected and proto is not None:
            try:
                proto.connectionLost(appReason)
            except Exception:
                log.exception("Error in %s.connectionLost (peer %s)", type(proto).__name__,
                              self._peer())
        elif not self._serverSide and self.factory is not None:
            self.factory._handshakeFailed(self, appReason)

    def _appReason(self, reason: Failure) -> Failure:
        if self._failReason is not None:
            return self._failReason
        if self._peerClosed:
            return reason if reason.check(error.ConnectionDone) else Failure(error.ConnectionDone())
        if self._closeSent or not reason.check(error.ConnectionDone):
            return reason
        return Failure(error.ConnectionLost(
            "the peer closed the connection without a TLS close_notify"))

    def _cancel(self, name: str) -> None:
        call = getattr(self, name)
        if call is not None:
            setattr(self, name, None)
            if call.active():
                call.cancel()

    # -- the application side: transport ------------------------------------------------

    def write(self, data: bytes) -> None:
        """Encrypt ``data`` and hand it to the TCP transport (buffered until the handshake
        completes)."""
        if self._writable:
            if data.__class__ is not bytes:
                data = self._coerce(data)
            if not data:
                return
            try:
                self._tls.write(data)
            except ssl.SSLError as e:
                self._fatal(e, "TLS error writing to %s: %s")
                return
            self.transport.write(self._outgoing.read())
            return
        if data.__class__ is not bytes:
            data = self._coerce(data)
        if self._dead or self._closeSent or self._lost or not data:
            return
        self._pending.append(data)

    def loseConnection(self) -> None:
        """Send what is buffered, then a TLS close_notify, then close the TCP connection
        (aborted if it has not closed within the shutdown timeout)."""
        if self._lost or self._closeRequested or self.transport is None \
                or not self.transport.connected:
            return
        self._closeRequested = True
        self.disconnecting = 1
        self._maybeShutdown()

    def _maybeShutdown(self) -> None:
        if self._closeSent or self._lost:
            return
        if self._dead:
            self.transport.loseConnection()
            return
        if not self._handshakeDone:
            if self._pending and self._appConnected:
                return  # startTLS with data waiting: send it once the handshake is done
            self._dead = True
            self.transport.loseConnection()
            self._armShutdownTimer()
            return
        if self._producer is not None and not self._streaming:
            return  # a pull producer is still writing: wait for unregisterProducer
        self._sendCloseNotify()
        self.transport.loseConnection()
        self._armShutdownTimer()

    def _sendCloseNotify(self) -> None:
        self._closeSent = True
        self._writable = False
        try:
            self._tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # our close_notify is written; we do not wait for the peer's
        except (ssl.SSLError, OSError) as e:
            log.debug("TLS shutdown with %s: %s", self._peer(), e)
        self._flush()

    def _armShutdownTimer(self) -> None:
        if self._shutdownTimeout is not None and self._shutdownCall is None and not self._lost:
            self._shutdownCall = self.transport.reactor.callLater(
                self._shutdownTimeout, self._shutdownTimedOut)

    def _shutdownTimedOut(self) -> None:
        self._shutdownCall = None
        if self._lost:
            return
        log.info("TLS connection to %s did not close within %g s; aborting", self._peer(),
                 self._shutdownTimeout)
        self.transport.abortConnection()

    def abortConnection(self) -> None:
        """Close now, dropping anything buffered (no close_notify)."""
        if self._lost or self.transport is None:
            return
        self.disconnecting = 1
        self._dead = True
        self._writable = False
        self.transport.abortConnection()

    def loseWriteConnection(self) -> None:
        """Not supported over TLS: raises ``NotImplementedError``."""
        raise NotImplementedError(
            "half-close (loseWriteConnection) is not supported over TLS; use loseConnection()")

    def getPeer(self) -> Any:
        return self.transport.getPeer()

    def getHost(self) -> Any:
        return self.transport.getHost()

    def getHandle(self) -> Any:
        return self.transport.getHandle()

    def getTcpNoDelay(self) -> bool:
        return bool(self.transport.getTcpNoDelay())

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.transport.setTcpNoDelay(enabled)

    def getTcpKeepAlive(self) -> bool:
        return bool(self.transport.getTcpKeepAlive())

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.transport.setTcpKeepAlive(enabled)

    def get_write_buffer_size(self) -> int:
        """Encrypted bytes not yet handed to the kernel (plus any written before the handshake
        completed)."""
        size = getattr(self.transport, "get_write_buffer_size", None)
        return (size() if callable(size) else 0) + sum(len(d) for d in self._pending)

    # -- TLS details ------------------------------------------------------------------------

    def getPeerCertificate(self, binary_form: bool = False) -> Any:
        """The peer's certificate: a dict as ``ssl.SSLSocket.getpeercert`` gives it (empty if it
        was not verified; ``binary_form=True`` gives the DER bytes), or ``None`` if the peer sent
        none or the handshake is not complete."""
        if not self._handshakeDone or self._tls is None:
            return None
        try:
            return self._tls.getpeercert(binary_form)
        except ValueError:
            return None

    def tls_version(self) -> str | None:
        """The negotiated protocol version (``"TLSv1.3"``...), ``None`` before the handshake."""
        return self._tls.version() if self._handshakeDone else None

    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol, secret bits)`` of the negotiated cipher, ``None`` before."""
        return self._tls.cipher() if self._handshakeDone else None  # type: ignore[no-any-return]

    @property
    def negotiatedProtocol(self) -> str | None:
        """The ALPN protocol agreed with the peer, if any."""
        if not self._handshakeDone:
            return None
        return self._tls.selected_alpn_protocol()  # type: ignore[no-any-return]

    @property
    def handshakeDone(self) -> bool:
        return self._handshakeDone

    # -- producers: passed through to the TCP transport ----------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register ``producer`` on the TCP transport (its buffer drives the flow control)."""
        if self._producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}: producer {self._producer!r} "
                "was never unregistered")
        if self._lost or self._dead or self._closeSent:
            producer.stopProducing()
            return
        self._producer = producer
        self._streaming = bool(streaming)
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        if self._producer is None:
            return
        self._producer = None
        self._streaming = False
        if not self._lost:
            self.transport.unregisterProducer()
            if self._closeRequested:
                self._maybeShutdown()

    @property
    def producer(self) -> Any:
        return self._producer

    def pauseProducing(self) -> None:
        """Stop reading from the peer."""
        if not self._lost:
            self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        if not self._lost:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.loseConnection()
