"""The echo protocol's shortcut (dataReceived is the transport's write) applies only when
nothing replaced dataReceived."""

from __future__ import annotations

from typing import Any

from framework.testing import StringTransport
from reactor_framework_plugins.protocols.echo import Echo


def test_plain_echo_uses_transport_write() -> None:
    proto, transport = Echo(), StringTransport()
    proto.makeConnection(transport)
    assert proto.dataReceived == transport.write
    proto.dataReceived(b"abc")
    assert transport.value() == b"abc"


def test_wrapped_data_received_is_kept() -> None:
    proto, transport = Echo(), StringTransport()
    seen: list[bytes] = []
    original = proto.dataReceived

    def wrapper(data: bytes) -> None:
        seen.append(data)
        original(data)

    proto.dataReceived = wrapper  # type: ignore[method-assign]
    proto.makeConnection(transport)
    assert proto.dataReceived is wrapper
    proto.dataReceived(b"xy")
    assert seen == [b"xy"] and transport.value() == b"xy"


def test_subclass_override_is_kept() -> None:
    class Upper(Echo):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data.upper())

    proto: Any = Upper()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"hi")
    assert transport.value() == b"HI"
