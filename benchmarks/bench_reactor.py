"""Reactor micro-benchmarks, side by side with asyncio (and uvloop, Twisted when importable).

    timers       schedule N calls with random delays in [0, 0.1 s] and run until all fired
                 (CPU seconds: the loop sleeps while it waits for the timers, so wall time
                 would mostly measure the 0.1 s spread)
    cancel       schedule N calls (due in 10-11 s), cancel them all, then let the loop run one
                 turn (when asyncio and Twisted drop cancelled timers); seconds for cancel+turn
    threadcalls  4 threads each hand N/4 calls to the loop (callFromThread /
                 call_soon_threadsafe); wall seconds until the loop has run them all

Each (implementation, benchmark) pair runs in a fresh subprocess (Twisted's reactor cannot
be restarted), best of --repeat runs. Ratios are time / asyncio time: below 1 is faster.

    /work/peers/bin/python benchmarks/bench_reactor.py [-n 100000] [--repeat 5] [--backend epoll]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import threading
import time
from typing import Any, Callable

BENCHMARKS = ("timers", "cancel", "threadcalls")
IMPLEMENTATIONS = ("framework", "asyncio", "uvloop", "twisted")
THREADS = 4


def delays(n: int, base: float = 0.0) -> list[float]:
    rng = random.Random(42)
    return [base + rng.random() * 0.1 for _ in range(n)]


# -- adapters: each gives call_later(delay, f) -> handle with cancel(), call_from_thread(f),
#    stop(), run() -------------------------------------------------------------------------


class Adapter:
    call_later: Callable[..., Any]
    call_from_thread: Callable[..., Any]
    stop: Callable[[], Any]
    run: Callable[[], Any]
    call_when_running: Callable[..., Any]

    def pending_timers(self) -> int:
        return -1


class FrameworkAdapter(Adapter):
    def __init__(self, backend: str | None) -> None:
        import framework

        self.reactor = framework.install_reactor(backend)
        self.call_later = self.reactor.callLater
        self.call_from_thread = self.reactor.callFromThread
        self.stop = self.reactor.stop
        self.call_when_running = self.reactor.callWhenRunning
        self.name = f"framework[{self.reactor.backend_name}]"

    def run(self) -> None:
        self.reactor.run(installSignalHandlers=False)

    def pending_timers(self) -> int:
        return len(self.reactor._timers)


class AsyncioAdapter(Adapter):
    def __init__(self, uvloop: bool = False) -> None:
        import asyncio

        if uvloop:
            import uvloop as uv

            self.loop = uv.new_event_loop()
            self.name = "uvloop"
        else:
            self.loop = asyncio.new_event_loop()
            self.name = "asyncio"
        self.call_later = self.loop.call_later
        self.call_from_thread = self.loop.call_soon_threadsafe
        self.stop = self.loop.stop
        self.call_when_running = self.loop.call_soon

    def run(self) -> None:
        self.loop.run_forever()

    def pending_timers(self) -> int:
        scheduled = getattr(self.loop, "_scheduled", None)
        return -1 if scheduled is None else len(scheduled)


class TwistedAdapter(Adapter):
    def __init__(self) -> None:
        from twisted.internet import epollreactor

        epollreactor.install()
        from twisted.internet import reactor

        self.reactor = reactor
        self.call_later = reactor.callLater
        self.call_from_thread = reactor.callFromThread
        self.stop = reactor.stop
        self.call_when_running = reactor.callWhenRunning
        self.name = "twisted[epoll]"

    def run(self) -> None:
        self.reactor.run(installSignalHandlers=False)

    def pending_timers(self) -> int:
        return len(self.reactor._pendingTimedCalls)


def make_adapter(impl: str, backend: str | None) -> Adapter:
    if impl == "framework":
        return FrameworkAdapter(backend)
    if impl == "asyncio":
        return AsyncioAdapter()
    if impl == "uvloop":
        return AsyncioAdapter(uvloop=True)
    if impl == "twisted":
        return TwistedAdapter()
    raise ValueError(f"unknown implementation {impl!r}")


# -- the benchmarks (one per process) -----------------------------------------------------------


def bench_timers(a: Adapter, n: int) -> dict[str, float]:
    left = [n]

    def fired() -> None:
        left[0] -= 1
        if not left[0]:
            a.stop()

    ds = delays(n)
    call_later = a.call_later
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for d in ds:
        call_later(d, fired)
    scheduled = time.perf_counter() - wall0
    a.run()
    return {"seconds": time.process_time() - cpu0, "wall": time.perf_counter() - wall0,
            "schedule": scheduled}


def bench_cancel(a: Adapter, n: int) -> dict[str, float]:
    noop = lambda: None  # noqa: E731
    handles = [a.call_later(d, noop) for d in delays(n, base=10.0)]
    a.call_later(0, a.stop)
    t0 = time.perf_counter()
    for h in handles:
        h.cancel()
    cancelled = time.perf_counter() - t0
    a.run()
    total = time.perf_counter() - t0
    return {"seconds": total, "cancel": cancelled, "left": float(a.pending_timers())}


def bench_threadcalls(a: Adapter, n: int) -> dict[str, float]:
    per_thread = n // THREADS
    total = per_thread * THREADS
    left = [total]
    start = threading.Barrier(THREADS + 1)

    def handed() -> None:
        left[0] -= 1
        if not left[0]:
            a.stop()

    def produce() -> None:
        call = a.call_from_thread
        start.wait()
        for _ in range(per_thread):
            call(handed)

    threads = [threading.Thread(target=produce) for _ in range(THREADS)]
    times: dict[str, float] = {}

    def go() -> None:
        for t in threads:
            t.start()
        times["t0"] = time.perf_counter()
        start.wait()

    a.call_when_running(go)
    a.run()
    elapsed = time.perf_counter() - times["t0"]
    for t in threads:
        t.join()
    return {"seconds": elapsed}


def child(impl: str, bench: str, n: int, backend: str | None) -> None:
    try:
        adapter = make_adapter(impl, backend)
    except ImportError as e:
        print(json.dumps({"skipped": str(e)}))
        return
    result = globals()[f"bench_{bench}"](adapter, n)
    result["name"] = adapter.name  # type: ignore[assignment]
    print(json.dumps(result))


# -- driver -------------------------------------------------------------------------------------


def measure(impl: str, bench: str, n: int, repeat: int, backend: str | None) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        cmd = [sys.executable, __file__, "--child", impl, bench, "-n", str(n)]
        if backend:
            cmd += ["--backend", backend]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            print(f"  {impl}/{bench} did not finish within 120 s", file=sys.stderr)
            return None
        if proc.returncode:
            print(f"  {impl}/{bench} failed:\n{proc.stderr}", file=sys.stderr)
            return None
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if "skipped" in result:
            return None
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="calls per benchmark (default 100000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement, best kept")
    parser.add_argument("--backend", default=None, help="framework reactor backend (default: best)")
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="run only these")
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "BENCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.n, args.backend)
        return

    print(f"Python {platform.python_version()} on {platform.platform()}, "
          f"{platform.processor() or platform.machine()}; n={args.n}, best of {args.repeat}")
    print(f"{'benchmark':<12} {'implementation':<20} {'seconds':>9} {'vs asyncio':>11}")
    for bench in args.only or BENCHMARKS:
        results = {impl: measure(impl, bench, args.n, args.repeat, args.backend)
                   for impl in IMPLEMENTATIONS}
        base = results.get("asyncio")
        for impl, result in results.items():
            if result is None:
                print(f"{bench:<12} {impl:<20} {'(not installed)':>9}")
                continue
            ratio = f"{result['seconds'] / base['seconds']:.2f}x" if base else "-"
            extra = ""
            if bench == "cancel" and result.get("left", -1) >= 0:
                extra = f"  (timers left after the turn: {int(result['left'])})"
            print(f"{bench:<12} {result['name']:<20} {result['seconds']:>9.4f} {ratio:>11}{extra}")


if __name__ == "__main__":
    main()
