"""Factories that stand between a transport and the user's factory.

- :class:`ProtocolWrapper` / :class:`WrappingFactory` (Twisted's ``policies`` names): the
  wrapper is the transport's protocol and the wrapped protocol's transport, forwarding both
  ways; subclasses (``framework.policywrappers``) watch or limit the traffic in between.
- :class:`ConnectingFactory`: what every client endpoint connects through (TCP, UNIX, TLS,
  plugins'); its Deferred ``whenConnected()`` fires with the user's protocol once its
  ``connectionMade`` has run, or fails with the reason the attempt failed.

The module lives at protocol level (it imports no transport and no endpoint module), so
``framework.endpoints``, ``framework.tls`` and the policies use it without a cycle.
"""

from __future__ import annotations

from typing import Any

from framework import error
from framework.defer import Deferred
from framework.failure import Failure
from framework.protocol import ClientFactory, Protocol, connectionDone

__all__ = ["ConnectingFactory", "ProtocolWrapper", "WrappingFactory"]


class ConnectingFactory(ClientFactory):
    """Wraps the user's factory for one connection attempt and fires ``_onConnection`` with
    the protocol once it is connected, or fails it with the reason the attempt failed.

    The user's protocol is handed to the transport as is (no wrapping protocol, so no extra
    call per read and interface checks such as ``IHalfCloseableProtocol`` see the real class);
    only its ``makeConnection`` is intercepted, once, on the instance.
    """

    noisy = False

    def __init__(self, wrappedFactory: Any) -> None:
        self._wrappedFactory = wrappedFactory
        self._connector: Any = None
        self._onConnection: Deferred[Any] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[Any]) -> None:
        connector = self._connector
        d.errback(
            error.ConnectingCancelledError(connector.getDestination() if connector else None)
        )
        if connector is not None:
            try:
                connector.stopConnecting()
            except error.NotConnectingError:
                # Connected underneath (TCP up, a TLS handshake still going): drop that
                # connection, so the protocol is never connected after the cancel.
                transport = getattr(connector, "transport", None)
                if transport is not None:
                    transport.abortConnection()

    def whenConnected(self) -> Deferred[Any]:
        """The Deferred firing with the connected protocol (cancelling it stops the attempt)."""
        return self._onConnection

    def doStart(self) -> None:
        self._wrappedFactory.doStart()

    def doStop(self) -> None:
        self._wrappedFactory.doStop()

    def startedConnecting(self, connector: Any) -> None:
        self._connector = connector

    def buildProtocol(self, addr: Any) -> Any:
        try:
            proto = self._wrappedFactory.buildProtocol(addr)
            if proto is None:
                raise error.ConnectError(string=f"{self._wrappedFactory!r} refused to build a protocol")
        except BaseException:
            if not self._onConnection.called:
                self._onConnection.errback(Failure())
            return None
        onConnection = self._onConnection
        make = proto.makeConnection

        def makeConnection(transport: Any) -> None:
            try:
                del proto.makeConnection
            except AttributeError:
                pass
            if onConnection.called:  # cancelled while the connection was being set up
                transport.abortConnection()
                return
            make(transport)
            if not onConnection.called:
                onConnection.callback(proto)

        try:
            proto.makeConnection = makeConnection
        except AttributeError:
            # A protocol with __slots__: we cannot intercept; report success right away.
            onConnection.callback(proto)
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self._onConnection.called:
            self._onConnection.errback(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        # Lost before the protocol was ever connected (e.g. connectionMade raised).
        if not self._onConnection.called:
            self._onConnection.errback(reason)


def _prefix_of(thing: Any) -> str:
    logPrefix = getattr(thing, "logPrefix", None)
    return logPrefix() if callable(logPrefix) else thing.__class__.__name__


class ProtocolWrapper(Protocol):
    """Sits between a transport and ``wrappedProtocol``: to the transport it is the protocol,
    to the wrapped protocol it is the transport. Every call is forwarded; subclasses override
    the ones they watch (``dataReceived`` in, ``write``/``writeSequence`` out).

    Attributes the wrapper does not define are read from the real transport, so the wrapped
    protocol keeps reaching transport-specific methods (``setTcpNoDelay``, ``getHandle``...).
    """

    disconnecting = 0

    def __init__(self, factory: WrappingFactory, wrappedProtocol: Any) -> None:
        self.wrappedProtocol = wrappedProtocol
        self.factory = factory

    def logPrefix(self) -> str:
        return f"{_prefix_of(self.wrappedProtocol)} (ProtocolWrapper)"

    def makeConnection(self, transport: Any) -> None:
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self.wrappedProtocol.makeConnection(self)

    # the wrapped protocol's transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def writeSequence(self, data: Any) -> None:
        self.transport.writeSequence(data)

    def loseConnection(self) -> None:
        self.disconnecting = 1
        self.transport.loseConnection()

    def getPeer(self) -> Any:
        return self.transport.getPeer()

    def getHost(self) -> Any:
        return self.transport.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.transport.unregisterProducer()

    def stopConsuming(self) -> None:
        self.transport.stopConsuming()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("transport", "wrappedProtocol"):
            raise AttributeError(name)
        return getattr(self.transport, name)

    # the transport's protocol

    def dataReceived(self, data: bytes) -> None:
        self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.unregisterProtocol(self)
        wrapped, self.wrappedProtocol = self.wrappedProtocol, None  # no cycle left behind
        wrapped.connectionLost(reason)


class WrappingFactory(ClientFactory):
    """Builds a :class:`ProtocolWrapper` (``self.protocol``) around each protocol
    ``wrappedFactory`` builds, and keeps the live wrappers in ``protocols``. Start, stop and
    the client notifications are passed on to the wrapped factory."""

    protocol: Any = ProtocolWrapper

    def __init__(self, wrappedFactory: Any) -> None:
        self.wrappedFactory = wrappedFactory
        self.protocols: dict[Any, int] = {}

    def logPrefix(self) -> str:
        return f"{_prefix_of(self.wrappedFactory)} (WrappingFactory)"

    def doStart(self) -> None:
        self.wrappedFactory.doStart()
        ClientFactory.doStart(self)

    def doStop(self) -> None:
        self.wrappedFactory.doStop()
        ClientFactory.doStop(self)

    def startedConnecting(self, connector: Any) -> None:
        self.wrappedFactory.startedConnecting(connector)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.wrappedFactory.clientConnectionFailed(connector, reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.wrappedFactory.clientConnectionLost(connector, reason)

    def buildProtocol(self, addr: Any) -> Any:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)

    def registerProtocol(self, p: Any) -> None:
        """A wrapper got connected (called by ``ProtocolWrapper.makeConnection``)."""
        self.protocols[p] = 1

    def unregisterProtocol(self, p: Any) -> None:
        """A wrapper lost its connection."""
        self.protocols.pop(p, None)
