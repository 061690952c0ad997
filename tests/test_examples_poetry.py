"""The tutorial's poetry examples, run as real subprocesses on 127.0.0.1."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVER = EXAMPLES / "slow_poetry_server.py"
CLIENT = EXAMPLES / "poetry_client.py"

POEM = (
    "A poem for the test,\n"
    "sent ten bytes at a time;\n"
    "\u00e9l\u00e8ve, accents survive the rest,\n"
    "and so does every rhyme.\n"
) * 5


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REACTOR_FRAMEWORK_BACKEND", None)
    return env


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line of ``proc``'s stdout, waiting for it (not sleeping) up to ``timeout``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no output from {proc.args!r} within {timeout} s")
    return proc.stdout.readline()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    poem = tmp_path / "poem.txt"
    poem.write_bytes(POEM.encode("utf-8"))
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--num-bytes", "10", "--delay", "0.002",
         str(poem)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = _read_line(proc, 20)
        assert line.startswith(f"Serving {poem} on 127.0.0.1 port "), line
        port = int(line.rstrip().rstrip(".").rsplit(" ", 1)[1])
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_client_downloads_poems_from_the_slow_server(server: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = server
    result = subprocess.run(
        [sys.executable, str(CLIENT), str(port), f"127.0.0.1:{port}"],
        capture_output=True, timeout=60, env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("utf-8") == POEM * 2
    size = len(POEM.encode("utf-8"))
    assert result.stderr.decode().count(f"Poem from 127.0.0.1:{port} ({size} bytes)") == 2
    # The server stops cleanly on SIGTERM.
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_client_reports_a_closed_port_and_exits_non_zero() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        port = s.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(CLIENT), f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"Failed to connect to 127.0.0.1:{port}" in result.stderr
    assert "refused" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_server_reports_a_busy_port(server: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = server
    result = subprocess.run(
        [sys.executable, str(SERVER), "--port", str(port)],
        capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_client_rejects_a_bad_address() -> None:
    result = subprocess.run([sys.executable, str(CLIENT), "not-a-port"],
                            capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 2
    assert "not-a-port" in result.stderr
