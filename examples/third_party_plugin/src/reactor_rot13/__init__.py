"""reactor-rot13: a ROT13 echo protocol and a callback-counting middleware for reactor-framework."""

from __future__ import annotations

import codecs
import logging
from typing import Any, Callable

from framework import hookimpl
from framework.basic import LineReceiver
from framework.defer import maybeDeferred
from framework.plugins import Option
from framework.protocol import Factory

__version__ = "1.0.0"

log = logging.getLogger("reactor_rot13")


class Rot13(LineReceiver):
    """Sends every line back ROT13-encoded."""

    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        # The reply goes through a Deferred, as it would if encoding were a lookup in a
        # database: the protocol code stays the same, and middleware sees the callback.
        d = maybeDeferred(self.encode, line)
        d.addCallback(self.sendLine)

    def encode(self, line: bytes) -> bytes:
        text = codecs.encode(line.decode("utf-8", "replace"), "rot13")
        if self.factory.upper:
            text = text.upper()
        return text.encode("utf-8")


class Rot13Factory(Factory):
    protocol = Rot13

    def __init__(self, upper: bool = False) -> None:
        self.upper = upper


class CallCount:
    """Deferred middleware: counts the callbacks that run while it is enabled, and logs it."""

    def __init__(self) -> None:
        self.count = 0

    def wrap_callback(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        def counted(result: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            log.info("callcount: %d Deferred callbacks run so far", self.count)
            return callback(result, *args, **kwargs)

        return counted


@hookimpl
def register_protocols(registry: Any) -> None:
    registry.add(
        "rot13",
        Rot13Factory,
        description="echoes each line back ROT13-encoded",
        default_port=8130,
        options=[Option("upper", type=bool, default=False, help="also upper-case the reply")],
    )


@hookimpl
def register_deferred_middleware(registry: Any) -> None:
    registry.add("callcount", CallCount(), description="logs a count of the Deferred callbacks run (example)")
