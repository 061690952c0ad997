"""Adopting listening sockets: ``reactor.adoptStreamPort`` and systemd's ``LISTEN_FDS``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from framework import endpoints, systemd
from framework.defer import Deferred
from framework.protocol import Factory, Protocol
from serve_util import SERVE, Proc, connect, recv_exactly
from util import run_until


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)
        self.factory.got.callback(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.lost.callback(None)


def echo_factory() -> Factory:
    f = Factory.forProtocol(Echo)
    f.got = Deferred()  # type: ignore[attr-defined]
    f.lost = Deferred()  # type: ignore[attr-defined]
    return f


def listening(family: int, tmp_path: Path) -> tuple[socket.socket, Any]:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        address: Any = str(tmp_path / "s.sock")
    else:
        address = ("::1" if family == socket.AF_INET6 else "127.0.0.1", 0)
    sock.bind(address)
    sock.listen()
    return sock, sock.getsockname()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6, socket.AF_UNIX], ids=["inet", "inet6", "unix"])
def test_adopt_stream_port_serves_an_existing_socket(reactor: Any, family: int, tmp_path: Path) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    sock, address = listening(family, tmp_path)
    # A client connected before anyone accepts: its connection waits in the backlog.
    client = socket.socket(family, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(address)
    client.sendall(b"queued")
    factory = echo_factory()
    port = reactor.adoptStreamPort(sock.fileno(), family, factory)
    try:
        host = port.getHost()
        if family == socket.AF_UNIX:
            assert host.name in (address, address.encode())
        else:
            assert (host.host, host.port) == address[:2]
        assert run_until(reactor, factory.got) == b"queued"
        assert recv_exactly(client, 6) == b"queued"
    finally:
        client.close()
        run_until(reactor, port.stopListening())
    run_until(reactor, factory.lost)
    # The descriptor was duplicated: ours is still open and still listening.
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    sock.close()
    if family == socket.AF_UNIX:
        assert os.path.exists(address)  # an adopted UNIX socket's file is not ours to remove


def test_adopt_refuses_what_is_not_a_listening_socket_of_that_family(reactor: Any, tmp_path: Path) -> None:
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    with pytest.raises(ValueError, match="not listening"):
        reactor.adoptStreamPort(bound.fileno(), socket.AF_INET, Factory.forProtocol(Protocol))
    bound.listen()
    with pytest.raises(ValueError, match="AF_INET socket, not AF_INET6"):
        reactor.adoptStreamPort(bound.fileno(), socket.AF_INET6, Factory.forProtocol(Protocol))
    bound.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(ValueError, match="not a stream socket"):
        reactor.adoptStreamPort(udp.fileno(), socket.AF_INET, Factory.forProtocol(Protocol))
    udp.close()
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError, match="not a socket"):
            reactor.adoptStreamPort(r, socket.AF_INET, Factory.forProtocol(Protocol))
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ValueError, match="address family"):
        reactor.adoptStreamPort(0, 12345, Factory.forProtocol(Protocol))


def test_listen_fds_follows_the_systemd_protocol() -> None:
    me = str(os.getpid())
    env = {"LISTEN_PID": me, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:admin", "OTHER": "x"}
    assert systemd.listen_fds(env) == [(3, "web"), (4, "admin")]
    assert env == {"OTHER": "x"}  # unset, so children do not take them for theirs
    env = {"LISTEN_PID": me, "LISTEN_FDS": "1"}
    assert systemd.listen_fds(env, unset_environment=False) == [(3, "unknown")]
    assert "LISTEN_FDS" in env
    assert systemd.listen_fds({"LISTEN_PID": "1", "LISTEN_FDS": "1"}) == []  # for another process
    assert systemd.listen_fds({}) == []
    with pytest.raises(ValueError, match="LISTEN_FDS"):
        systemd.listen_fds({"LISTEN_PID": me, "LISTEN_FDS": "two"})
    with pytest.raises(ValueError, match="LISTEN_PID"):
        systemd.listen_fds({"LISTEN_PID": "me", "LISTEN_FDS": "1"})


def test_systemd_endpoint_string() -> None:
    e = endpoints.serverFromString(None, "systemd:domain=INET6:index=1")
    assert isinstance(e, systemd.AdoptedStreamServerEndpoint)
    assert (e.fileDescriptor, e.addressFamily) == (4, socket.AF_INET6)
    with pytest.raises(ValueError, match="domain"):
        endpoints.serverFromString(None, "systemd:domain=IPX:index=0")
    with pytest.raises(ValueError, match="index"):
        endpoints.serverFromString(None, "systemd:domain=INET")


# --- reactor-serve started the way systemd starts it ---------------------------------------


# Plays systemd: puts the socket at descriptor 3, sets LISTEN_PID to its own pid, then execs.
_ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def activated(sock: socket.socket, *args: str) -> Proc:
    """``reactor-serve`` started with ``sock`` the way systemd passes it."""
    fd = sock.fileno()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    return Proc([sys.executable, "-c", _ACTIVATE, str(fd), *SERVE[1:], *args], env=env, pass_fds=[fd])


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.close()


def test_reactor_serve_adopts_listen_fds_and_a_restart_drops_nothing(procs: list[Proc]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    try:
        early = connect(port)  # before the service runs: systemd's on-demand start
        early.sendall(b"early")
        first = activated(sock, "--protocol", "echo", "--port", "1")  # --port is ignored
        procs.append(first)
        assert first.addresses == [f"tcp:127.0.0.1:{port}"]
        assert recv_exactly(early, 5) == b"early"
        early.close()
        first.signal(signal.SIGTERM)
        assert first.finish() == 0
        # Between two runs the socket stays open (here, systemd would hold it): queued, not refused.
        between = connect(port)
        between.sendall(b"between")
        second = activated(sock, "--protocol", "echo")
        procs.append(second)
        assert recv_exactly(between, 7) == b"between"
        between.close()
        second.signal(signal.SIGTERM)
        assert second.finish() == 0
    finally:
        sock.close()


def test_malformed_listen_fds_is_one_line() -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    code = 'import os, sys; os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="x"); ' \
           'os.execv(sys.executable, [sys.executable, *sys.argv[1:]])'
    r = subprocess.run([sys.executable, "-c", code, *SERVE[1:], "--protocol", "echo", "--port", "0"],
                       env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "reactor-serve: error: socket activation: LISTEN_FDS='x' is not a descriptor count"
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers needs Linux")
def test_workers_share_an_activated_socket(procs: list[Proc]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    try:
        sup = activated(sock, "--protocol", "echo", "--workers", "2")
        procs.append(sup)
        assert sup.addresses == [f"tcp:127.0.0.1:{port}"]
        sup.wait_stderr(r"is serving", count=2)
        for i in range(4):
            with connect(port) as c:
                c.sendall(b"w%d" % i)
                assert recv_exactly(c, 2) == b"w%d" % i
        sup.signal(signal.SIGTERM)
        assert sup.finish() == 0
        # systemd's socket (ours here) is still open and listening after the service stopped.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        sock.close()


# --- sd_notify (systemd Type=notify) -------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    yield sock, path
    sock.close()


def test_notify_sends_to_notify_socket(notify_socket: tuple[socket.socket, str], caplog: Any) -> None:
    sock, path = notify_socket
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": path}) is True
    assert sock.recv(100) == b"READY=1"
    assert systemd.notify("READY=1", {}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": path + ".missing"}) is False
    assert "cannot notify systemd" in caplog.text


def test_abstract_notify_socket() -> None:
    name = f"reactor-framework-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(15)
        assert systemd.notify("STATUS=ok", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"STATUS=ok"


def test_reactor_serve_notifies_ready(notify_socket: tuple[socket.socket, str], procs: list[Proc]) -> None:
    sock, path = notify_socket
    env = dict(os.environ, NOTIFY_SOCKET=path)
    p = Proc([*SERVE, "--protocol", "echo", "--port", "0"], env=env)
    procs.append(p)
    assert sock.recv(100) == b"READY=1"
    p.signal(signal.SIGTERM)
    assert p.finish() == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers needs Linux")
def test_supervisor_notifies_for_the_service_and_workers_do_not(
    notify_socket: tuple[socket.socket, str], procs: list[Proc]
) -> None:
    sock, path = notify_socket
    env = dict(os.environ, NOTIFY_SOCKET=path)
    sup = Proc([*SERVE, "--protocol", "echo", "--port", "0", "--workers", "2"], env=env)
    procs.append(sup)
    assert sock.recv(100) == f"READY=1\nMAINPID={sup.pid}".encode()
    sup.signal(signal.SIGHUP)
    assert sock.recv(100) == b"RELOADING=1"
    assert sock.recv(100) == b"READY=1"
    sup.wait_stderr(r"SIGHUP restart done")
    sup.signal(signal.SIGTERM)
    assert sock.recv(100) == b"STOPPING=1"
    assert sup.finish() == 0
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing from the workers, old or new
        sock.recv(100)


SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate (package systemd) not installed")
def test_started_on_demand_by_systemd_socket_activate(procs: list[Proc]) -> None:
    rundir = tempfile.mkdtemp(prefix="rf-sa-")
    path = os.path.join(rundir, "echo.sock")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
        p = Proc([str(SOCKET_ACTIVATE), "-l", path, *SERVE, "--protocol", "echo", "--port", "1"],
                 env=env, startup=False)
        procs.append(p)
        p.wait_stderr(r"Listening on .* as 3")
        assert p.out == b""  # systemd's tool waits for the first connection before starting us
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(15)
            c.connect(path)
            c.sendall(b"on demand")
            assert recv_exactly(c, 9) == b"on demand"
        assert p.wait_stdout(r"^reactor-serve: serving echo on unix:").startswith(
            f"reactor-serve: serving echo on unix:{path} (reactor "
        )
        p.signal(signal.SIGTERM)
        assert p.finish() == 0
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
