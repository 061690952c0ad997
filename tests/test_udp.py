"""UDP ports on 127.0.0.1 (and ::1), on every backend."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from framework import error, udp
from framework.address import IPv4Address, IPv6Address
from framework.protocol import DatagramProtocol
from test_tcp import HAS_IPV6
from util import run_until, run_until_true

LOCAL = "127.0.0.1"


class Collector(DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Any]] = []
        self.events: list[str] = []
        self.refused = 0

    def startProtocol(self) -> None:
        self.events.append("start")

    def stopProtocol(self) -> None:
        self.events.append("stop")

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.datagrams.append((data, addr))

    def connectionRefused(self) -> None:
        self.refused += 1


class UDPEcho(Collector):
    def datagramReceived(self, data: bytes, addr: Any) -> None:
        Collector.datagramReceived(self, data, addr)
        self.transport.write(data, addr)


def test_echo_and_addresses(reactor: Any) -> None:
    server = UDPEcho()
    sport = reactor.listenUDP(0, server, interface=LOCAL)
    assert server.events == ["start"]  # started synchronously, transport set
    assert server.transport is sport
    host = sport.getHost()
    assert host == IPv4Address("UDP", LOCAL, host.port) and host.port > 0
    client = Collector()
    cport = reactor.listenUDP(0, client, interface=LOCAL)
    messages = [b"ping %d" % i for i in range(50)]
    for m in messages:
        client.transport.write(m, (LOCAL, host.port))
    run_until_true(reactor, lambda: len(client.datagrams) == len(messages))
    assert sorted(d for d, _ in client.datagrams) == sorted(messages)
    assert {a for _, a in client.datagrams} == {(LOCAL, host.port)}
    assert {a for _, a in server.datagrams} == {(LOCAL, cport.getHost().port)}
    assert all(isinstance(a, tuple) for _, a in server.datagrams)
    d = sport.stopListening()
    run_until(reactor, d)
    assert server.events == ["start", "stop"]
    assert server.transport is None
    run_until(reactor, cport.stopListening())
    run_until(reactor, cport.stopListening())  # twice is harmless
    assert client.events == ["start", "stop"]
    assert reactor.getReaders() == []


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback on this machine")
def test_ipv6(reactor: Any) -> None:
    server = UDPEcho()
    sport = reactor.listenUDP(0, server, interface="::1")
    assert isinstance(sport.getHost(), IPv6Address) and sport.getHost().type == "UDP"
    client = Collector()
    cport = reactor.listenUDP(0, client, interface="::1")
    cport.write(b"six", ("::1", sport.getHost().port))
    run_until_true(reactor, lambda: bool(client.datagrams))
    assert client.datagrams == [(b"six", ("::1", sport.getHost().port))]
    run_until(reactor, sport.stopListening())
    run_until(reactor, cport.stopListening())


def test_connected_udp_write_and_refusal(reactor: Any) -> None:
    server = UDPEcho()
    sport = reactor.listenUDP(0, server, interface=LOCAL)
    client = Collector()
    cport = reactor.listenUDP(0, client, interface=LOCAL)
    cport.connect(LOCAL, sport.getHost().port)
    cport.write(b"hello")
    cport.writeSequence([b"hel", b"lo again"])
    run_until_true(reactor, lambda: len(client.datagrams) == 2)
    assert [d for d, _ in client.datagrams] == [b"hello", b"hello again"]
    with pytest.raises(RuntimeError, match="already connected"):
        cport.connect(LOCAL, 9)
    with pytest.raises(ValueError, match="connected to"):
        cport.write(b"elsewhere", (LOCAL, 9))
    # The server goes away: the next datagram is answered with ICMP port unreachable.
    run_until(reactor, sport.stopListening())
    cport.write(b"anyone?")
    run_until_true(reactor, lambda: client.refused >= 1)
    run_until(reactor, cport.stopListening())


def test_bad_input_gets_clear_errors(reactor: Any) -> None:
    proto = Collector()
    port = reactor.listenUDP(0, proto, interface=LOCAL)
    with pytest.raises(ValueError, match="needs an address"):
        port.write(b"nowhere")
    with pytest.raises(TypeError):
        port.write("text", (LOCAL, 9))
    with pytest.raises(ValueError, match="IP address"):
        port.connect("localhost", 9)
    with pytest.raises(ValueError, match="IP address"):
        port.write(b"named", ("localhost", 9))
    with pytest.raises(ValueError, match=r"needs an address \(host, port\), not '127.0.0.1'"):
        port.write(b"flat", LOCAL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from this IPv4 UDP port"):
        port.write(b"v6", ("::1", 9))
    port.write(b"cached", (LOCAL, 9))  # LOCAL is now a known-good host...
    for shape in ([LOCAL, 9], (LOCAL,)):  # ...which does not excuse a bad address shape
        with pytest.raises(ValueError, match=r"needs an address \(host, port\)"):
            port.write(b"shape", shape)  # type: ignore[arg-type]
    with pytest.raises(error.MessageLengthError):
        port.write(b"x" * 70000, (LOCAL, port.getHost().port))
    with pytest.raises(error.CannotListenError) as info:
        reactor.listenUDP(port.getHost().port, Collector(), interface=LOCAL)
    assert str(port.getHost().port) in str(info.value)
    run_until(reactor, port.stopListening())
    with pytest.raises(RuntimeError, match="not listening"):
        port.write(b"closed", (LOCAL, 9))


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
def test_an_ipv4_address_from_an_ipv6_port_says_how(reactor: Any) -> None:
    port = reactor.listenUDP(0, Collector(), interface="::1")
    with pytest.raises(ValueError, match=r"from this IPv6 UDP port: .*'::ffff:127.0.0.1'"):
        port.write(b"v4", ("127.0.0.1", 9))
    run_until(reactor, port.stopListening())


@pytest.mark.parametrize("size", [0, -1, "x", 1.5, True, 65536, 2**40])
def test_max_packet_size_must_be_a_positive_integer(reactor: Any, size: Any) -> None:
    with pytest.raises(ValueError, match="maxPacketSize must be an integer 1-65535"):
        reactor.listenUDP(0, Collector(), interface=LOCAL, maxPacketSize=size)
    assert reactor.getReaders() == []


def test_max_packet_size_truncates_and_errors_do_not_stop_reading(reactor: Any, caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="framework.udp")

    class Picky(Collector):
        def datagramReceived(self, data: bytes, addr: Any) -> None:
            Collector.datagramReceived(self, data, addr)
            if data.startswith(b"bad"):
                raise ValueError("bad datagram")

    proto = Picky()
    port = udp.listenUDP(reactor, 0, proto, interface=LOCAL, maxPacketSize=16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        target = (LOCAL, port.getHost().port)
        raw.sendto(b"bad one", target)
        raw.sendto(b"a" * 100, target)
        raw.sendto(b"fine", target)
        run_until_true(reactor, lambda: len(proto.datagrams) == 3)
    assert [d for d, _ in proto.datagrams] == [b"bad one", b"a" * 16, b"fine"]
    assert any("datagramReceived" in r.getMessage() and r.exc_info for r in caplog.records)
    run_until(reactor, port.stopListening())


def test_reads_in_bounded_batches(reactor: Any) -> None:
    proto = Collector()
    port = reactor.listenUDP(0, proto, interface=LOCAL)
    count = udp.READ_BATCH + 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for i in range(count):
            raw.sendto(b"%d" % i, (LOCAL, port.getHost().port))
    port.doRead()
    assert len(proto.datagrams) == udp.READ_BATCH
    run_until_true(reactor, lambda: len(proto.datagrams) == count)
    assert [int(d) for d, _ in proto.datagrams] == list(range(count))
    run_until(reactor, port.stopListening())


def test_protocol_already_attached_leaks_no_socket(reactor: Any) -> None:
    proto = Collector()
    port = reactor.listenUDP(0, proto, interface=LOCAL)
    with pytest.raises(RuntimeError):
        reactor.listenUDP(0, proto, interface=LOCAL)
    assert reactor.getReaders() == [port]
    run_until(reactor, port.stopListening())
