"""TLS (``framework.tls``): memory-BIO TLS over the TCP transport, on every backend.

Throwaway certificates from ``trustme``; real sockets on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest
import trustme

from framework import endpoints, error, tls
from framework.defer import Deferred
from framework.failure import Failure
from framework.protocol import ClientFactory, Factory, Protocol
from framework.wrapping import WrappingFactory
from util import run_until, run_until_true

HOST = "127.0.0.1"


# --- certificates ---------------------------------------------------------------------------


class Certs:
    def __init__(self, root: Path) -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert("localhost", HOST)
        self.ca_file = str(root / "ca.pem")
        self.cert_file = str(root / "server-cert.pem")
        self.key_file = str(root / "server-key.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        server.private_key_pem.write_to_path(self.key_file)
        for i, blob in enumerate(server.cert_chain_pems):
            blob.write_to_path(self.cert_file, append=i > 0)
        other = self.ca.issue_cert("other.example")
        self.other_key_file = str(root / "other-key.pem")
        other.private_key_pem.write_to_path(self.other_key_file)

    def server(self) -> ssl.SSLContext:
        return tls.serverContext(self.cert_file, self.key_file)

    def client(self) -> ssl.SSLContext:
        return tls.clientContext(self.ca_file)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("tls"))


# --- protocols ------------------------------------------------------------------------------


class Echo(Protocol):
    def connectionMade(self) -> None:
        self.factory.made.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.factory.lost.append(reason)
        if self.factory.onLost is not None and not self.factory.onLost.called:
            self.factory.onLost.callback([reason])


class EchoFactory(Factory):
    protocol = Echo
    noisy = False

    def __init__(self) -> None:
        self.made: list[Echo] = []
        self.lost: list[Failure] = []
        self.onLost: Deferred[Any] | None = Deferred()


class Recorder(Protocol):
    """Client: writes ``greeting`` on connect, records everything, reports the end."""

    greeting = b"ping"

    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[Any] = Deferred()
        self.version: str | None = None
        self.cert: Any = None

    def connectionMade(self) -> None:
        self.version = self.transport.tls_version()
        self.cert = self.transport.getPeerCertificate()
        self.transport.write(self.greeting)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if self.data == self.greeting:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback([reason])


class OutcomeFactory(ClientFactory):
    """Fires ``outcome`` with ``("failed", reason)`` or ``("connected", protocol)``."""

    noisy = False

    def __init__(self, protocol: type = Recorder) -> None:
        self.protocol = protocol
        self.outcome: Deferred[Any] = Deferred()
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        p = Factory.buildProtocol(self, addr)
        self.built.append(p)
        if not self.outcome.called:
            self.outcome.callback(("connected", p))
        return p

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.outcome.called:
            self.outcome.callback(("failed", reason))


@pytest.fixture
def echo_server(reactor: Any, certs: Certs) -> Iterator[tuple[Any, EchoFactory]]:
    factory = EchoFactory()
    port = reactor.listenSSL(0, factory, certs.server(), interface=HOST)
    try:
        yield port, factory
        wait_idle(reactor, port)  # the server side of every connection has closed too
    finally:
        port.stopListening()


def wait_idle(reactor: Any, *ports: Any) -> None:
    """Wait until only the listening ports are left with the reactor (server sides closed)."""
    run_until_true(reactor, lambda: set(reactor.getReaders()) <= set(ports) and not reactor.getWriters())


def tls_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "framework.tls"]


# --- versions -------------------------------------------------------------------------------


def _pinned_client(certs: Certs, low: ssl.TLSVersion, high: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.ca_file)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let OpenSSL offer the old versions at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are, indeed
        ctx.minimum_version = low
        ctx.maximum_version = high
    return ctx


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_modern_versions_accepted(reactor: Any, certs: Certs, echo_server: Any, version: str) -> None:
    port, factory = echo_server
    v = ssl.TLSVersion.TLSv1_2 if version == "TLSv1.2" else ssl.TLSVersion.TLSv1_3
    client = OutcomeFactory()
    reactor.connectSSL(HOST, port.getHost().port, client, _pinned_client(certs, v, v))
    kind, proto = run_until(reactor, client.outcome)
    assert kind == "connected"
    reason = run_until(reactor, proto.done)[0]
    assert proto.data == b"ping"
    assert proto.version == version
    assert ("IP Address", HOST) in proto.cert["subjectAltName"]
    assert factory.made[0].transport.tls_version() == version
    # Both sides closed with close_notify: a clean close everywhere.
    assert reason.check(error.ConnectionDone)
    assert run_until(reactor, factory.onLost)[0].check(error.ConnectionDone)


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_versions_refused(reactor: Any, certs: Certs, echo_server: Any, version: str,
                              caplog: pytest.LogCaptureFixture) -> None:
    port, factory = echo_server
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        v = getattr(ssl.TLSVersion, version)
    caplog.set_level(logging.INFO, logger="framework.tls")
    client = OutcomeFactory()
    try:
        ctx = _pinned_client(certs, v, v)
    except (ValueError, ssl.SSLError) as e:  # pragma: no cover - OpenSSL built without them
        pytest.skip(f"this OpenSSL cannot even offer {version}: {e}")
    reactor.connectSSL(HOST, port.getHost().port, client, ctx)
    kind, reason = run_until(reactor, client.outcome)
    assert kind == "failed"
    assert reason.check(ssl.SSLError)
    wait_idle(reactor, port)
    assert client.built == [] and factory.made == []
    # The server saw the hello and refused it: one INFO line, no traceback.
    assert "protocol version" in reason.getErrorMessage()
    server_side = f":{port.getHost().port} "
    server_lines = [r for r in tls_logs(caplog) if server_side not in r.getMessage()]
    assert len(server_lines) == 1
    assert "unsupported protocol" in server_lines[0].getMessage()
    assert server_lines[0].levelno == logging.INFO and not server_lines[0].exc_info


# --- bulk data and flow control -------------------------------------------------------------


class FlowEcho(Protocol):
    """Echo whose own transport is its streaming producer: reading stops while the echo backs
    up. Counts the pauses and tells the test about the first one."""

    def connectionMade(self) -> None:
        self.pauses = 0
        self.factory.proto = self
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 262144)
        self.transport.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.pauses += 1
        self.transport.pauseProducing()
        if self.pauses == 1:
            self.factory.firstPause.callback(None)

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.factory.lost.callback([reason])


class BulkClient(Protocol):
    """Writes ``payload`` through a pull producer without reading until the server has had to
    pause, then reads everything back."""

    CHUNK = 65536

    def __init__(self, payload: bytes, serverPaused: Deferred[Any]) -> None:
        self.payload = payload
        self.offset = 0
        self.received = bytearray()
        self.done: Deferred[Any] = Deferred()
        serverPaused.addCallback(lambda _: self.transport.resumeProducing())

    def connectionMade(self) -> None:
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
        self.transport.pauseProducing()
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:  # pull producer: one chunk per call
        chunk = self.payload[self.offset:self.offset + self.CHUNK]
        self.offset += len(chunk)
        if chunk:
            self.transport.write(chunk)
        if self.offset >= len(self.payload):
            self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.payload):
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback([reason])


def test_ten_mib_round_trip_with_flow_control(reactor: Any, certs: Certs) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    server = Factory.forProtocol(FlowEcho)
    server.noisy = False
    server.firstPause = Deferred()  # type: ignore[attr-defined]
    server.lost = Deferred()  # type: ignore[attr-defined]
    port = reactor.listenSSL(0, server, certs.server(), interface=HOST)
    try:
        client = BulkClient(payload, server.firstPause)  # type: ignore[attr-defined]
        cf = OutcomeFactory(lambda: client)  # type: ignore[arg-type]
        reactor.connectSSL(HOST, port.getHost().port, cf, certs.client())
        reason = run_until(reactor, client.done, timeout=60)[0]
        server_reason = run_until(reactor, server.lost)[0]  # type: ignore[attr-defined]
    finally:
        port.stopListening()
    assert len(client.received) == len(payload)
    assert hashlib.sha256(client.received).digest() == hashlib.sha256(payload).digest()
    assert server.proto.pauses >= 1  # type: ignore[attr-defined]
    assert reason.check(error.ConnectionDone) and server_reason.check(error.ConnectionDone)


# --- hostile or broken peers ----------------------------------------------------------------


class PlainClient(Protocol):
    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.data = b""
        self.done: Deferred[Any] = Deferred()

    def connectionMade(self) -> None:
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback([reason])


def _plain_connect(reactor: Any, port: int, greeting: bytes) -> PlainClient:
    proto = PlainClient(greeting)
    f = ClientFactory.forProtocol(lambda: proto)
    f.noisy = False
    reactor.connectTCP(HOST, port, f)
    return proto


def test_plain_text_client_closed_promptly_with_one_info_line(
        reactor: Any, echo_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    port, factory = echo_server  # default 60 s handshake timeout: only the failure closes it
    caplog.set_level(logging.DEBUG)
    proto = _plain_connect(reactor, port.getHost().port, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    run_until(reactor, proto.done, timeout=1.0)
    assert factory.made == []
    lines = tls_logs(caplog)
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO and not lines[0].exc_info
    assert "handshake" in lines[0].getMessage() and "failed" in lines[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert b"HTTP" not in proto.data  # nothing but a TLS alert went back


def test_handshake_stall_closed_at_timeout(reactor: Any, certs: Certs,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="framework.tls")
    factory = EchoFactory()
    options = tls.TLSOptions(certs.server(), handshakeTimeout=0.05)
    port = reactor.listenSSL(0, factory, options, interface=HOST)
    try:
        proto = _plain_connect(reactor, port.getHost().port, b"")  # connects, says nothing
        run_until(reactor, proto.done)[0]
    finally:
        port.stopListening()
    assert factory.made == []
    assert [r for r in tls_logs(caplog) if "timed out" in r.getMessage()]


def test_client_hostname_mismatch_is_a_clear_connection_failure(
        reactor: Any, certs: Certs, echo_server: Any) -> None:
    port, factory = echo_server
    client = OutcomeFactory()
    options = tls.TLSOptions(certs.client(), hostname="wrong.example")
    reactor.connectSSL(HOST, port.getHost().port, client, options)
    kind, reason = run_until(reactor, client.outcome)
    assert kind == "failed"
    assert reason.check(ssl.SSLCertVerificationError)
    assert "wrong.example" in reason.getErrorMessage()
    assert client.built == [] and factory.made == []
    wait_idle(reactor, port)


def test_client_refuses_untrusted_server(reactor: Any, echo_server: Any) -> None:
    port, _ = echo_server
    client = OutcomeFactory()
    reactor.connectSSL(HOST, port.getHost().port, client, _untrusted_context())
    kind, reason = run_until(reactor, client.outcome)
    assert kind == "failed" and reason.check(ssl.SSLCertVerificationError)
    wait_idle(reactor, port)


def _untrusted_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trustme.CA().configure_trust(ctx)  # some other CA
    return ctx


def test_tcp_close_without_close_notify_is_not_clean(reactor: Any, certs: Certs,
                                                     echo_server: Any) -> None:
    port, factory = echo_server

    class Rude(Recorder):
        def dataReceived(self, data: bytes) -> None:
            self.transport.transport.loseConnection()  # TCP FIN, no TLS close_notify

    client = OutcomeFactory(Rude)
    reactor.connectSSL(HOST, port.getHost().port, client, certs.client())
    kind, proto = run_until(reactor, client.outcome)
    run_until(reactor, proto.done)
    reason = run_until(reactor, factory.onLost)[0]
    assert reason.check(error.ConnectionLost)
    assert "close_notify" in reason.getErrorMessage()


class PullThenClose(Protocol):
    """Server: a pull producer writes ``COUNT`` chunks; ``loseConnection`` is called at once
    and must wait for ``unregisterProducer``."""

    COUNT, CHUNK = 8, b"y" * 65536

    def connectionMade(self) -> None:
        self.left = self.COUNT
        self.transport.registerProducer(self, False)
        self.transport.loseConnection()

    def resumeProducing(self) -> None:
        if self.left:
            self.left -= 1
            self.transport.write(self.CHUNK)
        else:
            self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        pass


def test_lose_connection_waits_for_pull_producer(reactor: Any, certs: Certs) -> None:
    server = Factory.forProtocol(PullThenClose)
    server.noisy = False
    port = reactor.listenSSL(0, server, certs.server(), interface=HOST)
    try:
        client = PlainClient(b"")
        reactor.connectSSL(HOST, port.getHost().port, OutcomeFactory(lambda: client),  # type: ignore[arg-type]
                           certs.client())
        reason = run_until(reactor, client.done)[0]
        wait_idle(reactor, port)
    finally:
        port.stopListening()
    assert client.data == PullThenClose.CHUNK * PullThenClose.COUNT
    assert reason.check(error.ConnectionDone)  # ended by the server's close_notify


class Flood(Protocol):
    """Server: writes ``size`` bytes at once, then closes."""

    size = 4 * 1024 * 1024

    def connectionMade(self) -> None:
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        self.transport.write(b"x" * self.size)
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.factory.lost.callback([reason])


class Sleeper(PlainClient):
    """Client: does not read at all until told to."""

    def connectionMade(self) -> None:
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.transport.pauseProducing()


def test_shutdown_timeout_aborts_a_peer_that_never_reads(reactor: Any, certs: Certs,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="framework.tls")
    server = Factory.forProtocol(Flood)
    server.noisy = False
    server.lost = Deferred()  # type: ignore[attr-defined]
    port = reactor.listenSSL(0, server, tls.TLSOptions(certs.server(), shutdownTimeout=0.05),
                             interface=HOST)
    try:
        client = Sleeper(b"")
        reactor.connectSSL(HOST, port.getHost().port, OutcomeFactory(lambda: client), certs.client())  # type: ignore[arg-type]
        reason = run_until(reactor, server.lost)[0]  # type: ignore[attr-defined]
        assert reason.check(error.ConnectionAborted)
        assert [r for r in tls_logs(caplog) if "did not close within" in r.getMessage()]
        client.transport.resumeProducing()  # now it notices the connection is gone
        run_until(reactor, client.done)
    finally:
        port.stopListening()
    assert len(client.data) < Flood.size


def test_client_handshake_timeout(reactor: Any, certs: Certs) -> None:
    silent = Factory.forProtocol(Protocol)  # a plain TCP server that never answers
    silent.noisy = False
    port = reactor.listenTCP(0, silent, interface=HOST)
    try:
        client = OutcomeFactory()
        options = tls.TLSOptions(certs.client(), hostname="localhost", handshakeTimeout=0.05)
        reactor.connectSSL(HOST, port.getHost().port, client, options)
        kind, reason = run_until(reactor, client.outcome)
        wait_idle(reactor, port)
    finally:
        port.stopListening()
    assert kind == "failed" and reason.check(error.TimeoutError)
    assert "handshake" in reason.getErrorMessage()


def test_tls_over_unix_sockets(reactor: Any, certs: Certs, tmp_path: Path) -> None:
    path = str(tmp_path / "tls.sock")
    server = tls.wrapServerTLS(certs.server(), endpoints.UNIXServerEndpoint(reactor, path))
    factory = EchoFactory()
    port = run_until(reactor, server.listen(factory))
    try:
        client = tls.wrapClientTLS(tls.optionsForClientTLS("localhost", certs.ca_file),
                                   endpoints.UNIXClientEndpoint(reactor, path))
        proto = run_until(reactor, client.connect(Factory.forProtocol(Recorder)))
        assert run_until(reactor, proto.done)[0].check(error.ConnectionDone)
        assert proto.data == b"ping" and proto.version in ("TLSv1.2", "TLSv1.3")
        run_until(reactor, factory.onLost)
        wrong = tls.wrapClientTLS(tls.optionsForClientTLS("wrong.example", certs.ca_file),
                                  endpoints.UNIXClientEndpoint(reactor, path))
        with pytest.raises(ssl.SSLCertVerificationError, match="wrong.example"):
            run_until(reactor, wrong.connect(Factory.forProtocol(Recorder)))
        wait_idle(reactor, port)
    finally:
        port.stopListening()


def test_client_certificates(reactor: Any, certs: Certs, tmp_path: Path) -> None:
    client_cert = certs.ca.issue_cert("client@example.org")
    cert_file, key_file = str(tmp_path / "client.pem"), str(tmp_path / "client-key.pem")
    client_cert.cert_chain_pems[0].write_to_path(cert_file)
    client_cert.private_key_pem.write_to_path(key_file)
    server_ctx = tls.serverContext(certs.cert_file, certs.key_file, caFile=certs.ca_file,
                                   requireClientCertificate=True)
    factory = EchoFactory()
    port = reactor.listenSSL(0, factory, server_ctx, interface=HOST)
    try:
        n = port.getHost().port
        anonymous = OutcomeFactory()
        reactor.connectSSL(HOST, n, anonymous, certs.client())
        kind, _ = run_until(reactor, anonymous.outcome)
        if kind == "connected":  # TLS 1.3: the client learns of the refusal after its Finished
            run_until(reactor, anonymous.built[0].done)
        wait_idle(reactor, port)
        assert factory.made == []
        client = OutcomeFactory()
        reactor.connectSSL(HOST, n, client, tls.clientContext(certs.ca_file, certFile=cert_file,
                                                              keyFile=key_file))
        kind, proto = run_until(reactor, client.outcome)
        assert kind == "connected"
        run_until(reactor, proto.done)
        run_until(reactor, factory.onLost)
    finally:
        port.stopListening()
    assert proto.data == b"ping"
    peer = factory.made[0].transport.getPeerCertificate()
    assert ("email", "client@example.org") in peer["subjectAltName"]


# --- STARTTLS -------------------------------------------------------------------------------


class StartTLSServer(Protocol):
    """Plain text until ``STARTTLS\\r\\n``; then echo over TLS."""

    def connectionMade(self) -> None:
        self.buf = b""
        self.secure = False

    def dataReceived(self, data: bytes) -> None:
        if self.secure:
            self.transport.write(data)
            return
        self.buf += data
        if self.buf == b"STARTTLS\r\n":
            self.transport.write(b"GO\r\n")
            self.transport.startTLS(self.factory.context)
            self.secure = True

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.factory.lost.callback([reason])


class StartTLSClient(Protocol):
    def __init__(self, options: Any) -> None:
        self.options = options
        self.data = b""
        self.cert: Any = None
        self.done: Deferred[Any] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"STARTTLS\r\n")

    def dataReceived(self, data: bytes) -> None:
        if data == b"GO\r\n" and self.cert is None:
            self.transport.startTLS(self.options)
            self.transport.write(b"secret")  # held until the handshake is done
            return
        self.data += data
        self.cert = self.transport.getPeerCertificate()
        self.transport.loseConnection()

    def handshakeCompleted(self) -> None:
        self.cert = self.transport.getPeerCertificate()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback([reason])


def _starttls(reactor: Any, certs: Certs, client_options: Any) -> tuple[StartTLSClient, Any]:
    server = Factory.forProtocol(StartTLSServer)
    server.noisy = False
    server.context = certs.server()  # type: ignore[attr-defined]
    server.lost = Deferred()  # type: ignore[attr-defined]
    port = reactor.listenTCP(0, server, interface=HOST)
    client = StartTLSClient(client_options)
    f = ClientFactory.forProtocol(lambda: client)
    f.noisy = False
    reactor.connectTCP(HOST, port.getHost().port, f)
    return client, (port, server)


def test_starttls_upgrade(reactor: Any, certs: Certs) -> None:
    client, (port, server) = _starttls(reactor, certs, certs.client())
    try:
        reason = run_until(reactor, client.done)[0]
        server_reason = run_until(reactor, server.lost)[0]  # type: ignore[attr-defined]
    finally:
        port.stopListening()
    assert client.data == b"secret"
    assert ("DNS", "localhost") in client.cert["subjectAltName"]
    assert reason.check(error.ConnectionDone) and server_reason.check(error.ConnectionDone)


def test_starttls_hostname_mismatch_reaches_connection_lost(reactor: Any, certs: Certs) -> None:
    options = tls.TLSOptions(certs.client(), hostname="wrong.example")
    client, (port, server) = _starttls(reactor, certs, options)
    try:
        reason = run_until(reactor, client.done)[0]
        run_until(reactor, server.lost)[0]  # type: ignore[attr-defined]
    finally:
        port.stopListening()
    assert reason.check(ssl.SSLCertVerificationError)
    assert client.data == b""


# --- endpoints and API edges ----------------------------------------------------------------


def test_endpoint_strings(reactor: Any, certs: Certs) -> None:
    server = endpoints.serverFromString(
        reactor, f"ssl:0:interface={HOST}:certKey={certs.cert_file}:privateKey={certs.key_file}")
    factory = EchoFactory()
    port = run_until(reactor, server.listen(factory))
    try:
        n = port.getHost().port
        client = endpoints.clientFromString(reactor, f"tls:host={HOST}:port={n}:trustRoots={certs.ca_file}")
        proto = run_until(reactor, client.connect(Factory.forProtocol(Recorder)))
        run_until(reactor, proto.done)[0]
        assert proto.data == b"ping"
        wait_idle(reactor, port)
        # trustRoots may also be a directory of PEM files, as in Twisted
        by_dir = endpoints.clientFromString(
            reactor, f"tls:host={HOST}:port={n}:trustRoots={os.path.dirname(certs.ca_file)}")
        proto = run_until(reactor, by_dir.connect(Factory.forProtocol(Recorder)))
        assert run_until(reactor, proto.done)[0].check(error.ConnectionDone)
        wait_idle(reactor, port)
        bad = endpoints.clientFromString(
            reactor, f"tls:host={HOST}:port={n}:trustRoots={certs.ca_file}:hostname=wrong.example")
        with pytest.raises(ssl.SSLCertVerificationError):
            run_until(reactor, bad.connect(Factory.forProtocol(Recorder)))
        wait_idle(reactor, port)
    finally:
        port.stopListening()


def test_cancelling_a_tls_connect_during_the_handshake_drops_the_connection(
        reactor: Any, certs: Certs) -> None:
    class Silent(Protocol):
        """Accepts TCP and never answers the ClientHello: the handshake stays pending."""

        def connectionMade(self) -> None:
            accepted.callback(self)

        def connectionLost(self, reason: Failure) -> None:
            lost.callback(reason.type)

    class Client(Protocol):
        def connectionMade(self) -> None:
            connected.append(self)

    accepted: Deferred[Any] = Deferred()
    lost: Deferred[Any] = Deferred()
    connected: list[Any] = []
    port = reactor.listenTCP(0, Factory.forProtocol(Silent), interface=HOST)
    try:
        client = endpoints.clientFromString(
            reactor, f"tls:host={HOST}:port={port.getHost().port}:trustRoots={certs.ca_file}")
        d = endpoints.connectProtocol(client, Client())
        run_until(reactor, accepted)  # TCP is up; the handshake is not
        d.cancel()
        with pytest.raises(error.ConnectingCancelledError):
            run_until(reactor, d)
        # The cancel reset the connection; no handshake timeout needed.
        assert issubclass(run_until(reactor, lost), error.ConnectionLost)
        assert connected == []
    finally:
        run_until(reactor, port.stopListening())


def test_endpoints_go_through_the_reactor(certs: Certs) -> None:
    from framework.testing import MemoryReactor

    reactor = MemoryReactor()
    server = endpoints.serverFromString(
        reactor, f"ssl:8443:certKey={certs.cert_file}:privateKey={certs.key_file}:interface={HOST}")
    factory = EchoFactory()
    server.listen(factory)
    [(port, f, contextFactory, backlog, interface)] = reactor.sslServers
    assert (port, f, backlog, interface) == (8443, factory, 50, HOST)
    assert contextFactory.getContext().minimum_version == ssl.TLSVersion.TLSv1_2
    client = endpoints.clientFromString(reactor, f"tls:example.org:443:trustRoots={certs.ca_file}")
    client.connect(Factory.forProtocol(Recorder))
    [(host, port, _, options, timeout, _)] = reactor.sslClients
    assert (host, port, options.hostname, timeout) == ("example.org", 443, "example.org", 30)


def test_endpoint_string_errors(certs: Certs) -> None:
    reactor = None  # parsing only
    with pytest.raises(ValueError, match="does not match"):
        endpoints.serverFromString(
            reactor, f"ssl:0:certKey={certs.cert_file}:privateKey={certs.other_key_file}")
    with pytest.raises(ValueError, match="needs certKey"):
        endpoints.serverFromString(reactor, "ssl:0")
    with pytest.raises(ValueError, match="(?i)no such file"):
        endpoints.clientFromString(reactor, "tls:host=localhost:port=1:trustRoots=/nonexistent.pem")


def test_context_helpers_and_bad_input(reactor: Any, certs: Certs) -> None:
    assert certs.server().minimum_version == ssl.TLSVersion.TLSv1_2
    client = certs.client()
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(tls.TLSSetupError, match="does not match"):
        tls.serverContext(certs.cert_file, certs.other_key_file)
    with pytest.raises(tls.TLSSetupError, match="no such file"):
        tls.serverContext("/nonexistent/cert.pem")
    with pytest.raises(ValueError, match="client SSLContext"):
        reactor.listenSSL(0, EchoFactory(), client, interface=HOST)
    with pytest.raises(TypeError, match="context factory"):
        reactor.listenSSL(0, EchoFactory(), object(), interface=HOST)
    assert reactor.getReaders() == []


def test_write_rejects_str_and_half_close_is_explicit(reactor: Any, certs: Certs,
                                                       echo_server: Any) -> None:
    port, _ = echo_server
    outcome: dict[str, Any] = {}

    class Probe(Recorder):
        def connectionMade(self) -> None:
            with pytest.raises(TypeError, match="bytes, not str"):
                self.transport.write("text")
            with pytest.raises(NotImplementedError, match="TLS"):
                self.transport.loseWriteConnection()
            outcome["peer"] = self.transport.getPeer()
            outcome["nodelay"] = self.transport.getTcpNoDelay()
            Recorder.connectionMade(self)

    client = OutcomeFactory(Probe)
    reactor.connectSSL(HOST, port.getHost().port, client, certs.client())
    kind, proto = run_until(reactor, client.outcome)
    run_until(reactor, proto.done)[0]
    assert proto.data == b"ping"
    assert outcome["peer"].port == port.getHost().port and outcome["nodelay"] is True


# --- reactor-serve --------------------------------------------------------------------------

SERVE = [sys.executable, "-m", "framework"]
STARTUP = re.compile(r"serving \S+ on tls:127\.0\.0\.1:(\d+) ")  # TLS listeners say tls:


def test_reactor_serve_tls_echo(certs: Certs) -> None:
    proc = subprocess.Popen(
        [*SERVE, "--protocol", "echo", "--port", "0", "--tls-cert", certs.cert_file,
         "--tls-key", certs.key_file, "--grace", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = STARTUP.search(line)
        assert m, f"unexpected startup line {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        ctx = certs.client()
        with socket.create_connection((HOST, int(m.group(1))), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"hello over tls")
                got = b""
                while len(got) < 14:
                    chunk = s.recv(100)
                    assert chunk
                    got += chunk
                assert got == b"hello over tls"
                assert s.version() in ("TLSv1.2", "TLSv1.3")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("problem", ["mismatch", "missing"])
def test_reactor_serve_bad_tls_pair_fails_before_listening(certs: Certs, problem: str) -> None:
    key = certs.other_key_file if problem == "mismatch" else "/nonexistent/key.pem"
    result = subprocess.run(
        [*SERVE, "--protocol", "echo", "--port", "0", "--tls-cert", certs.cert_file, "--tls-key", key],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "serving" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reactor-serve: error: ")
    assert ("does not match" if problem == "mismatch" else "no such file") in lines[0]
    assert "Traceback" not in result.stderr


class _Holder(Recorder):
    """Keeps the connection open after the echo (the test closes it)."""

    def dataReceived(self, data: bytes) -> None:
        self.data += data


def test_tls_factory_is_a_wrapping_factory_tracking_its_connections(reactor: Any, certs: Certs) -> None:
    """As with Twisted, the TLS factory is a WrappingFactory: ``protocols`` holds each live TLS
    connection and loses it when the connection closes."""
    inner = EchoFactory()
    server = tls.TLSMemoryBIOFactory(certs.server(), False, inner)
    assert isinstance(server, WrappingFactory) and server.protocols == {}
    port = reactor.listenTCP(0, server, interface=HOST)
    try:
        client = OutcomeFactory(_Holder)
        reactor.connectSSL(HOST, port.getHost().port, client, certs.client())
        kind, proto = run_until(reactor, client.outcome)
        assert kind == "connected"
        run_until_true(reactor, lambda: proto.data == b"ping")  # the server echoed: it is connected
        [live] = list(server.protocols)
        assert isinstance(live, tls.TLSMemoryBIOProtocol) and live.wrappedProtocol is inner.made[0]
        proto.transport.loseConnection()
        run_until(reactor, proto.done)
        assert inner.onLost is not None
        run_until(reactor, inner.onLost)
        assert server.protocols == {}
    finally:
        port.stopListening()
