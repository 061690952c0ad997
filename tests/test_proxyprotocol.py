"""PROXY protocol v1/v2: parsing, the wrapping factory on real sockets, and ``--proxy-protocol``."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import given, settings, strategies as st

from framework import endpoints
from framework.address import IPv4Address, IPv6Address, UNIXAddress
from framework.protocol import Factory, Protocol
from framework.proxyprotocol import (
    V2_SIGNATURE,
    InvalidProxyHeader,
    ProxyProtocolFactory,
    parseHeader,
    proxyEndpoint,
)
from serve_util import Proc, connect, recv_exactly, recv_line
from util import run_until, run_until_true


def v2(command: int, family: int, body: bytes, version: int = 2) -> bytes:
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", len(body)) + body


def v2_inet(src: str, dst: str, sport: int, dport: int, tlvs: bytes = b"") -> bytes:
    body = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
    return v2(1, 0x11, body + struct.pack("!HH", sport, dport) + tlvs)


V1_TCP4 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"


# --- parsing ----------------------------------------------------------------------------------


def test_v1_tcp4_tcp6_and_unknown() -> None:
    info, n = parseHeader(V1_TCP4 + b"rest")  # type: ignore[misc]
    assert n == len(V1_TCP4)
    assert info.version == 1
    assert info.source == IPv4Address("TCP", "192.0.2.1", 56324)
    assert info.destination == IPv4Address("TCP", "198.51.100.2", 443)
    info, _ = parseHeader(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n")  # type: ignore[misc]
    assert info.source == IPv6Address("TCP", "2001:db8::1", 1)
    assert info.destination.port == 65535
    info, n = parseHeader(b"PROXY UNKNOWN whatever\r\nx")  # type: ignore[misc]
    assert (info.source, info.destination, n) == (None, None, 24)


def test_v2_inet_inet6_unix_local_and_tlvs_skipped() -> None:
    header = v2_inet("203.0.113.7", "127.0.0.1", 40000, 8000, tlvs=b"\x04\x00\x01\x00")
    info, n = parseHeader(header + b"data")  # type: ignore[misc]
    assert n == len(header)
    assert info.source == IPv4Address("TCP", "203.0.113.7", 40000)
    assert info.destination == IPv4Address("TCP", "127.0.0.1", 8000)
    body6 = socket.inet_pton(socket.AF_INET6, "2001:db8::7") + socket.inet_pton(socket.AF_INET6, "::1")
    info, _ = parseHeader(v2(1, 0x21, body6 + struct.pack("!HH", 1234, 80)))  # type: ignore[misc]
    assert info.source == IPv6Address("TCP", "2001:db8::7", 1234)
    unix_body = b"/run/client".ljust(108, b"\0") + b"/run/server".ljust(108, b"\0")
    info, _ = parseHeader(v2(1, 0x31, unix_body))  # type: ignore[misc]
    assert info.source == UNIXAddress(b"/run/client")
    info, n = parseHeader(v2(0, 0x00, b""))  # type: ignore[misc]
    assert (info.source, n) == (None, 16)  # LOCAL (health checks): keep the real addresses
    info, _ = parseHeader(v2(1, 0x00, b""))  # type: ignore[misc]
    assert info.source is None  # UNSPEC


@pytest.mark.parametrize(
    "header",
    [V1_TCP4, b"PROXY UNKNOWN\r\n", v2_inet("10.0.0.1", "10.0.0.2", 1, 2), v2(0, 0, b"")],
    ids=["v1", "v1-unknown", "v2", "v2-local"],
)
def test_every_prefix_asks_for_more(header: bytes) -> None:
    for i in range(1, len(header)):
        assert parseHeader(header[:i]) is None, i
    assert parseHeader(header) is not None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"GET / HTTP/1.1\r\n", "did not start with a PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "7 fields"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "unknown v1 protocol"),
        (b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n", "bad source address"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not IPv4"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "bad source port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "bad destination port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "bad source port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF, not CRLF"),
        (b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n", "not ASCII"),
        (b"PROXY " + b"x" * 101, "no CRLF within 107 bytes"),
        (v2(1, 0x11, b"", version=1), "unsupported v2 version"),
        (v2(2, 0x11, b"\0" * 12), "unknown v2 command"),
        (v2(1, 0x12, b"\0" * 12), "datagram"),
        (v2(1, 0x11, b"\0" * 8), "too short"),
        (v2(1, 0x41, b"\0" * 12), "unknown v2 address family"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "over the 4096-byte limit"),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(InvalidProxyHeader, match=why.replace("+", r"\+")):
        parseHeader(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_arbitrary_bytes_parse_or_raise_invalid_header_only(data: bytes) -> None:
    for candidate in (data, b"PROXY " + data, V2_SIGNATURE + data):
        try:
            result = parseHeader(candidate)
        except InvalidProxyHeader:
            continue
        if result is not None:
            assert 0 < result[1] <= len(candidate)


# --- the wrapping factory on real sockets ------------------------------------------------------


class Reporter(Protocol):
    """Writes back what the transport says about the two ends, then echoes."""

    def connectionMade(self) -> None:
        peer, host = self.transport.getPeer(), self.transport.getHost()
        self.transport.write(f"{peer.host} {peer.port} {host.host} {host.port}\n".encode())

    def dataReceived(self, data: bytes) -> None:
        self.factory.received += data
        self.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.lost.append(self)


class ReporterFactory(Factory):
    protocol = Reporter

    def __init__(self) -> None:
        self.addresses: list[Any] = []
        self.lost: list[Reporter] = []
        self.built: list[Reporter] = []
        self.received = b""

    def buildProtocol(self, addr: Any) -> Any:
        self.addresses.append(addr)
        p = Factory.buildProtocol(self, addr)
        self.built.append(p)
        return p


@pytest.fixture
def served(reactor: Any) -> Iterator[tuple[Any, ReporterFactory, int]]:
    factory = ReporterFactory()
    wrapper = ProxyProtocolFactory(factory, timeout=5)
    port = reactor.listenTCP(0, wrapper, interface="127.0.0.1")
    yield reactor, factory, port.getHost().port
    run_until(reactor, port.stopListening())


def finish(reactor: Any, factory: ReporterFactory, count: int) -> None:
    run_until_true(reactor, lambda: len(factory.lost) >= count)


def test_original_client_address_from_a_header_split_byte_by_byte(served: Any) -> None:
    reactor, factory, port = served
    header = v2_inet("203.0.113.9", "192.0.2.80", 51515, 443)
    with connect(port) as c:
        for i in range(len(header)):
            c.send(header[i : i + 1])
            reactor.iterate(0)
        c.sendall(b"payload")
        run_until_true(reactor, lambda: factory.received == b"payload")
        proto = factory.built[0]
        assert factory.addresses == [IPv4Address("TCP", "203.0.113.9", 51515)]
        # The real protocol is the transport's own: nothing sits between them afterwards.
        assert proto.transport.protocol is proto
        run_until_true(reactor, lambda: proto.transport.get_write_buffer_size() == 0)
        assert recv_line(c) == b"203.0.113.9 51515 192.0.2.80 443\n"
        assert recv_exactly(c, 7) == b"payload"
    finish(reactor, factory, 1)


def test_v1_header_and_data_in_one_packet(served: Any) -> None:
    reactor, factory, port = served
    with connect(port) as c:
        c.sendall(V1_TCP4 + b"hello")
        run_until_true(reactor, lambda: factory.received == b"hello")
        assert recv_line(c) == b"192.0.2.1 56324 198.51.100.2 443\n"
        assert recv_exactly(c, 5) == b"hello"
    finish(reactor, factory, 1)


def test_local_header_keeps_the_real_addresses(served: Any) -> None:
    reactor, factory, port = served
    with connect(port) as c:
        c.sendall(v2(0, 0, b""))
        run_until_true(reactor, lambda: factory.built)
        me = c.getsockname()
        assert recv_line(c) == f"127.0.0.1 {me[1]} 127.0.0.1 {port}\n".encode()
    finish(reactor, factory, 1)


@pytest.mark.parametrize(
    ("data", "logged"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", "did not start with a PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.4 nope 1 2\r\n", "bad destination address"),
        (b"PROXY " + b"9" * 200, "no CRLF within 107 bytes"),
        (V2_SIGNATURE + b"\x21\x11\x40\x00" + b"\0" * 100, "over the 4096-byte limit"),
    ],
    ids=["missing", "malformed-v1", "unbounded-v1", "oversized-v2"],
)
def test_bad_header_closes_the_connection_with_one_log_line(
    served: Any, caplog: pytest.LogCaptureFixture, data: bytes, logged: str
) -> None:
    reactor, factory, port = served
    caplog.set_level(logging.DEBUG, logger="framework.proxyprotocol")
    with connect(port) as c:
        c.sendall(data)
        closed: list[bytes] = []

        def gone() -> bool:
            reactor.iterate(0)
            try:
                c.setblocking(False)
                chunk = c.recv(100)
            except BlockingIOError:
                return False
            except ConnectionResetError:
                chunk = b""
            closed.append(chunk)
            return chunk == b""

        run_until_true(reactor, gone)
    records = [r for r in caplog.records if r.name == "framework.proxyprotocol"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert logged in records[0].getMessage() and "127.0.0.1:" in records[0].getMessage()
    assert factory.built == []  # the application never saw it


def test_no_header_within_the_timeout_closes(reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    factory = ReporterFactory()
    port = reactor.listenTCP(0, ProxyProtocolFactory(factory, timeout=0.05), interface="127.0.0.1")
    try:
        with connect(port.getHost().port) as c:
            c.sendall(b"PROXY TCP4")
            run_until_true(reactor, lambda: any("within 0.05 s" in r.getMessage() for r in caplog.records))
    finally:
        run_until(reactor, port.stopListening())
    assert factory.built == []


def test_a_connection_that_sends_nothing_is_not_an_error(served: Any, caplog: pytest.LogCaptureFixture) -> None:
    reactor, factory, port = served
    caplog.set_level(logging.DEBUG, logger="framework.proxyprotocol")
    connect(port).close()
    run_until_true(reactor, lambda: any("before sending anything" in r.getMessage() for r in caplog.records))
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "framework.proxyprotocol")


def test_never_trusted_unless_enabled(reactor: Any) -> None:
    factory = ReporterFactory()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        with connect(port.getHost().port) as c:
            c.sendall(V1_TCP4)
            run_until_true(reactor, lambda: factory.received == V1_TCP4)
            assert recv_line(c).startswith(b"127.0.0.1 ")
            assert recv_exactly(c, len(V1_TCP4)) == V1_TCP4  # just data
    finally:
        run_until(reactor, port.stopListening())
    run_until_true(reactor, lambda: factory.lost)


def test_haproxy_endpoint_string_wraps_the_listener(reactor: Any) -> None:
    endpoint = endpoints.serverFromString(reactor, "haproxy:tcp:0:interface=127.0.0.1")
    factory = ReporterFactory()
    port = run_until(reactor, endpoint.listen(factory))
    try:
        assert isinstance(port.factory, ProxyProtocolFactory)
        with connect(port.getHost().port) as c:
            c.sendall(V1_TCP4)
            run_until_true(reactor, lambda: factory.built)
            assert recv_line(c).startswith(b"192.0.2.1 56324 ")
    finally:
        run_until(reactor, port.stopListening())
    run_until_true(reactor, lambda: factory.lost)
    assert repr(proxyEndpoint(endpoint)).startswith("proxyEndpoint(")
    with pytest.raises(ValueError, match="needs an endpoint to wrap"):
        endpoints.serverFromString(reactor, "haproxy")


# --- reactor-serve --proxy-protocol ------------------------------------------------------------


def test_reactor_serve_proxy_protocol(serve: Callable[..., Proc]) -> None:
    p = serve("--protocol", "echo", "--port", "0", "--proxy-protocol")
    port = p.port()
    with connect(port) as c:
        c.sendall(v2_inet("198.51.100.7", "127.0.0.1", 4242, port) + b"echoed")
        assert recv_exactly(c, 6) == b"echoed"  # the header is not data
    with connect(port) as c:
        c.sendall(b"no header here\n")
        with pytest.raises(ConnectionResetError):  # aborted: a reset, not a clean end
            c.recv(100)
    line = p.wait_stderr(r"framework.proxyprotocol")[0]
    assert "did not start with a PROXY protocol header" in line
    p.signal(signal.SIGTERM)
    assert p.finish() == 0
    assert len([x for x in p.stderr.splitlines() if "proxyprotocol" in x]) == 1


# --- a real HAProxy in front of two reactor-serve instances ------------------------------------

HAPROXY = shutil.which("haproxy") or next(
    (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(p)), None
)

# A test-only protocol plugin: says which instance answered and what getPeer()/getHost() are,
# then echoes. Registered in code, then the real reactor-serve main() runs.
WHOAMI = '''
import os, sys
from framework import hookimpl, plugins
from framework.cli import main
from framework.protocol import Factory, Protocol

NAME = os.environ["INSTANCE"]

class WhoAmI(Protocol):
    def connectionMade(self):
        peer, host = self.transport.getPeer(), self.transport.getHost()
        self.transport.write(f"{NAME} {peer.host} {peer.port} {host.port}\\n".encode())

    def dataReceived(self, data):
        self.transport.write(data)

@hookimpl
def register_protocols(registry):
    registry.add("whoami", Factory.forProtocol(WhoAmI), description="test: reports getPeer()")

plugins.register(sys.modules[__name__], "whoami-test")
sys.exit(main())
'''

HAPROXY_CFG = """\
global
    stats socket {stats} level admin
    maxconn 256

defaults
    mode tcp
    timeout connect 2s
    timeout client 20s
    timeout server 20s
    timeout check 5s
    retries 3
    option redispatch 1

frontend front
    bind fd@{fd}
    default_backend reactors

backend reactors
    balance roundrobin
    option tcp-check
    tcp-check expect rstring ^s[12]\\ 127\\.0\\.0\\.1\\ 
{servers}
"""
SERVER_LINE = "    server {name} 127.0.0.1:{port} send-proxy-v2 check check-send-proxy inter 100ms fall 2 rise 1\n"


def _stats(path: str) -> dict[str, dict[str, str]]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
    return {row["svname"]: row for row in rows if row.get("pxname") == "reactors"}


def _wait_for(predicate: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.02)  # polling HAProxy's state: there is no event to wait on


@pytest.fixture
def haproxy_setup(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if HAPROXY is None:
        pytest.skip("haproxy not found: install the Debian package 'haproxy' (.ci/run does) to run this test")
    script = tmp_path / "whoami_serve.py"
    script.write_text(WHOAMI)
    started: list[Proc] = []
    front = socket.socket()
    rundir = tempfile.mkdtemp(prefix="rf-haproxy-")  # short path for the stats socket
    try:
        instances = {}
        for name in ("s1", "s2"):
            env = dict(os.environ, INSTANCE=name)
            p = Proc([sys.executable, str(script), "--protocol", "whoami", "--port", "0",
                      "--proxy-protocol", "--grace", "10"], env=env)
            started.append(p)
            instances[name] = p
        front.bind(("127.0.0.1", 0))
        front.listen(64)
        stats = os.path.join(rundir, "stats.sock")
        servers = "".join(SERVER_LINE.format(name=n, port=p.port()) for n, p in instances.items())
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(stats=stats, fd=front.fileno(), servers=servers))
        check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30,
                               pass_fds=[front.fileno()])
        assert check.returncode == 0, check.stdout + check.stderr
        ha = Proc([HAPROXY, "-db", "-f", str(cfg)], pass_fds=[front.fileno()], startup=False)
        started.append(ha)
        yield {"front": front.getsockname()[1], "instances": instances, "stats": stats, "haproxy": ha}
    finally:
        front.close()
        for p in started:
            p.close()
        shutil.rmtree(rundir, ignore_errors=True)


def _whoami(c: socket.socket) -> tuple[str, str, int, int]:
    name, host, port, host_port = recv_line(c).decode().split()
    return name, host, int(port), int(host_port)


def test_behind_haproxy_send_proxy_v2(haproxy_setup: dict[str, Any]) -> None:
    front, instances, stats = haproxy_setup["front"], haproxy_setup["instances"], haproxy_setup["stats"]

    # HAProxy's health checks (PROXY v2 LOCAL, then our greeting) pass for both instances.
    def both_up() -> bool:
        rows = _stats(stats)
        return all(rows[n]["status"] == "UP" and rows[n]["check_status"] == "L7OK" for n in ("s1", "s2"))

    _wait_for(both_up, "HAProxy health checks did not pass")

    # getPeer() is the original client (this socket's own port); getHost() the frontend address.
    seen = set()
    for _ in range(4):
        with connect(front) as c:
            name, host, port, host_port = _whoami(c)
            assert (host, port, host_port) == ("127.0.0.1", c.getsockname()[1], front)
            seen.add(name)
    assert seen == {"s1", "s2"}

    # Drain one instance with SIGTERM while a transfer through HAProxy is in flight.
    c = connect(front)
    name, _, port, _ = _whoami(c)
    other = "s2" if name == "s1" else "s1"
    block = bytes(range(256)) * 256  # 64 KiB
    c.sendall(block)
    assert recv_exactly(c, len(block)) == block
    draining = instances[name]
    draining.signal(signal.SIGTERM)
    draining.wait_stderr(r"stopped listening; waiting up to 10 s for \d+ open connection")
    for i in range(16):  # another MiB through the draining instance: not a byte lost
        chunk = bytes([i]) * 65536
        c.sendall(chunk)
        assert recv_exactly(c, len(chunk)) == chunk
    # Meanwhile new clients are all served by the other instance.
    for _ in range(3):
        with connect(front) as n:
            assert _whoami(n)[0] == other
    c.close()
    assert draining.finish() == 0
    assert "aborting" not in draining.stderr
    instances[other].signal(signal.SIGTERM)
    assert instances[other].finish() == 0
    for p in instances.values():  # health checks and clients: no PROXY header complaint
        assert "framework.proxyprotocol" not in p.stderr, p.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers needs Linux")
def test_proxy_header_then_tls_in_workers(tmp_path: Path, serve: Callable[..., Proc]) -> None:
    """HAProxy in ``mode tcp`` sends the PROXY header in clear, then the client's TLS bytes."""
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    p = serve("--protocol", "echo", "--port", "0", "--proxy-protocol", "--workers", "2",
              "--tls-cert", str(cert_file), "--tls-key", str(key_file))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    for _ in range(3):
        raw = connect(p.port())
        raw.sendall(V1_TCP4)
        with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"secret")
            assert recv_exactly(tls, 6) == b"secret"
    p.signal(signal.SIGTERM)
    assert p.finish() == 0
    assert "framework.proxyprotocol" not in p.stderr
