"""Fault suite, far timers (issue 17, item 3): a timer weeks or aeons away is legal on every
backend, and the CLI refuses durations longer than a year."""

from __future__ import annotations

import signal
import socket
from typing import Any

import pytest

from faults.helpers import new_reactor
from serve_util import connect, recv_exactly, run_cli
from util import run_until_true

pytestmark = pytest.mark.timeout(60)

BACKENDS = ["select", "poll", "epoll", "selector", "asyncio"]


class Reader:
    """Reads one socket; stops the reactor after the first bytes."""

    def __init__(self, reactor: Any, sock: socket.socket) -> None:
        self.reactor = reactor
        self.sock = sock
        self.data = b""

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        self.data += self.sock.recv(100)
        self.reactor.stop()

    def connectionLost(self, reason: Any) -> None:
        pass

    def logPrefix(self) -> str:
        return "Reader"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("delay", [2_200_000.0, 1e300])
def test_a_far_timer_is_the_next_wait_on_every_backend(backend: str, delay: float) -> None:
    # poll() takes milliseconds in a C int and select() a C time value: without a cap on the
    # wait, the loop died with OverflowError as soon as this timer was the nearest one.
    reactor = new_reactor(backend)
    a, b = socket.socketpair()
    try:
        reader = Reader(reactor, a)
        far = reactor.callLater(delay, lambda: None)
        reactor.addReader(reader)
        b.send(b"x")  # wakes the loop from its (far) wait
        reactor.callWhenRunning(lambda: None)
        reactor.run(installSignalHandlers=False)
        assert reader.data == b"x"
        assert far.active()
        far.cancel()
        reactor.removeReader(reader)
    finally:
        a.close()
        b.close()
        reactor.close()


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_a_wait_capped_below_a_far_timer_still_fires_near_ones(backend: str) -> None:
    reactor = new_reactor(backend)
    try:
        fired: list[str] = []
        far = reactor.callLater(1e300, fired.append, "far")
        reactor.callLater(0.01, fired.append, "near")
        run_until_true(reactor, lambda: fired)
        assert fired == ["near"] and far.active()
        far.cancel()
    finally:
        reactor.close()


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_serve_with_month_long_timeouts_survives_clients_and_sigterm(serve: Any, backend: str) -> None:
    s = serve("--protocol", "echo", "--port", "0", "--reactor", backend,
              "--idle-timeout", "2200000", "--grace", "2200000")
    with connect(s.tcp_port()) as c:
        c.sendall(b"ping")
        assert recv_exactly(c, 4) == b"ping"
        s.signal(signal.SIGTERM)
        s.wait_stderr(r"waiting up to .* for 1 open connection")
        c.sendall(b"pong")  # still served while draining
        assert recv_exactly(c, 4) == b"pong"
    assert s.finish() == 0
    assert "OverflowError" not in s.stderr


def test_poetry_with_an_aeon_between_writes_does_not_crash_poll(serve: Any) -> None:
    s = serve("--protocol", "poetry", "--port", "0", "--reactor", "poll", "--option", "delay=1e300",
              "--option", "chunk=5")
    with connect(s.tcp_port()) as c:
        assert recv_exactly(c, 5)  # the first chunk, then the far timer is the next wait
        c.close()
        s.signal(signal.SIGTERM)
    assert s.finish() == 0
    assert "OverflowError" not in s.stderr


@pytest.mark.parametrize("flag", ["--idle-timeout", "--message-timeout", "--grace"])
def test_cli_refuses_durations_over_a_year(flag: str) -> None:
    result = run_cli("--protocol", "echo", "--port", "0", flag, "1e308")
    assert result.returncode == 2
    assert f"{flag}: expected seconds <= 31536000 (a year), got '1e308'" in result.stderr
    assert "Traceback" not in result.stderr
