"""A TCP port forwarder (Twisted's ``protocols.portforward``): every connection accepted by a
:class:`ProxyFactory` is relayed to ``host:port``.

Each side is registered as the streaming producer of the other's transport, so a slow reader
on one side pauses reading on the other: the proxy never buffers more than the transports'
write buffers.
"""

from __future__ import annotations

from typing import Any

from framework.failure import Failure
from framework.main import global_reactor
from framework.protocol import ClientFactory, Factory, Protocol, connectionDone

__all__ = ["Proxy", "ProxyClient", "ProxyClientFactory", "ProxyFactory", "ProxyServer"]


class Proxy(Protocol):
    """One side of a relayed connection: what it receives goes out on ``peer``."""

    peer: Proxy | None = None

    def setPeer(self, peer: Proxy) -> None:
        self.peer = peer

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.peer is not None:
            self.peer.transport.loseConnection()
            self.peer = None

    def dataReceived(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.transport.write(data)


class ProxyClient(Proxy):
    """The connection to the forwarding target, made for one :class:`ProxyServer`."""

    def connectionMade(self) -> None:
        peer = self.peer
        assert peer is not None
        peer.setPeer(self)
        # Flow control both ways: a full write buffer on one side pauses reading on the other.
        self.transport.registerProducer(peer.transport, True)
        peer.transport.registerProducer(self.transport, True)
        peer.transport.resumeProducing()  # the server side waited, not reading, until now


class ProxyClientFactory(ClientFactory):
    protocol = ProxyClient
    server: Proxy | None = None

    def setServer(self, server: Proxy) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> Any:
        client = self.protocol()
        assert self.server is not None
        client.setPeer(self.server)
        return client

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if self.server is not None:
            self.server.transport.loseConnection()


class ProxyServer(Proxy):
    """An accepted connection: stops reading, connects to the target, relays once connected."""

    clientProtocolFactory = ProxyClientFactory
    reactor: Any = None

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # nothing is read until the target is connected
        client = self.clientProtocolFactory()
        client.setServer(self)
        reactor = self.reactor
        if reactor is None:  # the reactor serving this connection, else the global one
            reactor = getattr(self.transport, "reactor", None) or global_reactor()
        reactor.connectTCP(self.factory.host, self.factory.port, client)


class ProxyFactory(Factory):
    """Serves :class:`ProxyServer` connections forwarding to ``host:port``."""

    protocol = ProxyServer

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
