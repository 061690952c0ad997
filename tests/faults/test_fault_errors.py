"""Fault suite, errors in user code and in the descriptor registry: each callback raising (5),
a callFromThread flood (9), fd reuse within one loop turn (10), a socket closed behind the
reactor's back on every backend (11)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import pytest

from framework import error
from framework.defer import Deferred
from framework.policies import PolicyFactory
from framework.protocol import ClientFactory, Factory, Protocol
from util import run_until, run_until_true

pytestmark = pytest.mark.timeout(60)


class Fragile(Protocol):
    """Echoes; raises from the callback its connection's ``mode`` names."""

    mode = "ok"

    def connectionMade(self) -> None:
        if self.mode == "made":
            raise RuntimeError("boom in connectionMade")
        if self.mode == "timer":
            self.factory.reactor.callLater(0, self.explode)

    def explode(self) -> None:
        raise RuntimeError("boom in a timer")

    def dataReceived(self, data: bytes) -> None:
        if self.mode == "data":
            raise RuntimeError("boom in dataReceived")
        self.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        if self.mode == "lost":
            raise RuntimeError("boom in connectionLost")


class FragileFactory(Factory):
    protocol = Fragile

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.modes: list[str] = []

    def buildProtocol(self, addr: Any) -> Any:
        mode = self.modes.pop(0) if self.modes else "ok"
        if mode == "build":
            raise RuntimeError("boom in buildProtocol")
        p = Factory.buildProtocol(self, addr)
        p.mode = mode
        return p


class Probe(Protocol):
    """Sends ``payload``; closes once it is echoed; ``done`` fires with what arrived."""

    def __init__(self, payload: bytes, keep_open: bool = False) -> None:
        self.payload = payload
        self.keep_open = keep_open
        self.got = b""
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.got += data
        if not self.keep_open and len(self.got) >= len(self.payload):
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(self.got)


def _connect(reactor: Any, port: Any, probe: Probe) -> None:
    cf = ClientFactory()
    cf.buildProtocol = lambda addr: probe  # type: ignore[method-assign]
    reactor.connectTCP("127.0.0.1", port.getHost().port, cf)


@pytest.mark.timeout(30)
def test_5_each_raising_callback_closes_only_its_connection(best_reactor: Any, caplog: Any) -> None:
    reactor = best_reactor
    caplog.set_level(logging.ERROR)
    fragile = FragileFactory(reactor)
    policy = PolicyFactory(fragile, reactor, max_connections=100, max_connections_per_peer=50)
    port = reactor.listenTCP(0, policy, interface="127.0.0.1")
    witness = Probe(b"w", keep_open=True)
    _connect(reactor, port, witness)
    run_until_true(reactor, lambda: witness.got == b"w")
    for mode in ("build", "made", "data", "lost", "timer"):
        caplog.clear()
        fragile.modes.append(mode)
        probe = Probe(b"data" if mode == "data" else b"hello")
        _connect(reactor, port, probe)
        got = run_until(reactor, probe.done)
        if mode in ("lost", "timer"):
            assert got == b"hello"  # served normally; the error comes later
        run_until_true(reactor, lambda: len(policy.connections) == 1 and not fragile.modes)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        booms = [r for r in errors if r.exc_info and "boom" in str(r.exc_info[1])]
        assert len(booms) == 1, (mode, [r.getMessage() for r in errors])
        assert len(errors) == 1, (mode, [r.getMessage() for r in errors])
        # The witness connection was never disturbed.
        before = len(witness.got)
        witness.transport.write(b"x")
        run_until_true(reactor, lambda: len(witness.got) == before + 1)
    witness.transport.loseConnection()
    run_until(reactor, witness.done)
    run_until_true(reactor, lambda: not policy.connections)
    assert policy.per_peer == {}
    assert reactor.getReaders() == [port] and reactor.getWriters() == []
    run_until(reactor, port.stopListening())


@pytest.mark.timeout(60)
def test_9_call_from_thread_flood_runs_each_call_once_in_order_while_echoing(best_reactor: Any) -> None:
    reactor = best_reactor
    threads_n, calls_n = 4, 50_000
    seen: list[list[int]] = [[] for _ in range(threads_n)]
    port = reactor.listenTCP(0, Factory.forProtocol(Fragile), interface="127.0.0.1")

    class PingPong(Probe):
        rounds = 0

        def dataReceived(self, data: bytes) -> None:
            self.got += data
            if len(self.got) == 4:
                self.got = b""
                self.rounds += 1
                if self.rounds == 300:
                    self.transport.loseConnection()
                else:
                    self.transport.write(b"ping")

    pinger = PingPong(b"ping")
    _connect(reactor, port, pinger)

    def flood(index: int) -> None:
        record = seen[index].append
        for i in range(calls_n):
            reactor.callFromThread(record, i)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    try:
        run_until(reactor, pinger.done, timeout=30)
        run_until_true(reactor, lambda: sum(map(len, seen)) >= threads_n * calls_n, timeout=30)
    finally:
        for t in threads:
            t.join(10)
    assert pinger.rounds == 300
    for calls in seen:
        assert calls == list(range(calls_n))  # each exactly once, in order per thread
    run_until(reactor, port.stopListening())
    run_until_true(reactor, lambda: not reactor.getReaders())


class Reader:
    """A raw readiness handler over one end of a socketpair."""

    def __init__(self, sock: socket.socket, name: str, log: list[tuple[str, bytes]]) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.name = name
        self.log = log
        self.reads = 0
        self.lost: list[Any] = []
        self.on_read: Any = None
        sock.setblocking(False)

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        self.reads += 1
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        self.log.append((self.name, data))
        if self.on_read is not None:
            self.on_read(self)

    def connectionLost(self, reason: Any) -> None:
        self.lost.append(reason)

    def logPrefix(self) -> str:
        return self.name


def test_10_fd_reused_within_one_loop_turn_never_misdelivers(reactor: Any) -> None:
    log: list[tuple[str, bytes]] = []
    a_local, a_remote = socket.socketpair()
    b_local, b_remote = socket.socketpair()
    a, b = Reader(a_local, "A", log), Reader(b_local, "B", log)
    made: list[Any] = []
    others: list[socket.socket] = []

    def swap(first: Reader) -> None:
        # Whichever runs first closes the other one and reuses its fd number at once.
        if made:
            return
        victim = b if first is a else a
        reactor.removeReader(victim)
        old_fd = victim.fd
        victim.sock.close()
        c_local, c_remote = socket.socketpair()
        others.append(c_remote)
        assert c_local.fileno() == old_fd  # POSIX: the lowest free number
        c = Reader(c_local, "C", log)
        reactor.addReader(c)
        made.append((victim, c))

    a.on_read = b.on_read = swap
    reactor.addReader(a)
    reactor.addReader(b)
    a_remote.sendall(b"to-A")
    b_remote.sendall(b"to-B")  # both are ready in the same poll
    try:
        run_until_true(reactor, lambda: made)
        victim, c = made[0]
        first = a if victim is b else b
        others[0].sendall(b"to-C")
        run_until_true(reactor, lambda: ("C", b"to-C") in log)
        assert log == [(first.name, b"to-" + first.name.encode()), ("C", b"to-C")]
        assert victim.reads == 0
        # Registrations: exactly the open handlers plus the waker.
        assert sorted(h.name for h in reactor.getReaders()) == sorted([first.name, "C"])
        assert len(reactor._rfds) == 3
        reactor.removeReader(first)
        reactor.removeReader(c)
    finally:
        for s in (a_local, a_remote, b_local, b_remote, *others):
            s.close()
        for _v, c in made:
            c.sock.close()


def test_10_connection_churn_leaves_only_the_listener_registered(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Fragile), interface="127.0.0.1")
    probes = [Probe(b"m%03d" % i) for i in range(40)]
    for p in probes:
        _connect(reactor, port, p)
    for i, p in enumerate(probes):
        assert run_until(reactor, p.done) == b"m%03d" % i
    run_until_true(reactor, lambda: reactor.getReaders() == [port])
    assert reactor.getWriters() == [] and len(reactor._rfds) == 2  # listener + waker
    run_until(reactor, port.stopListening())


def test_11_socket_closed_behind_the_reactors_back_is_dropped_once(reactor: Any) -> None:
    local, remote = socket.socketpair()
    handler = Reader(local, "closed-behind", [])
    reactor.addReader(handler)
    remote.sendall(b"pending")  # level-triggered readiness a buggy loop would spin on
    fd = local.detach()
    os.close(fd)  # behind the reactor's back: fileno() still says fd
    polls = [0]
    real_poll = reactor._mux.poll

    def counting_poll(timeout: Any) -> Any:
        polls[0] += 1
        return real_poll(timeout)

    reactor._mux.poll = counting_poll
    try:
        run_until_true(reactor, lambda: handler.lost, timeout=5)
        for _ in range(20):
            reactor.iterate(0)
    finally:
        reactor._mux.poll = real_poll
        remote.close()
    assert len(handler.lost) == 1
    assert handler.lost[0].check(error.ConnectionFdescWentAway) or handler.lost[0].check(error.ConnectionLost)
    assert handler not in reactor.getReaders() and fd not in reactor._masks
    assert handler.reads <= 1
    # No busy loop: a few hundred turns at most while waiting (the checker runs every 2 ms).
    assert polls[0] < 5000, polls[0]
