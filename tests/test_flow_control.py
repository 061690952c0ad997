"""Producers and consumers on real TCP connections (127.0.0.1), on every backend."""

from __future__ import annotations

import select
from typing import Any

import pytest

from framework import error, tcp
from framework.interfaces import IPullProducer, IPushProducer
from reactor_framework_plugins.protocols.echo import EchoFactory
from test_tcp import (
    Recorder,
    ServerFactory,
    after_turns,
    connect,
    listen,
    pair,
    wait_lost,
)
from util import run_until, run_until_true


class Sink(Recorder):
    """A client that does not read until told to."""

    def connectionMade(self) -> None:
        Recorder.connectionMade(self)
        self.transport.pauseProducing()


def test_non_reading_peer_does_not_grow_echo_server_memory(reactor: Any) -> None:
    factory = EchoFactory()
    built: list[Any] = []
    orig = factory.buildProtocol

    def build(addr: Any) -> Any:
        p = orig(addr)
        built.append(p)
        return p

    factory.buildProtocol = build  # type: ignore[method-assign]
    port = listen(reactor, factory)
    payload = bytes(range(256)) * (64 * 1024)  # 16 MiB
    cp = Sink()
    connect(reactor, port, cp)
    run_until(reactor, cp.made)
    cp.transport.write(payload)
    run_until_true(reactor, lambda: bool(built))
    server = built[0].transport
    # The echo server stops reading from a peer that does not read its answers...
    run_until_true(reactor, lambda: server not in reactor.getReaders())
    bound = tcp.HIGH_WATER + tcp.READ_SIZE
    assert server.get_write_buffer_size() <= bound
    run_until(reactor, after_turns(reactor, 20))
    assert server not in reactor.getReaders()
    assert server.get_write_buffer_size() <= bound
    # ...and everything still arrives, byte-exact, once the peer reads again.
    assert cp.transport.get_write_buffer_size() > 0
    cp.transport.resumeProducing()
    run_until_true(reactor, lambda: cp.received == len(payload), timeout=60)
    assert cp.data == payload
    cp.transport.loseConnection()
    wait_lost(reactor, cp)
    run_until_true(reactor, lambda: server.disconnected)
    run_until(reactor, port.stopListening())


class Streamer(IPushProducer):
    """Writes ``chunk`` after ``chunk`` for as long as it is not paused."""

    def __init__(self, transport: Any, total: int, chunk: int = 32 * 1024) -> None:
        self.transport = transport
        self.left = total
        self.chunk = bytes(range(256)) * (chunk // 256)
        self.paused = False
        self.log: list[tuple[str, int]] = []
        self.stopped = 0

    def produce(self) -> None:
        while not self.paused and self.left > 0:
            data = self.chunk[: self.left]
            self.left -= len(data)
            self.transport.write(data)
        if self.left <= 0 and not self.paused:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def pauseProducing(self) -> None:
        self.log.append(("pause", self.transport.get_write_buffer_size()))
        self.paused = True

    def resumeProducing(self) -> None:
        self.log.append(("resume", self.transport.get_write_buffer_size()))
        self.paused = False
        self.produce()

    def stopProducing(self) -> None:
        self.stopped += 1


def test_streaming_producer_paused_above_high_water_resumed_below_low_water(reactor: Any) -> None:
    total = 8 << 20
    streamers: list[Streamer] = []

    class Server(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            s = Streamer(self.transport, total)
            streamers.append(s)
            self.transport.registerProducer(s, True)

    sink = Sink()
    port, sp, cp = pair(reactor, Server, sink)
    s = streamers[0]
    s.produce()
    assert s.log and s.log[0][0] == "pause"  # the client is not reading: the buffer filled up
    sink.transport.resumeProducing()
    wait_lost(reactor, sink, timeout=60)
    assert sink.received == total
    assert sink.data == (s.chunk * (total // len(s.chunk) + 1))[:total]
    pauses = [size for what, size in s.log if what == "pause"]
    resumes = [size for what, size in s.log if what == "resume"]
    assert pauses and resumes
    assert all(size > tcp.HIGH_WATER for size in pauses)
    assert all(size < tcp.LOW_WATER for size in resumes)
    # strictly alternating
    assert [w for w, _ in s.log] == ["pause", "resume"] * len(pauses)
    assert s.stopped == 0  # unregistered before the connection closed
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())


class Puller(IPullProducer):
    def __init__(self, transport: Any, chunks: int, size: int = 100_000) -> None:
        self.transport = transport
        self.left = chunks
        self.size = size
        self.calls = 0
        self.stopped = 0

    def resumeProducing(self) -> None:
        self.calls += 1
        if self.left:
            self.transport.write(bytes([self.left % 256]) * self.size)
            self.left -= 1
            if not self.left:
                self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        self.stopped += 1


def test_pull_producer_asked_on_each_drain_and_lose_connection_waits_for_it(reactor: Any) -> None:
    pullers: list[Puller] = []

    class Server(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            p = Puller(self.transport, 10)
            pullers.append(p)
            self.transport.registerProducer(p, False)
            self.transport.loseConnection()  # completes only once the producer unregistered

    port, sp, cp = pair(reactor, Server)
    reason = wait_lost(reactor, cp)
    assert reason.check(error.ConnectionDone)
    p = pullers[0]
    assert p.calls == 10 and p.left == 0 and p.stopped == 0
    expected = b"".join(bytes([n % 256]) * 100_000 for n in range(10, 0, -1))
    assert cp.data == expected
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())


def test_register_twice_raises_and_stop_producing_on_loss(reactor: Any) -> None:
    port, sp, cp = pair(reactor)
    s = Streamer(sp.transport, 0)
    sp.transport.registerProducer(s, True)
    assert sp.transport.producer is s and sp.transport.streamingProducer is True
    with pytest.raises(RuntimeError, match="never unregistered"):
        sp.transport.registerProducer(Streamer(sp.transport, 0), True)
    cp.transport.loseConnection()
    wait_lost(reactor, sp)
    assert s.stopped == 1
    # Registering on a closed transport stops the producer at once.
    late = Streamer(sp.transport, 0)
    sp.transport.registerProducer(late, True)
    assert late.stopped == 1
    wait_lost(reactor, cp)
    run_until(reactor, port.stopListening())


def test_transport_pause_producing_stops_reading_until_resumed(reactor: Any) -> None:
    class Paused(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            self.transport.pauseProducing()

    port, sp, cp = pair(reactor, Paused)
    cp.transport.write(b"knock knock")
    # Wait (on the event itself) until the bytes sit in the server's socket...
    readable, _, _ = select.select([sp.transport.fileno()], [], [], 10)
    assert readable
    run_until(reactor, after_turns(reactor, 10))
    # ...yet nothing was read while paused.
    assert sp.received == 0
    assert sp.transport not in reactor.getReaders()
    sp.transport.resumeProducing()
    run_until_true(reactor, lambda: sp.data == b"knock knock")
    # stopProducing closes the connection (cleanly).
    sp.transport.stopProducing()
    assert wait_lost(reactor, sp).check(error.ConnectionDone)
    wait_lost(reactor, cp)
    run_until(reactor, port.stopListening())


def test_registering_the_transport_as_its_own_producer(reactor: Any) -> None:
    sink = Sink()
    port, sp, cp = pair(reactor, Recorder, sink)
    sp.transport.registerProducer(sp.transport, True)
    total = 16 << 20
    sp.transport.write(b"y" * total)
    # More than the kernel takes is buffered: the transport paused reading from its peer.
    assert sp.transport.get_write_buffer_size() > tcp.HIGH_WATER
    assert sp.transport not in reactor.getReaders()
    sink.transport.resumeProducing()
    run_until_true(reactor, lambda: cp.received == total, timeout=60)
    # Drained below the low-water mark: reading again.
    assert sp.transport in reactor.getReaders()
    cp.transport.loseConnection()
    wait_lost(reactor, sp)
    wait_lost(reactor, cp)
    run_until(reactor, port.stopListening())
