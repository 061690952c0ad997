"""Echo (RFC 862): every byte received is sent back.

This is the benchmark server, so ``dataReceived`` is as short as it can be. The transport is
registered as a streaming producer of itself: when a client stops reading and the send buffer
fills, the transport pauses reading from that client, so its memory on the server stays bounded.
"""

from __future__ import annotations

from framework import hookimpl
from framework.registries import ProtocolRegistry
from framework.protocol import Factory, Protocol

__all__ = ["Echo", "EchoFactory", "register_protocols"]

DEFAULT_PORT = 8007


class Echo(Protocol):
    """Send back whatever arrives."""

    def connectionMade(self) -> None:
        transport = self.transport
        transport.registerProducer(transport, True)
        # Unless a subclass or a wrapper (an idle-timeout policy) replaced dataReceived: one
        # call less per read, the transport's write *is* the protocol's behaviour. (Not
        # ``self.__dict__``: reading it would build a dict, 64 bytes per connection.)
        if getattr(self.dataReceived, "__func__", None) is Echo.dataReceived:
            self.dataReceived = transport.write  # type: ignore[method-assign,assignment]

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class EchoFactory(Factory):
    """Builds an :class:`Echo` per connection."""

    protocol = Echo
    noisy = False


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "echo",
        EchoFactory,
        description="RFC 862 echo: sends back every byte it receives",
        default_port=DEFAULT_PORT,
    )
