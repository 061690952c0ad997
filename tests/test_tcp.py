"""TCP transports, ports and connectors against real sockets on 127.0.0.1 (and ::1), on every
reactor backend (the ``reactor`` fixture)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import struct
from typing import Any, Callable

import pytest

from framework import error, tcp
from framework.address import IPv4Address, IPv6Address
from framework.defer import Deferred
from framework.failure import Failure
from framework.interfaces import IHalfCloseableProtocol
from framework.protocol import ClientFactory, Factory, Protocol
from util import run_until, run_until_true

LOCAL = "127.0.0.1"


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _has_ipv6()


class Recorder(Protocol):
    """Records every event; ``lost`` fires with the connectionLost reason."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.chunks: list[bytes] = []
        self.received = 0
        self.made: Deferred[Any] = Deferred()
        self.lost: Deferred[Any] = Deferred()
        self.lostCount = 0

    def connectionMade(self) -> None:
        self.events.append("made")
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.events.append("data")
        self.chunks.append(data)
        self.received += len(data)

    def connectionLost(self, reason: Failure) -> None:
        self.events.append("lost")
        self.lostCount += 1
        if not self.lost.called:
            self.reason = reason
            self.lost.callback(None)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class Echo(Recorder):
    def dataReceived(self, data: bytes) -> None:
        Recorder.dataReceived(self, data)
        self.transport.write(data)


class OneFactory(ClientFactory):
    """A client factory that hands out a given protocol and records the connector events."""

    def __init__(self, proto: Any = None) -> None:
        self.proto = proto
        self.events: list[Any] = []
        self.failed: Deferred[Any] = Deferred()
        self.lostD: Deferred[Any] = Deferred()
        self.onFailed: Callable[[Any, Failure], None] | None = None
        self.onLost: Callable[[Any, Failure], None] | None = None
        self.started = self.stopped = 0

    def startFactory(self) -> None:
        self.started += 1

    def stopFactory(self) -> None:
        self.stopped += 1

    def buildProtocol(self, addr: Any) -> Any:
        self.events.append(("build", addr))
        p = self.proto if self.proto is not None else Recorder()
        p.factory = self
        return p

    def startedConnecting(self, connector: Any) -> None:
        self.events.append("started")

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.events.append(("failed", reason.type))
        if self.onFailed is not None:
            self.onFailed(connector, reason)
        if not self.failed.called:
            self.failReason = reason
            self.failed.callback(None)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.events.append(("lost", reason.type))
        if self.onLost is not None:
            self.onLost(connector, reason)
        if not self.lostD.called:
            self.lostReason = reason
            self.lostD.callback(None)


class ServerFactory(Factory):
    """Builds ``protocol`` and remembers every protocol it built."""

    def __init__(self, protocol: Any = Recorder) -> None:
        self.protocol = protocol
        self.built: list[Any] = []
        self.connected: Deferred[Any] = Deferred()

    def buildProtocol(self, addr: Any) -> Any:
        p = Factory.buildProtocol(self, addr)
        p.addr = addr
        self.built.append(p)
        if not self.connected.called:
            self.connected.callback(p)
        return p


def listen(reactor: Any, factory: Any, interface: str = LOCAL) -> Any:
    return reactor.listenTCP(0, factory, interface=interface)


def connect(reactor: Any, port: Any, proto: Any = None, host: str = LOCAL) -> tuple[Any, OneFactory]:
    f = OneFactory(proto if proto is not None else Recorder())
    c = reactor.connectTCP(host, port.getHost().port, f, timeout=10)
    return c, f


def wait_lost(reactor: Any, proto: Any, timeout: float = 10.0) -> Failure:
    """Run until ``proto.connectionLost`` ran; return its reason."""
    run_until(reactor, proto.lost, timeout=timeout)
    return proto.reason


def wait_failed(reactor: Any, factory: Any) -> Failure:
    run_until(reactor, factory.failed)
    return factory.failReason


def wait_client_lost(reactor: Any, factory: Any) -> Failure:
    run_until(reactor, factory.lostD)
    return factory.lostReason


def after_turns(reactor: Any, n: int = 3) -> Deferred[None]:
    """A Deferred that fires after ``n`` more turns of the loop (lets pending calls run)."""
    d: Deferred[None] = Deferred()

    def step(left: int) -> None:
        if left:
            reactor.callLater(0, step, left - 1)
        else:
            d.callback(None)

    reactor.callLater(0, step, n)
    return d


def pair(reactor: Any, server_protocol: Any = Recorder, client: Any = None) -> tuple[Any, Any, Any]:
    """Listen, connect, run until both sides are made; returns (port, server proto, client proto)."""
    sf = ServerFactory(server_protocol)
    port = listen(reactor, sf)
    cp = client if client is not None else Recorder()
    connect(reactor, port, cp)
    sp = run_until(reactor, sf.connected)
    run_until(reactor, cp.made)
    run_until_true(reactor, lambda: "made" in getattr(sp, "events", ["made"]))
    return port, sp, cp


# -- listening ---------------------------------------------------------------------------


def test_listen_port_zero_binds_synchronously_and_reports_the_real_port(reactor: Any) -> None:
    port = listen(reactor, ServerFactory())
    host = port.getHost()
    assert isinstance(host, IPv4Address)
    assert (host.type, host.host) == ("TCP", LOCAL)
    assert host.port > 0
    # Bound and listening before the reactor ever ran: a plain connect succeeds.
    with socket.create_connection((LOCAL, host.port), timeout=5):
        pass
    run_until(reactor, port.stopListening())


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback on this machine")
def test_ipv6_literal_listen_and_connect(reactor: Any) -> None:
    sf = ServerFactory(Echo)
    port = listen(reactor, sf, interface="::1")
    host = port.getHost()
    assert isinstance(host, IPv6Address) and host.host == "::1" and host.type == "TCP"
    cp = Recorder()
    c, f = connect(reactor, port, cp, host="::1")
    assert isinstance(c.getDestination(), IPv6Address)
    run_until(reactor, cp.made)
    peer = cp.transport.getPeer()
    assert isinstance(peer, IPv6Address) and peer.port == host.port
    cp.transport.write(b"over six")
    run_until_true(reactor, lambda: cp.data == b"over six")
    cp.transport.loseConnection()
    wait_lost(reactor, cp)
    run_until(reactor, sf.built[0].lost)
    run_until(reactor, port.stopListening())


def test_busy_port_raises_cannot_listen_naming_address_and_reason(reactor: Any) -> None:
    port = listen(reactor, ServerFactory())
    number = port.getHost().port
    with pytest.raises(error.CannotListenError) as info:
        reactor.listenTCP(number, ServerFactory(), interface=LOCAL)
    text = str(info.value)
    assert f"{LOCAL}:{number}" in text
    assert "in use" in text.lower()
    assert info.value.port == number and info.value.interface == LOCAL
    assert isinstance(info.value.socketError, OSError)
    assert info.value.socketError.errno == errno.EADDRINUSE
    run_until(reactor, port.stopListening())


def test_stop_listening_fires_after_close_and_factory_start_stop_bracket_ports(reactor: Any) -> None:
    sf = ServerFactory()
    calls: list[str] = []
    sf.startFactory = lambda: calls.append("start")  # type: ignore[method-assign]
    sf.stopFactory = lambda: calls.append("stop")  # type: ignore[method-assign]
    p1 = listen(reactor, sf)
    p2 = listen(reactor, sf)
    assert calls == ["start"]
    number = p1.getHost().port
    run_until(reactor, p1.stopListening())
    assert p1.getHost().port == number  # still known after stopping
    assert calls == ["start"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOCAL, number), timeout=5).close()
    d = p2.stopListening()
    run_until(reactor, d)
    assert calls == ["start", "stop"]
    # Stopping again is harmless and does not stop the factory twice.
    run_until(reactor, p2.stopListening())
    assert calls == ["start", "stop"]
    assert reactor.getReaders() == []


def test_factory_failing_to_start_leaks_no_socket(reactor: Any) -> None:
    class Broken(ServerFactory):
        def startFactory(self) -> None:
            raise OSError("cannot open the database")

    fds = _open_fds()
    with pytest.raises(OSError, match="database"):
        listen(reactor, Broken())
    assert reactor.getReaders() == []
    assert _open_fds() == fds


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def test_accepts_in_bounded_batches(reactor: Any) -> None:
    sf = ServerFactory()
    port = reactor.listenTCP(0, sf, backlog=tcp.ACCEPT_BATCH * 2, interface=LOCAL)
    number = port.getHost().port
    count = tcp.ACCEPT_BATCH + 6
    # Blocking connects complete once the kernel has queued each connection for accept.
    raw = [socket.create_connection((LOCAL, number), timeout=5) for _ in range(count)]
    try:
        port.doRead()
        assert len(sf.built) == tcp.ACCEPT_BATCH
        run_until_true(reactor, lambda: len(sf.built) == count)
    finally:
        for s in raw:
            s.close()
    run_until_true(reactor, lambda: all(p.lost.called for p in sf.built))
    run_until(reactor, port.stopListening())


def test_port_stop_reading_holds_newcomers_even_mid_batch(reactor: Any) -> None:
    holder: list[Any] = []

    class Capped(ServerFactory):
        def buildProtocol(self, addr: Any) -> Any:
            if not self.built:
                holder[0].stopReading()  # e.g. a connection cap reached
            return ServerFactory.buildProtocol(self, addr)

    sf = Capped()
    port = listen(reactor, sf)
    holder.append(port)
    raw = [socket.create_connection((LOCAL, port.getHost().port), timeout=5) for _ in range(3)]
    try:
        port.doRead()
        assert len(sf.built) == 1
        assert port not in reactor.getReaders()
        run_until(reactor, after_turns(reactor, 5))
        assert len(sf.built) == 1
        port.startReading()
        run_until_true(reactor, lambda: len(sf.built) == 3)
    finally:
        for s in raw:
            s.close()
    run_until_true(reactor, lambda: all(p.lost.called for p in sf.built))
    run_until(reactor, port.stopListening())


def test_out_of_descriptors_backs_off_and_logs_once(reactor: Any, caplog: Any,
                                                    monkeypatch: Any) -> None:
    monkeypatch.setattr(tcp, "ACCEPT_BACKOFF", 0.01)
    sf = ServerFactory()
    port = listen(reactor, sf)
    real_accept = port._accept
    failures = [0]

    def exhausted() -> Any:
        failures[0] += 1
        if failures[0] <= 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_accept()

    port._accept = exhausted
    caplog.set_level(logging.ERROR, logger="framework.tcp")
    raw = socket.create_connection((LOCAL, port.getHost().port), timeout=5)
    try:
        run_until_true(reactor, lambda: failures[0] >= 1)
        # It stopped watching the listener instead of spinning on it...
        assert port not in reactor.getReaders()
        # ...the waiting client was accepted with the reserve descriptor and closed at once...
        assert raw.recv(1) == b""
    finally:
        raw.close()
    # ...and after the back-off it accepts again.
    raw2 = socket.create_connection((LOCAL, port.getHost().port), timeout=5)
    try:
        run_until_true(reactor, lambda: len(sf.built) == 1)
    finally:
        raw2.close()
    # One failure, then the accept and the EAGAIN that ends the batch.
    assert failures[0] == 3
    messages = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(messages) == 1
    assert "Too many open files" in messages[0].getMessage()
    assert "closed 1 waiting connection" in messages[0].getMessage()
    run_until(reactor, sf.built[0].lost)
    run_until(reactor, port.stopListening())


# -- data transfer -----------------------------------------------------------------------


def test_twenty_clients_each_echo_one_mebibyte_byte_exact(reactor: Any) -> None:
    sf = ServerFactory(Echo)
    port = listen(reactor, sf)
    size = 1 << 20
    clients = []
    for i in range(20):
        payload = bytes([i]) * 1000 + bytes(range(256)) * ((size - 1000) // 256)
        payload += b"\xff" * (size - len(payload))

        class Sender(Recorder):
            def connectionMade(self, payload: bytes = payload) -> None:
                Recorder.connectionMade(self)
                self.payload = payload
                self.transport.write(payload)

            def dataReceived(self, data: bytes) -> None:
                Recorder.dataReceived(self, data)
                if self.received >= size:
                    self.transport.loseConnection()

        cp = Sender()
        connect(reactor, port, cp)
        clients.append(cp)
    run_until_true(reactor, lambda: all(c.lost.called for c in clients), timeout=60)
    for cp in clients:
        assert cp.received == size
        assert cp.data == cp.payload
        assert cp.reason.check(error.ConnectionDone)
    run_until_true(reactor, lambda: len(sf.built) == 20 and all(p.lost.called for p in sf.built))
    run_until(reactor, port.stopListening())


def test_eight_mebibytes_then_lose_connection_arrive_whole(reactor: Any) -> None:
    payload = bytes(range(251)) * ((8 << 20) // 251 + 1)

    class Blaster(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            self.transport.write(payload[: 1 << 20])
            self.transport.writeSequence([payload[1 << 20: 3 << 20], payload[3 << 20:]])
            self.transport.loseConnection()
            self.transport.write(b"")  # harmless

    port, sp, cp = pair(reactor, Blaster)
    reason = wait_lost(reactor, cp, timeout=60)
    assert reason.check(error.ConnectionDone)
    assert cp.received == len(payload)
    assert cp.data == payload
    assert wait_lost(reactor, sp).check(error.ConnectionDone)
    assert sp.transport.get_write_buffer_size() == 0
    run_until(reactor, port.stopListening())


def test_thousands_of_small_buffered_writes_arrive_in_order(reactor: Any) -> None:
    class Slow(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            self.transport.pauseProducing()

    port, sp, cp = pair(reactor, Slow)
    filler = b"f" * (8 << 20)  # fills the kernel buffers, so what follows is buffered
    cp.transport.write(filler)
    pieces = [b"%06d," % i for i in range(5000)]  # more chunks than one sendmsg takes
    for piece in pieces:
        cp.transport.write(piece)
    assert cp.transport.get_write_buffer_size() >= len(pieces) * 7
    sp.transport.resumeProducing()
    expected = filler + b"".join(pieces)
    run_until_true(reactor, lambda: sp.received == len(expected), timeout=60)
    assert sp.data == expected
    cp.transport.loseConnection()
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())


def test_data_sent_before_the_peer_hangs_up_is_delivered_first(reactor: Any) -> None:
    sf = ServerFactory()
    port = listen(reactor, sf)
    raw = socket.create_connection((LOCAL, port.getHost().port), timeout=5)
    blob = b"last words " * 10000
    raw.sendall(blob)
    raw.close()
    sp = run_until(reactor, sf.connected)
    reason = wait_lost(reactor, sp)
    assert sp.data == blob
    assert sp.events[0] == "made" and sp.events[-1] == "lost"
    assert reason.check(error.ConnectionDone)
    run_until(reactor, port.stopListening())


def test_write_rejects_str_and_drops_writes_after_close(reactor: Any) -> None:
    port, sp, cp = pair(reactor)
    with pytest.raises(TypeError, match="encode"):
        cp.transport.write("text")
    with pytest.raises(TypeError):
        cp.transport.writeSequence([b"ok", "text"])
    cp.transport.write(bytearray(b"byte"))
    cp.transport.write(memoryview(b"s!"))
    run_until_true(reactor, lambda: sp.data == b"bytes!")
    cp.transport.loseConnection()
    wait_lost(reactor, cp)
    cp.transport.write(b"too late")  # dropped, no error
    cp.transport.writeSequence([b"also", b"late"])
    assert cp.transport.get_write_buffer_size() == 0
    wait_lost(reactor, sp)
    assert sp.data == b"bytes!"
    run_until(reactor, port.stopListening())


def test_addresses_and_socket_options(reactor: Any) -> None:
    port, sp, cp = pair(reactor)
    number = port.getHost().port
    assert cp.transport.getPeer() == IPv4Address("TCP", LOCAL, number)
    assert sp.transport.getHost() == IPv4Address("TCP", LOCAL, number)
    assert sp.transport.getPeer() == cp.transport.getHost()
    assert sp.addr == sp.transport.getPeer()
    for t in (sp.transport, cp.transport):
        assert t.getTcpNoDelay() is True  # on by default
        t.setTcpNoDelay(False)
        assert t.getTcpNoDelay() is False
        assert t.getTcpKeepAlive() is False
        t.setTcpKeepAlive(True)
        assert t.getTcpKeepAlive() is True
        assert t.getHandle().fileno() == t.fileno()
    assert "Recorder" in repr(sp.transport)
    cp.transport.loseConnection()
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())


def test_protocol_can_be_switched_mid_stream(reactor: Any) -> None:
    second = Recorder()

    class Switcher(Recorder):
        def dataReceived(self, data: bytes) -> None:
            Recorder.dataReceived(self, data)
            second.makeConnection(self.transport)
            self.transport.protocol = second

    port, sp, cp = pair(reactor, Switcher)
    cp.transport.write(b"first")
    run_until_true(reactor, lambda: sp.data == b"first")
    cp.transport.write(b"second")
    run_until_true(reactor, lambda: second.data == b"second")
    cp.transport.loseConnection()
    wait_lost(reactor, second)
    assert sp.data == b"first" and sp.lostCount == 0
    run_until(reactor, port.stopListening())


# -- closing -----------------------------------------------------------------------------


class HalfCloser(Recorder, IHalfCloseableProtocol):
    def readConnectionLost(self) -> None:
        self.events.append("readLost")

    def writeConnectionLost(self) -> None:
        self.events.append("writeLost")


def test_half_close_client_to_server(reactor: Any) -> None:
    class Answerer(HalfCloser):
        def readConnectionLost(self) -> None:
            HalfCloser.readConnectionLost(self)
            # Still allowed to write after the peer's FIN.
            self.transport.write(b"got " + self.data)
            self.transport.loseConnection()

    client = HalfCloser()
    port, sp, cp = pair(reactor, Answerer, client)
    cp.transport.write(b"question")
    cp.transport.loseWriteConnection()
    cp.transport.write(b" more")  # before the FIN went out: still sent
    wait_lost(reactor, cp)
    assert "writeLost" in cp.events
    assert cp.data == b"got question more"
    assert sp.events == ["made", *["data"] * sp.events.count("data"), "readLost", "lost"]
    assert wait_lost(reactor, sp).check(error.ConnectionDone)
    assert cp.reason.check(error.ConnectionDone)
    cp.transport.write(b"dropped")
    run_until(reactor, port.stopListening())


def test_half_close_server_to_client(reactor: Any) -> None:
    class Greeter(HalfCloser):
        def connectionMade(self) -> None:
            HalfCloser.connectionMade(self)
            self.transport.write(b"hello")
            self.transport.loseWriteConnection()

        def dataReceived(self, data: bytes) -> None:
            HalfCloser.dataReceived(self, data)
            if self.data == b"reply":
                self.transport.loseConnection()

    class Replier(HalfCloser):
        def readConnectionLost(self) -> None:
            HalfCloser.readConnectionLost(self)
            self.transport.write(b"reply")
            # Both halves closed: the connection is done.
            self.transport.loseWriteConnection()

    client = Replier()
    port, sp, cp = pair(reactor, Greeter, client)
    wait_lost(reactor, cp)
    wait_lost(reactor, sp)
    assert cp.data == b"hello" and "readLost" in cp.events
    assert cp.reason.check(error.ConnectionDone)
    assert sp.data == b"reply" and "writeLost" in sp.events
    assert cp.lostCount == 1 and sp.lostCount == 1
    run_until(reactor, port.stopListening())


def test_both_half_close_hooks_run_when_each_side_closes_its_half(reactor: Any) -> None:
    """Request, FIN, reply, FIN: each side gets writeConnectionLost for its own FIN and
    readConnectionLost for the peer's, then connectionLost once (ported Twisted code finishes
    its work in readConnectionLost even after it has half-closed)."""

    class Replier(HalfCloser):
        def readConnectionLost(self) -> None:
            HalfCloser.readConnectionLost(self)
            self.transport.write(b"answer to " + self.data)
            self.transport.loseWriteConnection()

    client = HalfCloser()
    port, sp, cp = pair(reactor, Replier, client)
    cp.transport.write(b"request")
    cp.transport.loseWriteConnection()
    assert wait_lost(reactor, cp).check(error.ConnectionDone)
    assert wait_lost(reactor, sp).check(error.ConnectionDone)
    assert cp.data == b"answer to request"
    for p in (cp, sp):
        hooks = [e for e in p.events if e in ("readLost", "writeLost", "lost")]
        assert sorted(hooks[:2]) == ["readLost", "writeLost"] and hooks[2:] == ["lost"], p.events
        assert p.lostCount == 1
    assert [e for e in cp.events if e in ("readLost", "writeLost")] == ["writeLost", "readLost"]
    assert [e for e in sp.events if e in ("readLost", "writeLost")] == ["readLost", "writeLost"]
    run_until(reactor, port.stopListening())


def test_peer_eof_closes_a_protocol_that_is_not_half_closeable(reactor: Any) -> None:
    client = HalfCloser()
    port, sp, cp = pair(reactor, Recorder, client)
    cp.transport.write(b"bye")
    cp.transport.loseWriteConnection()
    reason = wait_lost(reactor, sp)
    assert reason.check(error.ConnectionDone)
    assert sp.data == b"bye"
    wait_lost(reactor, cp)
    run_until(reactor, port.stopListening())


def test_abort_drops_the_buffer_and_reports_connection_aborted(reactor: Any) -> None:
    class NonReader(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            self.transport.pauseProducing()

    port, sp, cp = pair(reactor, NonReader)
    cp.transport.write(b"x" * (16 << 20))
    assert cp.transport.get_write_buffer_size() > 0
    cp.transport.abortConnection()
    assert cp.transport.get_write_buffer_size() == 0
    reason = wait_lost(reactor, cp)
    assert reason.check(error.ConnectionAborted)
    assert reason.check(error.ConnectionLost)
    sp.transport.resumeProducing()
    peer = wait_lost(reactor, sp)
    # The peer sees a reset, not a clean end after part of the data.
    assert peer.check(error.ConnectionLost) and not peer.check(error.ConnectionDone), peer
    assert sp.received < 16 << 20
    run_until(reactor, after_turns(reactor))
    assert cp.lostCount == 1
    run_until(reactor, port.stopListening())


def test_peer_reset_gives_connection_lost(reactor: Any) -> None:
    sf = ServerFactory()
    port = listen(reactor, sf)
    raw = socket.create_connection((LOCAL, port.getHost().port), timeout=5)
    sp = run_until(reactor, sf.connected)
    run_until(reactor, sp.made)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()
    reason = wait_lost(reactor, sp)
    assert reason.check(error.ConnectionLost)
    assert not reason.check(error.ConnectionDone)
    run_until(reactor, port.stopListening())


@pytest.mark.parametrize("sequence", [
    ["lose", "abort"], ["abort", "lose"], ["lose", "lose"], ["abort", "abort"],
    ["loseWrite", "lose"], ["lose", "raise"], ["abort", "raise"], ["raise"],
    ["loseWrite", "abort", "lose"], ["stopProducing", "abort"],
])
def test_connection_lost_exactly_once_whatever_the_sequence(reactor: Any, sequence: list[str]) -> None:
    class Actor(Recorder):
        def dataReceived(self, data: bytes) -> None:
            Recorder.dataReceived(self, data)
            t = self.transport
            for action in sequence:
                if action == "lose":
                    t.loseConnection()
                elif action == "abort":
                    t.abortConnection()
                elif action == "loseWrite":
                    t.loseWriteConnection()
                elif action == "stopProducing":
                    t.stopProducing()
                elif action == "raise":
                    raise ValueError("boom")

    port, sp, cp = pair(reactor, Actor)
    cp.transport.write(b"go")
    reason = wait_lost(reactor, sp)
    wait_lost(reactor, cp)
    # A second close action right after the first must not deliver a second connectionLost.
    sp.transport.loseConnection()
    sp.transport.abortConnection()
    sp.transport.connectionLost(Failure(error.ConnectionLost()))
    run_until(reactor, after_turns(reactor))
    assert sp.lostCount == 1 and cp.lostCount == 1
    if sequence[0] == "abort":
        assert reason.check(error.ConnectionAborted)
    elif "raise" in sequence and "abort" not in sequence:
        assert reason.check(ValueError)
    assert sp.transport.fileno() == -1
    assert sp.transport not in reactor.getReaders() + reactor.getWriters()
    run_until(reactor, port.stopListening())


# -- protocol errors ---------------------------------------------------------------------


def test_exception_in_data_received_closes_only_that_connection(reactor: Any, caplog: Any) -> None:
    class Fussy(Echo):
        def dataReceived(self, data: bytes) -> None:
            if data.startswith(b"bad"):
                raise ValueError("I do not like this")
            Echo.dataReceived(self, data)

    caplog.set_level(logging.ERROR, logger="framework.tcp")
    sf = ServerFactory(Fussy)
    port = listen(reactor, sf)
    good, bad = Recorder(), Recorder()
    connect(reactor, port, good)
    connect(reactor, port, bad)
    run_until(reactor, good.made)
    run_until(reactor, bad.made)
    run_until_true(reactor, lambda: len(sf.built) == 2)
    bad.transport.write(b"bad data")
    wait_lost(reactor, bad)
    victim = next(p for p in sf.built if p.lost.called)
    reason = victim.reason
    assert reason.check(ValueError) and "I do not like this" in reason.getErrorMessage()
    records = [r for r in caplog.records if "dataReceived" in r.getMessage()]
    assert records, caplog.text
    peer = victim.transport.getPeer()
    assert f"{peer.host}:{peer.port}" in records[0].getMessage()
    assert records[0].exc_info is not None
    good.transport.write(b"still fine")
    run_until_true(reactor, lambda: good.data == b"still fine")
    good.transport.loseConnection()
    run_until_true(reactor, lambda: all(p.lost.called for p in sf.built))
    run_until(reactor, port.stopListening())


@pytest.mark.parametrize("failure", ["buildProtocol raises", "buildProtocol returns None",
                                     "connectionMade raises", "not a protocol"])
def test_failures_while_accepting_close_that_socket_and_keep_accepting(
        reactor: Any, caplog: Any, failure: str) -> None:
    caplog.set_level(logging.ERROR, logger="framework.tcp")

    class Grumpy(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            if self.factory.first:
                raise RuntimeError("not in the mood")

    class Picky(ServerFactory):
        first = True

        def buildProtocol(self, addr: Any) -> Any:
            if self.first and failure == "buildProtocol raises":
                raise RuntimeError("no protocol for you")
            if self.first and failure == "buildProtocol returns None":
                return None
            if self.first and failure == "not a protocol":
                return object()
            return ServerFactory.buildProtocol(self, addr)

    sf = Picky(Grumpy)
    port = listen(reactor, sf)
    cp1 = Recorder()
    connect(reactor, port, cp1)
    reason = wait_lost(reactor, cp1)  # the server closed it
    assert reason.check(error.ConnectionDone, error.ConnectionLost)
    if failure == "connectionMade raises":
        sp = sf.built[0]
        assert sp.lostCount == 1 and sp.reason.check(RuntimeError)
        assert any("connectionMade" in r.getMessage() for r in caplog.records)
    elif failure == "buildProtocol raises":
        assert any("buildProtocol" in r.getMessage() and r.exc_info for r in caplog.records)
    sf.first = False
    cp2 = Echo()
    connect(reactor, port, cp2)
    sp2 = run_until(reactor, sf.connected) if not sf.built else None
    run_until_true(reactor, lambda: any(not p.lost.called for p in sf.built))
    sp2 = next(p for p in sf.built if not p.lost.called)
    run_until(reactor, sp2.made)
    cp2.transport.loseConnection()
    wait_lost(reactor, sp2)
    run_until(reactor, port.stopListening())


# -- clients -----------------------------------------------------------------------------


def test_client_callbacks_in_order_and_client_connection_lost(reactor: Any) -> None:
    sf = ServerFactory()
    port = listen(reactor, sf)
    cp = Recorder()
    c, f = connect(reactor, port, cp)
    assert f.events == ["started"]  # synchronously, before any result
    assert f.started == 1
    assert c.getDestination() == IPv4Address("TCP", LOCAL, port.getHost().port)
    assert c.state == "connecting"
    run_until(reactor, cp.made)
    assert c.state == "connected"
    assert cp.factory is f and cp.transport is not None
    sp = run_until(reactor, sf.connected)
    sp.transport.loseConnection()
    reason = wait_client_lost(reactor, f)
    assert reason.check(error.ConnectionDone)
    assert f.events == ["started", ("build", cp.transport.getPeer()), ("lost", error.ConnectionDone)]
    assert f.stopped == 1
    assert c.state == "disconnected"
    run_until(reactor, port.stopListening())


def _refusing_socket() -> socket.socket:
    """A bound, not listening socket: connecting to its port is refused, and no other test
    can take the port meanwhile."""
    s = socket.socket()
    s.bind((LOCAL, 0))
    return s


def test_connection_refused_reaches_client_connection_failed(reactor: Any) -> None:
    with _refusing_socket() as s:
        f = OneFactory()
        c = reactor.connectTCP(LOCAL, s.getsockname()[1], f, timeout=10)
        reason = wait_failed(reactor, f)
    assert reason.check(error.ConnectionRefusedError)
    assert f.events == ["started", ("failed", error.ConnectionRefusedError)]
    assert (f.started, f.stopped) == (1, 1)
    assert c.state == "disconnected"
    with pytest.raises(error.NotConnectingError):
        c.stopConnecting()


def test_connect_timeout(reactor: Any) -> None:
    listener = socket.socket()
    listener.bind((LOCAL, 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=5)  # fills the backlog
    try:
        f = OneFactory()
        reactor.connectTCP(LOCAL, listener.getsockname()[1], f, timeout=0.2)
        reason = wait_failed(reactor, f)
    finally:
        filler.close()
        listener.close()
    assert reason.check(error.TimeoutError)
    assert f.events == ["started", ("failed", error.TimeoutError)]
    assert reactor.getWriters() == []


def _failing_resolver(threads: list[str]) -> Any:
    """A resolver that fails like the system one for an unknown name, without sending a DNS
    query anywhere (tests may only talk to 127.0.0.1 / ::1)."""
    def getaddrinfo(host: str, port: Any, *rest: Any) -> Any:
        threads.append(threading.current_thread().name)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return getaddrinfo


def test_dns_failure_is_reported_not_raised(reactor: Any) -> None:
    threads: list[str] = []
    reactor.set_name_resolver(_failing_resolver(threads))
    f = OneFactory()
    c = reactor.connectTCP("no-such-host.invalid", 80, f, timeout=10)
    assert f.events == ["started"]
    reason = wait_failed(reactor, f)
    assert threads and threads[0] != threading.current_thread().name
    assert reason.check(error.DNSLookupError)
    assert "no-such-host.invalid" in reason.getErrorMessage()
    assert c.getDestination() == IPv4Address("TCP", "no-such-host.invalid", 80)


def test_host_names_resolve_off_the_reactor_thread(reactor: Any) -> None:
    sf = ServerFactory()
    port = listen(reactor, sf)
    cp = Recorder()
    f = OneFactory(cp)
    # "localhost" may resolve to ::1 first: the other addresses are tried in turn.
    reactor.connectTCP("localhost", port.getHost().port, f, timeout=10)
    run_until(reactor, cp.made)
    assert cp.transport.getPeer().port == port.getHost().port
    cp.transport.loseConnection()
    wait_lost(reactor, cp)
    sp = run_until(reactor, sf.connected)
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())


def test_retry_from_client_connection_failed(reactor: Any) -> None:
    s = _refusing_socket()
    try:
        cp = Recorder()
        f = OneFactory(cp)

        def retry(connector: Any, reason: Failure) -> None:
            if len([e for e in f.events if e[0] == "failed"]) == 1:
                s.listen(1)  # now something accepts there
                connector.connect()

        f.onFailed = retry
        reactor.connectTCP(LOCAL, s.getsockname()[1], f, timeout=10)
        run_until(reactor, cp.made)
        assert [e if isinstance(e, str) else e[0] for e in f.events] == [
            "started", "failed", "started", "build"]
        assert f.stopped == 0  # the retry kept the factory started
        cp.transport.loseConnection()
        wait_lost(reactor, cp)
        assert f.stopped == 1
    finally:
        s.close()


def test_retry_from_client_connection_lost(reactor: Any) -> None:
    class Closer(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            self.transport.loseConnection()

    sf = ServerFactory(Closer)
    port = listen(reactor, sf)
    f = OneFactory()
    f.proto = None
    built: list[Any] = []
    orig = f.buildProtocol

    def build(addr: Any) -> Any:
        p = orig(addr)
        built.append(p)
        return p

    f.buildProtocol = build  # type: ignore[method-assign]
    f.onLost = lambda connector, reason: connector.connect() if len(built) < 2 else None
    reactor.connectTCP(LOCAL, port.getHost().port, f, timeout=10)
    run_until_true(reactor, lambda: len(built) == 2 and built[1].lost.called)
    assert [e[0] for e in f.events if not isinstance(e, str)] == ["build", "lost", "build", "lost"]
    assert (f.started, f.stopped) == (1, 1)
    run_until_true(reactor, lambda: all(p.lost.called for p in sf.built))
    run_until(reactor, port.stopListening())


def test_stop_connecting_and_disconnect(reactor: Any) -> None:
    listener = socket.socket()
    listener.bind((LOCAL, 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=5)
    try:
        f = OneFactory()
        c = reactor.connectTCP(LOCAL, listener.getsockname()[1], f, timeout=10)
        c.stopConnecting()
        reason = wait_failed(reactor, f)
        assert reason.check(error.UserError)
        f2 = OneFactory()
        c2 = reactor.connectTCP(LOCAL, listener.getsockname()[1], f2, timeout=10)
        c2.disconnect()
        assert wait_failed(reactor, f2).check(error.UserError)
        with pytest.raises(RuntimeError):
            c2.connect()
            c2.connect()
        c2.stopConnecting()
    finally:
        filler.close()
        listener.close()
    assert reactor.getWriters() == []


def test_connect_with_bind_address_and_buildprotocol_none(reactor: Any) -> None:
    sf = ServerFactory()
    port = listen(reactor, sf)
    cp = Recorder()
    f = OneFactory(cp)
    c = reactor.connectTCP(LOCAL, port.getHost().port, f, timeout=10, bindAddress=(LOCAL, 0))
    run_until(reactor, cp.made)
    assert cp.transport.getHost().host == LOCAL
    c.disconnect()
    wait_lost(reactor, cp)

    class Refuser(OneFactory):
        def buildProtocol(self, addr: Any) -> Any:
            return None

    f2 = Refuser()
    reactor.connectTCP(LOCAL, port.getHost().port, f2, timeout=10)
    reason = wait_failed(reactor, f2)
    assert reason.check(error.ConnectError) and "None" in reason.getErrorMessage()
    run_until_true(reactor, lambda: len(sf.built) == 2 and all(p.lost.called for p in sf.built))
    run_until(reactor, port.stopListening())


def test_exception_in_client_connection_made(reactor: Any, caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="framework.tcp")

    class Broken(Recorder):
        def connectionMade(self) -> None:
            Recorder.connectionMade(self)
            raise KeyError("oops")

    sf = ServerFactory()
    port = listen(reactor, sf)
    cp = Broken()
    c, f = connect(reactor, port, cp)
    reason = wait_client_lost(reactor, f)
    assert reason.check(KeyError)
    assert cp.lostCount == 1
    sp = run_until(reactor, sf.connected)
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())


def test_a_bad_port_number_reads_as_one_sentence(reactor: Any) -> None:
    with pytest.raises(error.CannotListenError) as info:
        reactor.listenTCP(70000, Factory(), interface="127.0.0.1")
    text = str(info.value)
    assert "70000" in text and text.endswith(".") and not text.endswith("..")


def test_a_noisy_factory_behind_a_wrapper_is_logged_under_its_own_name(reactor: Any, caplog: Any) -> None:
    from framework.policies import PolicyFactory

    class Loud(Factory):
        noisy = True

    caplog.set_level(logging.INFO, logger="framework.tcp")
    port = reactor.listenTCP(0, PolicyFactory(Loud()), interface="127.0.0.1")
    try:
        started = [r.getMessage() for r in caplog.records if "starting on" in r.getMessage()]
        assert started == [f"Loud starting on {port.getHost().port}"]
        assert port.logPrefix() == f"Loud (port {port.getHost().port})"
    finally:
        port.stopListening()


def test_a_factory_whose_log_prefix_fails_still_listens(reactor: Any) -> None:
    class Odd(Factory):
        noisy = True

        def logPrefix(self) -> str:
            raise RuntimeError("no prefix today")

    port = reactor.listenTCP(0, Odd(), interface="127.0.0.1")
    try:
        assert port.logPrefix() == f"Odd (port {port.getHost().port})"
        with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10):
            pass
    finally:
        port.stopListening()


@pytest.mark.parametrize("host, port, kwargs, exc, text", [
    ("127.0.0.1", 9, {"timeout": -1}, ValueError, "timeout must be a finite number of seconds >= 0"),
    ("127.0.0.1", 9, {"timeout": float("inf")}, ValueError, "timeout must be a finite number"),
    ("127.0.0.1", 9, {"timeout": "x"}, TypeError, "timeout must be a number of seconds or None"),
    ("127.0.0.1", 9.5, {}, TypeError, "port must be an integer"),
    (None, 9, {}, TypeError, "host must be a host name or IP address"),
    ("", 9, {}, TypeError, "host must be"),
    ("127.0.0.1", 70000, {}, ValueError, "port must be an integer 1-65535"),
    ("127.0.0.1", 0, {}, ValueError, "port must be"),
    ("127.0.0.1", 9, {"bindAddress": "127.0.0.1"}, TypeError, "bindAddress must be a (host, port) tuple"),
    ("127.0.0.1", 9, {"bindAddress": ("127.0.0.1", 70000)}, ValueError, "port must be an integer 0-65535"),
])
def test_connect_tcp_refuses_bad_arguments_before_starting_the_factory(
        reactor: Any, host: Any, port: Any, kwargs: dict[str, Any], exc: type, text: str) -> None:
    class Watched(ClientFactory):
        started = 0

        def startFactory(self) -> None:
            self.started += 1

    f = Watched()
    with pytest.raises(exc) as info:
        reactor.connectTCP(host, port, f, **kwargs)
    assert text in str(info.value)
    assert f.started == 0 and not f.numPorts
    assert reactor.getWriters() == []


def test_connect_tcp_takes_what_twisted_and_socket_take(reactor: Any) -> None:
    """An IntEnum port, a float subclass timeout and an IPv6 4-tuple bindAddress all connect."""
    import enum
    from fractions import Fraction

    server = ServerFactory(Recorder)
    port = listen(reactor, server)
    Port = enum.IntEnum("Port", {"ECHO": port.getHost().port})
    f = OneFactory(Recorder())
    reactor.connectTCP(LOCAL, Port.ECHO, f, timeout=Fraction(10), bindAddress=(LOCAL, 0))
    sp = run_until(reactor, server.connected)
    run_until(reactor, f.proto.made)
    f.proto.transport.loseConnection()
    wait_lost(reactor, f.proto)
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())
    if HAS_IPV6:
        server6 = ServerFactory(Recorder)
        port6 = listen(reactor, server6, interface="::1")
        f6 = OneFactory(Recorder())
        reactor.connectTCP("::1", port6.getHost().port, f6, timeout=10.0, bindAddress=("::1", 0, 0, 0))
        sp6 = run_until(reactor, server6.connected)
        run_until(reactor, f6.proto.made)
        assert f6.proto.transport.getPeer().port == port6.getHost().port
        f6.proto.transport.loseConnection()
        wait_lost(reactor, f6.proto)
        wait_lost(reactor, sp6)
        run_until(reactor, port6.stopListening())


def test_abort_inside_a_half_close_hook_stays_an_abort(reactor: Any) -> None:
    class Server(HalfCloser):
        def connectionMade(self) -> None:
            HalfCloser.connectionMade(self)
            self.transport.loseWriteConnection()  # our half first

        def readConnectionLost(self) -> None:  # then the peer's FIN: both halves are closed
            HalfCloser.readConnectionLost(self)
            self.transport.abortConnection()

    class Client(HalfCloser):
        def readConnectionLost(self) -> None:
            HalfCloser.readConnectionLost(self)
            self.transport.loseWriteConnection()

    port, sp, cp = pair(reactor, Server, Client())
    reason = wait_lost(reactor, sp)
    assert reason.check(error.ConnectionAborted), reason
    assert [e for e in sp.events if e in ("readLost", "writeLost")] == ["writeLost", "readLost"]
    wait_lost(reactor, cp)
    run_until(reactor, port.stopListening())


def test_get_host_and_peer_still_answer_in_connection_lost(reactor) -> None:
    from framework import defer
    from framework.protocol import ClientCreator, Factory, Protocol
    from util import run_until

    seen: defer.Deferred[tuple] = defer.Deferred()

    class Reporter(Protocol):
        def connectionLost(self, reason=None) -> None:
            seen.callback((self.transport.getHost(), self.transport.getPeer()))

    port = reactor.listenTCP(0, Factory.forProtocol(Reporter), interface="127.0.0.1")
    client = run_until(reactor, ClientCreator(reactor, Protocol).connectTCP("127.0.0.1", port.getHost().port))
    client.transport.loseConnection()
    host, peer = run_until(reactor, seen)
    assert (host.host, host.port) == ("127.0.0.1", port.getHost().port)
    assert peer.port == client.transport.getHost().port
    run_until(reactor, port.stopListening())
