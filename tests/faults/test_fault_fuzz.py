"""Fault suite, parsers (14): Hypothesis fuzzing of every framing protocol and every built-in
protocol over ``StringTransport``: only declared errors, bounded buffers, and results that do
not depend on how the bytes were chunked."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import plugins
from framework.address import IPv4Address
from framework.basic import (
    Int8StringReceiver,
    Int16StringReceiver,
    Int32StringReceiver,
    LineOnlyReceiver,
    LineReceiver,
    NetstringReceiver,
)
from framework.task import Clock
from framework.testing import StringTransport

pytestmark = pytest.mark.timeout(60)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, start = [], 0
    for p in points:
        out.append(data[start:p])
        start = p
    out.append(data[start:])
    return out


class Lines(LineReceiver):
    MAX_LENGTH = 64
    delimiter = b"\r\n"

    def connectionMade(self) -> None:
        self.events: list[Any] = []

    def lineReceived(self, line: bytes) -> None:
        self.events.append(line)

    def lineLengthExceeded(self, line: bytes) -> Any:
        self.events.append("too long")
        return LineReceiver.lineLengthExceeded(self, line)


class OnlyLines(LineOnlyReceiver):
    MAX_LENGTH = 64
    delimiter = b"\n"

    def connectionMade(self) -> None:
        self.events: list[Any] = []

    def lineReceived(self, line: bytes) -> None:
        self.events.append(line)

    def lineLengthExceeded(self, line: bytes) -> Any:
        self.events.append("too long")
        return LineOnlyReceiver.lineLengthExceeded(self, line)


def _strings(base: type) -> type:
    class Strings(base):  # type: ignore[valid-type, misc]
        MAX_LENGTH = 200

        def connectionMade(self) -> None:
            self.events: list[Any] = []

        def stringReceived(self, string: bytes) -> None:
            self.events.append(string)

        def lengthLimitExceeded(self, length: int) -> Any:
            self.events.append("too long")
            return base.lengthLimitExceeded(self, length)

    Strings.__name__ = base.__name__
    return Strings


class Netstrings(NetstringReceiver):
    MAX_LENGTH = 200

    def connectionMade(self) -> None:
        self.events: list[Any] = []

    def stringReceived(self, string: bytes) -> None:
        self.events.append(string)


FRAMERS = [Lines, OnlyLines, _strings(Int8StringReceiver), _strings(Int16StringReceiver),
           _strings(Int32StringReceiver), Netstrings]


def _bound(p: Any) -> int:
    if isinstance(p, (LineReceiver, LineOnlyReceiver)):
        return int(p.MAX_LENGTH + len(p.delimiter))
    if isinstance(p, NetstringReceiver):
        return int(p.MAX_LENGTH + len(str(p.MAX_LENGTH)) + 2)
    return int(p.MAX_LENGTH + p.prefixLength)


def _feed(cls: type, chunks: list[bytes]) -> tuple[list[Any], bool]:
    p = cls()
    t = StringTransport()
    p.makeConnection(t)
    for chunk in chunks:
        if t.disconnecting:
            break  # a real transport stops reading once the protocol closed it
        p.dataReceived(chunk)  # any exception fails the test: none is declared for input
        assert p.pending_message_bytes() <= _bound(p), (cls.__name__, p.pending_message_bytes())
        assert len(p._buf) <= max(_bound(p), len(chunk)) + _bound(p)
    return p.events, bool(t.disconnecting)


@st.composite
def frames(draw: Any) -> bytes:
    """Mostly well-formed input for every framer, with hostile bits mixed in."""
    parts = []
    pieces = draw(st.lists(st.tuples(st.sampled_from("lnbhg"), st.binary(max_size=80)), max_size=12))
    for kind, payload in pieces:
        if kind == "l":
            parts.append(payload.replace(b"\n", b"") + b"\r\n")
        elif kind == "n":
            parts.append(b"%d:%s," % (len(payload), payload))
        elif kind == "b":
            parts.append(struct.pack("!I", len(payload)) + payload)
        elif kind == "h":
            parts.append(struct.pack("!I", 0xFFFFFFF0) + payload)  # huge length prefix
        else:
            parts.append(payload)  # garbage, invalid UTF-8, no delimiter
    return b"".join(parts)


@st.composite
def inputs(draw: Any) -> tuple[bytes, list[int]]:
    data = draw(st.one_of(st.binary(max_size=600), frames()))
    cuts = draw(st.lists(st.integers(0, max(len(data), 1)), max_size=40))
    return data, cuts


@FUZZ
@given(inputs())
def test_14_framers_are_chunking_invariant_bounded_and_never_raise(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    for cls in FRAMERS:
        whole = _feed(cls, [data])
        chunked = _feed(cls, _chunks(data, cuts))
        one_by_one = _feed(cls, [data[i:i + 1] for i in range(len(data))])
        assert whole == chunked == one_by_one, cls.__name__


def test_14_framers_reject_endless_lines_and_huge_prefixes_with_bounded_buffers() -> None:
    for cls in FRAMERS:
        p = cls()
        p.makeConnection(StringTransport())
        for _ in range(5000):  # 5,000 one-byte chunks, no delimiter anywhere
            p.dataReceived(b"9")
            assert p.pending_message_bytes() <= _bound(p)
    huge = _strings(Int32StringReceiver)()
    t = StringTransport()
    huge.makeConnection(t)
    huge.dataReceived(struct.pack("!I", 2**31) + b"x" * 1000)
    assert huge.events == ["too long"] and t.disconnecting and huge.pending_message_bytes() == 0


def _builtin(name: str) -> Any:
    entry = plugins.protocols().get(name)
    if name == "poetry":
        factory = entry.maker(reactor=Clock(), delay=0)
    else:
        factory = entry.make_factory({})
    p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    t = StringTransport()
    p.makeConnection(t)
    return p, t, factory


BUILTINS = ["chat", "chargen", "daytime", "discard", "echo", "poetry", "qotd", "time"]


@FUZZ
@given(inputs())
def test_14_builtin_protocols_take_any_input(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    assert set(BUILTINS) <= set(plugins.protocols().names())
    for name in BUILTINS:
        outputs = []
        for chunks in ([data], _chunks(data, cuts)):
            p, t, factory = _builtin(name)
            for chunk in chunks:
                if t.disconnecting:
                    break
                p.dataReceived(chunk)
            if hasattr(p, "pending_message_bytes"):
                assert p.pending_message_bytes() <= 4096
            outputs.append(t.value())
            p.connectionLost(None)
        if name in ("echo", "discard", "chat", "qotd", "poetry"):
            assert outputs[0] == outputs[1], name
        if name == "echo":
            assert outputs[0] == data
        if name == "discard":
            assert outputs[0] == b""
