"""Shared helpers of the fault suite: a child server process and small socket clients."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("child_server.py")
LOCAL = "127.0.0.1"
TIMEOUT = 15.0


class Child:
    """A ``child_server.py`` process; ``ports`` are read from its first stdout line."""

    def __init__(self, **config: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), json.dumps(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.ports = [int(p) for p in self._line(TIMEOUT).split()[1:]]
        self.port = self.ports[0]

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        data = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not data.endswith(b"\n"):
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"no line from the child within {timeout} s")
                chunk = os.read(fd, 1)
                if not chunk:
                    _, err = self.proc.communicate(timeout=10)
                    raise AssertionError(f"child exited: {err.decode(errors='replace')}")
                data += chunk
        return data.decode()

    def rss(self) -> int:
        """Resident set size, bytes (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time consumed so far (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def nfds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, signum: int = signal.SIGTERM, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        """Signal it (unless it already exited) and collect exit status, stdout, stderr."""
        if self.proc.poll() is None and signum:
            self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=10)
        except ValueError:
            pass


def connect(port: int, host: str = LOCAL, timeout: float = TIMEOUT) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        data = sock.recv(min(n, 1 << 20))
        if not data:
            raise AssertionError(f"connection closed with {n} bytes still expected")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def echo_ok(sock: socket.socket, payload: bytes = b"ping\n") -> bool:
    sock.sendall(payload)
    return recv_exactly(sock, len(payload)) == payload


def closed_by_peer(sock: socket.socket) -> bool:
    """Block (within the socket timeout) until the peer closes; True on EOF or reset."""
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def new_reactor(name: str | None = None) -> Any:
    """A private reactor on ``name`` (default: the best available backend)."""
    from framework import plugins
    from framework.eventloop import Reactor

    entry = plugins.reactors().get(name) if name else plugins.reactors().best()
    return Reactor(entry.factory(), entry.name)
