"""Fault suite, policies: slowloris and the message deadline (6), idle timeouts (7), the
connection limits, and the policy objects themselves over a deterministic clock."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from framework import error
from framework.address import IPv4Address
from framework.basic import Int32StringReceiver, LineReceiver
from framework.policies import PolicyFactory, TimeoutMixin, supports_message_timeout
from framework.protocol import ClientFactory, Factory, Protocol
from framework.task import Clock
from framework.testing import StringTransport
from util import run_until, run_until_true

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


class LineEcho(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line)


class Watcher:
    """Watches a raw client socket from the reactor: notes EOF/reset, counts bytes read."""

    def __init__(self, reactor: Any, sock: socket.socket) -> None:
        self.reactor = reactor
        self.sock = sock
        self.fd = sock.fileno()
        self.closed = False
        self.received = 0
        sock.setblocking(False)
        reactor.addReader(self)

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.received += len(data)
            return
        self.closed = True
        self.reactor.removeReader(self)

    def connectionLost(self, reason: Any) -> None:
        self.closed = True


class GoodClient(LineReceiver):
    """Sends a line, waits for its echo, sends the next (paced by the reactor's timer)."""

    delimiter = b"\n"

    def __init__(self) -> None:
        self.rounds = 0
        self.lost = False

    def connectionMade(self) -> None:
        self.sendLine(b"line 0")

    def lineReceived(self, line: bytes) -> None:
        assert line == b"line %d" % self.rounds
        self.rounds += 1
        self.transport.reactor.callLater(0.05, self.next)

    def next(self) -> None:
        if self.transport.connected:
            self.sendLine(b"line %d" % self.rounds)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


@pytest.mark.timeout(30)
def test_6_slowloris_clients_are_closed_at_the_message_deadline(best_reactor: Any, caplog: Any) -> None:
    reactor = best_reactor
    caplog.set_level(logging.INFO, logger="framework.policies")
    policy = PolicyFactory(Factory.forProtocol(LineEcho), reactor, message_timeout=1.0)
    port = reactor.listenTCP(0, policy, backlog=256, interface="127.0.0.1")
    good = GoodClient()
    cf = ClientFactory()
    cf.buildProtocol = lambda addr: good  # type: ignore[method-assign]
    reactor.connectTCP("127.0.0.1", port.getHost().port, cf)
    slow = [socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10) for _ in range(200)]
    watchers = [Watcher(reactor, s) for s in slow]
    drips = [0]

    def drip() -> None:
        # One byte each, four times a second: each byte arrives well within the deadline,
        # but the line never completes.
        for w in watchers:
            if not w.closed:
                try:
                    w.sock.send(b"a")
                except OSError:
                    pass
        drips[0] += 1
        if not all(w.closed for w in watchers):
            timer[0] = reactor.callLater(0.25, drip)

    timer = [reactor.callLater(0, drip)]
    try:
        run_until_true(reactor, lambda: all(w.closed for w in watchers), timeout=10)
        assert drips[0] >= 4  # bytes kept arriving; the deadline did not move
        rounds = good.rounds
        run_until_true(reactor, lambda: good.rounds >= rounds + 3)  # still served
        assert not good.lost and len(policy.connections) == 1
        expired = [r for r in caplog.records if "message incomplete" in r.getMessage()]
        assert len(expired) == 200
    finally:
        if timer[0].active():
            timer[0].cancel()
        for s in slow:
            s.close()
    good.transport.loseConnection()
    run_until_true(reactor, lambda: not policy.connections)
    run_until(reactor, port.stopListening())


class Bulk(Protocol):
    """Sends 8 MiB (below the cap) as soon as it connects."""

    def connectionMade(self) -> None:
        self.factory.instances.append(self)
        self.reason: Any = None
        self.transport.write(b"b" * (8 * MiB))

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


@pytest.mark.timeout(30)
def test_7_idle_timeout_closes_an_idle_client_and_aborts_a_non_reader(best_reactor: Any, caplog: Any) -> None:
    reactor = best_reactor
    caplog.set_level(logging.INFO, logger="framework.policies")
    echo = PolicyFactory(Factory.forProtocol(LineEcho), reactor, idle_timeout=0.3)
    echo_port = reactor.listenTCP(0, echo, interface="127.0.0.1")
    bulk_factory = Factory.forProtocol(Bulk)
    bulk_factory.instances = []
    bulk = PolicyFactory(bulk_factory, reactor, idle_timeout=0.3)
    bulk_port = reactor.listenTCP(0, bulk, interface="127.0.0.1")

    idle = socket.create_connection(("127.0.0.1", echo_port.getHost().port), timeout=10)
    idle.sendall(b"hello\n")
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", bulk_port.getHost().port))  # never reads
    w_idle = Watcher(reactor, idle)
    try:
        run_until_true(reactor, lambda: w_idle.closed and bulk_factory.instances
                       and bulk_factory.instances[0].reason is not None, timeout=10)
        assert w_idle.received == len(b"hello\n")
        sender = bulk_factory.instances[0]
        assert sender.reason.check(error.ConnectionAborted)  # not left waiting to flush
        assert sender.transport.socket.fileno() == -1  # closed: no CLOSE_WAIT, no leak
        messages = [r.getMessage() for r in caplog.records]
        assert sum("idle for" in m for m in messages) == 2
        assert sum("aborting" in m for m in messages) == 1
        assert not echo.connections and not bulk.connections
    finally:
        idle.close()
        reader.close()
    run_until(reactor, echo_port.stopListening())
    run_until(reactor, bulk_port.stopListening())


@pytest.mark.timeout(30)
def test_per_peer_limit_refuses_the_extra_connection(best_reactor: Any, caplog: Any) -> None:
    reactor = best_reactor
    caplog.set_level(logging.WARNING, logger="framework.policies")
    policy = PolicyFactory(Factory.forProtocol(LineEcho), reactor, max_connections_per_peer=2)
    port = reactor.listenTCP(0, policy, interface="127.0.0.1")
    clients = [socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10) for _ in range(3)]
    watchers = [Watcher(reactor, c) for c in clients]
    try:
        for c in clients:
            c.send(b"x\n")
        run_until_true(reactor, lambda: watchers[2].closed and watchers[0].received == 2
                       and watchers[1].received == 2)
        assert not watchers[0].closed and not watchers[1].closed
        assert policy.per_peer == {"127.0.0.1": 2}
        assert any("refusing" in r.getMessage() for r in caplog.records)
    finally:
        for w in watchers:
            if not w.closed:
                reactor.removeReader(w)
        for c in clients:
            c.close()
    run_until_true(reactor, lambda: not policy.connections)
    assert policy.per_peer == {}
    run_until(reactor, port.stopListening())


@pytest.mark.timeout(30)
def test_max_connections_holds_newcomers_in_the_backlog(best_reactor: Any) -> None:
    reactor = best_reactor
    policy = PolicyFactory(Factory.forProtocol(LineEcho), reactor, max_connections=2)
    port = reactor.listenTCP(0, policy, interface="127.0.0.1")
    first = [socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10) for _ in range(2)]
    watchers = [Watcher(reactor, c) for c in first]
    for c in first:
        c.send(b"x\n")
    run_until_true(reactor, lambda: all(w.received == 2 for w in watchers))
    assert port not in reactor.getReaders()  # accepting paused at the limit
    late = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10)  # kernel backlog
    late.send(b"late\n")
    w_late = Watcher(reactor, late)
    try:
        reactor.iterate(0.05)
        assert w_late.received == 0 and len(policy.connections) == 2
        reactor.removeReader(watchers[0])
        first[0].close()
        run_until_true(reactor, lambda: w_late.received == 5)  # a slot freed: accepted
        assert port in reactor.getReaders() or len(policy.connections) == 2
    finally:
        for w in (watchers[1], w_late):
            if not w.closed:
                reactor.removeReader(w)
        for c in (*first, late):
            c.close()
    run_until_true(reactor, lambda: not policy.connections)
    run_until(reactor, port.stopListening())


# -- the policy objects over a deterministic clock ------------------------------------------


def _serve(policy: PolicyFactory) -> tuple[Any, StringTransport]:
    protocol = policy.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_message_deadline_is_not_reset_by_bytes_but_by_completed_messages() -> None:
    clock = Clock()
    policy = PolicyFactory(Factory.forProtocol(LineEcho), clock, message_timeout=1.0)
    p, t = _serve(policy)
    p.dataReceived(b"ab")
    clock.advance(0.6)
    p.dataReceived(b"c")  # more bytes of the same line: the deadline stays
    clock.advance(0.5)
    assert t.disconnecting
    # A completed line starts a new deadline for the next one.
    p2, t2 = _serve(policy)
    p2.dataReceived(b"ab")
    clock.advance(0.6)
    p2.dataReceived(b"c\nd")
    clock.advance(0.6)
    assert not t2.disconnecting and t2.value() == b"abc\n"
    clock.advance(0.5)
    assert t2.disconnecting
    # Between messages there is no deadline at all.
    p3, t3 = _serve(policy)
    p3.dataReceived(b"whole\n")
    clock.advance(100)
    assert not t3.disconnecting


def test_timeouts_close_then_abort_a_peer_that_does_not_read() -> None:
    clock = Clock()
    policy = PolicyFactory(Factory.forProtocol(LineEcho), clock, idle_timeout=5.0)
    p, t = _serve(policy)
    clock.advance(4)
    p.dataReceived(b"x\n")  # traffic resets the idle timer
    clock.advance(4)
    assert not t.disconnecting
    clock.advance(1.1)
    assert t.disconnecting and not getattr(t, "aborted", False)
    clock.advance(5)
    assert t.aborted  # the close could not complete: aborted


def test_timeout_mixin_counts_from_the_last_reset() -> None:
    clock = Clock()

    class Timed(TimeoutMixin, Protocol):
        def connectionMade(self) -> None:
            self.setTimeout(5)

        def dataReceived(self, data: bytes) -> None:
            self.resetTimeout()

        def callLater(self, period: float, func: Any) -> Any:
            return clock.callLater(period, func)

    p = Timed()
    t = StringTransport()
    p.makeConnection(t)
    clock.advance(4)
    p.dataReceived(b"x")
    clock.advance(4)
    assert not t.disconnecting
    clock.advance(1.5)
    assert t.disconnecting
    clock.advance(5)
    assert t.aborted
    assert p.setTimeout(None) == 5 and not clock.getDelayedCalls()


def test_policy_arguments_are_validated_and_support_is_reported(caplog: Any) -> None:
    clock = Clock()
    for kwargs in ({"idle_timeout": 0}, {"message_timeout": -1}, {"max_connections": 0},
                   {"max_connections_per_peer": 1.5}, {"max_write_buffer": 0}):
        with pytest.raises(ValueError):
            PolicyFactory(Factory.forProtocol(LineEcho), clock, **kwargs)
    assert supports_message_timeout(Factory.forProtocol(LineEcho))
    assert supports_message_timeout(Factory.forProtocol(Int32StringReceiver))
    assert not supports_message_timeout(Factory.forProtocol(Protocol))
    caplog.set_level(logging.WARNING, logger="framework.policies")
    policy = PolicyFactory(Factory.forProtocol(Protocol), clock, message_timeout=1.0)
    assert policy.message_timeout is None
    assert any("pending_message_bytes" in r.getMessage() for r in caplog.records)


def test_an_over_long_chat_line_stays_unfinished_until_its_newline() -> None:
    # A dripper once dodged --message-timeout: after an over-long line was dropped the pending
    # count read 0, and the deadline was cancelled as if a message had completed.
    from reactor_framework_plugins.protocols.chat import ChatFactory

    clock = Clock()
    policy = PolicyFactory(ChatFactory(max_line=1024, reactor=clock), clock, message_timeout=5.0)
    p, t = _serve(policy)
    for _ in range(3):
        p.dataReceived(b"x" * 1100)  # no newline, ever
        clock.advance(1.9)
    assert t.disconnecting  # 5.7 s after the line began
    assert b"line too long" in t.value()
    # The newline ends the refused line: no deadline is left running after it.
    p2, t2 = _serve(policy)
    p2.dataReceived(b"y" * 1100)
    clock.advance(4)
    p2.dataReceived(b"yy\r\n")
    clock.advance(100)
    assert not t2.disconnecting


@pytest.mark.parametrize("backend", ["epoll", "poll", "select"])
def test_reactor_serve_closes_a_chat_dripper_of_over_long_lines(serve: Any, backend: str) -> None:
    s = serve("--protocol", "chat", "--port", "0", "--reactor", backend, "--message-timeout", "1")
    with socket.create_connection(("127.0.0.1", s.tcp_port()), timeout=15) as c:
        c.settimeout(0.3)
        closed = False
        for _ in range(20):  # bounded: 20 drips of 1,100 bytes, at most 0.3 s apart
            try:
                c.sendall(b"x" * 1100)
                while c.recv(65536):
                    pass
                closed = True
            except socket.timeout:
                continue
            except OSError:
                closed = True
            if closed:
                break
    assert closed
    s.wait_stderr(r"message incomplete after 1\.0 s")


class RecordingPort:
    """A listening port that records pause/resume calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def stopReading(self) -> None:
        self.calls.append("stop")

    def startReading(self) -> None:
        self.calls.append("start")


def test_a_removed_port_is_never_resumed_nor_added_back() -> None:
    # reactor-serve's shutdown removes its stopped ports; the limit must not resume them when a
    # connection then closes (it used to read a private flag set on the port for this).
    clock = Clock()
    policy = PolicyFactory(Factory.forProtocol(LineEcho), clock, max_connections=1)
    kept, removed = RecordingPort(), RecordingPort()
    policy.add_port(kept)
    policy.add_port(removed)
    p, t = _serve(policy)  # the limit is reached: both ports pause
    assert kept.calls == removed.calls == ["stop"]
    policy.remove_port(removed)
    policy.add_port(removed)  # a late connection from that port does not bring it back
    p.connectionLost(None)
    assert kept.calls == ["stop", "start"]
    assert removed.calls == ["stop"]
