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

Layers: this module, ``framework.tlsprotocol`` (the TLS layer of one connection) and
``framework.tlscontext`` (contexts, options, certificate checks) import no transport module.
``listenSSL``/``connectSSL`` go through the reactor's ``listenTCP``/``connectTCP`` with the TLS
wrapping factory; the client endpoints use ``framework.wrapping.ConnectingFactory``; and
``transport.startTLS(...)`` on a TCP or UNIX transport reaches ``startTLS`` here because the
stream base (``framework.stream``) imports this module, one layer up: TLS sits below the stream
transports, as a protocol wrapper over any of them.
"""

from __future__ import annotations

import ssl
from typing import Any

from framework.defer import fail, maybeDeferred
from framework.failure import Failure
from framework.tlscontext import (
    HANDSHAKE_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    DefaultOpenSSLContextFactory,
    TLSOptions,
    TLSSetupError,
    check_side,
    clientContext,
    optionsForClientTLS,
    resolve,
    serverContext,
)
from framework.tlsprotocol import READ_SIZE, TLSMemoryBIOProtocol
from framework.wrapping import ConnectingFactory, WrappingFactory

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "READ_SIZE",
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


# -- factories and entry points ----------------------------------------------------------------


class TLSMemoryBIOFactory(WrappingFactory):
    """Wraps ``wrappedFactory`` so that each connection it serves speaks TLS.

    A :class:`~framework.wrapping.WrappingFactory` (as Twisted's is): its live TLS protocols are
    in ``protocols`` while connected.

    For clients, a connection whose handshake fails is reported to the wrapped factory's
    ``clientConnectionFailed`` (the user's protocol was never connected), not
    ``clientConnectionLost``.
    """

    def __init__(self, contextFactory: Any, isClient: bool, wrappedFactory: Any,
                 hostname: str | None = None) -> None:
        ctx, optHostname, handshakeTimeout, shutdownTimeout = resolve(contextFactory)
        check_side(ctx, not isClient)
        WrappingFactory.__init__(self, wrappedFactory)
        self.contextFactory = contextFactory
        self.context = ctx
        self.isClient = isClient
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
    wrapped = TLSMemoryBIOFactory(contextFactory, False, factory)
    return reactor.listenTCP(port, wrapped, backlog, interface)


def connectSSL(reactor: Any, host: str, port: int, factory: Any, contextFactory: Any,
               timeout: float | None = 30, bindAddress: tuple[str, int] | None = None) -> Any:
    """Connect ``factory`` over TLS to ``host:port``; returns the ``Connector``.

    The server's certificate is verified against ``host`` (or ``contextFactory.hostname``) when
    the context checks host names, as ``clientContext()`` does. A failed handshake reaches
    ``factory.clientConnectionFailed``.
    """
    wrapped = TLSMemoryBIOFactory(contextFactory, True, factory, hostname=host)
    return reactor.connectTCP(host, port, wrapped, timeout, bindAddress)


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
    ctx, hostname, handshakeTimeout, shutdownTimeout = resolve(contextFactory)
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
        return maybeDeferred(self._reactor.listenSSL, self._port, protocolFactory,
                             self._contextFactory, self._backlog, self._interface)


class _TLSServerEndpoint:
    """Any stream server endpoint, with TLS on every connection it accepts."""

    def __init__(self, contextFactory: Any, wrappedEndpoint: Any) -> None:
        check_side(resolve(contextFactory)[0], True)
        self._contextFactory = contextFactory
        self._wrappedEndpoint = wrappedEndpoint

    def __repr__(self) -> str:
        return f"wrapServerTLS({self._wrappedEndpoint!r})"

    def listen(self, protocolFactory: Any) -> Any:
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
        try:
            wf = ConnectingFactory(protocolFactory)
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
        try:
            wf = ConnectingFactory(protocolFactory)
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
