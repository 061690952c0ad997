"""``reactor-serve --workers``: a supervisor and worker processes sharing one port."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from serve_util import Proc, connect, echo_once, recv_exactly, run_cli, wait_exited, worker_pids

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"),
    reason="--workers needs Linux SO_REUSEPORT",
)


def test_workers_share_the_port_and_ctrl_c_drains_them(serve: Any) -> None:
    sup = serve("--protocol", "echo", "--port", "0", "--workers", "2", "--grace", "10")
    assert sup.addresses[0].startswith("tcp:127.0.0.1:")
    pids = worker_pids(sup, 2)
    assert len(set(pids)) == 2 and sup.pid not in pids
    port = sup.port()
    # Each worker has its own listening socket on the port (SO_REUSEPORT), not a shared one.
    sockets = []
    for pid in pids:
        links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        sockets.append({link for link in links if link.startswith("socket:")})
    assert sockets[0] and sockets[1] and not sockets[0] & sockets[1]
    assert echo_once(port) == b"ping\n"

    busy = connect(port)
    busy.sendall(b"first ")
    assert recv_exactly(busy, 6) == b"first "
    # Ctrl-C reaches the whole foreground process group; the workers are in their own group,
    # so each gets exactly one (forwarded) signal: they drain instead of aborting.
    os.killpg(sup.pid, signal.SIGINT)
    sup.wait_stderr(r"SIGINT: draining 2 worker")
    sup.wait_stderr(r"stopped listening", count=2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    busy.sendall(b"still served")
    assert recv_exactly(busy, 12) == b"still served"
    busy.close()
    assert sup.finish() == 0
    assert "aborting" not in sup.stderr
    wait_exited(pids)


def test_a_dead_worker_is_restarted_and_its_queued_connections_are_served(serve: Any) -> None:
    sup = serve("--protocol", "echo", "--port", "0", "--workers", "2")
    pids = worker_pids(sup, 2)
    port = sup.port()
    os.kill(pids[0], signal.SIGKILL)
    # Connections made while the worker is down queue on its socket (the supervisor keeps it
    # open) and are served once the replacement starts: none is reset.
    clients = [connect(port) for _ in range(8)]
    for i, c in enumerate(clients):
        c.sendall(b"n%d" % i)
    line = sup.wait_stderr(r"worker \d \(pid %d\) was killed by SIGKILL .*restarting it in" % pids[0])[0]
    assert "WARNING" in line
    new = worker_pids(sup, 3)[2]
    assert new not in pids
    for i, c in enumerate(clients):
        assert recv_exactly(c, len(b"n%d" % i)) == b"n%d" % i
        c.close()
    sup.signal(signal.SIGTERM)
    assert sup.finish() == 0
    wait_exited([pids[1], new])


def test_workers_stopped_from_outside_are_not_restarted_and_the_supervisor_follows(serve: Any) -> None:
    sup = serve("--protocol", "echo", "--port", "0", "--workers", "2")
    pids = worker_pids(sup, 2)
    port = sup.port()
    os.kill(pids[0], signal.SIGTERM)
    sup.wait_stderr(r"worker \d \(pid %d\) exited with status 0: stopped, not restarted" % pids[0])
    # The stopped slot's socket is closed with it: no new connection waits there for a worker
    # that will not come (with it open, about half of these would hang).
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"ping\n")
            assert recv_exactly(c, 5) == b"ping\n"
    assert "restarting it" not in sup.stderr
    os.kill(pids[1], signal.SIGTERM)
    assert sup.finish() == 0
    assert "every worker has stopped" in sup.stderr
    wait_exited(pids)


def test_sighup_restarts_workers_one_by_one_without_refusing_connections(serve: Any) -> None:
    sup = serve("--protocol", "echo", "--port", "0", "--workers", "2")
    old = worker_pids(sup, 2)
    port = sup.port()
    long_lived = connect(port)
    long_lived.sendall(b"before")
    assert recv_exactly(long_lived, 6) == b"before"

    sup.signal(signal.SIGHUP)
    served = 0
    deadline = time.monotonic() + 15
    while not sup.poll_stderr(r"SIGHUP restart done"):
        assert time.monotonic() < deadline, sup.stderr
        payload = b"req %d\n" % served
        assert echo_once(port, payload) == payload  # never refused, never reset
        served += 1
    new = worker_pids(sup, 4)[2:]
    assert not set(new) & set(old)
    assert len(sup.poll_stderr(r"replaced by worker")) == 2
    # The retired worker keeps serving the connection it had until that one closes.
    long_lived.sendall(b"after")
    assert recv_exactly(long_lived, 5) == b"after"
    long_lived.close()
    wait_exited(old)
    for _ in range(4):
        assert echo_once(port) == b"ping\n"
    sup.signal(signal.SIGTERM)
    assert sup.finish() == 0


def unix_echo(path: str, payload: bytes) -> bytes:
    """Send ``payload`` to the echo server at ``path``; what came back."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(payload)
        return recv_exactly(s, len(payload))


def test_workers_share_a_unix_socket(serve: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")
    sup = serve("--protocol", "echo", "--listen", f"unix:{path}", "--workers", "2")
    assert sup.addresses == [f"unix:{path}"]
    worker_pids(sup, 2)
    for _ in range(3):
        assert unix_echo(path, b"unix") == b"unix"
    sup.signal(signal.SIGTERM)
    assert sup.finish() == 0
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    ("args", "status", "mentions"),
    [
        (["--protocol", "nope", "--workers", "2"], 2, "unknown protocol"),
        (["--protocol", "echo", "--workers", "0"], 2, "--workers"),
        (["--protocol", "echo", "--workers", "many"], 2, "'many'"),
        (["--protocol", "echo", "--workers", "2", "--option", "x=1"], 2, "x"),
        (["--protocol", "echo", "--workers", "2", "--listen", "haproxy:tcp:0:interface=127.0.0.1"], 2,
         "--proxy-protocol"),
    ],
)
def test_bad_input_is_one_line(args: list[str], status: int, mentions: str) -> None:
    r = run_cli(*args)
    assert r.returncode == status, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reactor-serve: error:") and mentions in lines[0], r.stderr


def test_workers_never_remove_a_file_that_is_not_a_socket(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("keep me")
    r = run_cli("--protocol", "echo", "--listen", f"unix:{data}", "--workers", "1")
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "not a socket" in r.stderr, r.stderr
    assert data.read_text() == "keep me"


def test_workers_take_over_a_stale_socket_file(serve: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)  # bound, never listening, then closed: what a crashed server leaves
    sup = serve("--protocol", "echo", "--listen", f"unix:{path}", "--workers", "1")
    assert unix_echo(path, b"back") == b"back"
    sup.signal(signal.SIGTERM)
    assert sup.finish() == 0


def test_busy_port_is_a_runtime_error_even_though_workers_use_reuseport() -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # would share, without the probe
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        r = run_cli("--protocol", "echo", "--port", str(port), "--workers", "2")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "in use" in r.stderr, r.stderr


def test_other_platforms_get_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from framework import supervisor
    from framework.cli import RuntimeFailure

    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(RuntimeFailure, match="--workers needs Linux"):
        supervisor.check_platform()


# A program of the user's own that registers protocols in code and runs reactor-serve's main():
# the workers are that same program run again, so they know the same protocols.
SCRIPT = '''
import sys
from framework import hookimpl, plugins
from framework.cli import main
from framework.protocol import Factory, Protocol

class Hello(Protocol):
    def connectionMade(self):
        self.transport.write(b"hello from a worker\\n")
        self.transport.loseConnection()

class Broken(Factory):
    protocol = Protocol

    def startFactory(self):
        raise RuntimeError("database unreachable")

@hookimpl
def register_protocols(registry):
    registry.add("hello", Factory.forProtocol(Hello))
    registry.add("broken", Broken)

plugins.register(sys.modules[__name__], "supervisor-test")
sys.exit(main())
'''


def test_workers_rerun_the_users_own_program(tmp_path: Path) -> None:
    script = tmp_path / "myserver.py"
    script.write_text(SCRIPT)
    sup = Proc([sys.executable, str(script), "--protocol", "hello", "--port", "0", "--workers", "2"])
    try:
        pids = worker_pids(sup, 2)
        for pid in pids:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert str(script).encode() in f.read().split(b"\0")
        for _ in range(3):
            with connect(sup.port()) as c:
                assert c.makefile("rb").readline() == b"hello from a worker\n"
        # Worker log lines say which worker wrote them.
        sup.signal(signal.SIGTERM)
        assert sup.finish() == 0
        assert sup.poll_stderr(r"\[worker [12] pid \d+\] framework\.cli: SIGTERM")
    finally:
        sup.close()


def test_a_worker_failing_at_startup_fails_the_supervisor(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "myserver.py"
    script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(script), "--protocol", "broken", "--port", "0", "--workers", "2"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if line.startswith("reactor-serve: error:")]
    assert "database unreachable" in errors[0]  # the worker's own line
    assert errors[-1].startswith("reactor-serve: error: worker ") and "before it was serving" in errors[-1]
