"""``reactor-serve`` as a user runs it: real subprocesses, real sockets on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

import pytest

import framework
from framework import plugins
from serve_util import SERVE, TIMEOUT, connect, env_with, recv_exactly, recv_line, run_cli

# ``serve`` (tests/conftest.py) starts ``reactor-serve`` as a ``serve_util.Proc``.


def recv_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


# --- serving ------------------------------------------------------------------------------------


def test_echo_round_trip_and_startup_line(serve: Any) -> None:
    s = serve("--protocol", "echo", "--port", "0")
    assert s.protocol == "echo"
    assert s.reactor in plugins.reactors().names()
    with connect(s.tcp_port()) as c:
        c.sendall(b"hello, reactor\n")
        assert recv_exactly(c, 15) == b"hello, reactor\n"
    s.signal(signal.SIGINT)
    assert s.finish() == 0
    assert "Traceback" not in s.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("reactor-serve")
    assert script.exists()
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"reactor-serve (reactor-framework) {framework.__version__}"


def test_python_dash_m_framework_is_the_cli() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and framework.__version__ in result.stdout


@pytest.mark.parametrize("backend", ["select", "poll"])
def test_reactor_choice(serve: Any, backend: str) -> None:
    s = serve("--protocol", "echo", "--port", "0", "--reactor", backend)
    assert s.reactor == backend
    with connect(s.tcp_port()) as c:
        c.sendall(b"x")
        assert recv_exactly(c, 1) == b"x"
    s.signal()
    assert s.finish() == 0


def test_several_listen_endpoints_tcp_and_unix(serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    s = serve("--protocol", "echo", "--listen", "tcp:0:interface=127.0.0.1", "--listen", f"unix:{path}")
    assert len(s.addresses) == 2
    assert s.addresses[1] == f"unix:{path}"
    with connect(s.tcp_port(0)) as c:
        c.sendall(b"tcp")
        assert recv_exactly(c, 3) == b"tcp"
    with socket.socket(socket.AF_UNIX) as u:
        u.settimeout(TIMEOUT)
        u.connect(str(path))
        u.sendall(b"unix")
        assert recv_exactly(u, 4) == b"unix"
    s.signal()
    assert s.finish() == 0


def test_protocol_options_reach_the_protocol(serve: Any, tmp_path: Path) -> None:
    poem = tmp_path / "poem.txt"
    poem.write_bytes(b"line one\nline two\n" * 3)
    s = serve("--protocol", "poetry", "--port", "0", "--option", "file=" + str(poem), "--option", "chunk=7",
              "--option", "delay=0")
    with connect(s.tcp_port()) as c:
        assert recv_until_closed(c) == poem.read_bytes()
    s.signal()
    assert s.finish() == 0


def test_middleware_can_be_enabled(serve: Any) -> None:
    s = serve("--protocol", "echo", "--port", "0", "--middleware", "contextvars", "--middleware", "tracing",
              "--middleware", "slow-callbacks")
    with connect(s.tcp_port()) as c:
        c.sendall(b"mw")
        assert recv_exactly(c, 2) == b"mw"
    s.signal()
    assert s.finish() == 0


# --- graceful shutdown --------------------------------------------------------------------------


def test_sigterm_stops_listening_and_lets_a_transfer_finish(serve: Any) -> None:
    poem = framework_poem()
    s = serve("--protocol", "poetry", "--port", "0", "--option", "chunk=40", "--option", "delay=0.05")
    port = s.tcp_port()
    with connect(port) as c:
        first = c.recv(40)  # the transfer is under way
        assert first
        s.signal(signal.SIGTERM)
        s.wait_stderr(r"stopped listening")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        rest = recv_until_closed(c)
    assert first + rest == poem
    assert s.finish() == 0


def framework_poem() -> bytes:
    from reactor_framework_plugins.protocols.poetry import BUILTIN_POEM

    return BUILTIN_POEM.encode()


def test_second_signal_aborts_open_connections(serve: Any) -> None:
    s = serve("--protocol", "echo", "--port", "0")
    with connect(s.tcp_port()) as c:
        c.sendall(b"ping")
        assert recv_exactly(c, 4) == b"ping"
        s.signal(signal.SIGTERM)
        s.wait_stderr(r"waiting up to 10 s for 1 open connection")
        s.signal(signal.SIGINT)
        assert recv_until_closed(c) == b""
    assert s.finish() == 0
    assert "aborting 1 open connection" in s.stderr


def test_grace_period_end_aborts_what_is_left(serve: Any) -> None:
    s = serve("--protocol", "echo", "--port", "0", "--grace", "0.2")
    with connect(s.tcp_port()) as c:
        c.sendall(b"ping")
        assert recv_exactly(c, 4) == b"ping"
        s.signal(signal.SIGTERM)
        assert recv_until_closed(c) == b""
    assert s.finish() == 0
    assert "grace period over" in s.stderr


def test_idle_timeout_closes_quiet_connections(serve: Any) -> None:
    s = serve("--protocol", "echo", "--port", "0", "--idle-timeout", "0.2")
    with connect(s.tcp_port()) as c:
        c.sendall(b"hi")
        assert recv_exactly(c, 2) == b"hi"
        assert recv_until_closed(c) == b""
    s.wait_stderr(r"idle for")
    s.signal()
    assert s.finish() == 0


def test_message_timeout_closes_a_stalled_line(serve: Any) -> None:
    s = serve("--protocol", "chat", "--port", "0", "--message-timeout", "0.2")
    with connect(s.tcp_port()) as c:
        assert recv_line(c).startswith(b"* welcome")
        c.sendall(b"/who\n")
        assert recv_line(c).startswith(b"* here:")
        c.sendall(b"an unfinished li")
        assert recv_until_closed(c) == b""
    s.wait_stderr(r"message incomplete")
    s.signal()
    assert s.finish() == 0


def test_max_connections_holds_newcomers_until_one_leaves(serve: Any) -> None:
    s = serve("--protocol", "chat", "--port", "0", "--max-connections", "1")
    port = s.tcp_port()
    with connect(port) as a:
        assert recv_line(a).startswith(b"* welcome, you are guest1")
        with connect(port) as b:  # completes in the kernel backlog, not accepted yet
            b.sendall(b"/who\n")
            a.sendall(b"/who\n")
            assert recv_line(a) == b"* here: guest1\r\n"
            a.sendall(b"/quit\n")
            assert recv_line(a) == b"* bye\r\n"
            assert recv_until_closed(a) == b""
            assert recv_line(b).startswith(b"* welcome, you are guest2")
            assert recv_line(b) == b"* here: guest2\r\n"
    s.signal()
    assert s.finish() == 0


# --- --list, --help-options ---------------------------------------------------------------------


def test_list_shows_every_kind_of_plugin() -> None:
    result = run_cli("--list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    version = framework.__version__
    for name in ("echo", "discard", "chargen", "daytime", "time", "qotd", "poetry", "chat"):
        assert re.search(rf"^  {name}\s.*\[reactor-framework {re.escape(version)}\]$", out, re.M), name
    for name in ("contextvars", "slow-callbacks", "tracing"):
        assert re.search(rf"^  {name}\s.*\[reactor-framework {re.escape(version)}\]$", out, re.M), name
    assert "Reactors (--reactor NAME):" in out
    assert re.search(r"^  (epoll|poll|select)\s.*\(available", out, re.M)
    assert "default" in out
    assert result.stderr == ""


def test_help_options_lists_declared_options() -> None:
    result = run_cli("--protocol", "poetry", "--help-options")
    assert result.returncode == 0, result.stderr
    for name in ("file=", "chunk=INT", "delay=FLOAT"):
        assert name in result.stdout
    result = run_cli("--protocol", "echo", "--help-options")
    assert result.returncode == 0 and "takes no options" in result.stdout


# --- bad input: one line on stderr, a non-zero status, no traceback -----------------------------


def unavailable_backend_env(tmp_path: Path) -> dict[str, str]:
    """An environment where a plugin registers a reactor backend that is never available."""
    site = tmp_path / "site"
    (site / "never_backend-1.0.dist-info").mkdir(parents=True, exist_ok=True)
    (site / "never_backend-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: never-backend\nVersion: 1.0\n"
    )
    (site / "never_backend-1.0.dist-info" / "entry_points.txt").write_text(
        "[reactor_framework]\nnever = never_backend\n"
    )
    (site / "never_backend.py").write_text(
        textwrap.dedent(
            """
            from framework import hookimpl

            @hookimpl
            def register_reactors(registry):
                registry.add("never", object, description="never here",
                             available=lambda: False, priority=-100)
            """
        )
    )
    return env_with(site)


def busy_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


BAD_USAGE: list[tuple[Sequence[str], str]] = [
    (["--protocol", "ech"], "echo"),
    (["--protocol", "echo", "--reactor", "epol"], "epoll"),
    (["--protocol", "echo", "--middleware", "tracin"], "tracing"),
    (["--protocol", "echo", "--option", "bogus=1"], "bogus"),
    (["--protocol", "echo", "--option", "novalue"], "KEY=VALUE"),
    (["--protocol", "poetry", "--option", "chunk=lots"], "chunk"),
    (["--protocol", "poetry", "--option", "file=/nonexistent/poem.txt"], "poem.txt"),
    (["--protocol", "echo", "--port", "70000"], "port"),
    (["--protocol", "echo", "--grace", "-1"], "grace"),
    (["--protocol", "echo", "--max-connections", "0"], "max-connections"),
    (["--protocol", "echo", "--idle-timeout", "soon"], "idle-timeout"),
    (["--protocol", "echo", "--listen", "carrier-pigeon:8000"], "carrier-pigeon"),
    (["--protocol", "echo", "--log-level", "loud"], "log-level"),
    (["--protocol", "echo", "--interface", "999.1.1.1"], "999.1.1.1"),
    (["--protocol", "echo", "--interface", "some.host.name"], "IPv4 or IPv6"),
    (["--port", "0"], "--protocol"),
    (["--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize(("args", "mentions"), BAD_USAGE, ids=[" ".join(a) for a, _ in BAD_USAGE])
def test_usage_errors(args: Sequence[str], mentions: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert_one_error_line(result.stderr, mentions)
    assert result.stdout == ""


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one process", "workers"])
def test_port_in_use_is_a_runtime_error_with_a_hint(workers: list[str]) -> None:
    with busy_port() as taken:
        result = run_cli("--protocol", "echo", "--port", str(taken.getsockname()[1]), *workers)
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "in use")
    assert "Hint: another process is listening there" in result.stderr
    assert "--port 0" in result.stderr


def _without_privileged_ports() -> list[str]:
    """A command prefix that runs the CLI unable to bind ports below 1024, root or not."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs util-linux's setpriv to drop CAP_NET_BIND_SERVICE"
    return [setpriv, "--bounding-set=-net_bind_service", "--inh-caps=-net_bind_service"]


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one process", "workers"])
def test_privileged_port_says_why_and_what_to_do(workers: list[str]) -> None:
    result = subprocess.run(
        [*_without_privileged_ports(), *SERVE, "--protocol", "echo", "--port", "1", *workers],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, result
    assert_one_error_line(result.stderr, "Permission denied")
    assert "Hint: ports below 1024 need root or CAP_NET_BIND_SERVICE; try --port 8000" in result.stderr


def test_unavailable_backend_is_a_runtime_error(tmp_path: Path) -> None:
    result = run_cli("--protocol", "echo", "--port", "0", "--reactor", "never", env=unavailable_backend_env(tmp_path))
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "never")
    listing = run_cli("--list", env=unavailable_backend_env(tmp_path))
    assert re.search(r"^  never\s.*unavailable.*\[never-backend 1\.0\]$", listing.stdout, re.M)


def test_debug_log_level_shows_the_traceback() -> None:
    result = run_cli("--protocol", "ech", "--log-level", "debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("reactor-serve: error:")


def assert_one_error_line(stderr: str, mentions: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("reactor-serve: error: "), stderr
    assert mentions in lines[0], stderr
    assert "Traceback" not in stderr


def test_port_listeners_use_the_kernel_maximum_backlog() -> None:
    """A burst of clients must not sit in SYN retries behind listenTCP's default of 50."""
    import socket as _socket

    from framework import serving
    from framework.endpoints import split_description

    for interface in ("127.0.0.1", "::1"):
        _args, options = split_description(serving.tcp_description(8007, interface))
        assert int(options["backlog"]) == _socket.SOMAXCONN > 50
        assert options["interface"] == interface


# --- SIGHUP and --log-format json ----------------------------------------------------------------


def test_sighup_stops_gracefully_never_an_instant_kill(serve: Any) -> None:
    s = serve("--protocol", "echo", "--port", "0")
    with connect(s.tcp_port()) as c:
        c.sendall(b"ping")
        assert recv_exactly(c, 4) == b"ping"
        s.signal(signal.SIGHUP)
        s.wait_stderr(r"SIGHUP")
        c.sendall(b"still here")  # the open connection is still served during the drain
        assert recv_exactly(c, 10) == b"still here"
    assert s.finish() == 0


def test_log_format_json_writes_one_object_per_record(serve: Any) -> None:
    import json

    s = serve("--protocol", "echo", "--port", "0", "--log-format", "json")
    s.signal(signal.SIGTERM)
    assert s.finish() == 0
    records = [json.loads(line) for line in s.stderr.splitlines() if line.strip()]
    assert records, s.stderr
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any("SIGTERM" in r["message"] for r in records)


def test_log_format_is_checked() -> None:
    out = run_cli("--protocol", "echo", "--port", "0", "--log-format", "xml")
    assert out.returncode == 2 and "--log-format" in out.stderr and "Traceback" not in out.stderr
