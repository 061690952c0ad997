"""framework.task: Clock, LoopingCall and deferLater, driven by a deterministic Clock."""

from __future__ import annotations

from typing import Any

import pytest

from framework import error
from framework.defer import CancelledError, Deferred
from framework.eventloop import Reactor
from framework.failure import Failure
from framework.task import Clock, LoopingCall, deferLater
from tests.util import run_until

# -- Clock -------------------------------------------------------------------------------------


def test_clock_starts_at_zero_and_advances() -> None:
    clock = Clock()
    assert clock.seconds() == 0
    clock.advance(1.5)
    assert clock.seconds() == 1.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_clock_runs_due_calls_in_order() -> None:
    clock = Clock()
    seen: list[str] = []
    clock.callLater(2, seen.append, "b")
    clock.callLater(1, seen.append, "a")
    clock.callLater(2, seen.append, "c")
    clock.advance(0.5)
    assert seen == []
    clock.advance(0.5)
    assert seen == ["a"]
    clock.advance(5)
    assert seen == ["a", "b", "c"]
    assert clock.getDelayedCalls() == []


def test_clock_delayed_call_api() -> None:
    clock = Clock()
    seen: list[str] = []
    call = clock.callLater(3, seen.append, "x")
    assert call.getTime() == 3 and call.active()
    assert clock.getDelayedCalls() == [call]
    call.reset(5)
    assert call.getTime() == 5
    call.delay(1)
    assert call.getTime() == 6
    clock.advance(5.5)
    assert seen == []
    clock.advance(0.5)
    assert seen == ["x"] and call.called
    with pytest.raises(error.AlreadyCalled):
        call.cancel()
    other = clock.callLater(1, seen.append, "y")
    other.cancel()
    with pytest.raises(error.AlreadyCancelled):
        other.cancel()
    clock.advance(2)
    assert seen == ["x"]


def test_clock_rejects_negative_delay() -> None:
    with pytest.raises(ValueError):
        Clock().callLater(-1, lambda: None)


def test_clock_rejects_an_infinite_delay() -> None:
    with pytest.raises(ValueError, match="finite delay"):
        Clock().callLater(float("inf"), lambda: None)


def test_clock_rejects_a_non_callable_at_once() -> None:
    with pytest.raises(TypeError, match="needs a callable, not 5"):
        Clock().callLater(1, 5)  # type: ignore[arg-type]


def tick(*args: object, **kwargs: object) -> None:
    pass


def test_looping_call_repr_before_and_after_start() -> None:
    clock = Clock()
    lc = LoopingCall(tick, 1, key="v")
    lc.clock = clock
    assert repr(lc) == "LoopingCall<None>(tick, *(1,), **{'key': 'v'})"  # Twisted's form
    lc.start(2, now=False)
    assert repr(lc) == "LoopingCall<2>(tick, *(1,), **{'key': 'v'})"
    lc.stop()


def test_with_count_on_a_float_interval_counts_each_interval_once() -> None:
    clock = Clock()
    counts: list[int] = []
    lc = LoopingCall.withCount(counts.append)
    lc.clock = clock
    lc.start(0.1, now=False)
    for _ in range(10):
        clock.advance(0.1)  # 0.1 added ten times is 0.9999999999999999
    assert counts == [1] * 10
    lc.stop()


def test_clock_pump() -> None:
    clock = Clock()
    seen: list[float] = []
    for t in (1, 2, 3):
        clock.callLater(t, lambda: seen.append(clock.seconds()))
    clock.pump([1, 1, 1])
    assert seen == [1, 2, 3]


def test_clock_calls_scheduled_while_advancing() -> None:
    clock = Clock()
    seen: list[float] = []

    def again() -> None:
        seen.append(clock.seconds())
        if len(seen) < 3:
            clock.callLater(1, again)

    clock.callLater(1, again)
    clock.advance(10)  # time jumps first, so the rescheduled call is due at 11
    assert seen == [10]
    clock.advance(1)
    assert seen == [10, 11]
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert seen == [10, 11, 12] and clock.getDelayedCalls() == []


def test_clock_lets_exceptions_propagate() -> None:
    clock = Clock()
    clock.callLater(1, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        clock.advance(1)


# -- LoopingCall -------------------------------------------------------------------------------


def make_loop(f: Any = None) -> tuple[LoopingCall, Clock, list[float]]:
    clock = Clock()
    calls: list[float] = []
    loop = LoopingCall(f or (lambda: calls.append(clock.seconds())))
    loop.clock = clock
    return loop, clock, calls


def test_looping_call_now_calls_immediately() -> None:
    loop, clock, calls = make_loop()
    loop.start(1.0)
    assert calls == [0]
    clock.pump([1, 1, 1])
    assert calls == [0, 1, 2, 3]
    loop.stop()


def test_looping_call_not_now_waits_an_interval() -> None:
    loop, clock, calls = make_loop()
    loop.start(2.0, now=False)
    assert calls == []
    clock.advance(2)
    assert calls == [2]
    loop.stop()


def test_looping_call_stop_fires_deferred_with_itself() -> None:
    loop, clock, _ = make_loop()
    d = loop.start(1)
    fired: list[Any] = []
    d.addCallback(fired.append)
    assert loop.running
    loop.stop()
    assert fired == [loop] and not loop.running
    assert clock.getDelayedCalls() == []
    with pytest.raises(RuntimeError):
        loop.stop()


def test_looping_call_skips_missed_ticks() -> None:
    loop, clock, calls = make_loop()
    loop.start(1.0)
    clock.advance(3.5)  # three ticks missed: one call, then back on the grid
    assert calls == [0, 3.5]
    clock.advance(0.5)
    assert calls == [0, 3.5, 4]
    loop.stop()


def test_looping_call_with_count_counts_skipped_ticks() -> None:
    clock = Clock()
    counts: list[int] = []
    loop = LoopingCall.withCount(counts.append)
    loop.clock = clock
    loop.start(1.0)
    assert counts == [1]
    clock.advance(1)
    assert counts == [1, 1]
    clock.advance(3)
    assert counts == [1, 1, 3]
    clock.advance(1)
    assert counts == [1, 1, 3, 1]
    loop.stop()


def test_looping_call_with_count_not_now() -> None:
    clock = Clock()
    counts: list[int] = []
    loop = LoopingCall.withCount(counts.append)
    loop.clock = clock
    loop.start(0.1, now=False)
    clock.pump([0.1] * 5)
    assert counts == [1] * 5
    clock.advance(0.55)
    assert counts == [1] * 5 + [5]
    loop.stop()


def test_looping_call_failure_stops_and_errbacks() -> None:
    clock = Clock()
    n = [0]

    def sometimes() -> None:
        n[0] += 1
        if n[0] == 3:
            raise ValueError("third time")

    loop = LoopingCall(sometimes)
    loop.clock = clock
    d = loop.start(1)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    clock.pump([1, 1])
    assert n[0] == 3 and not loop.running
    assert failures and failures[0].check(ValueError)
    clock.pump([1, 1])
    assert n[0] == 3
    assert clock.getDelayedCalls() == []


def test_looping_call_waits_for_returned_deferred() -> None:
    clock = Clock()
    pending: list[Deferred[None]] = []

    def slow() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        pending.append(d)
        return d

    loop = LoopingCall(slow)
    loop.clock = clock
    loop.start(1)
    clock.pump([1, 1, 1])
    assert len(pending) == 1  # still waiting for the first result
    pending[0].callback(None)
    clock.advance(1)
    assert len(pending) == 2
    loop.stop()  # a call is in progress: the Deferred fires when it finishes
    stopped: list[Any] = []
    loop.deferred.addCallback(stopped.append)  # type: ignore[union-attr]
    assert stopped == []
    pending[1].callback(None)
    assert stopped == [loop]


def test_looping_call_args_and_reset() -> None:
    clock = Clock()
    seen: list[tuple[float, int, int]] = []
    loop = LoopingCall(lambda a, b: seen.append((clock.seconds(), a, b)), 1, b=2)
    loop.clock = clock
    loop.start(2)
    clock.advance(1)
    loop.reset()
    clock.advance(1.5)
    assert seen == [(0, 1, 2)]
    clock.advance(0.5)
    assert seen == [(0, 1, 2), (3, 1, 2)]
    loop.stop()


def test_looping_call_bad_interval_and_double_start() -> None:
    loop, clock, _ = make_loop()
    with pytest.raises(ValueError):
        loop.start(-1)
    assert not loop.running
    loop.start(1)
    with pytest.raises(RuntimeError):
        loop.start(1)
    loop.stop()


def test_looping_call_zero_interval_runs_once_per_turn(reactor: Reactor) -> None:
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] == 100:
            loop.stop()

    loop = LoopingCall(tick)
    loop.clock = reactor
    assert run_until(reactor, loop.start(0)) is loop
    assert count[0] == 100


def test_looping_call_on_a_real_reactor(reactor: Reactor) -> None:
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] == 3:
            loop.stop()

    loop = LoopingCall(tick)
    loop.clock = reactor
    assert run_until(reactor, loop.start(0.001)) is loop
    assert count[0] == 3


# -- deferLater --------------------------------------------------------------------------------


def test_defer_later_fires_with_result() -> None:
    clock = Clock()
    d = deferLater(clock, 2, lambda x, y: x * y, 3, y=4)
    results: list[Any] = []
    d.addCallback(results.append)
    clock.advance(1)
    assert results == []
    clock.advance(1)
    assert results == [12]


def test_defer_later_without_callable() -> None:
    clock = Clock()
    results: list[Any] = []
    deferLater(clock, 1).addCallback(results.append)
    clock.advance(1)
    assert results == [None]


def test_defer_later_failure() -> None:
    clock = Clock()
    failures: list[Failure] = []
    deferLater(clock, 1, lambda: 1 / 0).addErrback(failures.append)
    clock.advance(1)
    assert failures[0].check(ZeroDivisionError)


def test_defer_later_cancel_unschedules() -> None:
    clock = Clock()
    called: list[int] = []
    d = deferLater(clock, 1, called.append, 1)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    d.cancel()
    assert failures[0].check(CancelledError)
    assert clock.getDelayedCalls() == []
    clock.advance(2)
    assert called == []


def test_defer_later_on_a_real_reactor(reactor: Reactor) -> None:
    assert run_until(reactor, deferLater(reactor, 0.001, lambda: "done")) == "done"
