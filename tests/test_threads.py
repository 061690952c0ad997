"""Threads: callFromThread, the thread pool, deferToThreadPool, blockingCallFromThread."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any

import pytest

from framework import threads
from framework.defer import Deferred
from framework.eventloop import Reactor
from framework.threads import ThreadPool, blockingCallFromThread, callMultipleInThread, deferToThreadPool
from tests.util import run_until, run_until_true


def test_call_from_thread_wakes_a_sleeping_loop(reactor: Reactor) -> None:
    """No timers and no I/O: only the waker can end the poll."""
    seen: list[str] = []

    def from_thread() -> None:
        reactor.callFromThread(seen.append, threading.current_thread().name)
        reactor.callFromThread(reactor.stop)

    t = threading.Thread(target=from_thread, name="helper")
    reactor.callWhenRunning(t.start)
    guard = reactor.callLater(20, reactor.crash)
    reactor.run(installSignalHandlers=False)
    t.join()
    assert guard.active(), "the loop was not woken by callFromThread"
    guard.cancel()
    assert seen == ["helper"]


def test_call_from_thread_before_run(reactor: Reactor) -> None:
    seen: list[int] = []
    reactor.callFromThread(seen.append, 1)
    t = threading.Thread(target=reactor.callFromThread, args=(seen.append, 2))
    t.start()
    t.join()
    assert seen == []
    run_until_true(reactor, lambda: len(seen) == 2)
    assert seen == [1, 2]


def test_call_from_thread_runs_in_reactor_thread_with_kwargs(reactor: Reactor) -> None:
    seen: list[Any] = []

    def record(a: int, b: int = 0) -> None:
        seen.append((a, b, threading.get_ident()))

    t = threading.Thread(target=reactor.callFromThread, args=(record, 1), kwargs={"b": 2})
    t.start()
    t.join()
    run_until_true(reactor, lambda: seen)
    assert seen == [(1, 2, threading.get_ident())]


def test_call_from_many_threads_keeps_each_threads_order(reactor: Reactor) -> None:
    n_threads, n_calls = 4, 2000
    seen: list[tuple[int, int]] = []
    start = threading.Barrier(n_threads)

    def produce(k: int) -> None:
        start.wait()
        for i in range(n_calls):
            reactor.callFromThread(seen.append, (k, i))

    workers = [threading.Thread(target=produce, args=(k,)) for k in range(n_threads)]
    for w in workers:
        w.start()
    run_until_true(reactor, lambda: len(seen) == n_threads * n_calls)
    for w in workers:
        w.join()
    for k in range(n_threads):
        assert [i for kk, i in seen if kk == k] == list(range(n_calls))


def test_call_from_thread_never_loses_a_wakeup(reactor: Reactor) -> None:
    """Bursts from several threads into a loop that sleeps with no timeout in between: a lost
    wake-up would leave calls queued and the loop asleep (caught by the guard)."""
    rounds, n_threads, n_calls = 30, 4, 300
    for _ in range(rounds):
        left = [n_threads * n_calls]

        def handed() -> None:
            left[0] -= 1
            if not left[0]:
                reactor.stop()

        def produce() -> None:
            for _ in range(n_calls):
                reactor.callFromThread(handed)

        workers = [threading.Thread(target=produce) for _ in range(n_threads)]
        reactor.callWhenRunning(lambda: [w.start() for w in workers])
        guard = reactor.callLater(20, reactor.crash)
        reactor.run(installSignalHandlers=False)
        for w in workers:
            w.join()
        assert guard.active(), f"lost wake-up: {left[0]} calls never ran"
        guard.cancel()


def test_exception_in_call_from_thread_is_logged(reactor: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def bad() -> None:
        raise LookupError("bad hand-off")

    reactor.callFromThread(bad)
    reactor.callFromThread(seen.append, "next")
    with caplog.at_level(logging.ERROR, logger="framework.eventloop"):
        run_until_true(reactor, lambda: seen)
    assert "bad hand-off" in caplog.text


def test_call_in_thread_runs_elsewhere(reactor: Reactor) -> None:
    seen: list[int] = []
    reactor.callInThread(lambda: reactor.callFromThread(seen.append, threading.get_ident()))
    run_until_true(reactor, lambda: seen)
    assert seen[0] != threading.get_ident()


def test_defer_to_thread_pool_result_and_failure(reactor: Reactor) -> None:
    pool = reactor.getThreadPool()
    assert reactor.getThreadPool() is pool
    main_ident = threading.get_ident()
    assert run_until(reactor, deferToThreadPool(reactor, pool, lambda x, y=0: x + y, 2, y=3)) == 5
    assert run_until(reactor, deferToThreadPool(reactor, pool, threading.get_ident)) != main_ident

    def fail() -> None:
        raise ArithmeticError("in thread")

    with pytest.raises(ArithmeticError, match="in thread"):
        run_until(reactor, deferToThreadPool(reactor, pool, fail))


def test_defer_to_thread_pool_with_executor(reactor: Reactor) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        assert run_until(reactor, deferToThreadPool(reactor, executor, pow, 2, 10)) == 1024


def test_defer_to_thread_is_a_plain_function() -> None:
    def blocking(x: int) -> int:
        return x

    bound = threads.deferToThread.__get__(blocking)
    assert bound.__func__ is threads.deferToThread
    assert bound.__self__ is blocking


def test_callbacks_fire_in_reactor_thread(reactor: Reactor) -> None:
    where: list[int] = []
    d = deferToThreadPool(reactor, reactor.getThreadPool(), lambda: None)
    d.addCallback(lambda _: where.append(threading.get_ident()))
    run_until(reactor, d)
    assert where == [threading.get_ident()]


def test_call_multiple_in_thread(reactor: Reactor) -> None:
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    def record(item: str) -> None:
        seen.append((item, threading.get_ident()))

    callMultipleInThread([(record, ("a",), {}), (record, (), {"item": "b"}), (done.set, (), {})],
                         reactor=reactor)
    assert done.wait(10)
    assert [s[0] for s in seen] == ["a", "b"]
    assert seen[0][1] == seen[1][1] != threading.get_ident()


def test_blocking_call_from_thread(reactor: Reactor) -> None:
    results: list[Any] = []

    def worker() -> None:
        results.append(blockingCallFromThread(reactor, lambda: threading.get_ident()))
        d: Deferred[str] = Deferred()
        reactor.callFromThread(reactor.callLater, 0, d.callback, "later")
        results.append(blockingCallFromThread(reactor, lambda: d))
        try:
            blockingCallFromThread(reactor, lambda: 1 / 0)
        except ZeroDivisionError as e:
            results.append(e)

    reactor.callInThread(worker)
    run_until_true(reactor, lambda: len(results) == 3)
    assert results[0] == threading.get_ident()
    assert results[1] == "later"
    assert isinstance(results[2], ZeroDivisionError)


def test_blocking_call_from_reactor_thread_raises(reactor: Reactor) -> None:
    raised: list[BaseException] = []

    def in_reactor() -> None:
        try:
            blockingCallFromThread(reactor, lambda: None)
        except RuntimeError as e:
            raised.append(e)

    reactor.callLater(0, in_reactor)
    run_until_true(reactor, lambda: raised)
    assert "reactor thread" in str(raised[0])


def _blocking_call_in_a_thread(reactor: Reactor, first: Any = None) -> BaseException:
    """Run ``first()`` then ``blockingCallFromThread`` in a new thread; the RuntimeError it
    raised (the thread must end within 10 s: a hang is the bug these tests look for)."""
    outcome: list[Any] = []

    def caller() -> None:
        if first is not None:
            first()
        try:
            outcome.append(blockingCallFromThread(reactor, lambda: "ran"))
        except RuntimeError as e:
            outcome.append(e)

    t = threading.Thread(target=caller, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "blockingCallFromThread hung"
    assert isinstance(outcome[0], RuntimeError), outcome
    return outcome[0]


def test_blocking_call_from_the_thread_that_ran_a_stopped_reactor_raises(reactor: Reactor) -> None:
    def run_once() -> None:
        reactor.callLater(0, reactor.stop)
        reactor.run(installSignalHandlers=False)

    assert "has stopped" in str(_blocking_call_in_a_thread(reactor, run_once))


def test_blocking_call_made_before_run_waits_for_the_loop(reactor: Reactor) -> None:
    results: list[Any] = []
    asked = threading.Event()

    def worker() -> None:
        asked.set()
        results.append(blockingCallFromThread(reactor, lambda: "served"))

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    assert asked.wait(10)
    run_until_true(reactor, lambda: results)
    t.join(10)
    assert results == ["served"]


def test_blocking_call_on_a_closed_reactor_raises() -> None:
    from reactor_framework_plugins.backends.pollbackend import PollMultiplexer

    r = Reactor(PollMultiplexer(), "poll")
    r.close()
    assert "closed" in str(_blocking_call_in_a_thread(r))


def test_suggest_thread_pool_size(reactor: Reactor) -> None:
    reactor.suggestThreadPoolSize(3)
    pool = reactor.getThreadPool()
    assert pool.max == 3
    reactor.suggestThreadPoolSize(5)
    assert pool.max == 5
    with pytest.raises(ValueError):
        reactor.suggestThreadPoolSize(0)


def _start_workers(pool: ThreadPool, count: int) -> None:
    """Make ``pool`` start ``count`` workers: that many jobs that must all run at once."""
    barrier = threading.Barrier(count + 1, timeout=10)
    for _ in range(count):
        pool.callInThread(barrier.wait)
    barrier.wait()


def test_a_smaller_pool_size_retires_the_extra_workers() -> None:
    pool = ThreadPool(0, 4, name="shrink")
    pool.start()
    try:
        _start_workers(pool, 4)
        workers = pool.threads
        assert len(workers) == 4
        pool.adjustPoolsize(maxthreads=1)
        lock = threading.Lock()
        active = [0, 0]  # now, peak
        started = threading.Semaphore(0)
        permits = threading.Semaphore(0)

        ran_on: set[threading.Thread] = set()

        def job() -> None:
            with lock:
                ran_on.add(threading.current_thread())
                active[0] += 1
                active[1] = max(active)
            started.release()
            assert permits.acquire(timeout=10)
            with lock:
                active[0] -= 1

        for _ in range(4):
            pool.callInThread(job)
        for _ in range(4):  # one job at a time, or the peak shows it
            assert started.acquire(timeout=10)
            permits.release()
        assert active[1] == 1 and len(ran_on) == 1
        for t in workers:
            if t not in ran_on:
                t.join(10)
                assert not t.is_alive()
        assert pool.threads == list(ran_on)
        pool.adjustPoolsize(maxthreads=1)  # no further change: nothing more is retired
        assert len(pool.threads) == 1
    finally:
        pool.stop(10)


def test_lowering_then_raising_the_pool_size_keeps_the_workers() -> None:
    pool = ThreadPool(4, 4, name="updown")
    pool.start()
    try:
        hold = threading.Event()
        barrier = threading.Barrier(5, timeout=10)

        def busy() -> None:
            barrier.wait()
            assert hold.wait(10)

        for _ in range(4):
            pool.callInThread(busy)
        barrier.wait()  # all four are busy
        pool.adjustPoolsize(1, 1)  # three workers should go...
        pool.adjustPoolsize(4, 4)  # ...no: keep them all
        hold.set()
        _start_workers(pool, 4)  # four jobs at once: four workers are still there
        assert len(pool.threads) == 4
    finally:
        pool.stop(10)


def test_repeated_shrinks_never_retire_the_last_workers() -> None:
    pool = ThreadPool(0, 3, name="twice")
    pool.start()
    try:
        _start_workers(pool, 3)
        for _ in range(5):
            pool.adjustPoolsize(maxthreads=1)
        done = threading.Event()
        pool.callInThread(done.set)
        assert done.wait(10), "the queued job never ran"
        assert len(pool.threads) >= 1
    finally:
        pool.stop(10)


def test_close_refuses_work_handed_over_while_the_pool_stops(reactor: Reactor) -> None:
    entered = threading.Event()
    stopping = threading.Event()
    outcome: list[Any] = []
    stop_pool = reactor._stop_thread_pool

    def stop_pool_and_tell() -> None:  # close() is stopping the pool (and will join us)
        stopping.set()
        stop_pool()

    reactor._stop_thread_pool = stop_pool_and_tell  # type: ignore[method-assign]

    def worker() -> None:
        entered.set()
        assert stopping.wait(10)
        try:  # handing more work over now must not start a new pool
            reactor.callInThread(lambda: None)
        except RuntimeError as e:
            outcome.append(e)

    reactor.callInThread(worker)
    assert entered.wait(10)
    reactor.close()
    assert outcome and "closed" in str(outcome[0])
    assert reactor._pool is None


def test_pool_never_exceeds_its_size(reactor: Reactor) -> None:
    reactor.suggestThreadPoolSize(2)
    release = threading.Event()
    running: set[int] = set()
    peak = [0]
    lock = threading.Lock()

    def busy() -> None:
        with lock:
            running.add(threading.get_ident())
            peak[0] = max(peak[0], len(running))
        release.wait(10)

    pool = reactor.getThreadPool()
    for _ in range(6):
        pool.callInThread(busy)
    run_until_true(reactor, lambda: len(pool.threads) == 2 and len(running) == 2)
    release.set()
    assert peak[0] == 2


def test_shutdown_waits_for_queued_work(reactor: Reactor) -> None:
    done: list[int] = []
    for i in range(5):
        reactor.callInThread(done.append, i)
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert sorted(done) == list(range(5))


def test_shutdown_does_not_hang_on_a_blocked_worker(reactor: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    started = threading.Event()

    def blocked() -> None:
        started.set()
        release.wait(30)

    reactor.thread_shutdown_timeout = 0.05
    reactor.callInThread(blocked)
    assert started.wait(10)
    reactor.callWhenRunning(reactor.stop)
    with caplog.at_level(logging.WARNING, logger="framework.threads"):
        reactor.run(installSignalHandlers=False)
    release.set()
    assert "still busy" in caplog.text


def test_thread_pool_restarts_after_reactor_restart(reactor: Reactor) -> None:
    pool = deferToThreadPool(reactor, reactor.getThreadPool(), lambda: 1)
    assert run_until(reactor, pool) == 1
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert run_until(reactor, deferToThreadPool(reactor, reactor.getThreadPool(), lambda: 2)) == 2


def test_thread_pool_standalone() -> None:
    pool = ThreadPool(1, 2, name="standalone")
    pool.start()
    assert len(pool.threads) == 1
    results: list[Any] = []
    done = threading.Event()

    def on_result(ok: bool, value: Any) -> None:
        results.append((ok, value))
        if len(results) == 2:
            done.set()

    pool.callInThreadWithCallback(on_result, lambda: "fine")
    pool.callInThreadWithCallback(on_result, lambda: {}["missing"])
    assert done.wait(10)
    pool.stop(timeout=10)
    assert pool.threads == []
    oks = sorted(results, key=lambda r: r[0])
    assert oks[1] == (True, "fine")
    assert oks[0][0] is False and oks[0][1].check(KeyError)
    with pytest.raises(ValueError):
        ThreadPool(3, 2)


def test_thread_pool_logs_unhandled_errors(caplog: pytest.LogCaptureFixture) -> None:
    pool = ThreadPool(0, 1)
    done = threading.Event()

    def boom() -> None:
        raise IndexError("lost in thread")

    with caplog.at_level(logging.ERROR, logger="framework.threads"):
        pool.callInThread(boom)
        pool.callInThread(done.set)
        assert done.wait(10)
        pool.stop(timeout=10)
    assert "lost in thread" in caplog.text
