"""framework.loopback: two protocols connected in memory (loopbackAsync) or over a real local
socket (loopbackTCP, loopbackUNIX)."""

from __future__ import annotations

import glob
import os
import tempfile
from typing import Any

import pytest

from framework.basic import LineReceiver
from framework.loopback import (
    LoopbackRelay,
    collapsingPumpPolicy,
    loopbackAsync,
    loopbackTCP,
    loopbackUNIX,
)
from framework.protocol import Protocol
from util import run_until


class Talker(LineReceiver):
    """Answers each line with ``n: line`` until it has answered ``rounds`` lines, then closes."""

    delimiter = b"\n"

    def __init__(self, rounds: int, first: bytes | None = None) -> None:
        self.rounds = rounds
        self.first = first
        self.lines: list[bytes] = []
        self.lost: list[Any] = []

    def connectionMade(self) -> None:
        if self.first is not None:
            self.sendLine(self.first)

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        if len(self.lines) < self.rounds:
            self.sendLine(b"%d: %s" % (len(self.lines), line[:10]))
        else:
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.append(reason)


def _conversation_checks(server: Talker, client: Talker) -> None:
    assert client.lines == [b"hello", b"1: hi", b"2: 1: hello"]
    assert server.lines == [b"hi", b"1: hello", b"2: 1: hi"]
    assert len(server.lost) == 1 and len(client.lost) == 1


def test_loopback_async_runs_a_conversation_to_its_close(reactor: Any) -> None:
    server, client = Talker(3, first=b"hello"), Talker(3, first=b"hi")
    run_until(reactor, loopbackAsync(server, client, clock=reactor))
    _conversation_checks(server, client)


def test_loopback_async_never_delivers_from_inside_write(reactor: Any) -> None:
    depth = []

    class Writer(Protocol):
        writing = False

        def connectionMade(self) -> None:
            self.writing = True
            self.transport.write(b"ping")
            self.writing = False

        def dataReceived(self, data: bytes) -> None:
            depth.append(self.writing)
            self.transport.loseConnection()

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    run_until(reactor, loopbackAsync(Echo(), Writer(), clock=reactor))
    assert depth == [False]


def test_collapsing_policy_joins_what_was_queued(reactor: Any) -> None:
    received = []

    class Burst(Protocol):
        def connectionMade(self) -> None:
            for chunk in (b"a", b"b", b"c"):
                self.transport.write(chunk)
            self.transport.loseConnection()

    class Sink(Protocol):
        def dataReceived(self, data: bytes) -> None:
            received.append(data)

    run_until(reactor, loopbackAsync(Burst(), Sink(), collapsingPumpPolicy, clock=reactor))
    assert received == [b"abc"]


def test_writing_text_is_a_clear_error(reactor: Any) -> None:
    class Rude(Protocol):
        def connectionMade(self) -> None:
            with pytest.raises(TypeError, match="bytes, not str"):
                self.transport.write("text")  # type: ignore[arg-type]
            self.transport.loseConnection()

    run_until(reactor, loopbackAsync(Rude(), Protocol(), clock=reactor))


def test_loopback_tcp_runs_the_conversation_over_a_real_socket(reactor: Any) -> None:
    server, client = Talker(3, first=b"hello"), Talker(3, first=b"hi")
    run_until(reactor, loopbackTCP(server, client, reactor=reactor))
    _conversation_checks(server, client)
    assert server.transport.getHost().host == "127.0.0.1"
    assert not reactor.getReaders() and not reactor.getWriters()  # port and sockets closed


def test_loopback_unix_runs_the_conversation_and_removes_its_socket(reactor: Any) -> None:
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "loopback-*")))
    server, client = Talker(3, first=b"hello"), Talker(3, first=b"hi")
    run_until(reactor, loopbackUNIX(server, client, reactor=reactor))
    _conversation_checks(server, client)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "loopback-*"))) == before
    assert not reactor.getReaders() and not reactor.getWriters()


def test_loopback_relay_holds_writes_until_cleared() -> None:
    received = []

    class Sink(Protocol):
        def dataReceived(self, data: bytes) -> None:
            received.append(data)

        def connectionLost(self, reason: Any = None) -> None:
            received.append("lost")

    relay = LoopbackRelay(Sink())
    relay.write(b"ab")
    relay.writeSequence([b"c", b"d"])
    relay.loseConnection()
    assert received == []
    relay.clearBuffer()
    relay.clearBuffer()
    assert received == [b"abcd", "lost"]
