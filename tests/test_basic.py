"""Framing protocols: LineReceiver, LineOnlyReceiver, Int*StringReceiver, NetstringReceiver."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import basic
from framework.testing import StringTransport

# --- helpers ----------------------------------------------------------------------------


def connect(proto: Any) -> StringTransport:
    transport = StringTransport()
    proto.makeConnection(transport)
    return transport


def feed(proto: Any, chunks: list[bytes]) -> None:
    """Deliver chunks as a transport would: nothing after the protocol asked to disconnect."""
    for chunk in chunks:
        if proto.transport.disconnecting:
            break
        proto.dataReceived(chunk)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


def ones(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


class Lines(basic.LineReceiver):
    """Records events; ``RAW n`` switches to raw mode for n bytes, then back to lines."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.raw_left = 0

    def lineReceived(self, line: bytes) -> None:
        self.events.append(("line", line))
        if line.startswith(b"RAW "):
            self.raw_left = int(line[4:])
            if self.raw_left:
                self.setRawMode()

    def rawDataReceived(self, data: bytes) -> None:
        take = data[: self.raw_left]
        self.raw_left -= len(take)
        if self.events and self.events[-1][0] == "raw":
            self.events[-1] = ("raw", self.events[-1][1] + take)
        else:
            self.events.append(("raw", take))
        if not self.raw_left:
            self.setLineMode(data[len(take) :])

    def lineLengthExceeded(self, line: bytes) -> None:
        self.events.append(("exceeded", b""))
        super().lineLengthExceeded(line)


# --- LineReceiver -----------------------------------------------------------------------


def test_lines_split_across_chunks_and_delimiter_stripped() -> None:
    p = Lines()
    connect(p)
    feed(p, [b"hel", b"lo\r", b"\nwor", b"ld\r\n\r\n", b"tail"])
    assert p.events == [("line", b"hello"), ("line", b"world"), ("line", b"")]
    assert p.clearLineBuffer() == b"tail"


def test_a_line_whose_handler_raised_is_not_delivered_again() -> None:
    class Picky(Lines):
        def lineReceived(self, line: bytes) -> None:
            Lines.lineReceived(self, line)
            if line == b"BOOM":
                raise ValueError("no")

    p = Picky()
    with pytest.raises(ValueError):
        p.dataReceived(b"a\r\nBOOM\r\nb\r\n")
    p.dataReceived(b"c\r\n")
    assert [line for _, line in p.events] == [b"a", b"BOOM", b"b", b"c"]


def test_custom_delimiter_and_send_line() -> None:
    p = Lines()
    p.delimiter = b"\n"
    t = connect(p)
    p.dataReceived(b"a\nb\r\n")
    assert p.events == [("line", b"a"), ("line", b"b\r")]
    p.sendLine(b"out")
    assert t.value() == b"out\n"


def test_line_of_exactly_max_length_is_accepted() -> None:
    p = Lines()
    p.MAX_LENGTH = 10
    t = connect(p)
    feed(p, ones(b"x" * 10 + b"\r\n"))
    assert p.events == [("line", b"x" * 10)]
    assert not t.disconnecting


@pytest.mark.parametrize("chunks", [[b"y" * 11 + b"\r\nok\r\n"], ones(b"y" * 11 + b"\r\nok\r\n")])
def test_line_too_long_calls_line_length_exceeded_and_disconnects(chunks: list[bytes]) -> None:
    p = Lines()
    p.MAX_LENGTH = 10
    t = connect(p)
    feed(p, [b"first\r\n"] + chunks)
    assert p.events == [("line", b"first"), ("exceeded", b"")]
    assert t.disconnecting


def test_unterminated_line_is_cut_off_with_bounded_buffer() -> None:
    p = Lines()
    p.MAX_LENGTH = 100
    t = connect(p)
    for _ in range(1000):
        if t.disconnecting:
            break
        p.dataReceived(b"z" * 7)
        assert len(p._buf) < p.MAX_LENGTH + len(p.delimiter)
    assert p.events == [("exceeded", b"")]
    assert t.disconnecting


def test_line_length_exceeded_receives_the_long_line() -> None:
    got = []

    class P(basic.LineReceiver):
        MAX_LENGTH = 4

        def lineReceived(self, line: bytes) -> None:
            raise AssertionError("no line expected")

        def lineLengthExceeded(self, line: bytes) -> None:
            got.append(line)

    p = P()
    connect(p)
    p.dataReceived(b"abcdefgh\r\nrest")
    assert got and got[0].startswith(b"abcdefgh")


def test_raw_mode_switch_hands_the_rest_of_the_chunk_over() -> None:
    p = Lines()
    connect(p)
    p.dataReceived(b"one\r\nRAW 5\r\n12\r\n4after\r\nlast\r\n")
    assert p.events == [
        ("line", b"one"),
        ("line", b"RAW 5"),
        ("raw", b"12\r\n4"),
        ("line", b"after"),
        ("line", b"last"),
    ]


def test_set_line_mode_outside_callbacks_parses_extra() -> None:
    class P(basic.LineReceiver):
        def __init__(self) -> None:
            self.lines: list[bytes] = []
            self.raw: list[bytes] = []

        def lineReceived(self, line: bytes) -> None:
            self.lines.append(line)

        def rawDataReceived(self, data: bytes) -> None:
            self.raw.append(data)

    p = P()
    connect(p)
    p.setRawMode()
    p.dataReceived(b"raw\r\nbytes")
    assert p.raw == [b"raw\r\nbytes"] and p.lines == []
    p.setLineMode(b"a\r\nb")
    p.dataReceived(b"\r\n")
    assert p.lines == [b"a", b"b"]


def test_lose_connection_in_line_received_stops_delivery() -> None:
    class P(basic.LineReceiver):
        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def lineReceived(self, line: bytes) -> None:
            self.lines.append(line)
            self.transport.loseConnection()

    p = P()
    connect(p)
    p.dataReceived(b"a\r\nb\r\nc\r\n")
    assert p.lines == [b"a"]


def test_clear_line_buffer_inside_line_received_returns_the_rest() -> None:
    class P(basic.LineReceiver):
        def __init__(self) -> None:
            self.lines: list[bytes] = []
            self.rest = b""

        def lineReceived(self, line: bytes) -> None:
            self.lines.append(line)
            if line == b"STOP":
                self.rest = self.clearLineBuffer()

    p = P()
    connect(p)
    p.dataReceived(b"a\r\nSTOP\r\nb\r\nc")
    assert p.lines == [b"a", b"STOP"]
    assert p.rest == b"b\r\nc"
    p.dataReceived(b"d\r\n")
    assert p.lines == [b"a", b"STOP", b"d"]


def test_pause_and_resume_producing_hold_back_lines() -> None:
    class P(basic.LineReceiver):
        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def lineReceived(self, line: bytes) -> None:
            self.lines.append(line)
            if line == b"pause":
                self.pauseProducing()

    p = P()
    t = connect(p)
    p.dataReceived(b"a\r\npause\r\nb\r\nc")
    assert p.lines == [b"a", b"pause"]
    assert t.producerState == "paused"
    p.dataReceived(b"\r\nd\r\n")
    assert p.lines == [b"a", b"pause"]
    p.resumeProducing()
    assert t.producerState == "producing"
    assert p.lines == [b"a", b"pause", b"b", b"c", b"d"]
    p.stopProducing()
    assert t.producerState == "stopped"


def test_reentrant_data_received_is_appended_to_the_stream() -> None:
    class P(basic.LineReceiver):
        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def lineReceived(self, line: bytes) -> None:
            self.lines.append(line)
            if line == b"echo":
                self.dataReceived(b"injected\r\n")

    p = P()
    connect(p)
    p.dataReceived(b"echo\r\nnext\r\npart")
    p.dataReceived(b"ial\r\n")
    # As in Twisted: data handed in from a callback joins the end of the buffered stream.
    assert p.lines == [b"echo", b"next", b"partinjected", b"ial"]


def test_delimiter_split_between_chunks_is_found() -> None:
    p = Lines()
    p.delimiter = b"<END>"
    connect(p)
    feed(p, [b"abc<E", b"N", b"D>de<", b"END", b">"])
    assert p.events == [("line", b"abc"), ("line", b"de")]


line_bodies = st.lists(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=12
)


@settings(max_examples=150, deadline=None)
@given(lines=line_bodies, raw=st.binary(max_size=30), cuts=st.lists(st.integers(0, 10_000), max_size=15))
def test_line_receiver_any_chunking_same_callbacks(lines: list[bytes], raw: bytes, cuts: list[int]) -> None:
    stream = b"".join(line + b"\r\n" for line in lines)
    stream += b"RAW %d\r\n" % len(raw) + raw + b"end\r\n"
    reference = Lines()
    connect(reference)
    reference.dataReceived(stream)
    for chunks in (chunked(stream, cuts), ones(stream)):
        p = Lines()
        connect(p)
        feed(p, chunks)
        assert p.events == reference.events
    assert reference.events[-1] == ("line", b"end")


@settings(max_examples=100, deadline=None)
@given(
    lines=line_bodies,
    long_len=st.integers(21, 60),
    cuts=st.lists(st.integers(0, 10_000), max_size=15),
)
def test_line_too_long_any_chunking(lines: list[bytes], long_len: int, cuts: list[int]) -> None:
    short = [line[:20] for line in lines]
    stream = b"".join(line + b"\r\n" for line in short) + b"q" * long_len + b"\r\nafter\r\n"
    expected = [("line", line) for line in short] + [("exceeded", b"")]
    for chunks in ([stream], chunked(stream, cuts), ones(stream)):
        p = Lines()
        p.MAX_LENGTH = 20
        t = connect(p)
        feed(p, chunks)
        assert p.events == expected
        assert t.disconnecting


# --- LineOnlyReceiver -------------------------------------------------------------------


class OnlyLines(basic.LineOnlyReceiver):
    MAX_LENGTH = 20

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    def lineReceived(self, line: bytes) -> None:
        self.events.append(("line", line))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.events.append(("exceeded", b""))
        super().lineLengthExceeded(line)


@settings(max_examples=150, deadline=None)
@given(lines=line_bodies, cuts=st.lists(st.integers(0, 10_000), max_size=15), overflow=st.booleans())
def test_line_only_receiver_any_chunking(lines: list[bytes], cuts: list[int], overflow: bool) -> None:
    short = [line[:20] for line in lines]
    stream = b"".join(line + b"\r\n" for line in short)
    expected = [("line", line) for line in short]
    if overflow:
        stream += b"w" * 30 + b"\r\nx\r\n"
        expected.append(("exceeded", b""))
    for chunks in ([stream], chunked(stream, cuts), ones(stream)):
        p = OnlyLines()
        t = connect(p)
        feed(p, chunks)
        assert p.events == expected
        assert t.disconnecting == overflow


def test_line_only_receiver_unterminated_long_line_bounded() -> None:
    p = OnlyLines()
    t = connect(p)
    for _ in range(100):
        if t.disconnecting:
            break
        p.dataReceived(b"k" * 3)
        assert len(p._buf) < p.MAX_LENGTH + 2
    assert p.events == [("exceeded", b"")]


def test_line_only_receiver_send_line_and_stop_on_disconnect() -> None:
    class P(basic.LineOnlyReceiver):
        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def lineReceived(self, line: bytes) -> None:
            self.lines.append(line)
            self.sendLine(line.upper())
            if line == b"bye":
                self.transport.loseConnection()

    p = P()
    t = connect(p)
    p.dataReceived(b"hi\r\nbye\r\nignored\r\n")
    assert p.lines == [b"hi", b"bye"]
    assert t.value() == b"HI\r\nBYE\r\n"


# --- IntNStringReceiver -----------------------------------------------------------------


def strings_protocol(cls: type[basic.IntNStringReceiver], max_length: int = 99999) -> Any:
    class P(cls):  # type: ignore[valid-type,misc]
        MAX_LENGTH = max_length

        def __init__(self) -> None:
            self.strings: list[bytes] = []
            self.exceeded: list[int] = []

        def stringReceived(self, string: bytes) -> None:
            self.strings.append(string)

        def lengthLimitExceeded(self, length: int) -> None:
            self.exceeded.append(length)
            super().lengthLimitExceeded(length)

    return P()


INT_RECEIVERS = [
    (basic.Int8StringReceiver, "!B"),
    (basic.Int16StringReceiver, "!H"),
    (basic.Int32StringReceiver, "!I"),
]


@pytest.mark.parametrize("cls,fmt", INT_RECEIVERS)
def test_int_n_send_string_writes_prefix(cls: Any, fmt: str) -> None:
    p = strings_protocol(cls)
    t = connect(p)
    p.sendString(b"hello")
    assert t.value() == struct.pack(fmt, 5) + b"hello"


@pytest.mark.parametrize("cls,fmt", INT_RECEIVERS[:2])
def test_int_n_send_string_too_long(cls: Any, fmt: str) -> None:
    p = strings_protocol(cls)
    t = connect(p)
    p.sendString(b"x" * ((1 << (8 * struct.calcsize(fmt))) - 1))
    t.clear()
    too_long = b"x" * (1 << (8 * struct.calcsize(fmt)))
    with pytest.raises(basic.StringTooLongError, match="does not fit"):
        p.sendString(too_long)
    assert t.value() == b""


@settings(max_examples=150, deadline=None)
@given(
    which=st.sampled_from(INT_RECEIVERS),
    strings=st.lists(st.binary(max_size=200), max_size=10),
    cuts=st.lists(st.integers(0, 10_000), max_size=15),
)
def test_int_n_any_chunking_same_strings(which: Any, strings: list[bytes], cuts: list[int]) -> None:
    cls, fmt = which
    strings = [s[:255] for s in strings]
    stream = b"".join(struct.pack(fmt, len(s)) + s for s in strings) + struct.pack(fmt, 3) + b"pa"
    for chunks in ([stream], chunked(stream, cuts), ones(stream)):
        p = strings_protocol(cls)
        connect(p)
        feed(p, chunks)
        assert p.strings == strings
        assert bytes(p._buf) == struct.pack(fmt, 3) + b"pa"


@pytest.mark.parametrize("cls,fmt", INT_RECEIVERS)
def test_length_prefix_above_limit_disconnects_before_payload(cls: Any, fmt: str) -> None:
    p = strings_protocol(cls, max_length=100)
    t = connect(p)
    p.dataReceived(struct.pack(fmt, 5) + b"hello" + struct.pack(fmt, 101))
    assert p.strings == [b"hello"]
    assert p.exceeded == [101]
    assert t.disconnecting
    assert not p._buf
    # Whatever follows is not buffered: the stream is out of sync.
    p.dataReceived(b"x" * 101)
    assert not p._buf and p.strings == [b"hello"]


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=10))
def test_length_prefix_above_limit_any_chunking(cuts: list[int]) -> None:
    stream = struct.pack("!I", 2) + b"ok" + struct.pack("!I", 1_000_000)
    for chunks in ([stream], chunked(stream, cuts), ones(stream)):
        p = strings_protocol(basic.Int32StringReceiver, max_length=1000)
        t = connect(p)
        feed(p, chunks)
        assert p.strings == [b"ok"] and p.exceeded == [1_000_000]
        assert t.disconnecting and not p._buf


def test_int_n_pause_and_resume() -> None:
    class P(basic.Int16StringReceiver):
        def __init__(self) -> None:
            self.strings: list[bytes] = []

        def stringReceived(self, string: bytes) -> None:
            self.strings.append(string)
            if string == b"stop":
                self.pauseProducing()

    p = P()
    connect(p)
    frames = b"".join(struct.pack("!H", len(s)) + s for s in (b"a", b"stop", b"b", b"c"))
    p.dataReceived(frames)
    assert p.strings == [b"a", b"stop"]
    p.resumeProducing()
    assert p.strings == [b"a", b"stop", b"b", b"c"]


def test_int_n_partial_payload_accumulates_without_reparsing() -> None:
    p = strings_protocol(basic.Int32StringReceiver)
    connect(p)
    payload = bytes(range(256)) * 100
    p.dataReceived(struct.pack("!I", len(payload)))
    for i in range(0, len(payload), 7):
        p.dataReceived(payload[i : i + 7])
    assert p.strings == [payload]
    assert not p._buf


# --- NetstringReceiver ------------------------------------------------------------------


class Netstrings(basic.NetstringReceiver):
    MAX_LENGTH = 50

    def __init__(self) -> None:
        self.strings: list[bytes] = []

    def stringReceived(self, string: bytes) -> None:
        self.strings.append(string)


def test_netstring_send_and_receive() -> None:
    p = Netstrings()
    t = connect(p)
    p.sendString(b"hello")
    p.sendString(b"")
    assert t.value() == b"5:hello,0:,"
    p.dataReceived(t.value())
    assert p.strings == [b"hello", b""]


@settings(max_examples=150, deadline=None)
@given(strings=st.lists(st.binary(max_size=50), max_size=10), cuts=st.lists(st.integers(0, 10_000), max_size=15))
def test_netstring_any_chunking(strings: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(b"%d:%s," % (len(s), s) for s in strings)
    for chunks in ([stream], chunked(stream, cuts), ones(stream)):
        p = Netstrings()
        t = connect(p)
        feed(p, chunks)
        assert p.strings == strings
        assert not t.disconnecting and not p.brokenPeer


@pytest.mark.parametrize(
    "bad",
    [
        b"abc",  # not a length
        b"3:abc;",  # no trailing comma
        b"03:abc,",  # leading zero
        b":abc,",  # empty length
        b"51:",  # above MAX_LENGTH
        b"123456",  # too many digits, no colon yet
        b"1a",  # non-digit in a partial length
    ],
)
def test_netstring_parse_errors_disconnect(bad: bytes) -> None:
    for chunks in ([b"2:ok," + bad], ones(b"2:ok," + bad)):
        p = Netstrings()
        t = connect(p)
        for chunk in chunks:
            p.dataReceived(chunk)
        assert p.strings == [b"ok"]
        assert p.brokenPeer
        assert t.disconnecting
        assert not p._buf
        p.dataReceived(b"2:no,")
        assert p.strings == [b"ok"]


def test_netstring_error_types() -> None:
    assert issubclass(basic.NetstringParseError, ValueError)
    assert issubclass(basic.IncompleteNetstring, Exception)


def test_netstring_partial_does_not_reparse_payload() -> None:
    p = Netstrings()
    p.MAX_LENGTH = 100_000
    connect(p)
    payload = b"p" * 50_000
    p.dataReceived(b"50000:")
    for i in range(0, len(payload), 3):
        p.dataReceived(payload[i : i + 3])
    assert p.strings == []
    p.dataReceived(b",")
    assert p.strings == [payload]


class Pausing(Lines):
    """Pauses after every line starting with ``P``; the test resumes it."""

    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(line)
        if line.startswith(b"P"):
            self.pauseProducing()


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.sampled_from([b"P", b"Pause", b"a", b"", b"RAW 3", b"bc"]), max_size=12),
    cuts=st.lists(st.integers(0, 10_000), max_size=15),
)
def test_pausing_any_chunking_same_callbacks(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\r\n" for line in lines) + b"end\r\n"

    def run(chunks: list[bytes]) -> list[tuple[str, bytes]]:
        p = Pausing()
        t = connect(p)
        for chunk in chunks:
            p.dataReceived(chunk)
            for _ in range(len(stream) + 1):
                if not p.paused:
                    break
                p.resumeProducing()
        assert t.producerState == "producing"
        assert not p._buf  # everything was delivered once resumed
        return p.events

    reference = run([stream])
    assert run(chunked(stream, cuts)) == reference
    assert run(ones(stream)) == reference


def test_int_n_reentrant_data_is_appended() -> None:
    class P(basic.Int8StringReceiver):
        def __init__(self) -> None:
            self.strings: list[bytes] = []

        def stringReceived(self, string: bytes) -> None:
            self.strings.append(string)
            if string == b"inject":
                self.dataReceived(b"\x01z")

    p = P()
    connect(p)
    p.dataReceived(b"\x06inject\x01a\x02b")
    p.dataReceived(b"c")
    # As in Twisted, the injected bytes join the end of the stream: "\x02b" + "\x01" is a frame.
    assert p.strings == [b"inject", b"a", b"b\x01"]
    assert bytes(p._buf) == b"zc"


def test_line_receiver_without_transport_still_parses() -> None:
    p = Lines()
    p.dataReceived(b"a\r\n")
    p.dataReceived(b"b\r\nc\r\n")
    assert p.events == [("line", b"a"), ("line", b"b"), ("line", b"c")]


@settings(max_examples=200, deadline=None)
@given(
    stream=st.lists(st.sampled_from([b"a", b"b", b"aab"]), max_size=60).map(b"".join),
    delimiter=st.sampled_from([b"aab", b"ab", b"b", b"aaa"]),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_self_overlapping_delimiters_any_chunking(stream: bytes, delimiter: bytes, cuts: list[int]) -> None:
    """Arbitrary streams over a tiny alphabet stress delimiters split across chunk seams."""

    def run(cls: type, chunks: list[bytes]) -> tuple[list[Any], bytes]:
        p = cls()
        p.delimiter = delimiter
        p.MAX_LENGTH = 1000
        connect(p)
        feed(p, chunks)
        return p.events, bytes(p._buf)

    for cls in (Lines, OnlyLines):
        reference = run(cls, [stream])
        assert reference[0] == [("line", x) for x in stream.split(delimiter)[:-1]]
        assert run(cls, chunked(stream, cuts)) == reference
        assert run(cls, ones(stream)) == reference


# --- FileSender (a pull producer reading a file) ---------------------------------------------


def test_file_sender_sends_the_file_in_chunks_as_the_consumer_asks() -> None:
    import io

    from framework.basic import FileSender
    from framework.testing import StringTransport

    data = bytes(range(256)) * 200  # 51,200 bytes: 4 chunks of 16 KiB
    transport = StringTransport()
    sender = FileSender()
    done = sender.beginFileTransfer(io.BytesIO(data), transport)
    assert transport.producer is sender and transport.streaming is False
    reads = 0
    while transport.producer is not None:
        sender.resumeProducing()
        reads += 1
    assert transport.value() == data and reads == 5  # 4 chunks, then the end
    results: list[bytes] = []
    done.addCallback(results.append)
    assert results == [data[-1:]]


def test_file_sender_transform_and_stop() -> None:
    import io

    from framework.basic import FileSender
    from framework.failure import Failure
    from framework.testing import StringTransport

    transport = StringTransport()
    sender = FileSender()
    sender.beginFileTransfer(io.BytesIO(b"abc"), transport, transform=bytes.upper)
    sender.resumeProducing()
    assert transport.value() == b"ABC"

    stopped = FileSender().beginFileTransfer(io.BytesIO(b"x" * 100_000), StringTransport())
    outcome: list[object] = []
    stopped.addBoth(outcome.append)
    assert not outcome


def test_file_sender_stopped_by_the_consumer_fails_its_deferred() -> None:
    import io

    from framework.basic import FileSender
    from framework.failure import Failure
    from framework.testing import StringTransport

    sender = FileSender()
    d = sender.beginFileTransfer(io.BytesIO(b"x" * 100_000), StringTransport())
    sender.stopProducing()
    outcome: list[object] = []
    d.addBoth(outcome.append)
    assert isinstance(outcome[0], Failure) and "asked us to stop" in outcome[0].getErrorMessage()


def test_string_io_without_closing_keeps_its_content() -> None:
    from framework.testing import StringIOWithoutClosing

    f = StringIOWithoutClosing()
    f.write(b"kept")
    f.close()
    assert f.getvalue() == b"kept"


def test_file_sender_over_a_real_connection(reactor, tmp_path) -> None:
    from framework.basic import FileSender
    from framework.defer import Deferred
    from framework.protocol import ClientCreator, Factory, Protocol
    from util import run_until, run_until_true

    payload = os.urandom(1 << 20)
    path = tmp_path / "blob"
    path.write_bytes(payload)

    class Serve(Protocol):
        def connectionMade(self) -> None:
            self.f = open(path, "rb")
            FileSender().beginFileTransfer(self.f, self.transport).addCallback(self.sent)

        def sent(self, last: bytes) -> None:
            self.f.close()
            self.transport.loseConnection()

    class Collect(Protocol):
        def __init__(self) -> None:
            self.chunks: list[bytes] = []
            self.done: Deferred[bytes] = Deferred()

        def dataReceived(self, data: bytes) -> None:
            self.chunks.append(data)

        def connectionLost(self, reason=None) -> None:
            self.done.callback(b"".join(self.chunks))

    port = reactor.listenTCP(0, Factory.forProtocol(Serve), interface="127.0.0.1")
    try:
        client = run_until(reactor, ClientCreator(reactor, Collect).connectTCP("127.0.0.1", port.getHost().port))
        assert run_until(reactor, client.done) == payload
    finally:
        run_until(reactor, port.stopListening())
        run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())


# --- IntNStringReceiver.recvd: the unparsed rest, readable and replaceable ----------------


@pytest.mark.parametrize("cls", [basic.Int32StringReceiver, basic.Int16StringReceiver, basic.Int8StringReceiver])
def test_recvd_holds_what_follows_the_current_string(cls) -> None:
    proto = cls()
    seen: list[bytes] = []
    proto.stringReceived = lambda s: seen.append(proto.recvd)  # type: ignore[method-assign]
    whole = struct.pack(proto.structFormat, 3) + b"aaa"
    partial = struct.pack(proto.structFormat, 3) + b"bb"
    proto.dataReceived(whole + partial)
    assert seen == [partial] and proto.recvd == partial


@pytest.mark.parametrize("cls", [basic.Int32StringReceiver, basic.Int16StringReceiver])
def test_assigning_recvd_replaces_the_rest(cls) -> None:
    proto = cls()
    got: list[bytes] = []
    other = struct.pack(proto.structFormat, 1) + b"c"

    def received(s: bytes) -> None:
        if not got:
            proto.recvd = other
        got.append(s)

    proto.stringReceived = received  # type: ignore[method-assign]
    msg = lambda p: struct.pack(proto.structFormat, len(p)) + p  # noqa: E731
    proto.dataReceived(msg(b"a") + msg(b"b"))
    assert got == [b"a", b"c"]


def test_protocol_switching_by_consuming_recvd() -> None:
    proto = basic.Int32StringReceiver()
    switch = b"\x00\x00\x00\x00"
    strings = [b"one", b"two", b"three"]
    got: list[bytes] = []

    def received(s: bytes) -> None:
        got.append(s)
        proto.recvd = proto.recvd[len(switch):]  # the next 4 bytes belong to someone else

    proto.stringReceived = received  # type: ignore[method-assign]
    proto.dataReceived(b"".join(struct.pack("!I", len(s)) + s + switch for s in strings))
    proto.dataReceived(b"\x01")
    assert got == strings and proto.recvd == b"\x01"


def test_recvd_in_length_limit_exceeded_is_the_whole_message() -> None:
    proto = basic.Int32StringReceiver()
    proto.MAX_LENGTH = 3
    seen: list[object] = []
    proto.lengthLimitExceeded = lambda n: seen.extend([n, proto.recvd])  # type: ignore[method-assign]
    message = struct.pack("!I", 8) + b"too long"
    proto.dataReceived(message)
    assert seen == [8, message]
