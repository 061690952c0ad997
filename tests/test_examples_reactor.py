"""The reactor tutorial examples, run as scripts."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_read_descriptor_example() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(30)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"hello from the peer")
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    t = threading.Thread(target=serve)
    t.start()
    try:
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / "reactor_readdescriptor.py"), "127.0.0.1",
             str(server.getsockname()[1])],
            capture_output=True, text=True, timeout=60)
    finally:
        t.join(30)
        server.close()
    assert errors == []
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "received: hello from the peer"
    assert lines[-1].startswith("connection lost: Connection was closed cleanly")


def _run_read_descriptor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / "reactor_readdescriptor.py"), *args],
                          capture_output=True, text=True, timeout=60)


def test_read_descriptor_example_without_arguments_prints_usage() -> None:
    proc = _run_read_descriptor()
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: python examples/reactor_readdescriptor.py HOST PORT")
    assert "Traceback" not in proc.stderr


def test_read_descriptor_example_bad_port_and_refused_connection() -> None:
    proc = _run_read_descriptor("127.0.0.1", "http")
    assert proc.returncode == 2 and "PORT must be a number" in proc.stderr
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: a connect is refused
    try:
        proc = _run_read_descriptor("127.0.0.1", str(closed.getsockname()[1]))
    finally:
        closed.close()
    assert proc.returncode == 1
    assert proc.stderr.startswith("cannot connect to 127.0.0.1:")
    assert "Traceback" not in proc.stderr


def test_threads_example() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "reactor_threads.py"), "0.3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # Dots while the thread sleeps, then the thread's result.
    assert re.fullmatch(r"\.+\nslept 0\.3 seconds in a thread\n", proc.stdout), proc.stdout


def test_processes_example() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "processes.py")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "grep matched: the reactor waits",
        "grep matched: a reactor calls back",
        "sh said b'from stdout\\n' and b'from stderr\\n', exit code 3",
    ]
    nothing = subprocess.run([sys.executable, str(EXAMPLES / "processes.py"), "zebra"],
                             capture_output=True, text=True, timeout=60)
    assert nothing.returncode == 1 and "grep matched" not in nothing.stdout


def test_multicast_example() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "multicast.py")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for member in ("member 1", "member 2"):
        assert [line for line in lines if line.startswith(member)] == [
            f"{member} got {word} from 127.0.0.1" for word in ("one", "two", "three")]
