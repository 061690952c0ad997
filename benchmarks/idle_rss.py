"""Server memory per idle connection, side by side: reactor-framework, asyncio, uvloop, Twisted.

    python benchmarks/idle_rss.py [N]        # default N = 10000; Linux (/proc) only

Each server echoes; the client opens N connections, exchanges one byte on each (so every one
is accepted and served), then reads the server's RSS. Figure: (RSS after - RSS before) / N.
Run it with an interpreter that has the peers installed (e.g. /work/peers/bin/python).
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FRAMEWORK_SERVER = """
import sys
import framework
framework.install_reactor("epoll")
from framework import plugins, reactor
factory = plugins.protocols().get("echo").make_factory({})
reactor.listenTCP(int(sys.argv[1]), factory, backlog=4096, interface="127.0.0.1")
reactor.run()
"""


def servers(port: int) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "reactor-framework (epoll, listenTCP)": [py, "-c", FRAMEWORK_SERVER, str(port)],
        "reactor-framework (reactor-serve)": [py, "-m", "framework", "--protocol", "echo",
                                              "--port", str(port), "--reactor", "epoll",
                                              "--log-level", "warning"],
        "asyncio (Protocol)": [py, str(HERE / "servers" / "asyncio_proto.py"), str(port)],
        "uvloop (Protocol)": [py, str(HERE / "servers" / "uvloop_proto.py"), str(port)],
        "Twisted (epoll)": [py, str(HERE / "servers" / "twisted_echo.py"), str(port)],
    }


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> socket.socket:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            time.sleep(0.05)  # polling a server that is starting up
    raise RuntimeError("server did not start")


def measure(cmd: list[str], port: int, n: int) -> float:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=ROOT)
    clients: list[socket.socket] = []
    try:
        warm = wait_listening(port, proc)
        warm.sendall(b"!")
        warm.recv(1)
        before = rss(proc.pid)
        sel = selectors.DefaultSelector()
        for _ in range(0, n, 500):
            batch = []
            for _ in range(500):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                batch.append(s)
                sel.register(s, selectors.EVENT_WRITE)
            pending = set(batch)
            while pending:
                for key, ev in sel.select(10):
                    s = key.fileobj  # type: ignore[assignment]
                    if ev & selectors.EVENT_WRITE:
                        s.send(b"!")
                        sel.modify(s, selectors.EVENT_READ)
                    elif s.recv(1) == b"!":
                        sel.unregister(s)
                        pending.discard(s)
            clients.extend(batch)
        after = rss(proc.pid)
        sel.close()
        warm.close()
        return (after - before) / n
    finally:
        for s in clients:
            s.close()
        proc.kill()
        proc.wait()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(f"Python {sys.version.split()[0]}, {n} idle echo connections, server RSS per connection:")
    for name in servers(0):
        port = free_port()
        cmd = servers(port)[name]
        try:
            per = measure(cmd, port, n)
        except Exception as e:  # a peer not installed
            print(f"  {name:40s} unavailable: {e}")
            continue
        print(f"  {name:40s} {per:8.0f} bytes")


if __name__ == "__main__":
    main()
