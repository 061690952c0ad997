"""Child-process benchmark: spawn and reap N ``true`` processes, K at a time, through our
reactor, asyncio (``create_subprocess_exec``) and Twisted (``reactor.spawnProcess``) side by
side, interleaved; prints processes per second and the ratio to asyncio.

    python benchmarks/bench_process.py              # 1,000 processes, 3 repetitions
    python benchmarks/bench_process.py -n 200 --repeat 1
    peers/bin/python benchmarks/bench_process.py    # with Twisted installed: its column too

Each peer runs in a subprocess of its own (one reactor per process). Bounded: N processes,
at most K in flight, a timeout per run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import textwrap

TRUE = shutil.which("true") or "/bin/true"

# One program for both reactors: Twisted's differs only in its imports and in needing its own
# SIGCHLD handler ("ports by changing imports", measured).
_REACTOR_PROGRAM = """
    import sys, time
    {imports}
    from {package}.protocol import ProcessProtocol
    n, k, exe = int(sys.argv[1]), int(sys.argv[2]), sys.argv[4]
    state = {{"started": 0, "done": 0}}
    class P(ProcessProtocol):
        def processEnded(self, reason):
            state["done"] += 1
            if state["done"] == n:
                reactor.stop()
            elif state["started"] < n:
                start()
    def start():
        state["started"] += 1
        reactor.spawnProcess(P(), exe, [exe], env={{}})
    t0 = time.perf_counter()
    reactor.callWhenRunning(lambda: [start() for _ in range(min(k, n))])
    reactor.run(installSignalHandlers={signals})
    print(time.perf_counter() - t0)
"""
OURS = textwrap.dedent(_REACTOR_PROGRAM.format(
    imports="from framework import install_reactor; reactor = install_reactor(sys.argv[3] or None)",
    package="framework", signals=False))

ASYNCIO = textwrap.dedent("""
    import asyncio, sys, time
    n, k, exe = int(sys.argv[1]), int(sys.argv[2]), sys.argv[4]
    async def main():
        sem = asyncio.Semaphore(k)
        async def one():
            async with sem:
                p = await asyncio.create_subprocess_exec(exe, env={})
                await p.wait()
        await asyncio.gather(*(one() for _ in range(n)))
    t0 = time.perf_counter()
    asyncio.run(main())
    print(time.perf_counter() - t0)
""")

TWISTED = textwrap.dedent(_REACTOR_PROGRAM.format(
    imports="from twisted.internet import reactor", package="twisted.internet", signals=True))


def _available(module: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000, help="processes per run (default 1,000)")
    ap.add_argument("-k", type=int, default=16, help="processes in flight at once (default 16)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions; the median is shown")
    ap.add_argument("--backend", default="", help="our reactor backend (default: the best available)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    if not 1 <= args.n <= 100_000 or not 1 <= args.k <= 1000:
        ap.error("-n must be 1..100000 and -k 1..1000")
    peers = {"reactor-framework": OURS, "asyncio": ASYNCIO}
    if _available("twisted"):
        peers["Twisted"] = TWISTED
    times: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(args.repeat):
        for name, code in peers.items():
            out = subprocess.run([sys.executable, "-c", code, str(args.n), str(args.k), args.backend, TRUE],
                                 capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                print(f"{name} failed:\n{out.stderr}", file=sys.stderr)
                return 1
            times[name].append(float(out.stdout.strip().splitlines()[-1]))
    rate = {name: args.n / statistics.median(t) for name, t in times.items()}
    if args.json:
        print(json.dumps(rate))
        return 0
    print(f"spawn and reap {args.n:,} `true` processes, {args.k} in flight, median of {args.repeat}\n")
    print("| implementation | processes/s | vs asyncio |")
    print("|---|---:|---:|")
    for name, value in rate.items():
        print(f"| {name} | {value:,.0f} | {value / rate['asyncio']:.2f}x |")
    if "Twisted" not in rate:
        print("\n(Twisted not importable by this Python: its column is missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
