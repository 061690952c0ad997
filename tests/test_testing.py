"""framework.testing: StringTransport, MemoryReactor, Clock and the pytest plugin."""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from framework import error, protocol, task, testing
from framework.address import IPv4Address, IPv6Address, UNIXAddress
from framework.failure import Failure
from framework.testing import MemoryReactor, StringTransport, StringTransportWithDisconnection


class Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)
        if data == b"quit":
            self.transport.loseConnection()


# --- StringTransport --------------------------------------------------------------------


def test_string_transport_records_writes_and_clear() -> None:
    t = StringTransport()
    p = Echo()
    p.makeConnection(t)
    p.dataReceived(b"hello ")
    t.writeSequence([b"wor", b"ld"])
    assert t.value() == b"hello world"
    t.clear()
    assert t.value() == b""
    p.dataReceived(b"quit")
    assert t.value() == b"quit"
    assert t.disconnecting


def test_string_transport_rejects_text() -> None:
    t = StringTransport()
    with pytest.raises(TypeError, match="bytes"):
        t.write("text")  # type: ignore[arg-type]
    assert t.value() == b""


def test_string_transport_abort_and_half_close() -> None:
    t = StringTransport()
    t.loseWriteConnection()
    assert t.writeDisconnected and not t.disconnecting
    t.abortConnection()
    assert t.aborted and t.disconnecting


def test_string_transport_addresses() -> None:
    t = StringTransport()
    peer = t.getPeer()
    assert isinstance(peer, IPv4Address) and peer.type == "TCP"
    assert isinstance(t.getHost(), IPv4Address)
    host = IPv6Address("TCP", "::1", 1)
    unix = UNIXAddress("/tmp/s")
    t = StringTransport(hostAddress=host, peerAddress=unix)
    assert t.getHost() is host and t.getPeer() is unix


def test_string_transport_tcp_options() -> None:
    t = StringTransport()
    t.setTcpNoDelay(True)
    t.setTcpKeepAlive(True)
    assert t.getTcpNoDelay() and t.getTcpKeepAlive()


def test_string_transport_producer_registration() -> None:
    t = StringTransport()
    producer = object()
    t.registerProducer(producer, True)
    assert t.producer is producer and t.streaming is True
    with pytest.raises(RuntimeError, match="already registered"):
        t.registerProducer(object(), False)
    t.unregisterProducer()
    assert t.producer is None and t.streaming is None
    with pytest.raises(RuntimeError, match="no producer"):
        t.unregisterProducer()


def test_string_transport_producer_state() -> None:
    t = StringTransport()
    assert t.producerState == "producing"
    t.pauseProducing()
    assert t.producerState == "paused"
    t.resumeProducing()
    assert t.producerState == "producing"
    t.stopProducing()
    assert t.producerState == "stopped"
    with pytest.raises(RuntimeError, match="stopped"):
        t.resumeProducing()
    t2 = StringTransport()
    t2.loseConnection()
    with pytest.raises(RuntimeError, match="loseConnection"):
        t2.pauseProducing()


def test_string_transport_with_disconnection_calls_connection_lost_once() -> None:
    reasons: list[Failure] = []

    class P(protocol.Protocol):
        def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
            reasons.append(reason)

    t = StringTransportWithDisconnection()
    p = P()
    t.protocol = p
    p.makeConnection(t)
    t.loseConnection()
    t.loseConnection()
    t.abortConnection()
    assert len(reasons) == 1 and reasons[0].check(error.ConnectionDone)
    assert t.disconnecting and not t.connected


def test_string_transport_with_disconnection_abort_reason() -> None:
    reasons: list[Failure] = []

    class P(protocol.Protocol):
        def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
            reasons.append(reason)

    t = StringTransportWithDisconnection()
    t.protocol = P()
    t.abortConnection()
    assert reasons[0].check(error.ConnectionAborted)


def test_string_transport_with_disconnection_needs_protocol() -> None:
    with pytest.raises(RuntimeError, match="protocol is not set"):
        StringTransportWithDisconnection().loseConnection()


# --- MemoryReactor ----------------------------------------------------------------------


def test_memory_reactor_records_tcp_listen_and_connect() -> None:
    r = MemoryReactor()
    f = protocol.Factory.forProtocol(Echo)
    port = r.listenTCP(0, f, backlog=7, interface="127.0.0.1")
    assert r.tcpServers == [(0, f, 7, "127.0.0.1")]
    assert port.getHost() == IPv4Address("TCP", "127.0.0.1", 0)
    assert r.listenTCP(1, f, interface="::1").getHost() == IPv6Address("TCP", "::1", 1)
    assert r.listenTCP(2, f).getHost() == IPv4Address("TCP", "0.0.0.0", 2)
    d = port.stopListening()
    assert d.called and not port.listening

    started: list[Any] = []

    class CF(protocol.ClientFactory):
        def startedConnecting(self, connector: Any) -> None:
            started.append(connector)

    cf = CF()
    connector = r.connectTCP("127.0.0.1", 80, cf, timeout=5, bindAddress=("127.0.0.1", 0))
    assert r.tcpClients == [("127.0.0.1", 80, cf, 5, ("127.0.0.1", 0))]
    assert started == [connector] and r.connectors == [connector]
    assert connector.getDestination() == IPv4Address("TCP", "127.0.0.1", 80)
    connector.stopConnecting()
    assert connector.stoppedConnecting
    with pytest.raises(error.NotConnectingError):
        connector.stopConnecting()
    connector.connect()
    assert connector.connectCalls == 1 and started == [connector, connector]
    connector.disconnect()
    assert connector.disconnected


def test_memory_reactor_records_unix_and_udp() -> None:
    r = MemoryReactor()
    f = protocol.ClientFactory.forProtocol(Echo)
    port = r.listenUNIX("/tmp/x.sock", f, backlog=3, mode=0o600, wantPID=True)
    assert r.unixServers == [("/tmp/x.sock", f, 3, 0o600, True)]
    assert port.getHost() == UNIXAddress("/tmp/x.sock")
    c = r.connectUNIX("/tmp/x.sock", f, timeout=2, checkPID=True)
    assert r.unixClients == [("/tmp/x.sock", f, 2, True)]
    assert c.getDestination() == UNIXAddress("/tmp/x.sock")
    dp = protocol.DatagramProtocol()
    udp = r.listenUDP(0, dp, interface="127.0.0.1", maxPacketSize=512)
    assert r.udpServers == [(0, dp, "127.0.0.1", 512)]
    assert udp.getHost() == IPv4Address("UDP", "127.0.0.1", 0)


def test_memory_reactor_fail_listen() -> None:
    r = MemoryReactor()
    r.failListen.add(8080)
    with pytest.raises(error.CannotListenError, match="8080"):
        r.listenTCP(8080, protocol.Factory())


@pytest.mark.parametrize("path", ["/run/app.sock", b"\0abstract"])
def test_memory_reactor_fail_listen_unix_reads_like_the_real_error(path: str | bytes) -> None:
    r = MemoryReactor()
    r.failListen.add(path)
    with pytest.raises(error.CannotListenError) as info:
        r.listenUNIX(path, protocol.Factory())
    shown = path.decode() if isinstance(path, bytes) else path
    assert str(info.value).startswith(f"Couldn't listen on {shown!r}: ")
    assert info.value.port == path and info.value.interface == ""
    assert r.unixServers[0][0] == path


# A descriptor number nothing has open: MemoryReactor must never touch the descriptor.
_NOT_OPEN_FD = 1_000_000


def test_memory_reactor_records_adopt_stream_port() -> None:
    r = MemoryReactor()
    f = protocol.Factory.forProtocol(Echo)
    tcp4 = r.adoptStreamPort(_NOT_OPEN_FD, socket.AF_INET, f)
    tcp6 = r.adoptStreamPort(_NOT_OPEN_FD + 1, socket.AF_INET6, f)
    unix = r.adoptStreamPort(_NOT_OPEN_FD + 2, socket.AF_UNIX, f)
    assert r.adoptedPorts == [
        (_NOT_OPEN_FD, socket.AF_INET, f),
        (_NOT_OPEN_FD + 1, socket.AF_INET6, f),
        (_NOT_OPEN_FD + 2, socket.AF_UNIX, f),
    ]
    assert r.ports == [tcp4, tcp6, unix]
    assert tcp4.getHost() == IPv4Address("TCP", "0.0.0.0", 0)
    assert tcp6.getHost() == IPv6Address("TCP", "::", 0)
    assert unix.getHost() == UNIXAddress(None)
    assert tcp4.factory is f and tcp4.listening
    assert r.tcpServers == [] and r.unixServers == []  # adopting is not listening anew
    d = tcp4.stopListening()
    assert d.called and not tcp4.listening


@pytest.mark.parametrize(
    ("fd", "family", "exc", "fragment"),
    [
        (_NOT_OPEN_FD, socket.AF_PACKET if hasattr(socket, "AF_PACKET") else 12345, ValueError,
         "AF_INET, AF_INET6 or AF_UNIX only"),
        (_NOT_OPEN_FD, -1, ValueError, "address family -1"),
        (-1, socket.AF_INET, ValueError, "descriptor -1"),
        ("3", socket.AF_INET, TypeError, ""),
        (None, socket.AF_INET, TypeError, ""),
    ],
    ids=["AF_PACKET", "family -1", "fd -1", "fd str", "fd None"],
)
def test_memory_reactor_adopt_stream_port_rejects_what_the_real_one_rejects(
    fd: Any, family: int, exc: type[Exception], fragment: str
) -> None:
    """Same exception type as ``framework.systemd.adoptStreamPort`` (the real reactor's), and
    nothing recorded."""
    from framework import systemd

    r = MemoryReactor()
    with pytest.raises(exc) as fake:
        r.adoptStreamPort(fd, family, protocol.Factory())
    assert fragment in str(fake.value)
    assert r.adoptedPorts == [] and r.ports == []
    # The real path checks the same things before it uses the reactor at all.
    with pytest.raises(exc) as real:
        systemd.adoptStreamPort(None, fd, family, protocol.Factory())
    assert fragment in str(real.value)
    if family != socket.AF_INET:  # a bad family: the very same message
        assert str(fake.value) == str(real.value)


def test_memory_reactor_adopt_stream_port_has_the_real_signature() -> None:
    from framework.eventloop import Reactor

    fake = inspect.signature(MemoryReactor.adoptStreamPort).parameters
    real = inspect.signature(Reactor.adoptStreamPort).parameters
    assert list(fake) == list(real) == ["self", "fileDescriptor", "addressFamily", "factory"]


def test_adopted_endpoint_on_a_memory_reactor_records_instead_of_adopting() -> None:
    from framework.systemd import AdoptedStreamServerEndpoint

    r = MemoryReactor()
    f = protocol.Factory.forProtocol(Echo)
    d = AdoptedStreamServerEndpoint(r, _NOT_OPEN_FD, socket.AF_INET6).listen(f)
    ports: list[Any] = []
    d.addCallback(ports.append)
    assert r.adoptedPorts == [(_NOT_OPEN_FD, socket.AF_INET6, f)]
    assert ports == r.ports and len(ports) == 1


def test_memory_reactor_is_a_clock() -> None:
    r = MemoryReactor()
    assert isinstance(r, task.Clock)
    fired: list[float] = []
    r.callLater(2, lambda: fired.append(r.seconds()))
    r.callFromThread(fired.append, -1.0)
    r.advance(1)
    assert fired == [-1.0]
    r.advance(1)
    assert fired == [-1.0, 2.0]
    assert r.getDelayedCalls() == []


def test_memory_reactor_core_and_descriptors() -> None:
    r = MemoryReactor()
    ran: list[str] = []
    r.callWhenRunning(ran.append, "running")
    tid = r.addSystemEventTrigger("before", "shutdown", ran.append, "removed")
    r.addSystemEventTrigger("during", "shutdown", ran.append, "shutdown")
    r.removeSystemEventTrigger(tid)
    r.run()
    assert ran == ["running"] and r.hasRun and r.hasStopped and not r.running
    r.fireSystemEvent("shutdown")
    assert ran == ["running", "shutdown"]
    reader, writer = object(), object()
    r.addReader(reader)
    r.addWriter(writer)
    assert r.getReaders() == [reader] and r.getWriters() == [writer]
    assert set(r.removeAll()) == {reader, writer}
    assert r.getReaders() == [] and r.getWriters() == []
    r.crash()
    assert r.hasCrashed


def test_clock_is_reexported() -> None:
    assert testing.Clock is task.Clock
    assert testing.MemoryReactorClock is MemoryReactor


# --- pytest plugin ----------------------------------------------------------------------


def test_fixtures_from_the_plugin(
    string_transport: StringTransport, memory_reactor: MemoryReactor, clock: task.Clock
) -> None:
    assert isinstance(string_transport, StringTransport) and string_transport.value() == b""
    assert isinstance(memory_reactor, MemoryReactor) and memory_reactor.tcpServers == []
    fired: list[bool] = []
    clock.callLater(1, fired.append, True)
    clock.advance(1)
    assert fired == [True]


def test_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("reactor_framework") == "framework.pytest_plugin"


def test_importing_the_plugin_installs_no_reactor_loads_no_plugin_nor_pytest() -> None:
    code = textwrap.dedent(
        """
        import sys
        import framework.testing, framework
        assert framework.installed_reactor() is None, "a reactor was installed"
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] == "reactor_framework_plugins")
        assert not loaded, loaded
        assert "pytest" not in sys.modules, "pytest imported outside pytest"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_fixtures_work_in_a_users_test_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            from framework.basic import LineReceiver

            class Upper(LineReceiver):
                def lineReceived(self, line):
                    self.sendLine(line.upper())

            def test_upper(string_transport, memory_reactor, clock):
                p = Upper()
                p.makeConnection(string_transport)
                p.dataReceived(b"hi\\r\\n")
                assert string_transport.value() == b"HI\\r\\n"
                memory_reactor.listenTCP(0, None)
                assert len(memory_reactor.tcpServers) == 1
                clock.advance(1)
                assert clock.seconds() == 1
            """
        )
    )
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_user.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


def test_memory_reactor_records_connect_with_a_plain_factory() -> None:
    from framework.protocol import Factory, Protocol
    from framework.testing import MemoryReactor

    reactor = MemoryReactor()
    factory = Factory.forProtocol(Protocol)
    connector = reactor.connectTCP("127.0.0.1", 8007, factory)
    assert reactor.tcpClients[0][:3] == ("127.0.0.1", 8007, factory)
    assert connector.getDestination().port == 8007


# --- MemoryReactor as IReactorThreads ---------------------------------------------------


def test_memory_reactor_call_in_thread_runs_at_once_and_records() -> None:
    reactor = MemoryReactor()
    seen: list[tuple[int, str]] = []
    reactor.callInThread(lambda n, word: seen.append((n, word)), 1, word="one")
    assert seen == [(1, "one")]
    assert reactor.getThreadPool() is reactor.threadPool
    assert [(args, kw) for _f, args, kw in reactor.threadPool.calls] == [((1,), {"word": "one"})]


def test_memory_reactor_call_in_thread_lets_the_test_see_an_exception() -> None:
    reactor = MemoryReactor()

    def boom() -> None:
        raise KeyError("in the worker")

    with pytest.raises(KeyError):
        reactor.callInThread(boom)


def test_defer_to_thread_pool_on_a_memory_reactor_fires_at_the_next_advance() -> None:
    from framework.threads import deferToThreadPool

    reactor = MemoryReactor()
    results: list[Any] = []
    d = deferToThreadPool(reactor, reactor.getThreadPool(), lambda: 6 * 7)
    d.addCallback(results.append)
    assert results == []  # the result comes back through callFromThread: a zero-delay timer
    reactor.advance(0)
    assert results == [42]

    def fails() -> None:
        raise ValueError("worker failed")

    failures: list[Failure] = []
    deferToThreadPool(reactor, reactor.getThreadPool(), fails).addErrback(failures.append)
    reactor.advance(0)
    assert failures and failures[0].check(ValueError)


def test_memory_reactor_suggest_thread_pool_size() -> None:
    reactor = MemoryReactor()
    reactor.suggestThreadPoolSize(4)
    assert reactor.threadPoolSize == 4
    with pytest.raises(ValueError):
        reactor.suggestThreadPoolSize(0)


def test_memory_reactor_and_clock_provide_the_facets_at_run_time() -> None:
    from framework import interfaces

    facets = [interfaces.IReactorTime, interfaces.IReactorCore, interfaces.IReactorTCP,
              interfaces.IReactorUNIX, interfaces.IReactorUDP, interfaces.IReactorThreads,
              interfaces.IReactorFDSet, interfaces.IReactorMulticast]
    reactor = MemoryReactor()
    for facet in facets:
        assert isinstance(reactor, facet), facet
    assert isinstance(task.Clock(), interfaces.IReactorTime)
    assert not isinstance(task.Clock(), interfaces.IReactorTCP)
    assert isinstance(reactor.callLater(1, lambda: None), interfaces.IDelayedCall)
    assert isinstance(reactor.getThreadPool(), interfaces.IThreadPool)
