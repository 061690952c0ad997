"""TLS over any stream transport, with the standard library's ``ssl`` memory BIOs.

The TLS layer is a protocol for the TCP (or UNIX) transport and a transport for the user's
protocol, so it works on every reactor backend and the same ``Protocol`` runs unchanged over TCP
or TLS::

    from framework import tls
    ctx = tls.serverContext("cert.pem", "key.pem")
    reactor.listenSSL(8443, factory, ctx)
    reactor.connectSSL("example.org", 443, clientFactory, tls.clientContext())

The user's protocol is built and connected only once the handshake has succeeded, so
``connectionMade`` can already call ``transport.getPeerCertificate()``, and a scanner or a
plain-text client never reaches the application: its failed handshake is one INFO line on the
``framework.tls`` logger. On the client side a failed handshake (e.g. the certificate does not
match the host name) reaches ``clientConnectionFailed`` with the ``ssl`` exception as the reason.

Safe defaults: TLS 1.2 minimum (``serverContext``/``clientContext``), certificate and host name
verification on for clients, a handshake timeout (``HANDSHAKE_TIMEOUT``) and, on
``loseConnection``, a TLS close_notify followed by a bounded wait for the buffered data to drain
(``SHUTDOWN_TIMEOUT``). See ``docs/tls.md``.
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
from typing import Any, Iterable

from framework import error
from framework.failure import Failure
from framework.interfaces import IConsumer, IPushProducer, ITCPTransport
from framework.protocol import ClientFactory

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "SHUTDOWN_TIMEOUT",
    "DefaultOpenSSLContextFactory",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "TLSMemoryBIOFactory",
    "TLSMemoryBIOProtocol",
    "TLSOptions",
    "TLSSetupError",
    "clientContext",
    "connectSSL",
    "listenSSL",
    "optionsForClientTLS",
    "serverContext",
    "startTLS",
    "wrapClientTLS",
    "wrapServerTLS",
]

log = logging.getLogger("framework.tls")

#: Seconds a connection may take to complete its TLS handshake before it is aborted.
HANDSHAKE_TIMEOUT = 60.0
#: Seconds ``loseConnection`` waits for the close_notify and buffered data to be sent.
SHUTDOWN_TIMEOUT = 30.0
#: Most plaintext bytes taken from the TLS layer per read call.
READ_SIZE = 65536


# TLS 1.2 renegotiation mid-stream would stall writes; nothing here needs it.
_NO_RENEGOTIATION = getattr(ssl, "OP_NO_RENEGOTIATION", 0)


class TLSSetupError(ValueError):
    """A certificate, key or CA file cannot be used (unreadable, malformed, mismatched)."""


# -- contexts ------------------------------------------------------------------------------


#: How much of a certificate or key file is searched for a PEM block when loading failed.
_PEM_SCAN = 1 << 20


def _checkRegularFile(path: str) -> None:
    """``TLSSetupError`` saying what is wrong unless ``path`` is a regular file: missing, a
    directory, or a device/FIFO/socket (which would be read without end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise TLSSetupError(f"cannot read TLS file {path!r}: no such file") from None
    except OSError as e:
        raise TLSSetupError(f"cannot read TLS file {path!r}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise TLSSetupError(f"cannot read TLS file {path!r}: it is a directory, not a PEM file")
    if not stat.S_ISREG(mode):
        raise TLSSetupError(
            f"cannot read TLS file {path!r}: not a regular file (a device, FIFO or socket), not a PEM file")


def _holdsPEM(path: str, marker: bytes) -> bool:
    """Whether the (bounded) start of ``path`` holds a ``-----BEGIN ...<marker>`` line; ``True``
    when it cannot be read, so the caller's own message stands."""
    try:
        with open(path, "rb") as f:
            data = f.read(_PEM_SCAN)
    except OSError:
        return True
    return any(line.startswith(b"-----BEGIN ") and line.rstrip().endswith(marker)
               for line in data.splitlines())


def _loadChain(ctx: ssl.SSLContext, certFile: str, keyFile: str | None, password: Any) -> None:
    for path in (certFile, keyFile):
        if path is not None:
            _checkRegularFile(path)
    try:
        ctx.load_cert_chain(certFile, keyFile, password)
    except ssl.SSLError as e:
        reason = getattr(e, "reason", None) or ""
        key = keyFile or certFile
        if reason == "KEY_VALUES_MISMATCH":
            raise TLSSetupError(
                f"TLS private key {key!r} does not match certificate {certFile!r}") from None
        if not _holdsPEM(certFile, b"CERTIFICATE-----"):
            raise TLSSetupError(
                f"TLS certificate {certFile!r} is not a PEM certificate "
                "(no '-----BEGIN CERTIFICATE-----' block)") from None
        if not _holdsPEM(key, b"PRIVATE KEY-----"):
            raise TLSSetupError(
                f"TLS private key {key!r} is not a PEM private key "
                "(no '-----BEGIN ... PRIVATE KEY-----' block)") from None
        raise TLSSetupError(
            f"cannot load TLS certificate {certFile!r} with key {key!r}: "
            f"{reason or e.strerror or e} (expected PEM files)") from None
    except OSError as e:
        raise TLSSetupError(
            f"cannot read TLS certificate {certFile!r} / key {keyFile or certFile!r}: "
            f"{e.strerror or e}") from None


def _loadTrust(ctx: ssl.SSLContext, caFile: str) -> None:
    """Trust the CA certificates of a PEM file, or of every PEM file in a directory (as
    Twisted's ``trustRoots`` directory)."""
    try:
        if os.path.isdir(caFile):
            names = sorted(n for n in os.listdir(caFile) if n.endswith((".pem", ".crt", ".cer")))
            loaded = 0
            for name in names:
                try:
                    ctx.load_verify_locations(cafile=os.path.join(caFile, name))
                except ssl.SSLError as e:
                    if getattr(e, "reason", None) != "NO_CERTIFICATE_OR_CRL_FOUND":
                        raise
                    continue  # e.g. a private key next to the certificates
                loaded += 1
            if not loaded:
                raise TLSSetupError(f"no CA certificate (*.pem, *.crt, *.cer) in directory {caFile!r}")
        else:
            ctx.load_verify_locations(cafile=caFile)
    except (ssl.SSLError, OSError) as e:
        detail = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
        raise TLSSetupError(f"cannot load CA certificates from {caFile!r}: {detail}") from None


def serverContext(certFile: str, keyFile: str | None = None, *, password: Any = None,
                  caFile: str | None = None, requireClientCertificate: bool = False,
                  alpn: Iterable[str] | None = None) -> ssl.SSLContext:
    """A server ``SSLContext``: TLS 1.2 minimum, the certificate chain of ``certFile`` with the
    private key of ``keyFile`` (default: also in ``certFile``).

    ``caFile`` (a PEM file or a directory) sets the CAs trusted for client certificates;
    ``requireClientCertificate`` makes one mandatory. Raises ``TLSSetupError`` (one clear line)
    if a file is unreadable or the key does not match the certificate.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | _NO_RENEGOTIATION
    _loadChain(ctx, certFile, keyFile, password)
    if caFile is not None:
        _loadTrust(ctx, caFile)
        ctx.verify_mode = ssl.CERT_REQUIRED if requireClientCertificate else ssl.CERT_OPTIONAL
    elif requireClientCertificate:
        raise TLSSetupError("requireClientCertificate needs caFile (the CAs to trust)")
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def clientContext(caFile: str | None = None, *, certFile: str | None = None,
                  keyFile: str | None = None, password: Any = None,
                  alpn: Iterable[str] | None = None) -> ssl.SSLContext:
    """A client ``SSLContext``: TLS 1.2 minimum, certificate and host name verification on,
    trusting ``caFile`` (a PEM file or a directory) or else the system's CAs.

    ``certFile``/``keyFile`` give a client certificate. Raises ``TLSSetupError``.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if caFile is not None:
        # Only the given CAs: a private CA must not widen to every public one.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _loadTrust(ctx, caFile)
    ctx.options |= _NO_RENEGOTIATION
    if certFile is not None:
        _loadChain(ctx, certFile, keyFile, password)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class TLSOptions:
    """A context factory: an ``SSLContext`` plus the connection settings that go with it.

    ``hostname`` is the name a client verifies (default: the host it connects to);
    ``handshakeTimeout``/``shutdownTimeout`` override the module defaults (``None``: no limit).
    """

    def __init__(self, context: ssl.SSLContext, *, hostname: str | None = None,
                 handshakeTimeout: float | None = HANDSHAKE_TIMEOUT,
                 shutdownTimeout: float | None = SHUTDOWN_TIMEOUT) -> None:
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"TLSOptions needs an ssl.SSLContext, not {type(context).__name__}")
        self.context = context
        self.hostname = hostname
        self.handshakeTimeout = handshakeTimeout
        self.shutdownTimeout = shutdownTimeout

    def getContext(self) -> ssl.SSLContext:
        return self.context

    def __repr__(self) -> str:
        return f"TLSOptions(hostname={self.hostname!r}, handshakeTimeout={self.handshakeTimeout})"


def optionsForClientTLS(hostname: str, trustRoot: str | ssl.SSLContext | None = None,
                        **kwargs: Any) -> TLSOptions:
    """Client options verifying ``hostname`` against ``trustRoot`` (a CA file or directory,
    a ready ``SSLContext``, or ``None`` for the system's CAs). ``kwargs`` go to
    ``TLSOptions`` (timeouts)."""
    ctx = trustRoot if isinstance(trustRoot, ssl.SSLContext) else clientContext(trustRoot)
    return TLSOptions(ctx, hostname=hostname, **kwargs)


class DefaultOpenSSLContextFactory(TLSOptions):
    """A server context factory from a private key file and a certificate file (Twisted's
    argument order)."""

    def __init__(self, privateKeyFileName: str, certificateFileName: str, **kwargs: Any) -> None:
        TLSOptions.__init__(self, serverContext(certificateFileName, privateKeyFileName), **kwargs)


def _resolve(contextFactory: Any) -> tuple[ssl.SSLContext, str | None, float | None, float | None]:
    """(context, hostname, handshake timeout, shutdown timeout) of a context factory."""
    if isinstance(contextFactory, ssl.SSLContext):
        return contextFactory, None, HANDSHAKE_TIMEOUT, SHUTDOWN_TIMEOUT
    get = getattr(contextFactory, "getContext", None)
    ctx = get() if callable(get) else None
    if not isinstance(ctx, ssl.SSLContext):
        raise TypeError(
            f"a TLS context factory must be an ssl.SSLContext or have getContext() returning one, "
            f"not {contextFactory!r}")
    return (ctx, getattr(contextFactory, "hostname", None),
            getattr(contextFactory, "handshakeTimeout", HANDSHAKE_TIMEOUT),
            getattr(contextFactory, "shutdownTimeout", SHUTDOWN_TIMEOUT))


def _checkSide(ctx: ssl.SSLContext, serverSide: bool) -> None:
    if serverSide and ctx.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError("a client SSLContext (PROTOCOL_TLS_CLIENT) cannot serve TLS: "
                         "use framework.tls.serverContext(cert, key)")
    if not serverSide and ctx.protocol == ssl.PROTOCOL_TLS_SERVER:
        raise ValueError("a server SSLContext (PROTOCOL_TLS_SERVER) cannot connect: "
                         "use framework.tls.clientContext()")


def _describeError(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc) or type(exc).__name__


# -- the protocol / transport ----------------------------------------------------------------


class TLSMemoryBIOProtocol(ITCPTransport, IConsumer, IPushProducer):
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
        log.info(message, self._peer(), _describeError(exc))
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

    @staticmethod
    def _coerce(data: Any) -> bytes:
        if isinstance(data, str):
            raise TypeError(
                "write() takes bytes, not str: encode the text first (e.g. data.encode('utf-8'))")
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data)
        if isinstance(data, bytes):
            return data
        raise TypeError(f"write() takes bytes, not {type(data).__name__}")

    def writeSequence(self, data: Iterable[bytes]) -> None:
        chunks = list(data)
        for chunk in chunks:
            if isinstance(chunk, str):
                raise TypeError("writeSequence() takes bytes chunks, not str: encode the text first")
        self.write(b"".join(chunks))

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


# -- factories and entry points ----------------------------------------------------------------


class TLSMemoryBIOFactory(ClientFactory):
    """Wraps ``wrappedFactory`` so that each connection it serves speaks TLS.

    For clients, a connection whose handshake fails is reported to the wrapped factory's
    ``clientConnectionFailed`` (the user's protocol was never connected), not
    ``clientConnectionLost``.
    """

    def __init__(self, contextFactory: Any, isClient: bool, wrappedFactory: Any,
                 hostname: str | None = None) -> None:
        ctx, optHostname, handshakeTimeout, shutdownTimeout = _resolve(contextFactory)
        _checkSide(ctx, not isClient)
        self.contextFactory = contextFactory
        self.context = ctx
        self.isClient = isClient
        self.wrappedFactory = wrappedFactory
        self.hostname = optHostname or hostname
        if isClient and ctx.check_hostname and not self.hostname:
            raise ValueError("this client SSLContext verifies host names: give the host name to "
                             "verify (TLSOptions(ctx, hostname=...))")
        self.handshakeTimeout = handshakeTimeout
        self.shutdownTimeout = shutdownTimeout
        self._current: TLSMemoryBIOProtocol | None = None
        #: Set when an endpoint, not a connector, reports connection events (wrapClientTLS):
        #: then a failed handshake is reported from the protocol itself.
        self._reportsOwnFailures = False

    def __repr__(self) -> str:
        return f"<TLS {self.wrappedFactory!r}>"

    @property
    def noisy(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.wrappedFactory, "noisy", False))

    @property
    def maxWriteBuffer(self) -> Any:
        """The wrapped factory's write-buffer cap, for the listening port."""
        return getattr(self.wrappedFactory, "maxWriteBuffer", None)

    def logPrefix(self) -> str:
        prefix = getattr(self.wrappedFactory, "logPrefix", None)
        return str(prefix()) if callable(prefix) else type(self.wrappedFactory).__name__

    def doStart(self) -> None:
        self.wrappedFactory.doStart()

    def doStop(self) -> None:
        self.wrappedFactory.doStop()

    def buildProtocol(self, addr: Any) -> TLSMemoryBIOProtocol:
        proto = TLSMemoryBIOProtocol(
            self.context, not self.isClient, wrappedFactory=self.wrappedFactory, addr=addr,
            hostname=self.hostname, handshakeTimeout=self.handshakeTimeout,
            shutdownTimeout=self.shutdownTimeout, factory=self)
        if self.isClient:
            self._current = proto
        return proto

    def _handshakeFailed(self, proto: TLSMemoryBIOProtocol, reason: Failure) -> None:
        if self._reportsOwnFailures:
            self.clientConnectionFailed(None, reason)

    def startedConnecting(self, connector: Any) -> None:
        started = getattr(self.wrappedFactory, "startedConnecting", None)
        if callable(started):
            started(connector)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._current = None
        failed = getattr(self.wrappedFactory, "clientConnectionFailed", None)
        if callable(failed):
            failed(connector, reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        proto, self._current = self._current, None
        if proto is not None and not proto._appConnected:
            self.clientConnectionFailed(connector, proto._lostReason or reason)
            return
        if proto is not None and proto._lostReason is not None:
            reason = proto._lostReason
        lost = getattr(self.wrappedFactory, "clientConnectionLost", None)
        if callable(lost):
            lost(connector, reason)


def listenSSL(reactor: Any, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
              interface: str = "") -> Any:
    """Listen for TLS connections on ``interface:port``; returns the listening ``Port``.

    ``contextFactory`` is an ``ssl.SSLContext`` (e.g. ``serverContext(cert, key)``) or an object
    with ``getContext()`` (e.g. ``TLSOptions``, ``DefaultOpenSSLContextFactory``).
    """
    from framework import tcp

    wrapped = TLSMemoryBIOFactory(contextFactory, False, factory)
    return tcp.listenTCP(reactor, port, wrapped, backlog, interface)


def connectSSL(reactor: Any, host: str, port: int, factory: Any, contextFactory: Any,
               timeout: float | None = 30, bindAddress: tuple[str, int] | None = None) -> Any:
    """Connect ``factory`` over TLS to ``host:port``; returns the ``Connector``.

    The server's certificate is verified against ``host`` (or ``contextFactory.hostname``) when
    the context checks host names, as ``clientContext()`` does. A failed handshake reaches
    ``factory.clientConnectionFailed``.
    """
    from framework import tcp

    wrapped = TLSMemoryBIOFactory(contextFactory, True, factory, hostname=host)
    connector = tcp.Connector(host, port, wrapped, timeout, bindAddress, reactor)
    connector.connect()
    return connector


def startTLS(transport: Any, contextFactory: Any, normal: bool = True) -> TLSMemoryBIOProtocol:
    """Upgrade the plain stream ``transport`` to TLS now (STARTTLS): what was written before
    stays plain text, everything written after is encrypted (held until the handshake is done).

    The side is the transport's (an accepted connection is the server) unless the context says
    (``PROTOCOL_TLS_SERVER``/``PROTOCOL_TLS_CLIENT``); ``normal=False`` swaps it. The protocol keeps
    running; it sees ``self.transport`` become the TLS layer, and its optional
    ``handshakeCompleted()`` is called once the handshake succeeds.
    """
    if isinstance(getattr(transport, "protocol", None), TLSMemoryBIOProtocol):
        raise RuntimeError(f"{transport!r} already speaks TLS")
    ctx, hostname, handshakeTimeout, shutdownTimeout = _resolve(contextFactory)
    if ctx.protocol == ssl.PROTOCOL_TLS_SERVER:
        serverSide = True
    elif ctx.protocol == ssl.PROTOCOL_TLS_CLIENT:
        serverSide = False
    else:
        serverSide = getattr(transport, "connector", None) is None
        if not normal:
            serverSide = not serverSide
    if not serverSide and not hostname:
        hostname = getattr(getattr(transport, "connector", None), "host", None)
        if ctx.check_hostname and not hostname:
            raise ValueError("startTLS: give the host name to verify (TLSOptions(ctx, hostname=...))")
    app = transport.protocol
    tls = TLSMemoryBIOProtocol(ctx, serverSide, wrappedProtocol=app, hostname=hostname,
                               handshakeTimeout=handshakeTimeout, shutdownTimeout=shutdownTimeout)
    producer = getattr(transport, "producer", None)
    if producer is not None:
        tls._producer = producer
        tls._streaming = bool(getattr(transport, "streamingProducer", False))
    transport.protocol = tls
    app.transport = tls
    tls.makeConnection(transport)
    return tls


# -- endpoints ---------------------------------------------------------------------------------


class SSL4ServerEndpoint:
    """Listen for TLS connections on a TCP port."""

    def __init__(self, reactor: Any, port: int, sslContextFactory: Any, backlog: int = 50,
                 interface: str = "") -> None:
        self._reactor = reactor
        self._port = port
        self._contextFactory = sslContextFactory
        self._backlog = backlog
        self._interface = interface

    def __repr__(self) -> str:
        return f"SSL4ServerEndpoint(port={self._port}, interface={self._interface!r})"

    def listen(self, protocolFactory: Any) -> Any:
        from framework.defer import maybeDeferred

        return maybeDeferred(self._reactor.listenSSL, self._port, protocolFactory,
                             self._contextFactory, self._backlog, self._interface)


class _TLSServerEndpoint:
    """Any stream server endpoint, with TLS on every connection it accepts."""

    def __init__(self, contextFactory: Any, wrappedEndpoint: Any) -> None:
        _checkSide(_resolve(contextFactory)[0], True)
        self._contextFactory = contextFactory
        self._wrappedEndpoint = wrappedEndpoint

    def __repr__(self) -> str:
        return f"wrapServerTLS({self._wrappedEndpoint!r})"

    def listen(self, protocolFactory: Any) -> Any:
        from framework.defer import fail

        try:
            factory = TLSMemoryBIOFactory(self._contextFactory, False, protocolFactory)
        except Exception:
            return fail()
        return self._wrappedEndpoint.listen(factory)


def wrapServerTLS(contextFactory: Any, wrappedEndpoint: Any) -> Any:
    """A server endpoint serving TLS over ``wrappedEndpoint`` (TCP, UNIX...)."""
    return _TLSServerEndpoint(contextFactory, wrappedEndpoint)


class SSL4ClientEndpoint:
    """Connect over TCP, then TLS; the Deferred of ``connect`` fires once the handshake has
    succeeded and ``connectionMade`` ran, or fails with the ``ssl`` error."""

    def __init__(self, reactor: Any, host: str, port: int, sslContextFactory: Any,
                 timeout: float = 30, bindAddress: tuple[str, int] | None = None) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._contextFactory = sslContextFactory
        self._timeout = timeout
        self._bindAddress = bindAddress

    def __repr__(self) -> str:
        return f"SSL4ClientEndpoint(host={self._host!r}, port={self._port})"

    def connect(self, protocolFactory: Any) -> Any:
        from framework.defer import fail
        from framework.endpoints import _WrappingFactory

        try:
            wf = _WrappingFactory(protocolFactory)
            self._reactor.connectSSL(self._host, self._port, wf, self._contextFactory,
                                     self._timeout, self._bindAddress)
        except BaseException:
            return fail()
        return wf._onConnection


class _TLSClientEndpoint:
    def __init__(self, contextFactory: Any, wrappedEndpoint: Any) -> None:
        self._contextFactory = contextFactory
        self._wrappedEndpoint = wrappedEndpoint

    def connect(self, protocolFactory: Any) -> Any:
        from framework.defer import fail
        from framework.endpoints import _WrappingFactory

        try:
            wf = _WrappingFactory(protocolFactory)
            factory = TLSMemoryBIOFactory(self._contextFactory, True, wf)
            factory._reportsOwnFailures = True
        except BaseException:
            return fail()
        self._wrappedEndpoint.connect(factory).addErrback(
            lambda f: None if wf._onConnection.called else wf._onConnection.errback(f))
        return wf._onConnection


def wrapClientTLS(contextFactory: Any, wrappedEndpoint: Any) -> Any:
    """A client endpoint speaking TLS over ``wrappedEndpoint``; ``contextFactory`` must name
    the host to verify (``optionsForClientTLS(hostname)``) unless its context does not check."""
    return _TLSClientEndpoint(contextFactory, wrappedEndpoint)
