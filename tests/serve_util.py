"""Running ``reactor-serve`` (or a script calling ``framework.cli.main``) in tests.

``Proc`` reads stdout and stderr without blocking and waits for lines matching a pattern, with
a timeout: tests synchronise on what the process says, never on sleeps. The ``serve`` fixture
(tests/conftest.py) starts ``reactor-serve`` as a ``Proc`` and kills it after the test.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

SERVE = [sys.executable, "-m", "framework"]
STARTUP = re.compile(r"^reactor-serve: serving (\S+) on (.+) \(reactor (\S+)\)$")
TIMEOUT = 15.0


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``reactor-serve ARGS`` run to completion, output captured as text."""
    return subprocess.run(
        [*SERVE, *args], capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL
    )


class Proc:
    """A subprocess whose output is collected; ``wait_*`` block until a line matches.

    With ``startup`` (the default) it waits for the ``reactor-serve`` startup line and sets
    ``protocol``, ``reactor`` and ``addresses`` from it.
    """

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 pass_fds: Sequence[int] = (), new_session: bool = True, startup: bool = True) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=tuple(pass_fds),
            start_new_session=new_session,
        )
        self.out = b""
        self.err = b""
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for f in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(f.fileno(), False)
            self._sel.register(f, selectors.EVENT_READ)
        self.addresses: list[str] = []
        self.protocol = ""
        self.reactor = ""
        if startup:
            try:
                m = STARTUP.match(self.wait_stdout(STARTUP))
            except BaseException:
                self.close()  # no caller holds it yet: do not leave it running
                raise
            assert m is not None
            self.protocol, self.reactor = m.group(1), m.group(3)
            self.addresses = m.group(2).split(", ")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def port(self, index: int = 0) -> int:
        return int(self.addresses[index].rsplit(":", 1)[1])

    def tcp_port(self, index: int = 0) -> int:
        """The port of ``addresses[index]``, which must be TCP (or TLS over TCP) on a loopback
        address."""
        kind, rest = self.addresses[index].split(":", 1)
        assert kind in ("tcp", "tls"), self.addresses
        host, port = rest.rsplit(":", 1)
        assert host in ("127.0.0.1", "[::1]"), self.addresses
        return int(port)

    def _pump(self, deadline: float) -> bool:
        """Read what is available (waiting until ``deadline``); False once both pipes closed."""
        if not self._sel.get_map():
            return False
        for key, _ in self._sel.select(max(0.0, deadline - time.monotonic())):
            data = os.read(key.fd, 65536)
            if not data:
                self._sel.unregister(key.fileobj)
            elif key.fileobj is self.proc.stdout:
                self.out += data
            else:
                self.err += data
        return True

    def _lines(self, which: str) -> list[str]:
        return (self.out if which == "out" else self.err).decode(errors="replace").splitlines()

    def _wait(self, which: str, pattern: re.Pattern[str], count: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self._lines(which) if pattern.search(line)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline or not self._pump(deadline):
                raise AssertionError(
                    f"{pattern.pattern!r} (x{count}) not seen on std{which}; "
                    f"stdout={self.out.decode(errors='replace')!r} stderr={self.err.decode(errors='replace')!r}"
                )

    def wait_stdout(self, pattern: re.Pattern[str] | str, timeout: float = TIMEOUT) -> str:
        return self._wait("out", re.compile(pattern) if isinstance(pattern, str) else pattern, 1, timeout)[0]

    def wait_stderr(self, pattern: str, count: int = 1, timeout: float = TIMEOUT) -> list[str]:
        """The first ``count`` stderr lines matching ``pattern`` (waits for them)."""
        return self._wait("err", re.compile(pattern), count, timeout)[:count]

    def poll_stderr(self, pattern: str) -> list[str]:
        """Lines matching so far, after reading whatever is available now."""
        self._pump(time.monotonic())
        return [line for line in self._lines("err") if re.search(pattern, line)]

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for exit, collecting output; returns the exit status."""
        deadline = time.monotonic() + timeout
        while self._pump(deadline) and time.monotonic() < deadline:
            pass
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the process and any workers
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            self.proc.wait(10)
        for key in list(self._sel.get_map().values()):
            self._sel.unregister(key.fileobj)
        self._sel.close()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection((host, port), timeout=TIMEOUT)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        assert data, f"closed after {len(buf)} of {n} bytes: {bytes(buf)!r}"
        buf += data
    return bytes(buf)


def recv_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        data = sock.recv(1)
        assert data, f"closed after {buf!r}"
        buf += data
    return buf


def echo_once(port: int, payload: bytes = b"ping\n") -> bytes:
    with connect(port) as s:
        s.sendall(payload)
        return recv_exactly(s, len(payload))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_exited(pids: Sequence[int], timeout: float = TIMEOUT) -> None:
    """Wait until none of ``pids`` (not our children) exists; polls /proc-free with kill(0)."""
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) and not _zombie(p) for p in pids):
        assert time.monotonic() < deadline, f"processes {list(pids)} still alive"
        time.sleep(0.01)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def worker_pids(proc: Proc, count: int, timeout: float = TIMEOUT) -> list[int]:
    """Pids of the first ``count`` workers the supervisor reported serving."""
    lines = proc.wait_stderr(r"worker \d+ \(pid \d+\) is serving", count, timeout)
    return [int(re.search(r"\(pid (\d+)\)", line).group(1)) for line in lines]  # type: ignore[union-attr]


def env_without(*names: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


def env_with(site: Path, **extra: str) -> dict[str, str]:
    """This environment with ``site`` first on ``PYTHONPATH``, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env

