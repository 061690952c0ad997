"""The built-in protocol plugins: behaviour on an in-memory transport, registration through the
entry points, option validation, and a few round trips over real sockets."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import pytest

from framework import error, plugins
from framework.task import Clock
from reactor_framework_plugins.protocols import chargen, chat, daytime, discard, echo, poetry, qotd, timeproto

BUILTINS = {
    "echo": 8007,
    "discard": 8009,
    "chargen": 8019,
    "daytime": 8013,
    "time": 8037,
    "qotd": 8017,
    "poetry": 10000,
    "chat": 8023,
    "exec": 8024,
}


class FakeTransport:
    """Records what a protocol does to its transport."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.producer: Any = None
        self.streaming: bool | None = None
        self.lost = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.lost, "write after loseConnection"
        self.written.append(bytes(data))

    def writeSequence(self, seq: Any) -> None:
        for d in seq:
            self.write(d)

    def value(self) -> bytes:
        return b"".join(self.written)

    def clear(self) -> None:
        self.written.clear()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self) -> None:
        self.producer = None

    def loseConnection(self) -> None:
        self.lost = True

    def abortConnection(self) -> None:
        self.aborted = self.lost = True

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def connect(factory: Any) -> tuple[Any, FakeTransport]:
    proto = factory.buildProtocol(None)
    transport = FakeTransport()
    proto.makeConnection(transport)
    return proto, transport


# --- in-memory behaviour ------------------------------------------------------------------------


def test_echo_echoes_and_is_its_own_streaming_producer() -> None:
    proto, t = connect(echo.EchoFactory())
    assert t.producer is t and t.streaming is True
    proto.dataReceived(b"hello")
    proto.dataReceived(b" world")
    assert t.value() == b"hello world"


def test_echo_subclass_override_is_respected() -> None:
    class Shout(echo.Echo):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data.upper())

    from framework.protocol import Factory

    proto, t = connect(Factory.forProtocol(Shout))
    proto.dataReceived(b"hi")
    assert t.value() == b"HI"


def test_discard_writes_nothing() -> None:
    proto, t = connect(discard.DiscardFactory())
    proto.dataReceived(b"x" * 1000)
    assert t.written == [] and not t.lost


def test_chargen_writes_only_when_the_transport_asks() -> None:
    proto, t = connect(chargen.ChargenFactory())
    assert t.producer is proto and t.streaming is False
    assert t.written == []  # nothing until the transport pulls
    proto.resumeProducing()
    proto.resumeProducing()
    data = t.value()
    lines = data.split(b"\r\n")[:-1]
    assert len(lines) == 2 * 95
    assert all(len(line) == chargen.LINE_WIDTH for line in lines)
    # RFC 864 rotation: line i starts with the i-th printable character, and it continues
    # across blocks.
    assert [line[0] for line in lines[:96]] == [32 + (i % 95) for i in range(96)]
    assert lines[1] == bytes(range(33, 33 + 72))
    proto.stopProducing()
    t.clear()
    proto.resumeProducing()
    assert t.written == []


def test_daytime_sends_a_line_and_closes() -> None:
    proto, t = connect(daytime.DaytimeFactory())
    assert t.lost
    line = t.value()
    assert line.endswith(b" UTC\r\n") and str(time.gmtime().tm_year).encode() in line


def test_time_sends_rfc868_seconds_and_closes() -> None:
    before = int(time.time()) + timeproto.EPOCH_OFFSET
    proto, t = connect(timeproto.TimeFactory())
    after = int(time.time()) + timeproto.EPOCH_OFFSET
    assert t.lost
    data = t.value()
    assert len(data) == 4
    (value,) = struct.unpack("!I", data)
    assert before <= value <= after
    assert timeproto.rfc868_bytes(0) == struct.pack("!I", 2208988800)


def test_qotd_builtin_and_file(tmp_path: Any) -> None:
    proto, t = connect(qotd.QOTDFactory())
    assert t.lost
    assert t.value().decode().rstrip("\r\n") in qotd.BUILTIN_QUOTES

    path = tmp_path / "quotes.txt"
    path.write_text("first quote\nsecond line\n%\n\nonly other\n", encoding="utf-8")
    factory = qotd.QOTDFactory(file=str(path))
    assert factory.quotes == ["first quote\nsecond line", "only other"]
    seen = set()
    for _ in range(50):
        _, t = connect(factory)
        seen.add(t.value())
    assert seen <= {b"first quote\r\nsecond line\r\n", b"only other\r\n"}


def test_qotd_rejects_empty_or_missing_file(tmp_path: Any) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n%\n")
    with pytest.raises(ValueError, match="no quote"):
        qotd.quotes_file(str(empty))
    with pytest.raises(ValueError, match="cannot read"):
        qotd.quotes_file(str(tmp_path / "missing.txt"))


def test_poetry_serves_in_chunks_with_delay_then_closes() -> None:
    clock = Clock()
    factory = poetry.PoetryFactory(poem=b"0123456789abcdefghij-", chunk=5, delay=1.0, reactor=clock)
    proto, t = connect(factory)
    clock.advance(0)
    assert t.written == [b"01234"]
    clock.advance(0.5)
    assert t.written == [b"01234"]  # the delay is honoured
    clock.advance(0.5)
    assert t.written == [b"01234", b"56789"]
    clock.pump([1.0] * 10)
    assert t.value() == b"0123456789abcdefghij-" and t.written[-1] == b"-"
    assert t.lost


def test_poetry_stops_when_the_client_goes() -> None:
    clock = Clock()
    factory = poetry.PoetryFactory(chunk=3, delay=1.0, reactor=clock)
    proto, t = connect(factory)
    clock.advance(0)
    proto.connectionLost(None)
    count = len(t.written)
    clock.pump([1.0] * 10)
    assert len(t.written) == count == 1
    assert clock.getDelayedCalls() == []


def test_poetry_builtin_poem_and_file(tmp_path: Any) -> None:
    assert poetry.PoetryFactory().poem == poetry.BUILTIN_POEM.encode()
    path = tmp_path / "poem.txt"
    path.write_bytes(b"roses\n")
    assert poetry.PoetryFactory(file=str(path)).poem == b"roses\n"
    with pytest.raises(ValueError):
        poetry.poem_file(str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError):
        poetry.positive_int("0")
    with pytest.raises(ValueError):
        poetry.non_negative_float("-1")


class ChatRoom:
    """A chat factory on a ``Clock``; ``join`` lets a reactor turn pass (join notices are sent
    once per turn)."""

    def __init__(self, max_line: int = 1024) -> None:
        self.clock = Clock()
        self.factory = chat.ChatFactory(max_line=max_line, reactor=self.clock)

    def join(self) -> tuple[Any, FakeTransport]:
        proto, t = connect(self.factory)
        self.clock.advance(chat.MAX_NOTICE_DELAY)
        return proto, t


def lines(t: FakeTransport) -> list[str]:
    out = t.value().decode().split("\r\n")
    t.clear()
    return [line for line in out if line]


def test_chat_broadcasts_to_others_only() -> None:
    room = ChatRoom()
    a, ta = room.join()
    b, tb = room.join()
    c, tc = room.join()
    for t in (ta, tb, tc):
        t.clear()
    a.dataReceived(b"hello all\r\n")
    assert lines(ta) == []
    assert lines(tb) == ["<guest1> hello all"]
    assert lines(tc) == ["<guest1> hello all"]


def test_chat_commands() -> None:
    room = ChatRoom()
    a, ta = room.join()
    b, tb = room.join()
    ta.clear()
    tb.clear()
    a.dataReceived(b"/nick alice\n")
    assert lines(ta) == ["* you are now alice"]
    assert lines(tb) == ["* guest1 is now alice"]
    b.dataReceived(b"/nick alice\n")
    assert lines(tb) == ["! nickname alice is taken"]
    b.dataReceived(b"/nick bad name!\n")
    assert lines(tb)[0].startswith("! usage: /nick")
    b.dataReceived(b"/who\n")
    assert lines(tb) == ["* here: alice, guest2"]
    b.dataReceived(b"/dance\n")
    assert lines(tb)[0].startswith("! unknown command /dance")
    b.dataReceived(b"/quit\nnot delivered\n")
    assert lines(tb) == ["* bye"] and tb.lost
    b.connectionLost(None)
    room.clock.advance(chat.MAX_NOTICE_DELAY)
    assert lines(ta) == ["* guest2 left"]
    assert list(room.factory.clients) == ["alice"]


def test_chat_refuses_long_lines_without_dropping_client_or_other_lines() -> None:
    room = ChatRoom(max_line=10)
    a, ta = room.join()
    b, tb = room.join()
    ta.clear()
    tb.clear()
    # a complete over-long line between two good ones, all in one chunk
    a.dataReceived(b"first\n" + b"x" * 50 + b"\nsecond\n")
    assert lines(tb) == ["<guest1> first", "<guest1> second"]
    assert lines(ta) == ["! line too long (more than 10 bytes), not sent"]
    # an over-long line arriving in pieces, followed by a good line in the last piece
    a.dataReceived(b"y" * 8)
    a.dataReceived(b"y" * 8)
    a.dataReceived(b"y" * 100)
    a.dataReceived(b"yyy\nthird\n")
    assert lines(tb) == ["<guest1> third"]
    assert lines(ta) == ["! line too long (more than 10 bytes), not sent"]
    assert not ta.lost
    # exactly the limit is fine, with CRLF or LF
    a.dataReceived(b"0123456789\r\n")
    assert lines(tb) == ["<guest1> 0123456789"]


# --- registration through the entry points ------------------------------------------------------


@pytest.fixture
def fresh_plugins() -> Any:
    plugins.reset()
    yield plugins
    plugins.reset()


def test_builtins_registered_through_entry_points(fresh_plugins: Any) -> None:
    registry = fresh_plugins.protocols()
    for name, port in BUILTINS.items():
        entry = registry.get(name)
        assert entry.default_port == port
        assert entry.default_port >= 1024  # usable without root
        assert entry.distribution == "reactor-framework"
        assert entry.description
    assert registry.get("time").maker is timeproto.TimeFactory


@pytest.mark.parametrize(
    ("name", "raw", "match"),
    [
        ("echo", {"bogus": "1"}, "bogus"),
        ("poetry", {"chunk": "ten"}, "chunk"),
        ("poetry", {"chunk": "0"}, "chunk"),
        ("poetry", {"delay": "-2"}, "delay"),
        ("poetry", {"file": "/nonexistent/poem.txt"}, "poem.txt"),
        ("qotd", {"file": "/nonexistent/quotes.txt"}, "quotes.txt"),
        ("chat", {"max_line": "x"}, "max_line"),
    ],
)
def test_bad_options_are_one_clear_error(fresh_plugins: Any, name: str, raw: dict[str, str], match: str) -> None:
    entry = fresh_plugins.protocols().get(name)
    with pytest.raises(error.PluginOptionError, match=match) as info:
        entry.make_factory(raw)
    assert "\n" not in str(info.value)


def test_options_build_configured_factories(fresh_plugins: Any, tmp_path: Any) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes(b"a poem")
    f = fresh_plugins.protocols().get("poetry").make_factory({"file": str(path), "chunk": "3", "delay": "0.5"})
    assert (f.poem, f.chunk, f.delay) == (b"a poem", 3, 0.5)
    f = fresh_plugins.protocols().get("chat").make_factory({"max_line": "20"})
    assert f.max_line == 20
    f = fresh_plugins.protocols().get("qotd").make_factory({})
    assert f.quotes == list(qotd.BUILTIN_QUOTES)


# --- over real sockets --------------------------------------------------------------------------


class Tracked:
    """Wraps a factory's protocols to know when every connection is gone."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.open = 0
        self.made = 0
        original = factory.buildProtocol

        def buildProtocol(addr: Any) -> Any:
            proto = original(addr)
            lost = proto.connectionLost

            def connectionLost(reason: Any = None) -> None:
                self.open -= 1
                lost(reason)

            proto.connectionLost = connectionLost
            self.open += 1
            self.made += 1
            return proto

        factory.buildProtocol = buildProtocol

    def all_closed(self) -> bool:
        return self.made > 0 and self.open == 0


def _serve(reactor: Any, factory: Any) -> tuple[Any, int]:
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return port, port.getHost().port


def _stop(reactor: Any, port: Any, *tracked: Tracked) -> None:
    """Stop listening and wait until the server side of every connection has closed."""
    from tests.util import run_until_true

    port.stopListening()
    run_until_true(reactor, lambda: all(t.all_closed() for t in tracked))


def run_client(reactor: Any, fn: Any) -> Any:
    """Run the blocking client ``fn`` in a thread while the reactor runs; return its result."""
    from tests.util import run_until_true

    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as e:  # re-raised in the test
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        run_until_true(reactor, lambda: not thread.is_alive(), timeout=10)
    finally:
        thread.join(10)
    if "error" in result:
        raise result["error"]
    return result["value"]


def read_all(port: int) -> bytes:
    """Connect, read until the server closes."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_echo_over_tcp(reactor: Any) -> None:
    tracked = Tracked(echo.EchoFactory())
    port, number = _serve(reactor, tracked.factory)
    payload = bytes(range(256)) * 4000  # 1 MB: more than the socket buffers hold

    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", number), timeout=10) as s:
            buf = bytearray()
            for offset in range(0, len(payload), 65536):
                s.sendall(payload[offset : offset + 65536])
                while len(buf) < min(offset + 65536, len(payload)):
                    data = s.recv(65536)
                    assert data, "server closed early"
                    buf += data
            return bytes(buf)

    assert run_client(reactor, client) == payload
    _stop(reactor, port, tracked)


def test_time_and_daytime_over_tcp(reactor: Any) -> None:
    t1, t2 = Tracked(timeproto.TimeFactory()), Tracked(daytime.DaytimeFactory())
    port, number = _serve(reactor, t1.factory)
    port2, number2 = _serve(reactor, t2.factory)
    data = run_client(reactor, lambda: read_all(number))
    assert len(data) == 4
    (value,) = struct.unpack("!I", data)
    assert abs(value - timeproto.EPOCH_OFFSET - time.time()) < 600
    line = run_client(reactor, lambda: read_all(number2))
    assert line.endswith(b"UTC\r\n")
    _stop(reactor, port, t1)
    _stop(reactor, port2, t2)


def test_chargen_over_tcp(reactor: Any) -> None:
    tracked = Tracked(chargen.ChargenFactory())
    port, number = _serve(reactor, tracked.factory)

    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", number), timeout=10) as s:
            buf = b""
            while len(buf) < 200_000:
                data = s.recv(65536)
                assert data
                buf += data
            return buf

    data = run_client(reactor, client)
    block = chargen.chargen_block()
    assert data[: len(block) * 2] == block * 2
    _stop(reactor, port, tracked)


def test_echo_stops_reading_a_client_that_does_not_read(reactor: Any) -> None:
    """The transport is echo's own streaming producer: once what it must send back piles up,
    it stops reading that client instead of buffering without limit."""
    from framework.protocol import Factory
    from tests.util import run_until_true

    connected: list[Any] = []
    lost: list[Any] = []

    class Recorded(echo.Echo):
        def connectionMade(self) -> None:
            connected.append(self)
            super().connectionMade()

        def connectionLost(self, reason: Any = None) -> None:
            lost.append(reason)

    port, number = _serve(reactor, Factory.forProtocol(Recorded))
    client = socket.create_connection(("127.0.0.1", number), timeout=10)
    client.setblocking(False)
    chunk = b"x" * 65536
    sent = [0]
    limit = 256 * 1024 * 1024

    def flooded_and_paused() -> bool:
        try:
            while sent[0] < limit:
                sent[0] += client.send(chunk)
        except BlockingIOError:
            pass
        return bool(connected) and connected[0].transport not in reactor.getReaders()

    try:
        run_until_true(reactor, flooded_and_paused, timeout=20)
        # bounded by the kernel's socket buffers plus the transport's own, far below the limit
        assert sent[0] < limit // 4
    finally:
        client.close()
        port.stopListening()
    run_until_true(reactor, lambda: bool(lost))


def test_chat_strips_control_characters_so_nobody_rewrites_other_screens() -> None:
    room = ChatRoom()
    a, ta = room.join()
    b, tb = room.join()
    for t in (ta, tb):
        t.clear()
    a.dataReceived(b"cr only\rtwo\x1b[2J\x07\r\n")
    assert lines(tb) == ["<guest1> cr onlytwo[2J"]
