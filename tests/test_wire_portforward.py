"""framework.wire (Twisted's tiny services) and framework.portforward (a TCP forwarder), the
forwarder on real sockets with flow control."""

from __future__ import annotations

import struct
import time
from typing import Any

from framework import defer, wire
from framework.portforward import ProxyFactory
from framework.protocol import ClientCreator, Factory, Protocol
from framework.testing import StringTransport
from util import run_until, run_until_true


def _connected(protocol: Protocol) -> StringTransport:
    transport = StringTransport()
    protocol.makeConnection(transport)
    return transport


def test_the_one_shot_services_answer_and_close() -> None:
    assert _connected(wire.QOTD()).value() == b"An apple a day keeps the doctor away.\r\n"
    assert _connected(wire.Who()).value() == b"root\r\n"
    daytime = _connected(wire.Daytime())
    assert daytime.value().endswith(b"\r\n") and str(time.gmtime().tm_year).encode() in daytime.value()
    seconds = struct.unpack("!I", _connected(wire.Time()).value())[0]
    assert abs(seconds - 2208988800 - time.time()) < 5
    for proto in (wire.QOTD(), wire.Who(), wire.Daytime(), wire.Time()):
        assert _connected(proto).disconnecting


def test_echo_discard_and_chargen() -> None:
    echo, discard = wire.Echo(), wire.Discard()
    t_echo, t_discard = _connected(echo), _connected(discard)
    for chunk in (b"hello", b"world"):
        echo.dataReceived(chunk)
        discard.dataReceived(chunk)
    assert t_echo.value() == b"helloworld" and t_discard.value() == b""
    chargen = wire.Chargen()
    t_chargen = _connected(chargen)
    assert t_chargen.producer is chargen and t_chargen.streaming is False
    chargen.resumeProducing()
    chargen.resumeProducing()
    assert t_chargen.value() == wire.Chargen.noise * 2


class Collect(Protocol):
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.data = bytearray()
        self.done: defer.Deferred[bytes] = defer.Deferred()
        self.closed: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if len(self.data) >= self.expected and not self.done.called:
            self.done.callback(bytes(self.data))

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


def test_port_forwarding_relays_a_megabyte_both_ways(reactor: Any) -> None:
    backend = reactor.listenTCP(0, Factory.forProtocol(wire.Echo), interface="127.0.0.1")
    proxy = reactor.listenTCP(0, ProxyFactory("127.0.0.1", backend.getHost().port), interface="127.0.0.1")
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the write buffers, so flow control acts
    client = run_until(reactor, ClientCreator(reactor, Collect, len(payload)).connectTCP(
        "127.0.0.1", proxy.getHost().port))
    client.transport.write(payload)
    assert run_until(reactor, client.done, timeout=30) == payload
    client.transport.loseConnection()
    run_until(reactor, client.closed)
    run_until(reactor, proxy.stopListening())
    run_until(reactor, backend.stopListening())
    run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())


def test_an_unreachable_target_closes_the_client(reactor: Any) -> None:
    gone = reactor.listenTCP(0, Factory.forProtocol(wire.Echo), interface="127.0.0.1")
    number = gone.getHost().port
    run_until(reactor, gone.stopListening())
    proxy = reactor.listenTCP(0, ProxyFactory("127.0.0.1", number), interface="127.0.0.1")
    client = run_until(reactor, ClientCreator(reactor, Collect, 1).connectTCP("127.0.0.1", proxy.getHost().port))
    run_until(reactor, client.closed)
    assert client.data == b""
    run_until(reactor, proxy.stopListening())
    run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())
