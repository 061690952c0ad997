"""Daytime (RFC 867): sends the current date and time as one human-readable line, then closes."""

from __future__ import annotations

import datetime

from framework import hookimpl
from framework.registries import ProtocolRegistry
from framework.protocol import Factory, Protocol

__all__ = ["Daytime", "DaytimeFactory", "daytime_line", "register_protocols"]

DEFAULT_PORT = 8013


def daytime_line(now: datetime.datetime | None = None) -> bytes:
    """The RFC 867 reply: e.g. ``Tuesday, March 3, 2026 14:05:09 UTC\\r\\n``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%A, %B} {now.day}, {now:%Y %H:%M:%S} UTC\r\n".encode("ascii")


class Daytime(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(daytime_line())
        self.transport.loseConnection()


class DaytimeFactory(Factory):
    protocol = Daytime
    noisy = False


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "daytime",
        DaytimeFactory,
        description="RFC 867 daytime: one line with the current UTC date and time",
        default_port=DEFAULT_PORT,
    )
