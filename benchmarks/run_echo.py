"""Echo benchmark: our `reactor-serve --protocol echo` side by side with the peers.

Builds the C load generator (benchmarks/echoload.c) and the C epoll echo server, starts each
server pinned to CPU 0 (load on CPU 1), drives it with every scenario, interleaves the
repetitions, and prints (and optionally writes into docs/benchmarks.md) a Markdown table of
messages per second relative to the asyncio Protocol server, plus server CPU time per message.
Peers that are not importable by the chosen Python are skipped with a note.

    python benchmarks/run_echo.py                       # all scenarios, 3 repetitions
    python benchmarks/run_echo.py --quick               # 1 repetition, short runs
    python benchmarks/run_echo.py --peers-python /path/to/venv/bin/python --write-docs
    python benchmarks/run_echo.py --memory              # idle memory per connection (10,000)
    python benchmarks/run_echo.py --memory --write-docs # ... written into docs/benchmarks.md

Only 127.0.0.1 is ever used. Every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = HERE / "bin"
DOCS = ROOT / "docs" / "benchmarks.md"
HOST = "127.0.0.1"

# (label, conns, size, pipeline)
SCENARIOS = [
    ("1 conn, 64 B, 1 in flight", 1, 64, 1),
    ("100 conns, 64 B, 1 in flight", 100, 64, 1),
    ("100 conns, 64 B, 16 in flight", 100, 64, 16),
    ("10 conns, 64 KiB, 1 in flight", 10, 65536, 1),
    ("1000 conns, 64 B, 1 in flight", 1000, 64, 1),
]


@dataclass
class Server:
    name: str
    argv: list[str]  # "{port}" is replaced by the port


def build() -> None:
    BIN.mkdir(exist_ok=True)
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        sys.exit("a C compiler (gcc or cc) is needed to build the load generator")
    for name in ("echoload", "echo_c"):
        src, out = HERE / f"{name}.c", BIN / name
        if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
            subprocess.run([cc, "-O2", "-o", str(out), str(src)], check=True)


def can_import(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def servers(ours_python: str, peers_python: str, backends: list[str]) -> tuple[list[Server], list[str]]:
    notes: list[str] = []
    # The peer servers listen with a backlog of 4096; so does ours (reactor-serve's default,
    # like Twisted's, is 50, which makes 1,000 or 10,000 clients wait in SYN retries).
    serve = [ours_python, "-m", "framework", "--protocol", "echo",
             "--listen", "tcp:{port}:interface=" + HOST + ":backlog=4096", "--log-level", "warning"]
    out = [Server("C epoll", [str(BIN / "echo_c"), "{port}"])]
    if can_import(peers_python, "uvloop"):
        out.append(Server("uvloop", [peers_python, str(HERE / "servers" / "uvloop_proto.py"), "{port}"]))
    else:
        notes.append("uvloop not installed for the peers' Python: skipped")
    out.append(Server("asyncio Protocol", [peers_python, str(HERE / "servers" / "asyncio_proto.py"), "{port}"]))
    out.append(Server("asyncio streams", [peers_python, str(HERE / "servers" / "asyncio_streams.py"), "{port}"]))
    if can_import(peers_python, "twisted"):
        for r in backends:
            if r in ("epoll", "poll", "select"):
                out.append(Server(f"Twisted {r}", [peers_python, str(HERE / "servers" / "twisted_echo.py"),
                                                   "{port}", "--reactor", r]))
    else:
        notes.append("Twisted not installed for the peers' Python: skipped")
    for r in backends:
        out.append(Server(f"ours {r}", serve + ["--reactor", r]))
    return out, notes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling a port that is not open yet; bounded by the deadline
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raise_nofile() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def start(server: Server, port: int) -> subprocess.Popen[bytes]:
    argv = [a.replace("{port}", str(port)) for a in server.argv]
    proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=raise_nofile)
    wait_listening(port, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def run_one(server: Server, conns: int, size: int, pipeline: int, duration: float,
            warmup: float) -> dict[str, float]:
    port = free_port()
    proc = start(server, port)
    try:
        cpu0 = cpu_seconds(proc.pid)
        res = subprocess.run(
            ["taskset", "-c", "1", str(BIN / "echoload"), HOST, str(port), str(conns), str(size),
             str(duration), str(pipeline), "--warmup", str(warmup)],
            capture_output=True, text=True, timeout=duration + warmup + 60, preexec_fn=raise_nofile)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        stop(proc)
    line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "{}"
    data = json.loads(line)
    msgs = data.get("msgs", 0) or 0
    data["cpu_us_per_msg"] = (cpu / msgs * 1e6) if msgs else float("nan")
    return data


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def memory_one(server: Server, conns: int, hold: float) -> tuple[float, int]:
    """RSS growth per idle connection, counting only the connections the server has
    accepted (its open descriptors), once its RSS has stopped growing. Returns
    (bytes per connection, connections accepted)."""
    port = free_port()
    proc = start(server, port)
    load = None
    try:
        time.sleep(0.5)  # let the first (wait_listening) connection be closed and collected
        before, fds0 = rss_kib(proc.pid), open_fds(proc.pid)
        load = subprocess.Popen(
            [str(BIN / "echoload"), HOST, str(port), str(conns), "0", str(hold), "--hold"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=raise_nofile)
        assert load.stderr is not None
        first = load.stderr.readline()  # printed once every connection is up (client side)
        up = json.loads(first).get("connected", 0) if first.startswith("{") else 0
        # Client-side "up" is not accepted yet: wait (bounded) until the server holds them all
        # and its RSS is stable.
        deadline = time.monotonic() + min(hold, 20.0)
        accepted, last = 0, -1
        while time.monotonic() < deadline:
            accepted = open_fds(proc.pid) - fds0
            rss = rss_kib(proc.pid)
            if accepted >= up and rss == last:
                break
            last = rss
            time.sleep(0.25)  # sampling /proc; bounded by the deadline
        after = rss_kib(proc.pid)
        accepted = open_fds(proc.pid) - fds0
    finally:
        if load is not None:
            load.kill()
            load.wait(timeout=10)
        stop(proc)
    if accepted < up:
        print(f"note: {server.name} accepted only {accepted} of {up} connections", file=sys.stderr)
    return ((after - before) * 1024 / accepted if accepted > 0 else float("nan")), accepted


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved repetitions of every server and scenario (default 3); the median is shown")
    ap.add_argument("--duration", type=float, default=3.0,
                    help="seconds of measured load per scenario and repetition (default 3)")
    ap.add_argument("--warmup", type=float, default=0.5,
                    help="seconds of unmeasured load before each measurement (default 0.5)")
    ap.add_argument("--quick", action="store_true", help="1 repetition of 1 s per scenario")
    ap.add_argument("--backends", default="epoll,poll,select",
                    help="comma-separated reactor backends of ours to run (default epoll,poll,select)")
    ap.add_argument("--only", default="", help="comma-separated server names to run")
    ap.add_argument("--scenarios", default="", help="comma-separated scenario numbers (1-based)")
    ap.add_argument("--peers-python", default=sys.executable, metavar="PYTHON",
                    help="interpreter that has the peers (twisted, uvloop) installed; default: this one")
    ap.add_argument("--memory", action="store_true", help="measure idle memory per connection")
    ap.add_argument("--memory-conns", type=int, default=10000, metavar="N",
                    help="idle connections held open for --memory (default 10,000)")
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/benchmarks.md")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=COMMAND",
                    help="also run this server (COMMAND is split like a shell would; {port} is replaced)")
    args = ap.parse_args()
    if args.quick:
        args.repeat, args.duration = 1, 1.0
    build()
    all_servers, notes = servers(sys.executable, args.peers_python, args.backends.split(","))
    for spec in args.extra:
        name, sep, command = spec.partition("=")
        if not sep or not command.strip():
            sys.exit(f"--extra takes NAME=COMMAND, got {spec!r}")
        all_servers.append(Server(name, shlex.split(command)))
    if args.only:
        wanted = {s.strip() for s in args.only.split(",")}
        all_servers = [s for s in all_servers if s.name in wanted or s.name == "asyncio Protocol"]
    for n in notes:
        print("note:", n, file=sys.stderr)

    if args.memory:
        rows = []
        for s in all_servers:
            if s.name == "C epoll":
                continue
            per, accepted = memory_one(s, args.memory_conns, hold=30.0)
            rows.append((s.name, per, accepted))
            print(f"{s.name:20s} {per / 1024:.2f} KB per idle connection ({accepted} accepted)",
                  flush=True)
        table = (f"Resident memory per idle connection ({args.memory_conns:,} connections held "
                 "open, RSS growth / connections accepted):\n\n"
                 "| server | KB per idle connection | connections accepted |\n|---|---:|---:|\n" + "".join(
                     f"| {n} | {v / 1024:.2f} | {a:,} |\n" for n, v, a in rows) +
                 "\nselect(2) cannot watch descriptors >= 1024, so the select servers hold about "
                 "1,000 connections.\n")
        print(table)
        if args.write_docs:
            write_docs(table, "echo-memory")
        return 0

    scen = SCENARIOS
    if args.scenarios:
        scen = [SCENARIOS[int(i) - 1] for i in args.scenarios.split(",")]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for rep in range(args.repeat):
        for label, conns, size, pipeline in scen:
            order = all_servers if rep % 2 == 0 else list(reversed(all_servers))
            for s in order:
                r = run_one(s, conns, size, pipeline, args.duration, args.warmup)
                results.setdefault((label, s.name), []).append(r)
                print(f"[{rep + 1}/{args.repeat}] {label:32s} {s.name:18s} "
                      f"{r.get('msgs_per_s', 0):>12,.0f} msg/s  p99 {r.get('p99_us', 0):>8.0f} us  "
                      f"cpu {r['cpu_us_per_msg']:.2f} us/msg  errors {r.get('errors', 0)}", flush=True)

    names = [s.name for s in all_servers]
    lines = ["| scenario | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    cpu_lines = list(lines)
    for label, *_ in scen:
        base = statistics.median(r["msgs_per_s"] for r in results[(label, "asyncio Protocol")])
        cells, cpu_cells = [], []
        for n in names:
            med = statistics.median(r["msgs_per_s"] for r in results[(label, n)])
            cells.append(f"{med / base:.2f}" if base else "n/a")
            cpu_cells.append(f"{statistics.median(r['cpu_us_per_msg'] for r in results[(label, n)]):.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        cpu_lines.append(f"| {label} | " + " | ".join(cpu_cells) + " |")
    table = ("Messages per second relative to the asyncio Protocol server (median of "
             f"{args.repeat}):\n\n" + "\n".join(lines) +
             "\n\nServer CPU time (user+sys) per message, microseconds (median):\n\n" + "\n".join(cpu_lines) + "\n")
    print()
    print(table)
    if args.write_docs:
        write_docs(table)
        chart(results, names, scen)
    return 0


def write_docs(table: str, marker: str = "echo-table") -> None:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    block = f"{start}\n{table}{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text)


def chart(results: dict[tuple[str, str], list[dict[str, float]]], names: list[str],
          scen: list[tuple[str, int, int, int]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib not installed; no chart written", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        vals = []
        for label, *_ in scen:
            base = statistics.median(r["msgs_per_s"] for r in results[(label, "asyncio Protocol")])
            vals.append(statistics.median(r["msgs_per_s"] for r in results[(label, n)]) / base)
        ax.bar([j + i * width for j in range(len(scen))], vals, width, label=n)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scen))], [s[0] for s in scen], fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_ylabel("msgs/s relative to asyncio Protocol")
    ax.margins(y=0.2)  # room for the legend above the bars
    ax.legend(fontsize=7, ncol=5, loc="upper center")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "echo-benchmark.png", dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
