"""HostnameEndpoint: Happy Eyeballs (RFC 8305) over real sockets on 127.0.0.1 and ::1, and
its timing on a MemoryReactor's clock. Names are answered by a fake resolver: no DNS query."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from framework import defer, error
from framework.address import HostnameAddress
from framework.endpoints import HostnameEndpoint, clientFromString, TCP4ClientEndpoint
from framework.failure import Failure
from framework.protocol import Factory, Protocol
from framework.testing import MemoryReactor, StringTransport
from test_tcp import HAS_IPV6
from util import run_until, run_until_true

DUAL = [(socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")]


def fake_resolver(answers: dict[str, list[tuple[int, str]]], asked: list[str] | None = None) -> Any:
    def getaddrinfo(host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        if asked is not None:
            asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(fam, socket.SOCK_STREAM, 6, "", (addr, port) if fam == socket.AF_INET else (addr, port, 0, 0))
                for fam, addr in answers[host]]
    return getaddrinfo


class Hello(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hello from " + self.factory.name)
        self.transport.loseConnection()


class Reader(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.closed: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


def _server(reactor: Any, name: bytes, port: int, interface: str) -> Any:
    f = Factory.forProtocol(Hello)
    f.name = name  # type: ignore[attr-defined]
    return reactor.listenTCP(port, f, interface=interface)


def _clean(reactor: Any, *ports: Any) -> None:
    for p in ports:
        run_until(reactor, p.stopListening())
    run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())
    assert not [c for c in reactor.getDelayedCalls() if c.active()]


def _same_port_on_both(reactor: Any) -> tuple[Any, Any]:
    """Servers on ::1 and 127.0.0.1 with one port number."""
    for _ in range(20):
        v6 = _server(reactor, b"::1", 0, "::1")
        try:
            v4 = _server(reactor, b"127.0.0.1", v6.getHost().port, "127.0.0.1")
        except error.CannotListenError:
            run_until(reactor, v6.stopListening())
            continue
        return v6, v4
    raise AssertionError("no port free on both ::1 and 127.0.0.1")


def test_ipv4_wins_when_ipv6_is_refused(reactor: Any) -> None:
    reactor.set_name_resolver(fake_resolver({"dual.test": DUAL}))
    server = _server(reactor, b"127.0.0.1", 0, "127.0.0.1")
    endpoint = HostnameEndpoint(reactor, "dual.test", server.getHost().port)
    client = run_until(reactor, endpoint.connect(Factory.forProtocol(Reader)))
    run_until(reactor, client.closed)
    assert client.data == b"hello from 127.0.0.1"
    _clean(reactor, server)


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 on this machine")
def test_ipv6_is_tried_first_and_wins_when_it_answers(reactor: Any) -> None:
    reactor.set_name_resolver(fake_resolver({"dual.test": list(reversed(DUAL))}))
    v6, v4 = _same_port_on_both(reactor)
    endpoint = HostnameEndpoint(reactor, "dual.test", v6.getHost().port)
    client = run_until(reactor, endpoint.connect(Factory.forProtocol(Reader)))
    run_until(reactor, client.closed)
    assert client.data == b"hello from ::1"
    _clean(reactor, v6, v4)


def test_all_refused_fails_with_the_last_error_and_leaves_nothing(reactor: Any) -> None:
    reactor.set_name_resolver(fake_resolver({"dual.test": DUAL}))
    closed = _server(reactor, b"x", 0, "127.0.0.1")
    port = closed.getHost().port
    run_until(reactor, closed.stopListening())
    d = HostnameEndpoint(reactor, "dual.test", port).connect(Factory.forProtocol(Reader))
    with pytest.raises(error.ConnectionRefusedError):
        run_until(reactor, d)
    _clean(reactor)


def test_a_name_that_does_not_resolve_fails_with_dns_lookup_error(reactor: Any) -> None:
    reactor.set_name_resolver(fake_resolver({}))
    d = HostnameEndpoint(reactor, "nowhere.test", 80).connect(Factory.forProtocol(Reader))
    with pytest.raises(error.DNSLookupError, match="nowhere.test"):
        run_until(reactor, d)


# --- timing, on a MemoryReactor's clock ---------------------------------------------------


def _memory(answers: list[tuple[int, str]], asked: list[str] | None = None) -> MemoryReactor:
    m = MemoryReactor()
    m.getaddrinfo = fake_resolver({"many.test": answers}, asked)  # type: ignore[attr-defined]
    return m


FOUR = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "127.0.0.2"),
        (socket.AF_INET6, "::1"), (socket.AF_INET6, "::2")]


def _started(m: MemoryReactor) -> list[str]:
    return [host for host, *_ in m.tcpClients]


def test_attempts_alternate_families_ipv6_first_one_per_delay() -> None:
    m = _memory(FOUR)
    d = HostnameEndpoint(m, "many.test", 80, attemptDelay=0.25).connect(Factory.forProtocol(Reader))
    m.advance(0)  # the lookup's answer comes back through callFromThread
    assert _started(m) == ["::1"]
    m.advance(0.2)
    assert _started(m) == ["::1"]
    m.advance(0.05)
    assert _started(m) == ["::1", "127.0.0.1"]
    m.advance(0.25)
    assert _started(m) == ["::1", "127.0.0.1", "::2"]
    # The second attempt connects: it wins, the others stop, no timer is left.
    factory = m.tcpClients[1][2]
    proto = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    won = []
    d.addCallback(won.append)
    assert won == [proto] and isinstance(proto, Reader)
    assert [c.stoppedConnecting for c in m.connectors] == [True, False, True]
    assert not m.getDelayedCalls()
    assert m.tcpClients[2][2].buildProtocol(None) is None  # a late success builds nothing


def test_the_default_delay_is_rfc_8305s_quarter_second() -> None:
    m = _memory(FOUR)
    HostnameEndpoint(m, "many.test", 80).connect(Factory.forProtocol(Reader))
    m.advance(0)
    m.advance(0.24)
    assert _started(m) == ["::1"]
    m.advance(0.01)
    assert _started(m) == ["::1", "127.0.0.1"]


@pytest.mark.parametrize("kwargs, message", [
    ({"port": -1}, "port is an integer 0-65535, not -1"),
    ({"port": 70000}, "port is an integer 0-65535, not 70000"),
    ({"port": "80"}, "port is an integer 0-65535, not '80'"),
    ({"port": 80, "attemptDelay": -0.1}, "attemptDelay is a number of seconds >= 0, not -0.1"),
    ({"port": 80, "attemptDelay": "1"}, "attemptDelay is a number of seconds >= 0, not '1'"),
    ({"port": 80, "attemptDelay": float("nan")}, "attemptDelay is a number of seconds >= 0, not nan"),
])
def test_bad_port_or_delay_is_refused_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        HostnameEndpoint(MemoryReactor(), "localhost", **kwargs)
    assert str(info.value) == message


def test_a_failed_attempt_starts_the_next_at_once() -> None:
    m = _memory(FOUR)
    d = HostnameEndpoint(m, "many.test", 80).connect(Factory.forProtocol(Reader))
    m.advance(0)
    m.tcpClients[0][2].clientConnectionFailed(m.connectors[0], Failure(error.ConnectionRefusedError()))
    assert _started(m) == ["::1", "127.0.0.1"]
    for i in (1, 2, 3):
        m.tcpClients[i][2].clientConnectionFailed(m.connectors[i], Failure(error.ConnectionRefusedError(str(i))))
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert failures and failures[0].check(error.ConnectionRefusedError) and "3" in str(failures[0].value)
    assert not m.getDelayedCalls()


def test_cancelling_stops_every_attempt() -> None:
    m = _memory(FOUR)
    d = HostnameEndpoint(m, "many.test", 80).connect(Factory.forProtocol(Reader))
    m.advance(0)
    m.advance(0.25)
    d.cancel()
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert failures[0].check(error.ConnectingCancelledError)
    assert failures[0].value.address == HostnameAddress(b"many.test", 80)
    assert [c.stoppedConnecting for c in m.connectors] == [True, True]
    assert not m.getDelayedCalls()


def test_cancelling_during_the_lookup_ignores_its_answer() -> None:
    m = _memory(FOUR)
    d = HostnameEndpoint(m, "many.test", 80).connect(Factory.forProtocol(Reader))
    d.cancel()  # the answer is queued (callFromThread) but not delivered yet
    m.advance(0)
    assert m.tcpClients == []
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert failures[0].check(error.ConnectingCancelledError)


def test_international_names_are_looked_up_in_idna_and_bad_ones_fail_on_connect() -> None:
    asked: list[str] = []
    m = MemoryReactor()
    m.getaddrinfo = fake_resolver({"xn--bcher-kva.test": FOUR[:1]}, asked)  # type: ignore[attr-defined]
    HostnameEndpoint(m, "bücher.test", 80).connect(Factory.forProtocol(Reader))
    m.advance(0)
    assert asked == ["xn--bcher-kva.test"] and _started(m) == ["127.0.0.1"]
    endpoint = HostnameEndpoint(m, "\udcff.test", 80)  # not encodable: reported by connect
    failures: list[Failure] = []
    endpoint.connect(Factory.forProtocol(Reader)).addErrback(failures.append)
    assert failures[0].check(ValueError) and "bad host name" in str(failures[0].value)


def test_repr_and_literal_addresses_skip_the_lookup() -> None:
    m = MemoryReactor()
    assert repr(HostnameEndpoint(m, "::1", 80)) == "<HostnameEndpoint [::1]:80>"
    HostnameEndpoint(m, "::1", 80).connect(Factory.forProtocol(Reader))
    assert _started(m) == ["::1"]  # no lookup, no thread


def test_tcp_client_strings_stay_tcp4_client_endpoints_as_in_twisted() -> None:
    assert isinstance(clientFromString(MemoryReactor(), "tcp:host=example.test:port=80"), TCP4ClientEndpoint)


def test_tcp6_client_endpoint_looks_names_up_for_ipv6_only() -> None:
    from framework.endpoints import TCP6ClientEndpoint

    asked: list[tuple[str, int]] = []

    def getaddrinfo(host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        asked.append((host, family))
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0))]

    m = MemoryReactor()
    m.getaddrinfo = getaddrinfo  # type: ignore[attr-defined]
    d = TCP6ClientEndpoint(m, "dual.test", 80).connect(Factory.forProtocol(Reader))
    m.advance(0)
    assert asked == [("dual.test", socket.AF_INET6)] and _started(m) == ["::1"]
    proto = m.tcpClients[0][2].buildProtocol(None)
    proto.makeConnection(StringTransport())
    won: list[Any] = []
    d.addCallback(won.append)
    assert won == [proto]


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 on this machine")
def test_tcp6_client_string_reaches_an_ipv6_only_server_by_name(reactor: Any) -> None:
    reactor.set_name_resolver(fake_resolver({"dual.test": DUAL}))
    server = _server(reactor, b"::1", 0, "::1")
    endpoint = clientFromString(reactor, f"tcp6:host=dual.test:port={server.getHost().port}")
    client = run_until(reactor, endpoint.connect(Factory.forProtocol(Reader)))
    run_until(reactor, client.closed)
    assert client.data == b"hello from ::1"
    _clean(reactor, server)


def test_tcp6_cancel_during_the_lookup() -> None:
    from framework.endpoints import TCP6ClientEndpoint

    m = _memory(FOUR)
    d = TCP6ClientEndpoint(m, "many.test", 80).connect(Factory.forProtocol(Reader))
    d.cancel()
    m.advance(0)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert failures[0].check(error.ConnectingCancelledError) and m.tcpClients == []
