"""Scaling with ``reactor-serve --workers``: echo throughput for 1..N worker processes.

Runs ``reactor-serve --protocol echo`` as one process and with ``--workers N``, drives each
with the C load generator (benchmarks/bin/echoload, built by run_echo.py) and prints messages
per second with the ratio to the single process. Repetitions are interleaved; the median
is reported.

    python benchmarks/run_workers.py                          # 1 process, --workers 1 and 2
    python benchmarks/run_workers.py --workers 1 2 4 8 --load-cpus 8-11 --server-cpus 0-7

On a machine with few cores the load generator competes with the workers: pin the load
(``--load-cpus``) and the server (``--server-cpus``, applied to the supervisor and inherited
by its workers) to disjoint CPUs where there are enough, and say which you did. Only
127.0.0.1 is used; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ECHOLOAD = HERE / "bin" / "echoload"
STARTUP = re.compile(rb"serving echo on tcp:127\.0\.0\.1:(\d+)")


def taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


def run_once(python: str, workers: int, conns: int, size: int, pipeline: int, duration: float,
             warmup: float, server_cpus: str | None, load_cpus: str | None) -> float:
    argv = [*taskset(server_cpus), python, "-m", "framework", "--protocol", "echo", "--port", "0",
            "--log-level", "warning"]
    if workers:
        argv += ["--workers", str(workers)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while not STARTUP.search(line):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("reactor-serve did not start")
            line = server.stdout.readline()
        m = STARTUP.search(line)
        assert m is not None
        port = m.group(1).decode()
        res = subprocess.run(
            [*taskset(load_cpus), str(ECHOLOAD), "127.0.0.1", port, str(conns), str(size), str(duration),
             str(pipeline), "--warmup", str(warmup)],
            capture_output=True, text=True, timeout=duration + warmup + 60)
        data = json.loads(res.stdout.strip().splitlines()[-1])
        return float(data["msgs"]) / duration
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                   help="worker counts to try (0 = no supervisor, one process); 0 is always included")
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--server-cpus", help="taskset CPU list for the server (e.g. 0-7)")
    p.add_argument("--load-cpus", help="taskset CPU list for the load generator (e.g. 8-11)")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args()
    if not ECHOLOAD.exists():
        raise SystemExit(f"{ECHOLOAD} is missing: run benchmarks/run_echo.py --quick once to build it")
    counts = [0] + [w for w in args.workers if w]
    results: dict[int, list[float]] = {w: [] for w in counts}
    for _ in range(args.repeat):
        for w in counts:
            results[w].append(run_once(args.python, w, args.conns, args.size, args.pipeline, args.duration,
                                       args.warmup, args.server_cpus, args.load_cpus))
    base = statistics.median(results[0])
    print(f"{args.conns} conns, {args.size} B, {args.pipeline} in flight, {args.duration:g} s x {args.repeat}; "
          f"server CPUs {args.server_cpus or 'any'}, load CPUs {args.load_cpus or 'any'}")
    print("| server | msgs/s (median) | vs one process |")
    print("|---|---:|---:|")
    for w in counts:
        med = statistics.median(results[w])
        label = "one process" if w == 0 else f"--workers {w}"
        print(f"| {label} | {med:,.0f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
