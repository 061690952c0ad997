"""The slow poetry server of the Twisted tutorial: sends a poem in ``chunk``-byte pieces every
``delay`` seconds, then closes the connection.

Options: ``file=PATH`` (the poem; a short built-in poem when omitted), ``chunk=`` bytes per
write (default 10), ``delay=`` seconds between writes (default 0.1).
"""

from __future__ import annotations

from typing import Any

import framework
from framework import hookimpl
from framework.registries import ProtocolRegistry
from framework.plugins import Option
from framework.protocol import Factory, Protocol

__all__ = ["BUILTIN_POEM", "Poetry", "PoetryFactory", "register_protocols"]

DEFAULT_PORT = 10000

BUILTIN_POEM = """\
The Patient Loop

One thread, one loop, one patient eye,
it waits on sockets, asks them why
they sleep; and when a byte comes near
it wakes the one who wants to hear.

It never blocks, it never stays
too long in any single phase:
a callback fired, a promise kept,
and back to waiting where it slept.
"""


def poem_file(path: str) -> str:
    """Option type for ``file=``: checks the poem can be read, so a typo fails before listening."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise ValueError(f"cannot read poem file {path!r}: {e.strerror or e}") from None
    return path


poem_file.__name__ = "file"


def positive_int(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return n


positive_int.__name__ = "int"


def non_negative_float(value: str) -> float:
    x = float(value)
    if not x >= 0 or x == float("inf"):
        raise ValueError(f"must be a finite number >= 0, got {value!r}")
    return x


non_negative_float.__name__ = "float"


class Poetry(Protocol):
    """Writes the factory's poem slowly, then closes."""

    _call: Any = None
    _offset = 0

    def connectionMade(self) -> None:
        self._call = self.factory.clock().callLater(0, self._send)

    def _send(self) -> None:
        factory = self.factory
        piece = factory.poem[self._offset : self._offset + factory.chunk]
        self._offset += len(piece)
        if piece:
            self.transport.write(piece)
        if self._offset >= len(factory.poem):
            self._call = None
            self.transport.loseConnection()
        else:
            self._call = factory.clock().callLater(factory.delay, self._send)

    def connectionLost(self, reason: Any = None) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


class PoetryFactory(Factory):
    """Serves ``poem`` (bytes) or the file ``file``; ``reactor`` defaults to the global one,
    looked up only when the first connection arrives."""

    protocol = Poetry
    noisy = False

    def __init__(
        self,
        file: str | None = None,
        chunk: int = 10,
        delay: float = 0.1,
        poem: bytes | None = None,
        reactor: Any = None,
    ) -> None:
        if file is not None:
            with open(file, "rb") as f:
                poem = f.read()
        self.poem: bytes = poem if poem is not None else BUILTIN_POEM.encode("utf-8")
        if chunk <= 0:
            raise ValueError("chunk must be a positive number of bytes")
        if not delay >= 0:
            raise ValueError("delay must be >= 0 seconds")
        self.chunk = chunk
        self.delay = delay
        self.reactor = reactor

    def clock(self) -> Any:
        if self.reactor is None:
            self.reactor = framework.reactor
        return self.reactor


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "poetry",
        PoetryFactory,
        description="the tutorial's slow poetry server: a poem in small timed chunks, then close",
        default_port=DEFAULT_PORT,
        options=(
            Option("file", type=poem_file, default=None, help="poem text file (default: a built-in poem)"),
            Option("chunk", type=positive_int, default=10, help="bytes per write"),
            Option("delay", type=non_negative_float, default=0.1, help="seconds between writes"),
        ),
    )
