"""Discard (RFC 863): reads and throws away everything it receives."""

from __future__ import annotations

from framework import hookimpl
from framework.registries import ProtocolRegistry
from framework.protocol import Factory, Protocol

__all__ = ["Discard", "DiscardFactory", "register_protocols"]

DEFAULT_PORT = 8009


class Discard(Protocol):
    """Ignore all input; never write."""

    def dataReceived(self, data: bytes) -> None:
        pass


class DiscardFactory(Factory):
    protocol = Discard
    noisy = False


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "discard",
        DiscardFactory,
        description="RFC 863 discard: reads and ignores everything",
        default_port=DEFAULT_PORT,
    )
