"""Chat fan-out under a crowd: what a legitimate client waits for while thousands of others
join, talk, or are timed out at once (issue 17, item 4).

    python benchmarks/bench_chat.py                  # 2,000 and 10,000 clients
    python benchmarks/bench_chat.py --clients 2000

For each crowd size it starts ``reactor-serve --protocol chat --idle-timeout T`` and measures:

- **join**: the crowd connects (every client reads everything it is sent); then one more
  client connects: seconds until its welcome line, and the server's CPU seconds for the joins;
- **message**: that client says one line: seconds until the last crowd client has it;
- **timeout storm**: the crowd stays silent, so all of it is timed out within a moment (the
  "left" notices); a newcomer connecting as the storm starts: seconds until its welcome, and
  the server's CPU seconds for the storm.

Loopback only; every wait is bounded. The file-descriptor limit is raised for this process
and the server (root or a high hard limit needed for 10,000).
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"
TIMEOUT = 120.0


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    except (ValueError, OSError):
        sys.exit(f"need {need} file descriptors, the limit is {soft}/{hard}: raise it (ulimit -n)")


class Crowd:
    """N client sockets that read (and drop) everything they are sent."""

    def __init__(self, port: int, n: int) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.last_data: dict[int, bytes] = {}
        for i in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.connect((HOST, port))
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, i)
            self.socks.append(s)
            if i % 200 == 199:
                self.pump(0)

    def pump(self, timeout: float) -> int:
        got = 0
        for key, _ in self.sel.select(timeout):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except (BlockingIOError, ConnectionResetError):
                continue
            if not data:
                self.sel.unregister(key.fileobj)
                continue
            self.last_data[key.data] = data[-200:]
            got += 1
        return got

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.sel.close()


def _line(sock: socket.socket, crowd: Crowd | None, contains: bytes, deadline: float) -> None:
    buf = b""
    sock.setblocking(False)
    while contains not in buf:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{contains!r} not received; got {buf[-200:]!r}")
        try:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed before {contains!r}")
            buf += data
        except BlockingIOError:
            if crowd is not None:
                crowd.pump(0.001)
            else:
                time.sleep(0.001)


def run(n: int, idle_timeout: float) -> dict[str, float]:
    argv = [sys.executable, "-m", "framework", "--protocol", "chat", "--port", "0",
            "--idle-timeout", str(idle_timeout), "--max-write-buffer", str(1 << 20)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        port = int(banner.split(" on ", 1)[1].split()[0].rsplit(":", 1)[1])
        cpu0 = _cpu(server.pid)
        joined_at = time.monotonic()
        crowd = Crowd(port, n)
        newcomer = socket.create_connection((HOST, port))
        t0 = time.monotonic()
        _line(newcomer, crowd, b"welcome", t0 + TIMEOUT)
        result = {"join_welcome_s": time.monotonic() - t0}
        for _ in range(200):  # let the crowd's notices settle
            if not crowd.pump(0.01):
                break
        result["join_cpu_s"] = _cpu(server.pid) - cpu0
        newcomer.setblocking(True)
        newcomer.sendall(b"hello crowd\n")
        t0 = time.monotonic()
        target = n - 1
        while b"hello crowd" not in crowd.last_data.get(target, b""):
            crowd.pump(0.01)
            if time.monotonic() - t0 > TIMEOUT:
                raise TimeoutError("the message did not reach the last client")
        result["message_to_last_s"] = time.monotonic() - t0
        newcomer.close()
        # The storm: the crowd has been silent since it joined; all time out at about
        # joined_at + idle_timeout. Connect a newcomer just as that happens.
        while time.monotonic() < joined_at + idle_timeout:
            crowd.pump(0.05)
        cpu1 = _cpu(server.pid)
        storm = socket.create_connection((HOST, port))
        t0 = time.monotonic()
        _line(storm, crowd, b"welcome", t0 + TIMEOUT)
        result["storm_welcome_s"] = time.monotonic() - t0
        while crowd.sel.get_map() and time.monotonic() - t0 < TIMEOUT:
            crowd.pump(0.05)
        result["storm_cpu_s"] = _cpu(server.pid) - cpu1
        storm.close()
        crowd.close()
        return result
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, action="append",
                    help="crowd size (repeatable; default 2,000 and 10,000)")
    ap.add_argument("--idle-timeout", type=float, default=20.0,
                    help="the server's --idle-timeout, long enough for the crowd to join (default 20)")
    args = ap.parse_args()
    sizes = args.clients or [2000, 10000]
    if any(not 1 <= n <= 20000 for n in sizes):
        ap.error("--clients must be 1..20000")
    _raise_fd_limit(max(sizes) + 256)  # the crowd here, its peers in the server (inherits it)
    print("| clients | welcome while joining | CPU for the joins | message to the last | "
          "welcome during timeout storm | CPU for the storm |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        r = run(n, args.idle_timeout)
        print(f"| {n:,} | {r['join_welcome_s'] * 1000:.0f} ms | {r['join_cpu_s']:.2f} s | "
              f"{r['message_to_last_s'] * 1000:.0f} ms | {r['storm_welcome_s'] * 1000:.0f} ms | "
              f"{r['storm_cpu_s']:.2f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
