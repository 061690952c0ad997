"""Fault suite, issue 17 item 1: limits and timeouts hold from accept, whatever layers a
connection passes first (a PROXY header, a TLS handshake).

Silent clients that never send their header or handshake used to be accepted without limit and
kept for the layers' fixed 10 s / 60 s; now ``--max-connections`` counts them, ``--idle-timeout``
closes them, and ``--handshake-timeout`` bounds the header/handshake. Per-peer limits use the
PROXY header's source address, not the balancer's. Real sockets on 127.0.0.1; the tests wait
on events (a closed socket, a log line) with timeouts, and count the server's sockets in
``/proc/<pid>/fd`` while they wait.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time
from typing import Any, Iterator

import pytest

from serve_util import SERVE, Proc

pytestmark = [pytest.mark.timeout(90), pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                          reason="counts descriptors in /proc")]


@pytest.fixture(scope="module")
def cert_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("certs") / "server.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def server() -> Iterator[Any]:
    procs: list[Proc] = []

    def start(*args: str) -> Proc:
        p = Proc([*SERVE, "--protocol", "echo", "--port", "0", *args])
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.close()


def _sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds open."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:  # closed meanwhile
            pass
    return count


def _wait_closed(clients: list[socket.socket], pid: int, timeout: float) -> tuple[int, float]:
    """Wait until the server closed every client (EOF or reset); returns the most sockets the
    server held meanwhile (sampled between events) and the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    peak = _sockets(pid)
    left = len(clients)
    with selectors.DefaultSelector() as sel:
        for c in clients:
            sel.register(c, selectors.EVENT_READ)
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{left} of {len(clients)} silent clients still open after {timeout} s")
            for key, _ in sel.select(min(0.05, remaining)):
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    left -= 1
            peak = max(peak, _sockets(pid))
    return peak, time.monotonic() - start


@pytest.mark.parametrize("layer", ["proxy", "tls"])
def test_1_silent_clients_in_the_header_or_handshake_are_counted_and_timed(
    server: Any, cert_file: str, layer: str,
) -> None:
    args = ["--proxy-protocol"] if layer == "proxy" else ["--tls-cert", cert_file]
    p = server("--max-connections", "20", "--idle-timeout", "2", *args)
    baseline = _sockets(p.pid)  # the listener (and nothing else yet)
    clients = [socket.create_connection(("127.0.0.1", p.tcp_port()), timeout=10) for _ in range(60)]
    try:
        peak, took = _wait_closed(clients, p.pid, timeout=40)
    finally:
        for c in clients:
            c.close()
    # At most 20 accepted at a time (the rest waited in the backlog), each closed when idle.
    assert peak - baseline <= 20, (peak, baseline)
    assert took >= 2 * 2 - 0.5  # three rounds of 20: at least two idle periods passed
    assert p.poll_stderr("idle for")


@pytest.mark.parametrize("layer", ["proxy", "tls"])
def test_1_the_handshake_timeout_closes_a_silent_client(server: Any, cert_file: str, layer: str) -> None:
    args = ["--proxy-protocol"] if layer == "proxy" else ["--tls-cert", cert_file]
    p = server("--handshake-timeout", "0.5", *args)
    with socket.create_connection(("127.0.0.1", p.tcp_port()), timeout=10) as silent:
        _peak, took = _wait_closed([silent], p.pid, timeout=10)
    assert took < 5
    p.wait_stderr("PROXY header or TLS handshake not complete after 0.5 s")


def test_1_a_trickling_proxy_header_cannot_outlive_the_handshake_timeout(server: Any) -> None:
    p = server("--proxy-protocol", "--handshake-timeout", "1", "--idle-timeout", "30")
    with socket.create_connection(("127.0.0.1", p.tcp_port()), timeout=10) as slow:
        slow.setblocking(False)
        start = time.monotonic()
        closed = False
        with selectors.DefaultSelector() as sel:
            sel.register(slow, selectors.EVENT_READ)
            for byte in b"PROXY TCP4 192.0.2.1 ":  # one byte every 0.2 s: never idle
                if sel.select(0.2):
                    closed = True
                    break
                try:
                    slow.send(bytes([byte]))
                except (ConnectionResetError, BrokenPipeError):  # closed between select and send
                    closed = True
                    break
            if not closed:
                assert sel.select(10), "the server did not close the trickling client"
    assert time.monotonic() - start < 6
    p.wait_stderr("handshake not complete after 1 s")


def _proxied(port: int, source: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"PROXY TCP4 {source} 127.0.0.1 40000 {port}\r\n".encode())
    return s


def _echoes(s: socket.socket) -> bool:
    try:
        s.sendall(b"ping")
        return s.recv(4) == b"ping"
    except OSError:
        return False


def test_1_per_peer_limits_use_the_proxy_source_address(server: Any) -> None:
    p = server("--proxy-protocol", "--max-connections-per-peer", "1")
    port = p.tcp_port()
    first, other = _proxied(port, "192.0.2.1"), _proxied(port, "192.0.2.2")
    try:
        # Both come from the balancer's address (127.0.0.1), yet both are served: the peer is
        # the header's source.
        assert _echoes(first) and _echoes(other)
        again = _proxied(port, "192.0.2.1")
        try:
            assert again.recv(10) == b""  # refused: 192.0.2.1 already has one open
        except ConnectionResetError:
            pass
        finally:
            again.close()
        p.wait_stderr("refusing a connection from 192.0.2.1")
        assert _echoes(first)
    finally:
        first.close()
        other.close()


@pytest.mark.parametrize("layer", ["proxy", "tls"])
def test_1_the_message_deadline_still_sees_the_plaintext_under_layers(
    server: Any, cert_file: str, layer: str,
) -> None:
    """The policy sits outside the layers, yet the message deadline (slowloris) counts the
    application's lines, not the encrypted records or the header."""
    import ssl

    args = ["--proxy-protocol"] if layer == "proxy" else ["--tls-cert", cert_file]
    p = Proc([*SERVE, "--protocol", "chat", "--port", "0", "--message-timeout", "1", *args])
    try:
        raw = socket.create_connection(("127.0.0.1", p.tcp_port()), timeout=10)
        if layer == "proxy":
            raw.sendall(f"PROXY TCP4 192.0.2.9 127.0.0.1 40000 {p.tcp_port()}\r\n".encode())
            conn: Any = raw
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = ctx.wrap_socket(raw, server_hostname="localhost")
        with conn:
            assert conn.recv(4096)  # the welcome: the application is connected
            conn.settimeout(0.25)
            start = time.monotonic()
            closed = False
            while time.monotonic() - start < 10:
                try:
                    conn.sendall(b"a")  # a line that never ends, one byte at a time
                    if conn.recv(4096) == b"":
                        closed = True
                        break
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                except OSError:
                    closed = True
                    break
            assert closed and time.monotonic() - start < 6
        p.wait_stderr("message incomplete after 1.0 s")
    finally:
        p.close()


def test_1_clients_beyond_the_limit_wait_in_the_backlog_and_are_served(server: Any) -> None:
    """At the limit, newcomers that send their header wait in the backlog, then are served
    once a slot frees: they are not accepted and closed."""
    p = server("--proxy-protocol", "--max-connections", "2")
    port = p.tcp_port()
    # All three connect before any sends its header (the case that used to be accepted, then
    # refused once the header arrived).
    first, second, third = (socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3))
    for s, source in ((first, "192.0.2.1"), (second, "192.0.2.2"), (third, "192.0.2.3")):
        s.sendall(f"PROXY TCP4 {source} 127.0.0.1 40000 {port}\r\n".encode())
    assert _echoes(first) and _echoes(second)
    try:
        third.settimeout(0.5)
        third.sendall(b"ping")
        with pytest.raises(socket.timeout):
            third.recv(4)  # not accepted yet: it waits in the backlog (not closed)
        first.close()  # a slot frees: the third is accepted and served
        third.settimeout(10)
        assert third.recv(4) == b"ping"
        assert not p.poll_stderr("refusing")
    finally:
        for s in (first, second, third):
            s.close()
