"""Time (RFC 868): sends the time as a 32-bit big-endian count of seconds since 1900, then closes.

The module is named ``timeproto`` so it never shadows the standard library's ``time``;
its registry name is ``time``.
"""

from __future__ import annotations

import struct
import time

from framework import hookimpl
from framework.registries import ProtocolRegistry
from framework.protocol import Factory, Protocol

__all__ = ["EPOCH_OFFSET", "Time", "TimeFactory", "register_protocols", "rfc868_bytes"]

DEFAULT_PORT = 8037
#: Seconds from 1900-01-01 to the Unix epoch 1970-01-01.
EPOCH_OFFSET = 2208988800
_PACK = struct.Struct("!I").pack


def rfc868_bytes(unix_seconds: float | None = None) -> bytes:
    """Four bytes: seconds since 1900, big-endian, wrapping modulo 2**32 (as RFC 868 does in 2036)."""
    if unix_seconds is None:
        unix_seconds = time.time()
    return _PACK((int(unix_seconds) + EPOCH_OFFSET) & 0xFFFFFFFF)


class Time(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(rfc868_bytes())
        self.transport.loseConnection()


class TimeFactory(Factory):
    protocol = Time
    noisy = False


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "time",
        TimeFactory,
        description="RFC 868 time: 32-bit big-endian seconds since 1900",
        default_port=DEFAULT_PORT,
    )
