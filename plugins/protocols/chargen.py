"""Character generator (RFC 864): an endless stream of rotating 72-character lines.

Output goes through a pull producer: the transport asks for the next block only when its
send buffer has drained, so a slow client never makes the server buffer without limit.
Anything the client sends is discarded.
"""

from __future__ import annotations

from typing import Any

from framework import hookimpl
from framework.registries import ProtocolRegistry
from framework.protocol import Factory, Protocol

__all__ = ["Chargen", "ChargenFactory", "LINE_WIDTH", "chargen_block", "register_protocols"]

DEFAULT_PORT = 8019
LINE_WIDTH = 72
_PRINTABLE = bytes(range(32, 127))  # the 95 printable ASCII characters


def chargen_block() -> bytes:
    """One full cycle of the RFC 864 pattern: 95 lines, line ``i`` starting at character ``i``."""
    doubled = _PRINTABLE * 2
    return b"".join(doubled[i : i + LINE_WIDTH] + b"\r\n" for i in range(len(_PRINTABLE)))


_BLOCK = chargen_block()


class Chargen(Protocol):
    """Writes one pattern cycle each time the transport asks for more (pull producer)."""

    producing = False

    def connectionMade(self) -> None:
        self.producing = True
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self.producing:
            # A whole cycle per call keeps the rotation continuous across blocks.
            self.transport.write(_BLOCK)

    def stopProducing(self) -> None:
        self.producing = False

    def pauseProducing(self) -> None:
        """Not used by a pull producer; present for transports that call it anyway."""

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        self.producing = False


class ChargenFactory(Factory):
    protocol = Chargen
    noisy = False


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "chargen",
        ChargenFactory,
        description="RFC 864 character generator: endless rotating ASCII lines",
        default_port=DEFAULT_PORT,
    )
