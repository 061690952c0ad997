"""ProcessEndpoint: a real child process as a client endpoint, on every backend."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from framework import defer, error
from framework.address import ProcessAddress
from framework.endpoints import ProcessEndpoint, StandardErrorBehavior
from framework.protocol import Factory, Protocol
from util import run_until

UPPER = "import sys\nfor _ in range(2):\n    print(sys.stdin.readline().strip().upper(), flush=True)\n"
FAIL = "import sys\nsys.stderr.write('oops\\n'); sys.stderr.flush(); sys.exit(3)\n"


class Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.addresses: list[Any] = []
        self.lost: defer.Deferred[Any] = defer.Deferred()

    def connectionMade(self) -> None:
        self.addresses = [self.transport.getHost(), self.transport.getPeer()]

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback([reason])  # in a list: a Failure result would fail the Deferred


def test_a_stream_protocol_talks_to_the_child(reactor: Any) -> None:
    endpoint = ProcessEndpoint(reactor, sys.executable, [sys.executable, "-c", UPPER])
    proto = run_until(reactor, endpoint.connect(Factory.forProtocol(Collect)))
    assert proto.addresses == [ProcessAddress(), ProcessAddress()]
    proto.transport.write(b"hello\n")
    proto.transport.writeSequence([b"wor", b"ld\n"])
    [reason] = run_until(reactor, proto.lost)  # the child exits 0 after two lines
    assert proto.data == b"HELLO\nWORLD\n"
    assert reason.check(error.ConnectionDone)


def test_a_failing_child_is_connection_lost_and_its_stderr_logged(reactor: Any, caplog: Any) -> None:
    endpoint = ProcessEndpoint(reactor, sys.executable, [sys.executable, "-c", FAIL])
    with caplog.at_level(logging.WARNING, logger="framework.endpoints"):
        proto = run_until(reactor, endpoint.connect(Factory.forProtocol(Collect)))
        [reason] = run_until(reactor, proto.lost)
    assert reason.check(error.ConnectionLost)
    assert "wrote stderr unhandled by Collect" in caplog.text and "oops" in caplog.text


def test_stderr_can_be_dropped(reactor: Any, caplog: Any) -> None:
    endpoint = ProcessEndpoint(reactor, sys.executable, [sys.executable, "-c", FAIL],
                               errFlag=StandardErrorBehavior.DROP)
    with caplog.at_level(logging.WARNING, logger="framework.endpoints"):
        proto = run_until(reactor, endpoint.connect(Factory.forProtocol(Collect)))
        run_until(reactor, proto.lost)
    assert "oops" not in caplog.text


def test_a_missing_program_fails_connect(reactor: Any) -> None:
    endpoint = ProcessEndpoint(reactor, "/nonexistent/program", ["program"])
    with pytest.raises(OSError):
        run_until(reactor, endpoint.connect(Factory.forProtocol(Collect)))
