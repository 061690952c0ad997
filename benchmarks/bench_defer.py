"""Deferred micro-benchmarks: ``framework.defer`` side by side with ``twisted.internet.defer``.

    python benchmarks/bench_defer.py            # 5 repetitions, best of each reported
    python benchmarks/bench_defer.py --quick    # 2 repetitions, smaller sizes

Scenarios (ops/s, higher is better):

(a)  a Deferred with 10 callbacks, fired: one op = create, add 10 callbacks, ``callback()``
(a') the same with the Deferred fired first (each ``addCallback`` runs at once)
(b)  a 10,000-deep chain: each Deferred's callback returns the next, unfired one; all are
     fired, the innermost last (one op = one whole chain; Deferreds/s shown too)
(b') 10,000 Deferreds linked with ``chainDeferred`` (Twisted recurses here)
(c)  ``inlineCallbacks`` / ``async def`` awaiting 1,000 already-fired Deferreds: with the
     Deferreds made by ``succeed()`` inside the loop, and pre-made (pure await cost);
     one op = one yield/await

Twisted is used when importable (run with an interpreter that has both installed, e.g. the
peers venv after ``pip install -e .``); the ratio column is ours / Twisted's. A last section
shows (a) with one no-op middleware enabled, with none, and with a copy of the module defining
``Deferred`` compiled without the middleware check at all.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import importlib.util
import platform
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import framework.defer as ours  # noqa: E402
from framework import middleware  # noqa: E402

try:
    import twisted  # type: ignore[import-not-found, unused-ignore]
    import twisted.internet.defer as theirs  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    theirs = None  # type: ignore[assignment]


def cb(x: Any) -> Any:
    return x


def scenario_a(mod: Any, n: int) -> Callable[[], int]:
    Deferred = mod.Deferred

    def run() -> int:
        for i in range(n):
            d = Deferred()
            d.addCallback(cb)
            d.addCallback(cb)
            d.addCallback(cb)
            d.addCallback(cb)
            d.addCallback(cb)
            d.addCallback(cb)
            d.addCallback(cb)
            d.addCallback(cb)
            d.addCallback(cb)
            d.addCallback(cb)
            d.callback(i)
        return n

    return run


def scenario_a_fired(mod: Any, n: int) -> Callable[[], int]:
    Deferred = mod.Deferred

    def run() -> int:
        for i in range(n):
            d = Deferred()
            d.callback(i)
            for _ in range(10):
                d.addCallback(cb)
        return n

    return run


def scenario_b(mod: Any, depth: int, chains: int) -> Callable[[], int]:
    Deferred = mod.Deferred

    def run() -> int:
        for _ in range(chains):
            ds = [Deferred() for _ in range(depth)]
            for i in range(depth - 1):
                ds[i].addCallback(lambda _, nxt=ds[i + 1]: nxt)
            for d in ds[:-1]:
                d.callback(None)
            out: list[Any] = []
            ds[0].addCallback(out.append)
            ds[-1].callback(1)
            assert out == [1], out
        return chains

    return run


def scenario_b_chain(mod: Any, depth: int, chains: int) -> Callable[[], int]:
    Deferred = mod.Deferred

    def run() -> int:
        for _ in range(chains):
            ds = [Deferred() for _ in range(depth)]
            for a, b in zip(ds, ds[1:]):
                a.chainDeferred(b)
            out: list[Any] = []
            ds[-1].addBoth(out.append)
            ds[0].callback(1)
            if out != [1]:
                # Twisted turns its RecursionError into a Failure deep inside the chain;
                # consume those so they are not logged as unhandled.
                for d in ds:
                    d.addErrback(lambda f: None)
                raise RecursionError(f"chainDeferred chain did not complete: {out!r}")
        return chains

    return run


def scenario_c_inline(mod: Any, awaits: int, calls: int, premade: bool) -> Callable[[], int]:
    succeed = mod.succeed

    if premade:
        @mod.inlineCallbacks
        def body(ds: list[Any]) -> Any:
            for d in ds:
                yield d
    else:
        @mod.inlineCallbacks
        def body(ds: list[Any]) -> Any:
            for i in range(awaits):
                yield succeed(i)

    return _timed_part(premade, awaits, calls, body, succeed)


def scenario_c_async(mod: Any, awaits: int, calls: int, premade: bool) -> Callable[[], int]:
    succeed = mod.succeed
    ensureDeferred = mod.ensureDeferred

    if premade:
        async def body(ds: list[Any]) -> None:
            for d in ds:
                await d
    else:
        async def body(ds: list[Any]) -> None:
            for i in range(awaits):
                await succeed(i)

    def start(ds: list[Any]) -> Any:
        return ensureDeferred(body(ds))

    return _timed_part(premade, awaits, calls, start, succeed)


def scenario_c_suspend(mod: Any, awaits: int, calls: int, use_async: bool) -> Callable[[], int]:
    """Each await suspends on an unfired Deferred that the loop then fires: the driver's
    suspend/resume cost."""
    Deferred = mod.Deferred

    if use_async:
        async def coro(ds: list[Any]) -> None:
            for d in ds:
                await d

        def start(ds: list[Any]) -> Any:
            return mod.ensureDeferred(coro(ds))
    else:
        @mod.inlineCallbacks
        def start(ds: list[Any]) -> Any:
            for d in ds:
                yield d

    def run() -> int:
        for _ in range(calls):
            ds = [Deferred() for _ in range(awaits)]
            start(ds)
            for i, d in enumerate(ds):
                d.callback(i)
        return awaits * calls

    return run


def _timed_part(premade: bool, awaits: int, calls: int, body: Any, succeed: Any) -> Callable[[], Any]:
    """For pre-made Deferreds only the awaiting is timed (returns (ops, seconds))."""
    if premade:
        def timed() -> tuple[int, float]:
            total = 0.0
            for _ in range(calls):
                ds = [succeed(i) for i in range(awaits)]
                t0 = time.perf_counter()
                body(ds)
                total += time.perf_counter() - t0
            return awaits * calls, total
        return timed

    def whole() -> int:
        for _ in range(calls):
            body([])
        return awaits * calls

    return whole


def measure(run: Callable[[], Any], repeat: int) -> float:
    """Best ops/s over ``repeat`` runs (after one warm-up run)."""
    run()
    best = 0.0
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = run()
        elapsed = time.perf_counter() - t0
        if isinstance(out, tuple):
            ops, elapsed = out
        else:
            ops = out
        best = max(best, ops / elapsed)
    return best


def load_without_middleware_check() -> types.ModuleType:
    """A copy of the module defining ``Deferred`` (``framework.defer`` or, once split, the
    module it re-exports it from) compiled with every ``if _mw_...:`` test removed."""
    path = Path(sys.modules[ours.Deferred.__module__].__file__ or ours.__file__)
    source = path.read_text()
    for name in ("_mw_active", "_mw_created"):
        source = source.replace(f"if {name}:", "if False:")
    spec = importlib.util.spec_from_loader("_defer_no_mw_check", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[spec.name] = module
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per measurement")
    args = parser.parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 5)
    n_a = 20_000 if args.quick else 100_000
    depth = 10_000
    chains = 2 if args.quick else 5
    calls = 20 if args.quick else 100

    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on "
          f"{platform.machine()}, {platform.system()}")
    if theirs is not None:
        print(f"Twisted {twisted.__version__}")
    else:
        print("Twisted not importable: showing ours only")
    print()

    rows: list[tuple[str, Callable[[Any], Callable[[], Any]]]] = [
        ("(a) 10 callbacks, fired after adding [Deferreds/s]", lambda m: scenario_a(m, n_a)),
        ("(a') 10 callbacks, added after firing [Deferreds/s]", lambda m: scenario_a_fired(m, n_a)),
        (f"(b) {depth:,}-deep chain of returned Deferreds [chains/s]",
         lambda m: scenario_b(m, depth, chains)),
        (f"(b') {depth:,} Deferreds linked by chainDeferred [chains/s]",
         lambda m: scenario_b_chain(m, depth, chains)),
        ("(c) inlineCallbacks, yield succeed(i) x1000 [yields/s]",
         lambda m: scenario_c_inline(m, 1000, calls, premade=False)),
        ("(c) inlineCallbacks, yield pre-made fired x1000 [yields/s]",
         lambda m: scenario_c_inline(m, 1000, calls, premade=True)),
        ("(c) async def, await succeed(i) x1000 [awaits/s]",
         lambda m: scenario_c_async(m, 1000, calls, premade=False)),
        ("(c) async def, await pre-made fired x1000 [awaits/s]",
         lambda m: scenario_c_async(m, 1000, calls, premade=True)),
        ("(c'') inlineCallbacks, yield unfired, fired later x1000 [yields/s]",
         lambda m: scenario_c_suspend(m, 1000, calls, use_async=False)),
        ("(c'') async def, await unfired, fired later x1000 [awaits/s]",
         lambda m: scenario_c_suspend(m, 1000, calls, use_async=True)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  {'ours':>13}  {'Twisted':>13}  {'ratio':>6}")
    print("-" * (width + 40))
    for label, make in rows:
        ours_rate = measure(make(ours), repeat)
        if theirs is None:
            print(f"{label:<{width}}  {fmt(ours_rate):>13}")
            continue
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # Twisted's own error log
                their_rate = measure(make(theirs), repeat)
                gc.collect()
        except RecursionError:
            print(f"{label:<{width}}  {fmt(ours_rate):>13}  {'RecursionError':>13}  {'-':>6}")
            continue
        print(f"{label:<{width}}  {fmt(ours_rate):>13}  {fmt(their_rate):>13}  {ours_rate / their_rate:>5.2f}x")
    print()
    print(f"(b) as Deferreds/s: multiply chains/s by {depth:,}.")
    print()

    # Middleware cost on (a): interleave the three variants so drift hits them equally.
    no_check = load_without_middleware_check()
    saved = list(middleware._active)
    variants: dict[str, float] = {"no middleware": 0.0, "one no-op middleware": 0.0,
                                  "build without the check": 0.0}
    try:
        middleware._active.clear()
        for _ in range(repeat):
            variants["build without the check"] = max(
                variants["build without the check"], measure(scenario_a(no_check, n_a), 1))
            middleware._active.clear()
            variants["no middleware"] = max(variants["no middleware"], measure(scenario_a(ours, n_a), 1))
            middleware._active.append(lambda callback: callback)
            variants["one no-op middleware"] = max(
                variants["one no-op middleware"], measure(scenario_a(ours, n_a), 1))
            middleware._active.clear()
    finally:
        middleware._active[:] = saved
    base = variants["build without the check"]
    print("Middleware cost on (a) [Deferreds/s]:")
    for name, rate in variants.items():
        print(f"  {name:<26} {fmt(rate):>13}  {rate / base:>6.3f} of the build without the check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
