"""Fault suite, the write path: the write-buffer cap (3) and peers that reset mid-write (4)."""

from __future__ import annotations

import json
import logging
import socket
import struct
from typing import Any

import pytest

from faults.helpers import Child, connect, new_reactor, recv_exactly
from framework import error, tcp
from framework.defer import Deferred
from framework.protocol import ClientFactory, Factory, Protocol
from util import run_until, run_until_true

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


class Flood(Protocol):
    """Writes 50 MiB at once, ignoring flow control."""

    def connectionMade(self) -> None:
        self.factory.flood = self
        self.largest = 0
        self.reason: Any = None
        chunk = b"f" * MiB
        for _ in range(50):
            self.transport.write(chunk)
            self.largest = max(self.largest, self.transport.get_write_buffer_size())

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


class Echo(Protocol):
    def connectionMade(self) -> None:
        self.factory.open = getattr(self.factory, "open", 0) + 1

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.open -= 1


class EchoClient(Protocol):
    def connectionMade(self) -> None:
        self.got = b""
        self.payload = bytes(range(256)) * 400
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.got += data
        if len(self.got) >= len(self.payload):
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.done.callback(self.got)


@pytest.mark.timeout(30)
def test_3_write_buffer_cap_aborts_a_flooder_and_spares_the_others(best_reactor: Any, caplog: Any) -> None:
    reactor = best_reactor
    caplog.set_level(logging.WARNING)
    flood_factory = Factory.forProtocol(Flood)
    flood_port = reactor.listenTCP(0, flood_factory, interface="127.0.0.1")
    echo_factory = Factory.forProtocol(Echo)
    echo_port = reactor.listenTCP(0, echo_factory, interface="127.0.0.1")
    sink = socket.socket()
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.connect(("127.0.0.1", flood_port.getHost().port))  # never reads
    try:
        run_until_true(reactor, lambda: getattr(getattr(flood_factory, "flood", None), "reason", None))
        flood = flood_factory.flood
        assert flood.reason.check(error.ConnectionAborted)
        assert flood.largest <= tcp.MAX_WRITE_BUFFER
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "write buffer" in r.getMessage()]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert "Flood" in message and f"127.0.0.1:{sink.getsockname()[1]}" in message
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        # Another connection of the same process is served as usual.
        cf = ClientFactory.forProtocol(EchoClient)
        cf.done = Deferred()
        reactor.connectTCP("127.0.0.1", echo_port.getHost().port, cf)
        got = run_until(reactor, cf.done)
        assert got == bytes(range(256)) * 400
        run_until_true(reactor, lambda: echo_factory.open == 0)
    finally:
        sink.close()
        run_until(reactor, flood_port.stopListening())
        run_until(reactor, echo_port.stopListening())


def test_3_cap_is_configurable_per_factory_and_per_transport(best_reactor: Any, caplog: Any) -> None:
    reactor = best_reactor
    caplog.set_level(logging.WARNING)
    flood_factory = Factory.forProtocol(Flood)
    flood_factory.maxWriteBuffer = 3 * MiB
    port = reactor.listenTCP(0, flood_factory, interface="127.0.0.1")
    sink = socket.socket()
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.connect(("127.0.0.1", port.getHost().port))
    try:
        run_until_true(reactor, lambda: getattr(getattr(flood_factory, "flood", None), "reason", None))
        assert flood_factory.flood.largest <= 3 * MiB
        assert flood_factory.flood.transport.maxWriteBuffer == 3 * MiB
        with pytest.raises(ValueError, match="maxWriteBuffer"):
            flood_factory.flood.transport.maxWriteBuffer = 0
    finally:
        sink.close()
        run_until(reactor, port.stopListening())


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.timeout(60)
def test_4_peer_reset_mid_write_and_writes_after_epipe() -> None:
    child = Child(mode="reset")
    try:
        bulk, ticker = (connect(p) for p in child.ports)
        assert len(recv_exactly(bulk, 65536)) == 65536  # the 10 MiB write is under way
        _reset(bulk)
        assert len(recv_exactly(ticker, 65536)) == 65536  # 4 KiB per loop turn, direct sends
        _reset(ticker)
        status, out, err = child.stop(signum=0)
    finally:
        child.close()
    assert status == 0, f"exit status {status} (a negative one is the signal that killed it): {err}"
    result = json.loads(out.split("RESULT ", 1)[1])
    assert result["bulk"]["lost"] == 1 and result["ticker"]["lost"] == 1, result
    print(result)
    assert result["bulk"]["reason"] == "ConnectionLost" and result["ticker"]["reason"] == "ConnectionLost"
    assert "ERROR" not in err and "Traceback" not in err, err
