"""Twisted's wrapping policies (``framework.policies``): ProtocolWrapper, WrappingFactory,
ThrottlingFactory, TimeoutFactory, the connection caps and traffic logging, on real sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from framework import defer
from framework.policies import (
    LimitConnectionsByPeer,
    LimitTotalConnectionsFactory,
    ProtocolWrapper,
    TimeoutMixin,
    ThrottlingFactory,
    TimeoutFactory,
    TrafficLoggingFactory,
    WrappingFactory,
)
from framework.protocol import ClientCreator, Factory, Protocol
from framework.task import Clock
from util import run_until, run_until_true


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Busy(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"busy\n")
        self.transport.loseConnection()


class Client(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.waiting: tuple[bytes, defer.Deferred[bytes]] | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.waiting and self.received.endswith(self.waiting[0]):
            d = self.waiting[1]
            self.waiting = None
            d.callback(self.received)

    def expect(self, ending: bytes) -> defer.Deferred[bytes]:
        d: defer.Deferred[bytes] = defer.Deferred()
        if self.received.endswith(ending):
            d.callback(self.received)
        else:
            self.waiting = (ending, d)
        return d

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


def _connect(reactor: Any, port: Any) -> Client:
    client = run_until(reactor, ClientCreator(reactor, Client).connectTCP("127.0.0.1", port.getHost().port))
    assert isinstance(client, Client)
    return client


def _finish(reactor: Any, port: Any, *clients: Client) -> None:
    for c in clients:
        if not c.closed.called:
            c.transport.loseConnection()
            run_until(reactor, c.closed)
    run_until(reactor, port.stopListening())
    run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())


def test_wrapping_factory_forwards_both_ways_and_tracks_its_wrappers(reactor: Any) -> None:
    wrapped = Factory.forProtocol(Echo)
    factory = WrappingFactory(wrapped)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = _connect(reactor, port)
    client.transport.write(b"ping\n")
    assert run_until(reactor, client.expect(b"ping\n")) == b"ping\n"
    [wrapper] = factory.protocols
    assert isinstance(wrapper, ProtocolWrapper)
    inner = wrapper.wrappedProtocol
    assert isinstance(inner, Echo) and inner.factory is wrapped and inner.transport is wrapper
    assert wrapper.getPeer() == client.transport.getHost()
    assert wrapper.getTcpNoDelay() in (True, False)  # reached on the real transport
    assert factory.logPrefix() == "Factory (WrappingFactory)"
    assert wrapper.logPrefix() == "Echo (ProtocolWrapper)"
    client.transport.loseConnection()
    run_until(reactor, client.closed)
    run_until_true(reactor, lambda: not factory.protocols)
    assert wrapper.wrappedProtocol is None  # no cycle left behind
    _finish(reactor, port)


def test_throttling_factory_refuses_connections_over_its_cap(reactor: Any) -> None:
    factory = ThrottlingFactory(Factory.forProtocol(Echo), maxConnectionCount=1)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    first = _connect(reactor, port)
    second = _connect(reactor, port)
    run_until(reactor, second.closed)  # closed by the server at once
    assert second.received == b"" and factory.connectionCount == 1
    first.transport.write(b"still served\n")
    run_until(reactor, first.expect(b"still served\n"))
    first.transport.loseConnection()
    run_until(reactor, first.closed)
    run_until_true(reactor, lambda: factory.connectionCount == 0)
    third = _connect(reactor, port)
    third.transport.write(b"room again\n")
    run_until(reactor, third.expect(b"room again\n"))
    _finish(reactor, port, third)


def test_throttling_factory_pauses_reading_over_the_read_budget(reactor: Any) -> None:
    clock = Clock()
    factory = ThrottlingFactory(Factory.forProtocol(Echo), readLimit=10)
    factory.callLater = clock.callLater  # type: ignore[method-assign]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = _connect(reactor, port)
    client.transport.write(b"0123456789abcdefghij")  # 20 bytes: twice the budget
    run_until(reactor, client.expect(b"j"))
    [wrapper] = factory.protocols
    server_transport = wrapper.transport
    clock.advance(1.05)  # the budget check: reading stops on every connection
    assert server_transport not in reactor.getReaders()
    client.transport.write(b"held\n")
    clock.advance(0.5)
    assert server_transport not in reactor.getReaders()
    clock.advance(0.6)  # one second of excess paid back: reading resumes, the bytes arrive
    assert server_transport in reactor.getReaders()
    run_until(reactor, client.expect(b"held\n"))
    _finish(reactor, port, client)
    assert not clock.getDelayedCalls()  # the last connection gone: the budget checks stop


def test_timeout_factory_drops_a_silent_connection_and_traffic_defers_it(reactor: Any) -> None:
    clock = Clock()
    factory = TimeoutFactory(Factory.forProtocol(Echo), timeoutPeriod=3)
    factory.callLater = clock.callLater  # type: ignore[method-assign]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = _connect(reactor, port)
    run_until_true(reactor, lambda: factory.protocols)
    clock.advance(2)
    client.transport.write(b"alive\n")
    run_until(reactor, client.expect(b"alive\n"))  # received and sent: the countdown restarts
    clock.advance(2)
    assert not client.closed.called
    clock.advance(1.1)
    run_until(reactor, client.closed)
    _finish(reactor, port)


def test_limit_connections_by_peer(reactor: Any) -> None:
    factory = LimitConnectionsByPeer(Factory.forProtocol(Echo))
    factory.maxConnectionsPerPeer = 1
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    first = _connect(reactor, port)
    second = _connect(reactor, port)
    run_until(reactor, second.closed)
    assert factory.peerConnections == {"127.0.0.1": 1}
    first.transport.loseConnection()
    run_until(reactor, first.closed)
    run_until_true(reactor, lambda: not factory.peerConnections)
    third = _connect(reactor, port)
    third.transport.write(b"x\n")
    run_until(reactor, third.expect(b"x\n"))
    _finish(reactor, port, third)


def test_limit_total_connections_serves_the_overflow_protocol(reactor: Any) -> None:
    factory = LimitTotalConnectionsFactory()
    factory.protocol = Echo
    factory.connectionLimit = 1
    factory.overflowProtocol = Busy
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    first = _connect(reactor, port)
    second = _connect(reactor, port)
    run_until(reactor, second.closed)
    assert second.received == b"busy\n"
    run_until_true(reactor, lambda: factory.connectionCount == 1)
    first.transport.write(b"ok\n")
    run_until(reactor, first.expect(b"ok\n"))
    _finish(reactor, port, first)
    assert factory.connectionCount == 0


def test_traffic_logging_factory_writes_each_connections_traffic(reactor: Any, tmp_path: Path) -> None:
    factory = TrafficLoggingFactory(Factory.forProtocol(Echo), str(tmp_path / "traffic"))
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = _connect(reactor, port)
    client.transport.write(b"ping\n")
    run_until(reactor, client.expect(b"ping\n"))
    client.transport.loseConnection()
    run_until(reactor, client.closed)
    run_until_true(reactor, lambda: not factory.protocols)
    lines = (tmp_path / "traffic-1").read_text().splitlines()
    assert lines[:3] == ["*", "C 1: b'ping\\n'", "S 1: b'ping\\n'"]
    assert lines[3].startswith("C 1: ") and "ConnectionDone" in lines[3]
    _finish(reactor, port)


@pytest.mark.parametrize("make, exc, message", [
    (lambda: ThrottlingFactory(Factory(), maxConnectionCount=-1), ValueError, "maxConnectionCount must be 0 or more"),
    (lambda: ThrottlingFactory(Factory(), maxConnectionCount=2.5), TypeError, "maxConnectionCount must be a whole number"),
    (lambda: ThrottlingFactory(Factory(), maxConnectionCount=None), TypeError, "maxConnectionCount"),
    (lambda: ThrottlingFactory(Factory(), readLimit=0), ValueError, "readLimit must be above 0"),
    (lambda: ThrottlingFactory(Factory(), writeLimit="fast"), TypeError, "writeLimit must be a number"),
    (lambda: ThrottlingFactory(Factory(), readLimit=True), TypeError, "readLimit must be a number"),
    (lambda: TimeoutFactory(Factory(), timeoutPeriod=-1), ValueError, "timeoutPeriod must be 0 or more"),
    (lambda: TimeoutFactory(Factory(), timeoutPeriod=float("nan")), ValueError, "timeoutPeriod"),
    (lambda: TrafficLoggingFactory(Factory(), ""), TypeError, "logfilePrefix must be a non-empty str"),
    (lambda: TrafficLoggingFactory(Factory(), "log", lengthLimit=-3), ValueError, "lengthLimit must be 0 or more"),
    (lambda: TimeoutMixin().setTimeout("10"), TypeError, "setTimeout's period must be a number"),
])
def test_bad_settings_are_clear_errors(make: Any, exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        make()


def test_good_settings_are_kept() -> None:
    f = ThrottlingFactory(Factory(), maxConnectionCount=0, readLimit=0.5, writeLimit=100)
    assert (f.maxConnectionCount, f.readLimit, f.writeLimit) == (0, 0.5, 100)
    assert TimeoutFactory(Factory(), timeoutPeriod=None).timeoutPeriod is None
    assert TrafficLoggingFactory(Factory(), "log", lengthLimit=0).lengthLimit == 0
