"""A server-wide budget for unsent data (issue 17): clients that do not read cannot together
make the server hold more than ``--max-write-buffer-total``; the fattest go first."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from framework import policies
from framework.protocol import Factory, Protocol
from serve_util import connect, recv_exactly
from util import run_until_true

CHUNK = b"x" * (1 << 20)


class Flood(Protocol):
    """Writes ``factory.megabytes`` MiB at once, whatever the peer reads."""

    def connectionMade(self) -> None:
        for _ in range(self.factory.megabytes):
            self.transport.write(CHUNK)


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def _client(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # never reads: keeps data on our side
    s.connect(("127.0.0.1", port))
    return s


def test_non_readers_are_aborted_fattest_first_down_to_the_budget(reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    inner = Factory.forProtocol(Flood)
    inner.megabytes = 6  # type: ignore[attr-defined]
    budget = 10 << 20
    factory = policies.PolicyFactory(inner, reactor, max_write_buffer_total=budget)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    clients = [_client(port.getHost().port) for _ in range(4)]  # ~4 x 6 MiB offered
    try:
        with caplog.at_level(logging.WARNING, logger="framework.policies"):
            run_until_true(reactor, lambda: len(factory.connections) == 4)

            def within_budget() -> bool:
                held = sum(c.transport.get_write_buffer_size() for c in factory.connections.values())
                return held <= budget and len(factory.connections) < 4

            run_until_true(reactor, within_budget, timeout=20)
        assert 1 <= 4 - len(factory.connections) <= 3
        warnings = [r for r in caplog.records if "--max-write-buffer-total" in r.getMessage()]
        assert warnings and "do not read" in warnings[0].getMessage()
    finally:
        for c in clients:
            c.close()
        port.stopListening()
        run_until_true(reactor, lambda: not factory.connections, timeout=20)
        run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())
    assert reactor.getDelayedCalls() == []  # the budget check stops with the last connection


def test_the_budget_spares_clients_that_read(reactor: Any) -> None:
    factory = policies.PolicyFactory(Factory.forProtocol(Echo), reactor, max_write_buffer_total=1 << 20)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        sock = socket.create_connection(("127.0.0.1", port.getHost().port))
        sock.setblocking(False)
        done: list[bytes] = []
        payload = b"y" * (4 << 20)  # 4 MiB through a 1 MiB budget: fine, it is read as it comes
        sent = 0
        got = bytearray()

        def pump() -> bool:
            nonlocal sent
            try:
                if sent < len(payload):
                    sent += sock.send(payload[sent:sent + 65536])
            except BlockingIOError:
                pass
            try:
                while chunk := sock.recv(65536):
                    got.extend(chunk)
            except BlockingIOError:
                pass
            return len(got) == len(payload)

        run_until_true(reactor, pump, timeout=30)
        assert bytes(got) == payload and len(factory.connections) == 1
        sock.close()
        done.append(b"")
    finally:
        port.stopListening()
        run_until_true(reactor, lambda: not factory.connections, timeout=20)
        run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())


def test_reactor_serve_max_write_buffer_total_option(serve: Any) -> None:
    s = serve("--protocol", "echo", "--port", "0", "--max-write-buffer-total", "1048576")
    with connect(s.tcp_port()) as c:
        c.sendall(b"ping")
        assert recv_exactly(c, 4) == b"ping"


def test_a_bad_budget_is_a_usage_error() -> None:
    from serve_util import run_cli

    out = run_cli("--protocol", "echo", "--port", "0", "--max-write-buffer-total", "0")
    assert out.returncode == 2 and "--max-write-buffer-total" in out.stderr
    with pytest.raises(ValueError, match="max_write_buffer_total"):
        policies.PolicyFactory(Factory.forProtocol(Echo), object(), max_write_buffer_total=0)
