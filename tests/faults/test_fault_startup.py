"""Fault suite, hostile start-up input (issue 17, items 5 and 6): ``reactor-serve`` refuses
input that would make it allocate or read without bound, and every refusal is one clear line.

- 5a: a huge ``LISTEN_FDS`` is refused against the descriptor limit, not turned into a list;
- 5b: ``qotd``'s ``file=`` reads at most 64 KiB and only from a regular file;
- 5c: an exception with an empty message is reported by its type name, never ``error: X:``;
- 6a: ``--tls-cert`` names what is wrong (a directory, not a regular file, not PEM);
- 6b: a ``backlog=`` beyond 65535 is a usage error (exit 2), not an ``OverflowError``;
- 6c: ``--reactor ""`` is a usage error naming the backends, not silently the default.

Every case runs ``reactor-serve`` as a real process, under an address-space limit so that a
regression fails the test instead of exhausting the machine's memory.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from serve_util import SERVE, Proc, recv_exactly

pytestmark = pytest.mark.timeout(60)

EXIT_USAGE = 2
#: The documented cap of qotd's ``file=`` (``MAX_FILE`` in the qotd plugin).
MAX_FILE = 64 * 1024
#: The address space of each ``reactor-serve`` process: plenty to start, too little to
#: allocate without bound.
ADDRESS_SPACE = 2 << 30


def _limit_memory() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > ADDRESS_SPACE:
        if hard != resource.RLIM_INFINITY and hard < ADDRESS_SPACE:
            return
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, hard))


def _serve(*args: str, env: dict[str, str] | None = None, argv: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``reactor-serve ARGS`` (or ``argv``) to completion, memory-limited, output as text."""
    return subprocess.run(
        argv if argv is not None else [*SERVE, *args], capture_output=True, text=True, timeout=30,
        env=env, stdin=subprocess.DEVNULL, preexec_fn=_limit_memory,
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("reactor-serve: error: "), line
    assert not line.rstrip().endswith(":"), line
    assert "Traceback" not in result.stderr
    return line


# -- 5a: LISTEN_FDS ------------------------------------------------------------------------------


def _with_own_pid(count: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``reactor-serve ARGS`` with ``LISTEN_FDS=count`` and ``LISTEN_PID`` naming itself (``exec``
    keeps the shell's pid)."""
    env = dict(os.environ, LISTEN_FDS=count)
    command = 'LISTEN_PID=$$ exec "$@"'
    return _serve(argv=["/bin/sh", "-c", command, "sh", *SERVE, "--protocol", "echo", "--port", "0", *args], env=env)


@pytest.mark.parametrize("workers", [False, True], ids=["single", "workers"])
def test_5a_huge_listen_fds_is_refused_against_the_descriptor_limit(workers: bool) -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    result = _with_own_pid("99999999999999999999", *(["--workers", "2"] if workers else []))
    assert result.returncode == EXIT_USAGE, result.stderr
    line = _one_error_line(result)
    assert "LISTEN_FDS='99999999999999999999'" in line
    assert "MemoryError" not in line
    if soft != resource.RLIM_INFINITY:
        assert f"RLIMIT_NOFILE soft limit {soft}" in line


def test_5a_listen_fds_one_above_the_limit_is_refused() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no descriptor limit")
    result = _with_own_pid(str(soft + 1))
    assert result.returncode == EXIT_USAGE, result.stderr
    line = _one_error_line(result)
    assert f"LISTEN_FDS='{soft + 1}'" in line and f"limit {soft}" in line


# -- 5b: qotd file= ------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> str:
    path = tmp_path / "quotes.fifo"
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize(
    "which, kind",
    [("dev_zero", "a device"), ("directory", "a directory"), ("fifo", "a FIFO")],
)
def test_5b_qotd_refuses_a_file_that_is_not_regular(which: str, kind: str, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    path = {"dev_zero": "/dev/zero", "directory": str(tmp_path)}.get(which) or request.getfixturevalue("fifo")
    result = _serve("--protocol", "qotd", "--port", "0", "--option", f"file={path}")
    assert result.returncode == EXIT_USAGE, result.stderr
    line = _one_error_line(result)
    assert f"is {kind}, not a regular file" in line


def test_5b_qotd_refuses_a_file_above_the_cap_and_serves_one_at_the_cap(tmp_path: Path) -> None:
    quote = b"x" * 100 + b"\n\n"
    big = tmp_path / "big.txt"
    big.write_bytes(quote * (MAX_FILE // len(quote)) + b"y" * (MAX_FILE % len(quote) + 1))
    assert big.stat().st_size == MAX_FILE + 1
    result = _serve("--protocol", "qotd", "--port", "0", "--option", f"file={big}")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert f"larger than {MAX_FILE} bytes (64 KiB)" in _one_error_line(result)

    exact = tmp_path / "exact.txt"
    exact.write_bytes(quote * (MAX_FILE // len(quote)) + b"y" * (MAX_FILE % len(quote)))
    assert exact.stat().st_size == MAX_FILE
    p = Proc([*SERVE, "--protocol", "qotd", "--port", "0", "--option", f"file={exact}"])
    try:
        with socket.create_connection(("127.0.0.1", p.tcp_port()), timeout=15) as s:
            assert recv_exactly(s, 2) in (b"xx", b"yy")
    finally:
        p.close()


# -- 5c: an empty exception message --------------------------------------------------------------

RAISE_FROM_RUN = """
import sys
from framework import cli

def run(args):
    raise {exc}()

cli._run = run
sys.exit(cli.main(["--protocol", "echo", "--port", "0"]))
"""


@pytest.mark.parametrize("exc", ["MemoryError", "RuntimeError", "OSError"])
def test_5c_an_empty_exception_message_prints_its_type_name(exc: str) -> None:
    result = _serve(argv=[sys.executable, "-c", RAISE_FROM_RUN.format(exc=exc)])
    assert result.returncode == 1, result.stderr
    assert _one_error_line(result) == f"reactor-serve: error: {exc}"


# -- 6a: --tls-cert ------------------------------------------------------------------------------


def test_6a_tls_cert_says_what_is_wrong(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(bytes(range(256)) * 4)
    cases = {
        str(tmp_path): "it is a directory",
        "/dev/zero": "not a regular file",
        str(garbage): "is not a PEM certificate",
        str(tmp_path / "missing.pem"): "no such file",
    }
    for path, reason in cases.items():
        result = _serve("--protocol", "echo", "--port", "0", "--tls-cert", path)
        assert result.returncode == EXIT_USAGE, result.stderr
        line = _one_error_line(result)
        assert reason in line and repr(path) in line, line
        if reason != "no such file":
            assert "no such file" not in line


def test_6a_tls_cert_without_key_and_swapped_files_say_so(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    key.write_bytes(server.private_key_pem.bytes())
    result = _serve("--protocol", "echo", "--port", "0", "--tls-cert", str(cert))
    assert result.returncode == EXIT_USAGE, result.stderr
    line = _one_error_line(result)
    assert "holds no private key" in line and "--tls-key" in line, line
    result = _serve("--protocol", "echo", "--port", "0", "--tls-cert", str(key), "--tls-key", str(cert))
    assert result.returncode == EXIT_USAGE, result.stderr
    line = _one_error_line(result)
    assert "the two files are swapped" in line, line
    assert "PEM lib" not in line


# -- 6b: backlog= --------------------------------------------------------------------------------


@pytest.mark.parametrize("backlog", ["9" * 30, "65536", "0"])
def test_6b_backlog_out_of_range_is_a_usage_error(backlog: str) -> None:
    result = _serve("--protocol", "echo", "--listen", f"tcp:0:interface=127.0.0.1:backlog={backlog}")
    assert result.returncode == EXIT_USAGE, result.stderr
    line = _one_error_line(result)
    assert "backlog must be between 1 and 65535" in line
    assert "too large to convert" not in line


# -- 6c: --reactor "" ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", " "])
def test_6c_empty_reactor_name_is_a_usage_error(name: str) -> None:
    result = _serve("--protocol", "echo", "--port", "0", "--reactor", name)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "serving" not in result.stdout
    line = _one_error_line(result)
    assert "--reactor needs a backend name" in line
    assert "(available: " in line and "poll" in line
