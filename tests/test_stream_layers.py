"""The stream-transport layers (issue 14, step 1): one write path for TCP and UNIX, the public
PROXY address setter, STARTTLS and listenSSL/connectSSL over the layered TLS modules, and the
module-level import edges among the transport modules."""

from __future__ import annotations

import ast
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import framework
from framework import error, stream, tls
from framework.address import IPv4Address, IPv6Address, UNIXAddress
from framework.defer import Deferred
from framework.failure import Failure
from framework.interfaces import IHalfCloseableProtocol
from framework.protocol import ClientFactory, Factory, Protocol
from framework.proxyprotocol import ProxyProtocolFactory
from test_tcp import OneFactory, Recorder, ServerFactory
from test_tls import Certs, StartTLSClient, StartTLSServer
from util import run_until, run_until_true

HOST = "127.0.0.1"
FRAMEWORK = Path(framework.__file__).parent

needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no UNIX sockets")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("tls-layers"))


@pytest.fixture
def sockdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="rfl", dir="/tmp")  # short: UNIX paths are ~100 bytes at most
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


Listen = Callable[[Any], Any]
Connect = Callable[[Any, Any], Any]


@pytest.fixture(params=["tcp", pytest.param("unix", marks=needs_unix)])
def kind(request: pytest.FixtureRequest, reactor: Any, sockdir: str) -> tuple[str, Listen, Connect]:
    """(name, listen(factory) -> port, connect(port, clientFactory)) for TCP and for UNIX."""
    if request.param == "tcp":
        return ("tcp", lambda f: reactor.listenTCP(0, f, interface=HOST),
                lambda port, f: reactor.connectTCP(HOST, port.getHost().port, f, timeout=10))
    path = f"{sockdir}/s"
    return ("unix", lambda f: reactor.listenUNIX(path, f),
            lambda port, f: reactor.connectUNIX(path, f, timeout=10))


def _pair(reactor: Any, kind: Any, server_protocol: Any = Recorder,
          client: Any = None) -> tuple[Any, Any, Any]:
    _, listen, connect = kind
    sf = ServerFactory(server_protocol)
    port = listen(sf)
    cp = client if client is not None else Recorder()
    connect(port, OneFactory(cp))
    sp = run_until(reactor, sf.connected)
    run_until(reactor, cp.made)
    run_until_true(reactor, lambda: "made" in sp.events)
    return port, sp, cp


# -- the shared write path: identical on TCP and UNIX ---------------------------------------------


def test_every_stream_transport_is_the_shared_connection(reactor: Any, kind: Any) -> None:
    port, sp, cp = _pair(reactor, kind)
    try:
        assert isinstance(sp.transport, stream.Connection)
        assert isinstance(cp.transport, stream.Connection)
        # One write path: write/writeSequence are the base's, not a per-transport copy.
        assert type(sp.transport).write is stream.Connection.write
        assert type(sp.transport).writeSequence is stream.Connection.writeSequence
    finally:
        cp.transport.loseConnection()
        run_until(reactor, sp.lost)
        run_until(reactor, port.stopListening())


def test_write_sequence_arrives_in_order_as_one_stream(reactor: Any, kind: Any) -> None:
    port, sp, cp = _pair(reactor, kind)
    try:
        cp.transport.writeSequence([b"one ", bytearray(b"two "), memoryview(b"three")])
        cp.transport.writeSequence(iter([b"", b" four"]))
        run_until_true(reactor, lambda: sp.data == b"one two three four")
        with pytest.raises(TypeError, match="encode"):
            cp.transport.writeSequence([b"ok", "text"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="encode"):
            cp.transport.write("text")
    finally:
        cp.transport.loseConnection()
        run_until(reactor, sp.lost)
        run_until(reactor, port.stopListening())


class HalfCloser(Recorder, IHalfCloseableProtocol):
    def readConnectionLost(self) -> None:
        self.events.append("readLost")
        self.transport.write(b"bye")
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self.events.append("writeLost")


def test_half_close_keeps_the_other_direction_open(reactor: Any, kind: Any) -> None:
    client = HalfCloser()
    port, sp, cp = _pair(reactor, kind, HalfCloser, client)
    try:
        cp.transport.write(b"request")
        cp.transport.loseWriteConnection()
        run_until_true(reactor, lambda: "writeLost" in client.events)
        reason = run_until(reactor, cp.lost) or cp.reason
        assert sp.data == b"request"
        assert cp.data == b"bye"
        assert "readLost" in sp.events
        assert reason.check(error.ConnectionDone)
        run_until(reactor, sp.lost)
        assert sp.lostCount == 1 and cp.lostCount == 1
    finally:
        run_until(reactor, port.stopListening())


def test_abort_drops_the_buffer_and_reports_connection_aborted_once(reactor: Any, kind: Any) -> None:
    port, sp, cp = _pair(reactor, kind)
    try:
        sp.transport.pauseProducing()  # the server stops reading: the client's buffer fills
        payload = b"x" * (4 * 1024 * 1024)
        cp.transport.write(payload)
        assert cp.transport.get_write_buffer_size() > 0
        cp.transport.abortConnection()
        cp.transport.abortConnection()
        cp.transport.loseConnection()
        assert cp.transport.get_write_buffer_size() == 0
        run_until(reactor, cp.lost)
        assert cp.reason.check(error.ConnectionAborted)
        sp.transport.resumeProducing()
        run_until(reactor, sp.lost)
        assert sp.received < len(payload)
        assert cp.lostCount == 1 and sp.lostCount == 1
    finally:
        run_until(reactor, port.stopListening())


def test_streaming_producer_paused_over_the_public_high_water_mark(reactor: Any, kind: Any) -> None:
    class Producer:
        def __init__(self) -> None:
            self.events: list[str] = []

        def pauseProducing(self) -> None:
            self.events.append("pause")

        def resumeProducing(self) -> None:
            self.events.append("resume")

        def stopProducing(self) -> None:
            self.events.append("stop")

    port, sp, cp = _pair(reactor, kind)
    try:
        producer = Producer()
        sp.transport.pauseProducing()
        cp.transport.registerProducer(producer, True)
        while cp.transport.get_write_buffer_size() <= stream.HIGH_WATER:
            cp.transport.write(b"y" * 65536)
        assert producer.events == ["pause"]
        sp.transport.resumeProducing()
        run_until_true(reactor, lambda: producer.events == ["pause", "resume"])
        cp.transport.unregisterProducer()
    finally:
        cp.transport.loseConnection()
        run_until(reactor, sp.lost)
        run_until(reactor, port.stopListening())


# -- the public address setter (PROXY protocol) ----------------------------------------------------


def test_set_addresses_changes_what_get_peer_and_get_host_report(reactor: Any, kind: Any) -> None:
    port, sp, cp = _pair(reactor, kind)
    try:
        real_host = sp.transport.getHost()
        peer = IPv4Address("TCP", "192.0.2.7", 4242)
        sp.transport.set_addresses(peer, None)
        assert sp.transport.getPeer() == peer
        assert sp.transport.getHost() == real_host  # None keeps that side
        host = IPv6Address("TCP", "2001:db8::1", 443)
        sp.transport.set_addresses(None, host)
        assert sp.transport.getPeer() == peer and sp.transport.getHost() == host
        assert "192.0.2.7:4242" in sp.transport.logPrefix()
    finally:
        cp.transport.loseConnection()
        run_until(reactor, sp.lost)
        run_until(reactor, port.stopListening())


class Seen(Protocol):
    def __init__(self, seen: Deferred[Any]) -> None:
        self.seen = seen

    def connectionMade(self) -> None:
        t = self.transport
        self.first = (t, t.getPeer(), t.getHost())

    def dataReceived(self, data: bytes) -> None:
        if not self.seen.called:
            self.seen.callback(self.first + (data,))


def test_proxy_header_sets_the_addresses_through_the_public_setter(reactor: Any, kind: Any) -> None:
    name, listen, _ = kind
    seen: Deferred[Any] = Deferred()
    inner = Factory.forProtocol(lambda: Seen(seen))
    port = listen(ProxyProtocolFactory(inner))
    if name == "tcp":
        raw = socket.create_connection((HOST, port.getHost().port), timeout=5)
    else:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(port.getHost().name)
    try:
        raw.sendall(b"PROXY TCP4 198.51.100.9 203.0.113.5 51000 8443\r\nhello")
        transport, peer, host, data = run_until(reactor, seen)
        assert isinstance(transport, stream.Connection)  # no wrapper: the transport itself
        assert peer == IPv4Address("TCP", "198.51.100.9", 51000)
        assert host == IPv4Address("TCP", "203.0.113.5", 8443)
        assert (transport.getPeer(), transport.getHost()) == (peer, host)
        assert data == b"hello"
    finally:
        raw.close()
    run_until_true(reactor, lambda: not transport.connected)
    run_until(reactor, port.stopListening())


def test_unix_server_get_host_reports_the_set_address(reactor: Any, sockdir: str) -> None:
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no UNIX sockets")
    path = f"{sockdir}/h"
    port, sp, cp = _pair(reactor, ("unix", lambda f: reactor.listenUNIX(path, f),
                                   lambda p, f: reactor.connectUNIX(path, f, timeout=10)))
    try:
        assert sp.transport.getHost() == UNIXAddress(path)
        sp.transport.set_addresses(None, UNIXAddress("/elsewhere"))
        assert sp.transport.getHost() == UNIXAddress("/elsewhere")
    finally:
        cp.transport.loseConnection()
        run_until(reactor, sp.lost)
        run_until(reactor, port.stopListening())


# -- TLS over any stream transport ----------------------------------------------------------------


def test_starttls_over_tcp_and_unix(reactor: Any, kind: Any, certs: Certs) -> None:
    _, listen, connect = kind
    server = Factory.forProtocol(StartTLSServer)
    server.noisy = False
    server.context = certs.server()  # type: ignore[attr-defined]
    server.lost = Deferred()  # type: ignore[attr-defined]
    port = listen(server)
    client = StartTLSClient(tls.TLSOptions(certs.client(), hostname="localhost"))
    f = ClientFactory.forProtocol(lambda: client)
    f.noisy = False
    connect(port, f)
    try:
        reason = run_until(reactor, client.done)[0]
        server_reason = run_until(reactor, server.lost)[0]  # type: ignore[attr-defined]
    finally:
        run_until(reactor, port.stopListening())
    assert client.data == b"secret"
    assert ("DNS", "localhost") in client.cert["subjectAltName"]
    assert reason.check(error.ConnectionDone) and server_reason.check(error.ConnectionDone)


class Greeter(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hi " + self.transport.tls_version().encode())
        self.transport.loseConnection()


def test_listen_ssl_and_connect_ssl_go_through_the_reactor(reactor: Any, certs: Certs) -> None:
    server = Factory.forProtocol(Greeter)
    server.noisy = False
    port = tls.listenSSL(reactor, 0, server, certs.server(), interface=HOST)
    client = Recorder()
    factory = OneFactory(client)
    connector = tls.connectSSL(reactor, "localhost", port.getHost().port, factory,
                               certs.client())
    try:
        assert connector.getDestination().port == port.getHost().port
        assert isinstance(port.factory, tls.TLSMemoryBIOFactory)
        run_until(reactor, client.lost)
        assert client.data.startswith(b"hi TLSv1.")
        run_until(reactor, factory.lostD)
    finally:
        run_until(reactor, port.stopListening())


def test_connect_ssl_handshake_failure_reaches_client_connection_failed(reactor: Any,
                                                                       certs: Certs) -> None:
    server = Factory.forProtocol(Greeter)
    server.noisy = False
    port = reactor.listenSSL(0, server, certs.server(), interface=HOST)
    factory = OneFactory(Recorder())
    reactor.connectSSL(HOST, port.getHost().port, factory,
                       tls.TLSOptions(certs.client(), hostname="wrong.example"))
    try:
        run_until(reactor, factory.failed)
        assert isinstance(factory.failReason.value, Exception)
        assert "certificate" in factory.failReason.getErrorMessage()
        assert factory.events[-1][0] == "failed"  # never clientConnectionLost
        # The server side sees the alert and closes its half-open TLS connection too.
        run_until_true(reactor, lambda: set(reactor.getReaders()) <= {port} and not reactor.getWriters())
    finally:
        run_until(reactor, port.stopListening())


def test_tls_layer_shares_the_one_write_sequence() -> None:
    from framework.tlsprotocol import TLSMemoryBIOProtocol
    from framework.writing import SequenceWriter

    assert TLSMemoryBIOProtocol.writeSequence is SequenceWriter.writeSequence
    assert stream.Connection.writeSequence is SequenceWriter.writeSequence


# -- layers: module-level import edges ---------------------------------------------------------------


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(module-level framework imports, function-level framework imports) of framework/NAME.py."""
    tree = ast.parse((FRAMEWORK / f"{name}.py").read_text())
    top: set[str] = set()
    inner: set[str] = set()

    def names(node: ast.AST) -> set[str]:
        found: set[str] = set()
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("framework"):
            if node.module == "framework":
                found |= {f"framework.{a.name}" for a in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("framework")}
        return found

    for node in tree.body:
        if isinstance(node, ast.If):  # if TYPE_CHECKING: imports only for annotations
            continue
        top |= names(node)
    for node in ast.walk(tree):
        # tls's two endpoint-string parsers move to an endpoint plugin (issue 14, step 2).
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in (
                "_serverFromString", "_clientFromString"):
            for inner_node in ast.walk(node):
                inner |= names(inner_node)
    return top, inner


TRANSPORTS = {"framework.tcp", "framework.unix", "framework.udp", "framework.systemd",
              "framework.endpoints", "framework.eventloop"}


@pytest.mark.parametrize("name", ["stream", "streamport", "tls", "tlsprotocol", "tlscontext",
                                  "wrapping", "writing", "proxyprotocol", "unix", "udp"])
def test_lower_layers_import_no_transport_module(name: str) -> None:
    top, inner = _imports(name)
    allowed_above = {"framework.unix"} if name == "systemd" else set()
    assert not (top | inner) & (TRANSPORTS - allowed_above), (top | inner) & TRANSPORTS


def test_tls_imports_no_stream_module_and_stream_sits_on_tls() -> None:
    for name in ("tls", "tlsprotocol", "tlscontext"):
        top, _ = _imports(name)
        assert not top & {"framework.stream", "framework.streamport"}
    assert "framework.tls" in _imports("stream")[0]


@pytest.mark.parametrize("name", ["tcp", "unix", "udp", "systemd", "stream", "streamport",
                                  "tlsprotocol", "tlscontext", "wrapping", "proxyprotocol"])
def test_no_function_level_framework_imports_but_the_global_reactor(name: str) -> None:
    _, inner = _imports(name)
    assert inner <= {"framework.reactor"}
    source = (FRAMEWORK / f"{name}.py").read_text()
    if inner:
        assert "# reason:" in source


def test_tunables_set_on_tcp_reach_the_modules_that_read_them(monkeypatch: Any) -> None:
    from framework import streamport, tcp

    monkeypatch.setattr(tcp, "MAX_WRITE_BUFFER", 1234)
    monkeypatch.setattr(tcp, "ACCEPT_BACKOFF", 0.5)
    assert stream.MAX_WRITE_BUFFER == tcp.MAX_WRITE_BUFFER == 1234
    assert streamport.ACCEPT_BACKOFF == tcp.ACCEPT_BACKOFF == 0.5
    monkeypatch.undo()
    assert stream.MAX_WRITE_BUFFER == tcp.MAX_WRITE_BUFFER == 16 * 1024 * 1024
    assert streamport.ACCEPT_BACKOFF == tcp.ACCEPT_BACKOFF == 0.1
