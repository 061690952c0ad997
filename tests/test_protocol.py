"""Protocol, Factory, ClientFactory, ReconnectingClientFactory, DatagramProtocol, addresses."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

import framework
from framework import error, protocol
from framework.address import IPv4Address, IPv6Address, UNIXAddress
from framework.failure import Failure
from framework.interfaces import IProtocol, IProtocolFactory
from framework.task import Clock
from framework.testing import FakeConnector, StringTransport


class Recorder(protocol.Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.events: list[Any] = []

    def connectionMade(self) -> None:
        self.events.append(("made", self.connected, self.transport))

    def dataReceived(self, data: bytes) -> None:
        self.events.append(("data", data))

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.events.append(("lost", reason.type))


# --- Protocol ---------------------------------------------------------------------------


def test_make_connection_sets_transport_and_calls_connection_made() -> None:
    p = Recorder()
    assert p.connected == 0 and p.transport is None
    t = StringTransport()
    p.makeConnection(t)
    assert p.connected == 1
    assert p.transport is t
    assert p.events == [("made", 1, t)]


def test_protocol_defaults_do_nothing_and_implement_the_interface() -> None:
    p = protocol.Protocol()
    p.makeConnection(StringTransport())
    p.dataReceived(b"ignored")
    p.connectionLost(Failure(error.ConnectionDone()))
    p.connectionLost()
    assert isinstance(p, IProtocol)
    assert p.logPrefix() == "Protocol"
    assert protocol.connectionDone.check(error.ConnectionDone)


# --- Factory ----------------------------------------------------------------------------


def test_build_protocol_instantiates_protocol_and_sets_factory() -> None:
    f = protocol.Factory()
    f.protocol = Recorder
    p = f.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    assert isinstance(p, Recorder)
    assert p.factory is f
    assert isinstance(f, IProtocolFactory)


def test_for_protocol_passes_arguments_to_the_factory() -> None:
    class MyFactory(protocol.ServerFactory):
        def __init__(self, greeting: str, *, loud: bool = False) -> None:
            self.greeting = greeting
            self.loud = loud

    f = MyFactory.forProtocol(Recorder, "hi", loud=True)
    assert isinstance(f, MyFactory)
    assert (f.greeting, f.loud, f.protocol) == ("hi", True, Recorder)
    assert f.buildProtocol(None).factory is f


def test_build_protocol_without_protocol_gives_a_clear_error() -> None:
    with pytest.raises(TypeError, match="protocol is not set"):
        protocol.Factory().buildProtocol(None)


def test_start_factory_once_before_first_port_stop_after_last() -> None:
    calls: list[str] = []

    class F(protocol.Factory):
        def startFactory(self) -> None:
            calls.append("start")

        def stopFactory(self) -> None:
            calls.append("stop")

    f = F()
    f.doStart()
    f.doStart()
    assert calls == ["start"] and f.numPorts == 2
    f.doStop()
    assert calls == ["start"] and f.numPorts == 1
    f.doStop()
    assert calls == ["start", "stop"] and f.numPorts == 0
    f.doStop()  # an extra stop is ignored
    assert calls == ["start", "stop"] and f.numPorts == 0
    f.doStart()
    assert calls == ["start", "stop", "start"]


def test_client_factory_callbacks_exist() -> None:
    f = protocol.ClientFactory()
    c = FakeConnector(IPv4Address("TCP", "127.0.0.1", 1))
    f.startedConnecting(c)
    f.clientConnectionFailed(c, Failure(error.ConnectionRefusedError()))
    f.clientConnectionLost(c, Failure(error.ConnectionDone()))


# --- ReconnectingClientFactory ----------------------------------------------------------


def reconnecting(clock: Clock, **attrs: Any) -> tuple[protocol.ReconnectingClientFactory, FakeConnector]:
    f = protocol.ReconnectingClientFactory()
    f.clock = clock
    f.noisy = False
    for k, v in attrs.items():
        setattr(f, k, v)
    c = FakeConnector(IPv4Address("TCP", "127.0.0.1", 9), f)
    return f, c


def reason() -> Failure:
    return Failure(error.ConnectionRefusedError())


def test_reconnecting_delays_grow_by_factor_up_to_max_delay() -> None:
    clock = Clock()
    f, c = reconnecting(clock, jitter=0, initialDelay=1.0, factor=2.0, maxDelay=10.0)
    delays = []
    for attempt in range(1, 7):
        f.clientConnectionFailed(c, reason())
        (call,) = clock.getDelayedCalls()
        delays.append(call.getTime() - clock.seconds())
        clock.advance(delays[-1])
        assert c.connectCalls == attempt
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_reconnecting_retries_after_connection_lost_too() -> None:
    clock = Clock()
    f, c = reconnecting(clock, jitter=0)
    f.clientConnectionLost(c, Failure(error.ConnectionLost()))
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(f.delay)
    assert c.connectCalls == 1


def test_reconnecting_jitter_stays_within_bounds() -> None:
    clock = Clock()
    f, c = reconnecting(clock, initialDelay=1.0, factor=2.0, maxDelay=5.0, jitter=0.1)
    for _ in range(20):
        f.clientConnectionFailed(c, reason())
        assert 0 <= f.delay <= 5.0
        clock.advance(f.delay)
    assert c.connectCalls == 20


def test_reconnecting_gives_up_after_max_retries() -> None:
    clock = Clock()
    f, c = reconnecting(clock, jitter=0, maxRetries=2)
    for _ in range(5):
        f.clientConnectionFailed(c, reason())
        clock.advance(f.maxDelay)
    assert c.connectCalls == 2
    assert clock.getDelayedCalls() == []


def test_stop_trying_cancels_pending_retry_and_stops_connecting() -> None:
    clock = Clock()
    f, c = reconnecting(clock, jitter=0)
    f.clientConnectionFailed(c, reason())
    assert clock.getDelayedCalls()
    f.stopTrying()
    assert clock.getDelayedCalls() == []
    assert c.stoppedConnecting
    clock.advance(100)
    assert c.connectCalls == 0
    f.clientConnectionFailed(c, reason())
    assert clock.getDelayedCalls() == []


def test_stop_trying_when_not_connecting_is_fine() -> None:
    clock = Clock()
    f, c = reconnecting(clock)
    f.connector = c
    c.state = "connected"
    f.stopTrying()
    assert not f.continueTrying


def test_reset_delay_restores_initial_state() -> None:
    clock = Clock()
    f, c = reconnecting(clock, jitter=0, factor=3.0)
    f.clientConnectionFailed(c, reason())
    clock.advance(f.delay)
    f.clientConnectionFailed(c, reason())
    assert f.retries == 2 and f.delay == 9.0
    f.resetDelay()
    assert f.retries == 0 and f.delay == f.initialDelay and f.continueTrying
    clock.advance(9.0)


def test_retry_with_explicit_connector_and_without_any() -> None:
    clock = Clock()
    f, c = reconnecting(clock, jitter=0)
    with pytest.raises(ValueError, match="no connector"):
        f.retry()
    f.retry(c)
    clock.advance(f.delay)
    assert c.connectCalls == 1


def test_reconnecting_factory_does_not_touch_the_global_reactor_until_needed() -> None:
    f = protocol.ReconnectingClientFactory()
    f.stopTrying()
    f.resetDelay()
    assert f.clock is None
    assert framework.installed_reactor() is None
    assert math.isclose(f.factor, math.e)


# --- DatagramProtocol -------------------------------------------------------------------


class Datagrams(protocol.DatagramProtocol):
    noisy = False

    def __init__(self) -> None:
        self.events: list[Any] = []

    def startProtocol(self) -> None:
        self.events.append(("start", self.transport))

    def stopProtocol(self) -> None:
        self.events.append(("stop", self.transport))

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.events.append(("datagram", datagram, addr))


def test_datagram_protocol_lifecycle() -> None:
    p = Datagrams()
    t = object()
    p.makeConnection(t)
    assert p.transport is t and p.numPorts == 1
    p.datagramReceived(b"x", ("127.0.0.1", 5))
    p.doStop()
    assert p.transport is None and p.numPorts == 0
    assert p.events == [("start", t), ("datagram", b"x", ("127.0.0.1", 5)), ("stop", None)]
    p.doStop()
    assert p.numPorts == 0


def test_datagram_protocol_refuses_second_transport() -> None:
    p = Datagrams()
    p.makeConnection(object())
    with pytest.raises(RuntimeError, match="already attached"):
        p.makeConnection(object())


def test_datagram_defaults() -> None:
    p = protocol.DatagramProtocol()
    p.datagramReceived(b"", ("127.0.0.1", 1))
    p.connectionRefused()
    c = protocol.ConnectedDatagramProtocol()
    c.datagramReceived(b"")
    c.connectionFailed(Failure(error.DNSLookupError("nope")))


# --- addresses --------------------------------------------------------------------------


def test_addresses_are_frozen_hashable_slotted_values() -> None:
    a = IPv4Address("TCP", "127.0.0.1", 80)
    assert a == IPv4Address("TCP", "127.0.0.1", 80)
    assert a != IPv4Address("UDP", "127.0.0.1", 80)
    assert {a: 1}[IPv4Address("TCP", "127.0.0.1", 80)] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.port = 81  # type: ignore[misc]
    assert not hasattr(a, "__dict__")
    v6 = IPv6Address("TCP", "::1", 80)
    assert (v6.type, v6.host, v6.port, v6.flowInfo, v6.scopeID) == ("TCP", "::1", 80, 0, 0)
    u = UNIXAddress("/tmp/sock")
    assert u.name == "/tmp/sock" and not hasattr(u, "__dict__")
    assert UNIXAddress(None).name is None


def test_address_type_is_validated() -> None:
    with pytest.raises(ValueError, match="'TCP' or 'UDP'"):
        IPv4Address("SCTP", "127.0.0.1", 1)  # type: ignore[arg-type]


def test_file_wrapper_writes_into_a_file_and_drives_a_pull_producer() -> None:
    import io

    from framework.protocol import FileWrapper

    sink = io.BytesIO()
    wrapper = FileWrapper(sink)
    chunks = [b"a", b"b", b"c"]

    class Pull:
        def resumeProducing(self) -> None:
            if chunks:
                wrapper.write(chunks.pop(0))
            else:
                wrapper.unregisterProducer()

        def stopProducing(self) -> None:
            pass

    wrapper.writeSequence([b"<", b">"])
    wrapper.registerProducer(Pull(), False)  # asked at once, then after each write
    assert sink.getvalue() == b"<>abc" and wrapper.producer is None
    wrapper.loseConnection()
    assert wrapper.closed and wrapper.getPeer() == ("file", "file")
