"""Tests for ``framework.defer``: Deferred semantics (Twisted's), combinators, coroutines,
concurrency primitives, unhandled-error reporting and the middleware hooks."""

from __future__ import annotations

import contextvars
import gc
import logging
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from framework import error, middleware
from framework.defer import (
    FAILURE,
    SUCCESS,
    FailureGroup,
    AlreadyCalledError,
    CancelledError,
    Deferred,
    DeferredList,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    FirstError,
    NotACoroutineError,
    QueueOverflow,
    QueueUnderflow,
    TimeoutError,
    ensureDeferred,
    execute,
    fail,
    gatherResults,
    inlineCallbacks,
    logError,
    maybeDeferred,
    passthru,
    race,
    returnValue,
    succeed,
)
from framework.failure import Failure, NoCurrentExceptionError
from framework.task import Clock


def result_of(d: Deferred[Any]) -> Any:
    """The current result of a fired Deferred (failing the test if it has not fired)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, f"{d!r} has not fired"
    if isinstance(out[0], Failure):
        raise AssertionError(f"{d!r} failed: {out[0].getTraceback()}")
    return out[0]


def failure_of(d: Deferred[Any]) -> Failure:
    """The Failure of a fired Deferred, consuming it."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, f"{d!r} has not fired"
    assert isinstance(out[0], Failure), f"{d!r} succeeded with {out[0]!r}"
    return out[0]


def no_result(d: Deferred[Any]) -> None:
    out: list[Any] = []
    d.addBoth(lambda r: out.append(r) or r)
    assert not out, f"{d!r} fired with {out!r}"


def with_little_stack_left(fn: Any, headroom: int = 60) -> Any:
    """Call ``fn`` with only ``headroom`` frames left before the recursion limit, so that any
    recursion proportional to the work would raise RecursionError."""
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]

    def dive(n: int) -> Any:
        return fn() if n <= 0 else dive(n - 1)

    return dive(sys.getrecursionlimit() - depth - headroom)


@pytest.fixture
def defer_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.ERROR, logger="framework.defer")
    gc.collect()
    caplog.clear()
    yield caplog


# ------------------------------------------------------------------------------------------
# The two chains


class TestChains:
    def test_callbacks_run_in_order_passing_results(self) -> None:
        d: Deferred[int] = Deferred()
        d.addCallback(lambda r: r + 1).addCallback(lambda r: r * 10)
        d.callback(1)
        assert result_of(d) == 20
        assert d.called

    def test_extra_args_and_kwargs(self) -> None:
        seen: list[Any] = []
        d: Deferred[str] = Deferred()
        d.addCallback(lambda r, a, b=None: seen.append((r, a, b)) or r, "A", b="B")
        d.addCallbacks(lambda r, x, y: seen.append((r, x, y)), lambda f: None,
                       callbackArgs=(1,), callbackKeywords={"y": 2})
        d.callback("r")
        assert seen == [("r", "A", "B"), ("r", 1, 2)]

    def test_errback_extra_args(self) -> None:
        seen: list[Any] = []
        d: Deferred[Any] = Deferred()
        d.addErrback(lambda f, a, k=None: seen.append((f.type, a, k)), 7, k=8)
        d.addCallbacks(passthru, lambda f: None, errbackArgs=(1,), errbackKeywords={"z": 2})
        d.errback(ValueError("x"))
        assert seen == [(ValueError, 7, 8)]
        d2: Deferred[Any] = Deferred()
        d2.addCallbacks(passthru, lambda f, a, z: seen.append((a, z)),
                        errbackArgs=(1,), errbackKeywords={"z": 2})
        d2.errback(ValueError("y"))
        assert seen[-1] == (1, 2)

    def test_callback_raising_switches_to_errbacks(self) -> None:
        order: list[str] = []
        d: Deferred[int] = Deferred()
        d.addCallback(lambda r: 1 / 0)
        d.addCallback(lambda r: order.append("skipped"))
        d.addErrback(lambda f: order.append(f.type.__name__) or "recovered")
        d.addCallback(lambda r: order.append(r))
        d.callback(1)
        assert order == ["ZeroDivisionError", "recovered"]

    def test_errback_returning_value_switches_back(self) -> None:
        d: Deferred[Any] = Deferred()
        d.addErrback(lambda f: 42)
        d.errback(RuntimeError("boom"))
        assert result_of(d) == 42

    def test_errback_reraising_stays_on_errbacks(self) -> None:
        d: Deferred[Any] = Deferred()
        d.addErrback(lambda f: f.trap(KeyError))
        d.errback(RuntimeError("boom"))
        f = failure_of(d)
        assert f.check(RuntimeError)

    def test_returning_a_failure_switches_to_errbacks(self) -> None:
        d: Deferred[Any] = Deferred()
        d.addCallback(lambda r: Failure(ValueError("as value")))
        d.callback(None)
        assert failure_of(d).getErrorMessage() == "as value"

    def test_addCallbacks_is_one_stage(self) -> None:
        """The errback of a stage does not see its own callback's exception."""
        calls: list[str] = []

        def cb(r: Any) -> Any:
            calls.append("cb")
            raise ValueError("from cb")

        def eb(f: Failure) -> Any:
            calls.append("same-stage eb")
            return None

        d: Deferred[Any] = Deferred()
        d.addCallbacks(cb, eb)
        d.addErrback(lambda f: calls.append("next-stage " + f.getErrorMessage()))
        d.callback(1)
        assert calls == ["cb", "next-stage from cb"]

    def test_addCallbacks_errback_only_runs_on_failure(self) -> None:
        calls: list[str] = []
        d: Deferred[Any] = Deferred()
        d.addCallbacks(lambda r: calls.append("cb"), lambda f: calls.append("eb"))
        d.errback(KeyError("k"))
        assert calls == ["eb"]

    def test_addBoth_sees_values_and_failures(self) -> None:
        seen: list[Any] = []
        d1: Deferred[int] = Deferred()
        d1.addBoth(seen.append)
        d1.callback(3)
        d2: Deferred[int] = Deferred()
        d2.addBoth(seen.append)
        d2.errback(KeyError("k"))
        assert seen[0] == 3 and isinstance(seen[1], Failure)

    def test_adding_after_firing_runs_immediately(self) -> None:
        d = succeed(5)
        seen: list[int] = []
        d.addCallback(seen.append)
        assert seen == [5]

    def test_callbacks_added_from_a_callback_run_in_order(self) -> None:
        order: list[Any] = []
        d: Deferred[int] = Deferred()

        def first(r: int) -> int:
            d.addCallback(lambda r2: order.append(("late", r2)))
            order.append(("first", r))
            return r + 1

        d.addCallback(first)
        d.addCallback(lambda r: order.append(("second", r)) or r)
        d.callback(0)
        assert order == [("first", 0), ("second", 1), ("late", 1)]

    def test_same_callback_twice(self) -> None:
        def inc(r: int) -> int:
            return r + 1

        d: Deferred[int] = Deferred()
        for _ in range(5):
            d.addCallback(inc)
        d.callback(0)
        assert result_of(d) == 5

    def test_non_callable_is_rejected_when_added(self) -> None:
        d: Deferred[Any] = Deferred()
        with pytest.raises(TypeError, match="callback must be callable"):
            d.addCallback(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="errback must be callable"):
            d.addErrback("nope")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="errback must be callable"):
            d.addCallbacks(passthru, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="canceller must be callable"):
            Deferred(5)  # type: ignore[arg-type]
        d.callback(1)
        assert result_of(d) == 1

    def test_result_attribute(self) -> None:
        d: Deferred[int] = Deferred()
        assert not d.called
        with pytest.raises(AttributeError):
            d.result
        d.callback(3)
        assert d.called and d.result == 3

    def test_base_exceptions_in_callbacks_become_failures(self) -> None:
        d: Deferred[Any] = Deferred()

        def cb(r: Any) -> None:
            raise KeyboardInterrupt()

        d.addCallback(cb)
        d.callback(None)
        assert failure_of(d).check(KeyboardInterrupt)

    def test_repr(self) -> None:
        d: Deferred[int] = Deferred()
        assert repr(d).startswith("<Deferred at 0x")
        d.callback(7)
        assert "current result: 7" in repr(d)
        outer: Deferred[Any] = Deferred()
        inner: Deferred[Any] = Deferred()
        outer.addCallback(lambda _: inner)
        outer.callback(None)
        assert f"waiting on Deferred at 0x{id(inner):x}" in repr(outer)
        inner.callback(None)

    def test_generic(self) -> None:
        d = Deferred[int]()
        d.callback(1)
        assert result_of(d) == 1
        assert Deferred[str] is not Deferred


class TestFiring:
    def test_callback_twice(self) -> None:
        d: Deferred[int] = Deferred()
        d.callback(1)
        with pytest.raises(AlreadyCalledError):
            d.callback(2)
        with pytest.raises(AlreadyCalledError):
            d.errback(ValueError())
        assert result_of(d) == 1

    def test_errback_twice(self) -> None:
        d: Deferred[int] = Deferred()
        d.errback(ValueError("a"))
        with pytest.raises(AlreadyCalledError):
            d.errback(ValueError("b"))
        with pytest.raises(AlreadyCalledError):
            d.callback(1)
        assert failure_of(d).getErrorMessage() == "a"

    def test_errback_without_argument_inside_except(self) -> None:
        d: Deferred[Any] = Deferred()
        try:
            {}["missing"]
        except KeyError:
            d.errback()
        f = failure_of(d)
        assert f.check(KeyError)
        assert "test_errback_without_argument_inside_except" in f.getTraceback()

    def test_errback_without_argument_outside_except(self) -> None:
        d: Deferred[Any] = Deferred()
        with pytest.raises(NoCurrentExceptionError):
            d.errback()
        assert not d.called

    def test_errback_with_exception_or_failure(self) -> None:
        d1: Deferred[Any] = Deferred()
        d1.errback(ValueError("v"))
        assert failure_of(d1).type is ValueError
        f = Failure(KeyError("k"))
        d2: Deferred[Any] = Deferred()
        d2.errback(f)
        assert failure_of(d2) is f

    def test_errback_with_non_exception(self) -> None:
        d: Deferred[Any] = Deferred()
        with pytest.raises(TypeError):
            d.errback("a string")  # type: ignore[arg-type]
        assert not d.called

    def test_callback_with_a_deferred_is_a_type_error(self) -> None:
        d: Deferred[Any] = Deferred()
        with pytest.raises(TypeError, match="chain"):
            d.callback(Deferred())
        assert not d.called
        d.callback(1)
        assert result_of(d) == 1
        with pytest.raises(TypeError):
            succeed(Deferred())


# ------------------------------------------------------------------------------------------
# Deferreds returned from callbacks, chainDeferred


class TestNesting:
    def test_unfired_inner_pauses_outer(self) -> None:
        inner: Deferred[str] = Deferred()
        outer: Deferred[Any] = Deferred()
        seen: list[Any] = []
        outer.addCallback(lambda _: inner).addCallback(seen.append)
        outer.callback(None)
        assert seen == [] and outer.paused
        inner.callback("inner result")
        assert seen == ["inner result"]
        assert not outer.paused
        assert inner.result is None

    def test_fired_inner_is_used_at_once(self) -> None:
        inner = succeed("ready")
        outer: Deferred[Any] = Deferred()
        outer.addCallback(lambda _: inner)
        outer.callback(None)
        assert result_of(outer) == "ready"
        assert inner.result is None

    def test_inner_failure_goes_down_outer_errbacks(self, defer_log: pytest.LogCaptureFixture) -> None:
        inner: Deferred[Any] = Deferred()
        outer: Deferred[Any] = Deferred()
        outer.addCallback(lambda _: inner)
        outer.callback(None)
        inner.errback(ValueError("inner failed"))
        assert failure_of(outer).getErrorMessage() == "inner failed"
        del inner, outer
        gc.collect()
        assert defer_log.records == []

    def test_fired_failed_inner(self, defer_log: pytest.LogCaptureFixture) -> None:
        inner = fail(ValueError("x"))
        outer: Deferred[Any] = Deferred()
        outer.addCallback(lambda _: inner)
        outer.callback(None)
        assert failure_of(outer).check(ValueError)
        del inner, outer
        gc.collect()
        assert defer_log.records == []

    def test_inner_with_own_callbacks(self) -> None:
        inner: Deferred[int] = Deferred()
        inner.addCallback(lambda r: r * 2)
        outer: Deferred[Any] = Deferred()
        outer.addCallback(lambda _: inner).addCallback(lambda r: r + 1)
        outer.callback(None)
        inner.callback(10)
        assert result_of(outer) == 21

    def test_callbacks_added_to_inner_after_chaining_get_none(self) -> None:
        inner: Deferred[int] = Deferred()
        outer: Deferred[Any] = Deferred()
        outer.addCallback(lambda _: inner)
        outer.callback(None)
        late: list[Any] = []
        inner.addCallback(late.append)
        inner.callback(5)
        assert result_of(outer) == 5
        assert late == [None]

    def test_returning_itself_is_an_error(self) -> None:
        d: Deferred[Any] = Deferred()
        d.addCallback(lambda _: d)
        with pytest.warns(DeprecationWarning, match="Callback returned the Deferred it was attached to"):
            d.callback(None)
        f = failure_of(d)
        assert f.check(TypeError) and "returned the Deferred it was added to" in f.getErrorMessage()

    def test_paused_inner(self) -> None:
        inner = succeed(1)
        inner.pause()
        outer: Deferred[Any] = Deferred()
        outer.addCallback(lambda _: inner)
        outer.callback(None)
        no_result(outer)
        inner.unpause()
        assert result_of(outer) == 1

    def test_two_outers_on_one_inner(self) -> None:
        inner: Deferred[int] = Deferred()
        a: Deferred[Any] = Deferred()
        b: Deferred[Any] = Deferred()
        a.addCallback(lambda _: inner)
        a.callback(None)
        b.addCallback(lambda _: inner)
        b.callback(None)
        inner.callback(3)
        assert result_of(a) == 3
        assert result_of(b) is None  # the first waiter took the result, as in Twisted

    @pytest.mark.parametrize("fire_order", ["innermost_last", "outermost_last"])
    def test_50000_nested(self, fire_order: str) -> None:
        n = 50_000
        ds: list[Deferred[Any]] = [Deferred() for _ in range(n)]
        for i in range(n - 1):
            ds[i].addCallback(lambda _, nxt=ds[i + 1]: nxt)
        ds[-1].addCallback(lambda r: r + 1)
        if fire_order == "innermost_last":
            for d in ds[:-1]:
                d.callback(None)
            ds[-1].callback(1)
        else:
            for d in reversed(ds[1:]):
                d.callback(1 if d is ds[-1] else None)
            ds[0].callback(None)
        assert result_of(ds[0]) == 2

    def test_50000_nested_failure(self) -> None:
        n = 50_000
        ds: list[Deferred[Any]] = [Deferred() for _ in range(n)]
        for i in range(n - 1):
            ds[i].addCallback(lambda _, nxt=ds[i + 1]: nxt)
        for d in ds[:-1]:
            d.callback(None)
        ds[-1].errback(ValueError("deep"))
        assert failure_of(ds[0]).getErrorMessage() == "deep"

    def test_50000_chained(self) -> None:
        n = 50_000
        ds: list[Deferred[Any]] = [Deferred() for _ in range(n)]
        for a, b in zip(ds, ds[1:]):
            a.chainDeferred(b)
        ds[-1].addCallback(lambda r: r * 2)
        ds[0].callback(21)
        assert result_of(ds[-1]) == 42
        assert all(d.result is None for d in ds[:-1])

    def test_50000_chained_then_callbacks_in_between(self) -> None:
        n = 50_000
        ds: list[Deferred[Any]] = [Deferred() for _ in range(n)]
        for a, b in zip(ds, ds[1:]):
            a.chainDeferred(b)
            a.addCallback(lambda r: "after chain")
        ds[0].callback(1)
        assert result_of(ds[-1]) == 1
        assert result_of(ds[0]) == "after chain"

    def test_50000_returned_already_fired_in_one_chain(self) -> None:
        d: Deferred[int] = Deferred()
        for _ in range(50_000):
            d.addCallback(lambda r: succeed(r + 1))
        d.callback(0)
        assert result_of(d) == 50_000

    def test_chain_of_pending_returns(self) -> None:
        """Each callback returns a Deferred that is fired later, one by one."""
        d: Deferred[int] = Deferred()
        pending: list[Deferred[int]] = []

        def later(r: int) -> Deferred[int]:
            nd: Deferred[int] = Deferred()
            pending.append(nd)
            return nd.addCallback(lambda x: x + r)

        for _ in range(1000):
            d.addCallback(later)
        d.callback(0)
        for i in range(1000):
            pending[i].callback(1)
        assert result_of(d) == 1000

    def test_chainDeferred(self) -> None:
        a: Deferred[int] = Deferred()
        b: Deferred[int] = Deferred()
        a.chainDeferred(b)
        a.callback(1)
        assert result_of(b) == 1
        assert a.result is None

    def test_chainDeferred_failure(self, defer_log: pytest.LogCaptureFixture) -> None:
        a: Deferred[int] = Deferred()
        b: Deferred[int] = Deferred()
        a.chainDeferred(b)
        a.errback(KeyError("k"))
        assert failure_of(b).check(KeyError)
        assert a.result is None
        del a, b
        gc.collect()
        assert defer_log.records == []

    def test_chainDeferred_to_fired_target(self) -> None:
        a: Deferred[int] = Deferred()
        b = succeed(0)
        a.chainDeferred(b)
        a.callback(1)
        assert failure_of(a).check(AlreadyCalledError)
        assert result_of(b) == 0

    def test_chainDeferred_to_self(self) -> None:
        a: Deferred[int] = Deferred()
        with pytest.raises(ValueError):
            a.chainDeferred(a)
        with pytest.raises(TypeError):
            a.chainDeferred(1)  # type: ignore[arg-type]

    def test_chainDeferred_after_firing(self) -> None:
        a = succeed(3)
        b: Deferred[int] = Deferred()
        a.chainDeferred(b)
        assert result_of(b) == 3

    def test_chainDeferred_target_cancelled_without_canceller(self) -> None:
        a: Deferred[int] = Deferred()
        b: Deferred[int] = Deferred()
        a.chainDeferred(b)
        b.cancel()
        assert failure_of(b).check(CancelledError)
        a.callback(1)  # ignored by b once, like a second callback after a cancel
        assert a.result is None

    def test_stack_depth_does_not_grow_with_the_chain(self) -> None:
        ds: list[Deferred[Any]] = [Deferred() for _ in range(5000)]
        for i in range(len(ds) - 1):
            ds[i].addCallback(lambda _, nxt=ds[i + 1]: nxt)
        for d in ds[:-1]:
            d.callback(None)
        with_little_stack_left(lambda: ds[-1].callback(7))
        assert result_of(ds[0]) == 7


class TestAddingToFiredDeferreds:
    """addCallback on a fired, idle Deferred runs the callback directly: same semantics."""

    def test_returns_unfired(self) -> None:
        inner: Deferred[int] = Deferred()
        d = succeed(1).addCallback(lambda _: inner)
        assert d.paused
        seen: list[int] = []
        d.addCallback(seen.append)
        inner.callback(5)
        assert seen == [5]

    def test_returns_fired(self) -> None:
        assert result_of(succeed(1).addCallback(lambda r: succeed(r + 1))) == 2

    def test_returns_itself(self) -> None:
        d = succeed(1)
        with pytest.warns(DeprecationWarning, match="Callback returned the Deferred it was attached to"):
            d.addCallback(lambda _: d)
        assert failure_of(d).check(TypeError)

    def test_raises_then_unhandled(self, defer_log: pytest.LogCaptureFixture) -> None:
        d = succeed(1)
        d.addCallback(lambda _: {}["fast path"])
        del d
        gc.collect()
        assert "fast path" in defer_log.text

    def test_args_and_kwargs(self) -> None:
        assert result_of(succeed(1).addCallback(lambda r, a, b: r + a + b, 2, b=3)) == 6

    def test_failed_deferred_skips_callback(self) -> None:
        calls: list[Any] = []
        d = fail(KeyError("k")).addCallback(calls.append)
        assert calls == [] and failure_of(d).check(KeyError)

    def test_callback_adding_callbacks(self) -> None:
        d = succeed(1)
        order: list[Any] = []

        def first(r: int) -> int:
            d.addCallback(lambda r2: order.append(("nested", r2)))
            order.append(("first", r))
            return r + 1

        d.addCallback(first)
        assert order == [("first", 1), ("nested", 2)]

    def test_paused_fired(self) -> None:
        d = succeed(1)
        d.pause()
        seen: list[int] = []
        d.addCallback(seen.append)
        assert seen == []
        d.unpause()
        assert seen == [1]


# ------------------------------------------------------------------------------------------
# Cancellation


class TestCancel:
    def test_canceller_is_called(self) -> None:
        calls: list[Deferred[Any]] = []
        d: Deferred[Any] = Deferred(calls.append)
        d.cancel()
        assert calls == [d]
        assert failure_of(d).check(CancelledError)

    def test_canceller_that_fires(self) -> None:
        d: Deferred[Any] = Deferred(lambda d: d.callback("cancelled cleanly"))
        d.cancel()
        assert result_of(d) == "cancelled cleanly"

    def test_canceller_that_errbacks(self) -> None:
        d: Deferred[Any] = Deferred(lambda d: d.errback(KeyError("mine")))
        d.cancel()
        assert failure_of(d).check(KeyError)

    def test_without_canceller_next_callback_is_ignored_once(self) -> None:
        d: Deferred[Any] = Deferred()
        d.cancel()
        assert failure_of(d).check(CancelledError)
        d.callback("late")  # ignored
        with pytest.raises(AlreadyCalledError):
            d.callback("later")

    def test_without_canceller_next_errback_is_ignored_once(self) -> None:
        d: Deferred[Any] = Deferred()
        d.cancel()
        d.errback(ValueError("late"))
        assert failure_of(d).check(CancelledError)

    def test_with_canceller_that_does_not_fire_late_callback_raises(self) -> None:
        d: Deferred[Any] = Deferred(lambda d: None)
        d.cancel()
        assert failure_of(d).check(CancelledError)
        with pytest.raises(AlreadyCalledError):
            d.callback("late")

    def test_cancel_after_firing_does_nothing(self) -> None:
        calls: list[Any] = []
        d: Deferred[Any] = Deferred(calls.append)
        d.callback(1)
        d.cancel()
        assert calls == [] and result_of(d) == 1
        f = fail(ValueError())
        f.cancel()
        assert failure_of(f).check(ValueError)

    def test_cancel_twice(self) -> None:
        calls: list[Any] = []
        d: Deferred[Any] = Deferred(calls.append)
        d.cancel()
        d.cancel()
        assert len(calls) == 1
        assert failure_of(d).check(CancelledError)

    def test_cancel_waiting_on_inner_cancels_inner(self) -> None:
        cancelled: list[Any] = []
        inner: Deferred[Any] = Deferred(cancelled.append)
        outer: Deferred[Any] = Deferred()
        after: list[Any] = []
        outer.addCallback(lambda _: inner).addErrback(lambda f: after.append(f.type) or "handled")
        outer.callback(None)
        outer.cancel()
        assert cancelled == [inner]
        assert after == [CancelledError]
        assert result_of(outer) == "handled"

    def test_cancel_nested_twice(self) -> None:
        innermost: Deferred[Any] = Deferred()
        middle: Deferred[Any] = Deferred()
        middle.addCallback(lambda _: innermost)
        middle.callback(None)
        outer: Deferred[Any] = Deferred()
        outer.addCallback(lambda _: middle)
        outer.callback(None)
        outer.cancel()
        assert failure_of(outer).check(CancelledError)
        assert innermost.called

    def test_canceller_raising_errbacks_with_its_error(self) -> None:
        def canceller(d: Deferred[Any]) -> None:
            raise RuntimeError("canceller broke")

        d: Deferred[Any] = Deferred(canceller)
        d.cancel()
        assert failure_of(d).getErrorMessage() == "canceller broke"


# ------------------------------------------------------------------------------------------
# pause / unpause


class TestPause:
    def test_pause_holds_callbacks(self) -> None:
        d: Deferred[int] = Deferred()
        seen: list[int] = []
        d.addCallback(seen.append)
        d.pause()
        d.callback(1)
        assert seen == []
        d.unpause()
        assert seen == [1]

    def test_nested_pauses(self) -> None:
        d = succeed(1)
        d.pause()
        d.pause()
        seen: list[int] = []
        d.addCallback(seen.append)
        d.unpause()
        assert seen == []
        d.unpause()
        assert seen == [1]

    def test_pause_from_a_callback(self) -> None:
        """As in Twisted, a pause taken inside a running chain holds later additions only."""
        d: Deferred[int] = Deferred()
        seen: list[int] = []

        def pauser(r: int) -> int:
            d.pause()
            return r + 1

        d.addCallback(pauser).addCallback(seen.append)
        d.callback(1)
        assert seen == [2]
        d.addCallback(lambda r: seen.append(-1))
        assert seen == [2]
        d.unpause()
        assert seen == [2, -1]

    def test_unpause_unfired(self) -> None:
        d: Deferred[int] = Deferred()
        d.pause()
        d.unpause()
        assert not d.called

    def test_unpause_not_paused(self) -> None:
        d: Deferred[int] = Deferred()
        with pytest.raises(RuntimeError, match="not paused"):
            d.unpause()


# ------------------------------------------------------------------------------------------
# addTimeout


class TestTimeout:
    def test_times_out(self) -> None:
        clock = Clock()
        d: Deferred[Any] = Deferred()
        d.addTimeout(5, clock)
        clock.advance(4.9)
        no_result(d)
        clock.advance(0.1)
        f = failure_of(d)
        assert f.check(TimeoutError)
        assert f.check(error.TimeoutError)
        assert isinstance(f.value, TimeoutError) and f.value.timeout == 5
        assert "timed out after 5 seconds" in f.getErrorMessage()
        with pytest.raises(error.TimeoutError):
            f.raiseException()

    def test_fires_in_time_cancels_timer(self) -> None:
        clock = Clock()
        d: Deferred[Any] = Deferred()
        d.addTimeout(5, clock)
        assert len(clock.getDelayedCalls()) == 1
        d.callback("ok")
        assert clock.getDelayedCalls() == []
        assert result_of(d) == "ok"

    def test_failure_in_time_passes_through(self) -> None:
        clock = Clock()
        d: Deferred[Any] = Deferred()
        d.addTimeout(5, clock)
        d.errback(KeyError("k"))
        assert clock.getDelayedCalls() == []
        assert failure_of(d).check(KeyError)

    def test_cancelled_by_user_is_not_a_timeout(self) -> None:
        clock = Clock()
        d: Deferred[Any] = Deferred()
        d.addTimeout(5, clock)
        d.cancel()
        assert failure_of(d).check(CancelledError)
        assert clock.getDelayedCalls() == []

    def test_onTimeoutCancel(self) -> None:
        clock = Clock()
        calls: list[Any] = []
        d: Deferred[Any] = Deferred()

        def onTimeout(result: Any, timeout: float) -> str:
            calls.append((type(result), timeout))
            return "substitute"

        d.addTimeout(2, clock, onTimeoutCancel=onTimeout)
        clock.advance(2)
        assert calls == [(Failure, 2)]
        assert result_of(d) == "substitute"

    def test_canceller_result_is_kept(self) -> None:
        clock = Clock()
        d: Deferred[Any] = Deferred(lambda d: d.callback("from canceller"))
        d.addTimeout(1, clock)
        clock.advance(1)
        assert result_of(d) == "from canceller"

    def test_timeout_cancels_inner(self) -> None:
        clock = Clock()
        cancelled: list[Any] = []
        inner: Deferred[Any] = Deferred(cancelled.append)
        d: Deferred[Any] = Deferred()
        d.addCallback(lambda _: inner)
        d.addTimeout(3, clock)
        d.callback(None)
        clock.advance(3)
        assert cancelled == [inner]
        assert failure_of(d).check(TimeoutError)

    def test_error_attributes(self) -> None:
        e = TimeoutError(1.5, "Deferred")
        assert isinstance(e, error.TimeoutError)
        assert str(e) == "Deferred timed out after 1.5 seconds"
        assert str(TimeoutError()) == "Deferred timed out"


# ------------------------------------------------------------------------------------------
# Shortcuts


class TestShortcuts:
    def test_succeed(self) -> None:
        d = succeed("x")
        assert d.called and result_of(d) == "x"

    def test_fail_with_exception_and_failure(self) -> None:
        assert failure_of(fail(ValueError("v"))).check(ValueError)
        f = Failure(KeyError())
        assert failure_of(fail(f)) is f

    def test_fail_inside_except(self) -> None:
        try:
            raise OSError("os")
        except OSError:
            d = fail()
        assert failure_of(d).check(OSError)

    def test_execute(self) -> None:
        assert result_of(execute(lambda a, b: a + b, 1, b=2)) == 3
        assert failure_of(execute(lambda: 1 / 0)).check(ZeroDivisionError)

    def test_maybeDeferred_value(self) -> None:
        assert result_of(maybeDeferred(lambda x: x * 2, 4)) == 8

    def test_maybeDeferred_exception(self) -> None:
        def boom() -> None:
            raise KeyError("boom")

        assert failure_of(maybeDeferred(boom)).check(KeyError)

    def test_maybeDeferred_deferred_and_failure(self) -> None:
        d: Deferred[Any] = Deferred()
        assert maybeDeferred(lambda: d) is d
        f = Failure(ValueError())
        assert failure_of(maybeDeferred(lambda: f)) is f

    def test_maybeDeferred_coroutine(self) -> None:
        inner: Deferred[int] = Deferred()

        async def work(x: int) -> int:
            return x + await inner

        d = maybeDeferred(work, 1)
        no_result(d)
        inner.callback(2)
        assert result_of(d) == 3

    def test_logError(self, defer_log: pytest.LogCaptureFixture) -> None:
        d = fail(ValueError("logged"))
        d.addErrback(logError)
        assert result_of(d) is None
        assert "logged" in defer_log.text


# ------------------------------------------------------------------------------------------
# DeferredList and gatherResults


class TestDeferredList:
    def test_results_in_list_order(self) -> None:
        a: Deferred[Any] = Deferred()
        b: Deferred[Any] = Deferred()
        c: Deferred[Any] = Deferred()
        dl = DeferredList([a, b, c])
        c.callback("c")
        a.callback("a")
        no_result(dl)
        b.errback(KeyError("b"))
        results = result_of(dl)
        assert [r[0] for r in results] == [SUCCESS, FAILURE, SUCCESS]
        assert results[0][1] == "a" and results[2][1] == "c"
        assert results[1][1].check(KeyError)
        # without consumeErrors the failure stays in b's chain
        assert failure_of(b).check(KeyError)

    def test_empty(self) -> None:
        assert result_of(DeferredList([])) == []
        no_result(DeferredList([], fireOnOneCallback=True))

    def test_already_fired(self) -> None:
        assert result_of(DeferredList([succeed(1), succeed(2)])) == [(True, 1), (True, 2)]

    def test_fireOnOneCallback(self) -> None:
        a: Deferred[Any] = Deferred()
        b: Deferred[Any] = Deferred()
        dl = DeferredList([a, b], fireOnOneCallback=True)
        a.errback(ValueError())
        no_result(dl)
        b.callback("b")
        assert result_of(dl) == ("b", 1)
        failure_of(a)

    def test_fireOnOneErrback(self) -> None:
        a: Deferred[Any] = Deferred()
        b: Deferred[Any] = Deferred()
        dl = DeferredList([a, b], fireOnOneErrback=True, consumeErrors=True)
        a.callback(1)
        b.errback(ValueError("second"))
        f = failure_of(dl)
        assert f.check(FirstError)
        first = f.value
        assert isinstance(first, FirstError)
        assert first.index == 1 and first.subFailure.check(ValueError)
        assert "second" in str(first) and "#1" in repr(first)

    def test_consumeErrors(self, defer_log: pytest.LogCaptureFixture) -> None:
        a: Deferred[Any] = Deferred()
        dl = DeferredList([a], consumeErrors=True)
        a.errback(ValueError("consumed"))
        assert a.result is None
        assert result_of(dl)[0][0] is FAILURE
        del a, dl
        gc.collect()
        assert defer_log.records == []

    def test_not_consumed_is_logged(self, defer_log: pytest.LogCaptureFixture) -> None:
        a: Deferred[Any] = Deferred()
        dl = DeferredList([a])
        a.errback(ValueError("left unhandled"))
        result_of(dl)
        del a, dl
        gc.collect()
        assert "left unhandled" in defer_log.text

    def test_cancel_cancels_members(self) -> None:
        a: Deferred[Any] = Deferred()
        b: Deferred[Any] = Deferred(lambda d: d.callback("b cancelled"))
        dl = DeferredList([a, b], consumeErrors=True)
        dl.cancel()
        results = result_of(dl)
        assert results[0][0] is FAILURE and results[0][1].check(CancelledError)
        assert results[1] == (SUCCESS, "b cancelled")
        dl.cancel()  # after firing: nothing

    def test_rejects_non_deferreds(self) -> None:
        with pytest.raises(TypeError):
            DeferredList([1])  # type: ignore[list-item]

    def test_gatherResults(self) -> None:
        a: Deferred[int] = Deferred()
        b: Deferred[int] = Deferred()
        g = gatherResults([a, b])
        b.callback(2)
        a.callback(1)
        assert result_of(g) == [1, 2]

    def test_gatherResults_failure(self) -> None:
        a: Deferred[int] = Deferred()
        b: Deferred[int] = Deferred()
        g = gatherResults([a, b], consumeErrors=True)
        a.errback(KeyError("first"))
        f = failure_of(g)
        assert f.check(FirstError)
        assert isinstance(f.value, FirstError) and f.value.index == 0
        assert f.value.subFailure.check(KeyError)
        assert a.result is None
        b.callback(3)

    def test_gatherResults_empty(self) -> None:
        assert result_of(gatherResults([])) == []

    def test_FirstError_equality(self) -> None:
        f = Failure(ValueError("x"))
        assert FirstError(f, 1) == FirstError(f, 1)
        assert FirstError(f, 1) != FirstError(f, 2)
        assert FirstError(f, 1) == (f, 1)


class TestRace:
    def test_first_success_wins_and_others_are_cancelled(self) -> None:
        cancelled: list[int] = []
        ds: list[Deferred[str]] = [Deferred(lambda d, i=i: cancelled.append(i)) for i in range(3)]
        r = race(ds)
        ds[0].errback(ValueError("first fails"))
        no_result(r)
        ds[2].callback("third")
        assert result_of(r) == (2, "third")
        assert cancelled == [1]

    def test_all_fail(self) -> None:
        a: Deferred[Any] = Deferred()
        b: Deferred[Any] = Deferred()
        r = race([a, b])
        b.errback(KeyError("b"))
        a.errback(ValueError("a"))
        f = failure_of(r)
        assert isinstance(f.value, FailureGroup)
        assert [x.type for x in f.value.failures] == [ValueError, KeyError]
        assert "all 2 failed" in str(f.value)

    def test_cancel(self) -> None:
        cancelled: list[int] = []
        ds: list[Deferred[Any]] = [Deferred(lambda d, i=i: cancelled.append(i)) for i in range(2)]
        r = race(ds)
        r.cancel()
        assert cancelled == [0, 1]
        f = failure_of(r)
        assert f.check(FailureGroup, CancelledError)


# ------------------------------------------------------------------------------------------
# inlineCallbacks


class TestInlineCallbacks:
    def test_plain_return(self) -> None:
        @inlineCallbacks
        def f(x: int) -> Any:
            a = yield succeed(x)
            b = yield succeed(a + 1)
            return a + b

        assert result_of(f(1)) == 3

    def test_a_yielded_coroutine_is_awaited(self) -> None:
        pending: Deferred[int] = Deferred()

        async def plus_one(d: Deferred[int]) -> int:
            return await d + 1

        async def fails() -> int:
            raise KeyError("inside")

        @inlineCallbacks
        def f() -> Any:
            a = yield plus_one(succeed(41))
            b = yield plus_one(pending)
            try:
                yield fails()
            except KeyError as e:
                return (a, b, e.args[0])

        d = f()
        assert not d.called
        pending.callback(1)
        assert result_of(d) == (42, 2, "inside")

    def test_waits_for_unfired(self) -> None:
        pending: Deferred[int] = Deferred()

        @inlineCallbacks
        def f() -> Any:
            v = yield pending
            return v * 2

        d = f()
        no_result(d)
        pending.callback(21)
        assert result_of(d) == 42
        assert pending.result is None

    def test_failure_raised_in_generator(self, defer_log: pytest.LogCaptureFixture) -> None:
        @inlineCallbacks
        def f() -> Any:
            try:
                yield fail(KeyError("caught"))
            except KeyError as e:
                return f"handled {e.args[0]}"

        assert result_of(f()) == "handled caught"
        gc.collect()
        assert defer_log.records == []

    def test_exception_fails_deferred(self) -> None:
        @inlineCallbacks
        def f() -> Any:
            yield succeed(None)
            raise ValueError("from generator")

        assert failure_of(f()).getErrorMessage() == "from generator"

    def test_exception_before_first_yield(self) -> None:
        @inlineCallbacks
        def f() -> Any:
            raise ValueError("early")
            yield  # pragma: no cover

        assert failure_of(f()).check(ValueError)

    def test_non_deferred_yields_are_sent_back(self) -> None:
        @inlineCallbacks
        def f() -> Any:
            a = yield 1
            b = yield "two"
            return (a, b)

        assert result_of(f()) == (1, "two")

    def test_not_a_generator(self) -> None:
        @inlineCallbacks
        def f() -> Any:
            return 1

        with pytest.raises(TypeError, match="produce a generator"):
            f()

    def test_returnValue_legacy(self) -> None:
        @inlineCallbacks
        def f() -> Any:
            yield succeed(None)
            returnValue(5)

        with pytest.warns(DeprecationWarning):
            d = f()
        assert result_of(d) == 5

    def test_returnValue_in_non_generator(self) -> None:
        @inlineCallbacks
        def f() -> Any:
            returnValue(5)

        with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="non-generator"):
            f()

    def test_returning_a_deferred_chains_it(self) -> None:
        later: Deferred[int] = Deferred()

        @inlineCallbacks
        def f() -> Any:
            yield succeed(None)
            return later

        d = f()
        no_result(d)
        later.callback(9)
        assert result_of(d) == 9

    def test_many_fired_yields_no_recursion(self) -> None:
        @inlineCallbacks
        def f() -> Any:
            total = 0
            for i in range(100_000):
                total += yield succeed(i)
            return total

        d = with_little_stack_left(f)
        assert result_of(d) == sum(range(100_000))

    def test_many_pending_yields_fired_in_turn(self) -> None:
        pending: list[Deferred[int]] = []

        @inlineCallbacks
        def f() -> Any:
            total = 0
            for _ in range(2000):
                d: Deferred[int] = Deferred()
                pending.append(d)
                total += yield d
            return total

        out = f()
        for i in range(2000):
            pending[i].callback(i)
        assert result_of(out) == sum(range(2000))

    def test_cancel_propagates_to_awaited(self) -> None:
        cancelled: list[Any] = []
        awaited: Deferred[Any] = Deferred(cancelled.append)
        reached: list[str] = []

        @inlineCallbacks
        def f() -> Any:
            try:
                yield awaited
            except CancelledError:
                reached.append("cancelled")
                raise

        d = f()
        d.cancel()
        assert cancelled == [awaited]
        assert reached == ["cancelled"]
        assert failure_of(d).check(CancelledError)

    def test_cancel_caught_and_continue(self) -> None:
        first: Deferred[Any] = Deferred()
        second: Deferred[Any] = Deferred()

        @inlineCallbacks
        def f() -> Any:
            try:
                yield first
            except CancelledError:
                pass
            v = yield second
            return v

        d = f()
        d.cancel()
        no_result(d)  # still running: now waiting on `second`
        second.callback("went on")
        assert result_of(d) == "went on"

    def test_cancel_finished(self) -> None:
        @inlineCallbacks
        def f() -> Any:
            yield succeed(None)
            return 1

        d = f()
        d.cancel()
        assert result_of(d) == 1

    def test_runs_in_copied_context(self) -> None:
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")
        pending: Deferred[None] = Deferred()
        seen: list[str] = []

        @inlineCallbacks
        def f() -> Any:
            var.set("inner")
            yield pending
            seen.append(var.get())

        f()
        assert var.get() == "outer"
        pending.callback(None)  # fired from the outer context
        assert seen == ["inner"]
        assert var.get() == "outer"

    def test_functools_wraps(self) -> None:
        @inlineCallbacks
        def documented() -> Any:
            """Doc."""
            yield None

        assert documented.__name__ == "documented" and documented.__doc__ == "Doc."


# ------------------------------------------------------------------------------------------
# Coroutines


class TestCoroutines:
    def test_await_fired_and_unfired(self) -> None:
        pending: Deferred[int] = Deferred()

        async def f() -> int:
            a = await succeed(1)
            b = await pending
            return a + b

        d = ensureDeferred(f())
        no_result(d)
        pending.callback(2)
        assert result_of(d) == 3

    def test_fromCoroutine(self) -> None:
        async def f() -> str:
            return "done"

        assert result_of(Deferred.fromCoroutine(f())) == "done"

    def test_await_failure(self, defer_log: pytest.LogCaptureFixture) -> None:
        pending: Deferred[int] = Deferred()

        async def f() -> str:
            try:
                await fail(KeyError("fired"))
            except KeyError:
                pass
            try:
                await pending
            except ValueError as e:
                return f"caught {e}"
            return "not reached"

        d = ensureDeferred(f())
        pending.errback(ValueError("later"))
        assert result_of(d) == "caught later"
        del pending
        gc.collect()
        assert defer_log.records == []

    def test_await_none_result(self) -> None:
        pending: Deferred[None] = Deferred()

        async def f() -> Any:
            return ("got", await pending)

        d = ensureDeferred(f())
        pending.callback(None)
        assert result_of(d) == ("got", None)

    def test_exception_in_coroutine(self) -> None:
        async def f() -> None:
            raise RuntimeError("in coroutine")

        assert failure_of(ensureDeferred(f())).check(RuntimeError)

    def test_ensureDeferred_passes_deferreds(self) -> None:
        d: Deferred[Any] = Deferred()
        assert ensureDeferred(d) is d

    def test_ensureDeferred_rejects_other(self) -> None:
        with pytest.raises(NotACoroutineError):
            ensureDeferred(1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Deferred.fromCoroutine(lambda: None)  # type: ignore[arg-type]

    def test_cancel_propagates(self) -> None:
        cancelled: list[Any] = []
        awaited: Deferred[Any] = Deferred(cancelled.append)

        async def f() -> Any:
            return await awaited

        d = ensureDeferred(f())
        d.cancel()
        assert cancelled == [awaited]
        assert failure_of(d).check(CancelledError)

    def test_many_awaits(self) -> None:
        async def f() -> int:
            total = 0
            for i in range(50_000):
                total += await succeed(i)
            return total

        assert result_of(ensureDeferred(f())) == sum(range(50_000))

    def test_await_paused_fired_deferred(self) -> None:
        d = succeed(5)
        d.pause()

        async def f() -> int:
            return await d

        out = ensureDeferred(f())
        no_result(out)
        d.unpause()
        assert result_of(out) == 5

    def test_nested_coroutines(self) -> None:
        pending: Deferred[int] = Deferred()

        async def inner() -> int:
            return await pending + 1

        async def outer() -> int:
            return await ensureDeferred(inner()) * 2

        d = ensureDeferred(outer())
        pending.callback(1)
        assert result_of(d) == 4

    def test_await_in_context(self) -> None:
        var: contextvars.ContextVar[int] = contextvars.ContextVar("n", default=0)
        pending: Deferred[None] = Deferred()

        async def f() -> int:
            var.set(5)
            await pending
            return var.get()

        d = ensureDeferred(f())
        pending.callback(None)
        assert result_of(d) == 5 and var.get() == 0


# ------------------------------------------------------------------------------------------
# Locks, semaphores, queues


class TestDeferredLock:
    def test_acquire_release_order(self) -> None:
        lock = DeferredLock()
        order: list[int] = []
        d1 = lock.acquire()
        d2 = lock.acquire()
        d3 = lock.acquire()
        d1.addCallback(lambda lk: order.append(1))
        d2.addCallback(lambda lk: order.append(2))
        d3.addCallback(lambda lk: order.append(3))
        assert order == [1] and lock.locked
        lock.release()
        assert order == [1, 2]
        lock.release()
        lock.release()
        assert order == [1, 2, 3] and not lock.locked

    def test_acquire_fires_with_the_lock(self) -> None:
        lock = DeferredLock()
        assert result_of(lock.acquire()) is lock

    def test_release_unlocked(self) -> None:
        with pytest.raises(RuntimeError, match="not locked"):
            DeferredLock().release()

    def test_cancel_waiting_acquire(self) -> None:
        lock = DeferredLock()
        lock.acquire()
        waiting = lock.acquire()
        waiting.cancel()
        assert failure_of(waiting).check(CancelledError)
        assert lock.waiting == []
        lock.release()
        assert not lock.locked

    def test_run(self) -> None:
        lock = DeferredLock()
        pending: Deferred[str] = Deferred()
        d1 = lock.run(lambda: pending)
        d2 = lock.run(lambda x: x * 2, 21)
        no_result(d2)
        pending.callback("first")
        assert result_of(d1) == "first"
        assert result_of(d2) == 42
        assert not lock.locked

    def test_run_releases_on_error(self) -> None:
        lock = DeferredLock()
        assert failure_of(lock.run(lambda: 1 / 0)).check(ZeroDivisionError)
        assert not lock.locked

    def test_async_with(self) -> None:
        lock = DeferredLock()
        inside: list[bool] = []

        async def f() -> None:
            async with lock:
                inside.append(lock.locked)

        lock.acquire()
        d = ensureDeferred(f())
        assert inside == []
        lock.release()
        result_of(d)
        assert inside == [True] and not lock.locked


class TestDeferredSemaphore:
    def test_tokens(self) -> None:
        sem = DeferredSemaphore(2)
        got = [sem.acquire() for _ in range(3)]
        assert got[0].called and got[1].called and not got[2].called
        assert sem.tokens == 0 and sem.limit == 2
        sem.release()
        assert got[2].called
        sem.release()
        sem.release()
        assert sem.tokens == 2

    def test_bad_tokens(self) -> None:
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError):
                DeferredSemaphore(bad)  # type: ignore[arg-type]

    def test_over_release(self) -> None:
        with pytest.raises(RuntimeError):
            DeferredSemaphore(1).release()

    def test_run_limits_concurrency(self) -> None:
        sem = DeferredSemaphore(2)
        running: list[Deferred[None]] = []
        results = [sem.run(lambda: running.append(Deferred()) or running[-1]) for _ in range(5)]
        assert len(running) == 2
        running[0].callback(None)
        assert len(running) == 3
        for d in list(running[1:]):
            d.callback(None)
        while len(running) < 5 or not running[-1].called:
            for d in running:
                if not d.called:
                    d.callback(None)
        assert all(r.called for r in results)
        assert sem.tokens == 2

    def test_cancel_waiting(self) -> None:
        sem = DeferredSemaphore(1)
        sem.acquire()
        w = sem.acquire()
        w.cancel()
        assert sem.waiting == []
        failure_of(w)


class TestDeferredQueue:
    def test_put_then_get(self) -> None:
        q: DeferredQueue[int] = DeferredQueue()
        q.put(1)
        q.put(2)
        assert result_of(q.get()) == 1
        assert result_of(q.get()) == 2

    def test_get_then_put(self) -> None:
        q: DeferredQueue[str] = DeferredQueue()
        d1 = q.get()
        d2 = q.get()
        q.put("a")
        q.put("b")
        assert result_of(d1) == "a" and result_of(d2) == "b"
        assert q.pending == [] and q.waiting == []

    def test_size_limit(self) -> None:
        q: DeferredQueue[int] = DeferredQueue(size=2)
        q.put(1)
        q.put(2)
        with pytest.raises(QueueOverflow):
            q.put(3)
        assert q.pending == [1, 2]
        result_of(q.get())
        q.put(3)
        assert q.pending == [2, 3]

    def test_backlog_limit(self) -> None:
        q: DeferredQueue[int] = DeferredQueue(backlog=1)
        q.get()
        with pytest.raises(QueueUnderflow):
            q.get()
        assert len(q.waiting) == 1

    def test_zero_size(self) -> None:
        q: DeferredQueue[int] = DeferredQueue(size=0)
        with pytest.raises(QueueOverflow):
            q.put(1)
        d = q.get()
        q.put(1)  # a waiting getter takes it even with size 0
        assert result_of(d) == 1

    def test_cancel_get(self) -> None:
        q: DeferredQueue[int] = DeferredQueue()
        d = q.get()
        d.cancel()
        assert q.waiting == []
        assert failure_of(d).check(CancelledError)
        q.put(5)
        assert q.pending == [5]

    def test_put_deferred_rejected_without_losing_waiter(self) -> None:
        q: DeferredQueue[Any] = DeferredQueue()
        d = q.get()
        with pytest.raises(TypeError):
            q.put(Deferred())
        assert q.waiting == [d]

    def test_bad_limits(self) -> None:
        with pytest.raises(ValueError):
            DeferredQueue(size=-1)
        with pytest.raises(ValueError):
            DeferredQueue(backlog="3")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Unhandled errors


class TestUnhandled:
    def test_logged_on_collection(self, defer_log: pytest.LogCaptureFixture) -> None:
        def raiser() -> None:
            raise ValueError("nobody handled me")

        d: Deferred[Any] = Deferred()
        d.addCallback(lambda _: raiser())
        d.callback(None)
        assert defer_log.records == []
        del d
        gc.collect()
        [record] = defer_log.records
        assert record.levelno == logging.ERROR and record.name == "framework.defer"
        assert "Unhandled error in Deferred" in record.getMessage()
        assert "nobody handled me" in defer_log.text
        assert "Traceback" in defer_log.text and "raiser" in defer_log.text

    @pytest.mark.parametrize("how", ["callback raises", "errback()", "inlineCallbacks raises",
                                     "coroutine raises", "fired then addCallback raises"])
    def test_every_failure_path_is_reported(self, how: str, defer_log: pytest.LogCaptureFixture) -> None:
        def raiser(*args: Any) -> None:
            raise ValueError(f"reported {how}")

        @inlineCallbacks
        def gen() -> Any:
            yield succeed(None)
            raiser()

        async def coro() -> None:
            await succeed(None)
            raiser()

        if how == "callback raises":
            d: Deferred[Any] = Deferred()
            d.addCallback(raiser)
            d.callback(None)
        elif how == "errback()":
            d = Deferred()
            try:
                raiser()
            except ValueError:
                d.errback()
        elif how == "inlineCallbacks raises":
            d = gen()
        elif how == "coroutine raises":
            d = ensureDeferred(coro())
        else:
            d = succeed(None).addCallback(raiser)
        del d
        gc.collect()
        [record] = defer_log.records
        assert f"reported {how}" in defer_log.text and "raiser" in defer_log.text
        # The run loop's own frames are left out of the traceback.
        assert "_runCallbacks" not in defer_log.text and "_stepGenerator" not in defer_log.text

    def test_logged_in_a_reference_cycle(self, defer_log: pytest.LogCaptureFixture) -> None:
        d: Deferred[Any] = Deferred()
        holder = {"d": d}
        d.addErrback(lambda f: holder and f)  # the chain references the dict that holds d
        holder["self"] = holder  # type: ignore[assignment]
        d.errback(KeyError("cycle"))
        del d, holder
        gc.collect()
        assert "cycle" in defer_log.text

    def test_fail_without_handler(self, defer_log: pytest.LogCaptureFixture) -> None:
        fail(KeyError("fail()"))
        gc.collect()
        assert "fail()" in defer_log.text

    def test_handled_later_is_not_logged(self, defer_log: pytest.LogCaptureFixture) -> None:
        d = fail(ValueError("handled later"))
        d.addErrback(lambda f: None)
        del d
        gc.collect()
        assert defer_log.records == []

    def test_trap_mismatch_still_unhandled(self, defer_log: pytest.LogCaptureFixture) -> None:
        d = fail(ValueError("still unhandled"))
        d.addErrback(lambda f: f.trap(KeyError))
        del d
        gc.collect()
        assert "still unhandled" in defer_log.text

    def test_success_not_logged(self, defer_log: pytest.LogCaptureFixture) -> None:
        d = succeed(1)
        d2: Deferred[Any] = Deferred()
        del d, d2
        gc.collect()
        assert defer_log.records == []

    def test_creator_in_log(self, defer_log: pytest.LogCaptureFixture) -> None:
        d: Deferred[Any] = Deferred()
        assert d._creator is None
        d._creator = '  File "somewhere.py", line 1, in make_it\n'
        d.errback(ValueError("traced"))
        del d
        gc.collect()
        assert "Deferred created at:" in defer_log.text
        assert "make_it" in defer_log.text

    def test_cleaned_failure_still_logged(self, defer_log: pytest.LogCaptureFixture) -> None:
        try:
            raise ValueError("cleaned")
        except ValueError:
            f = Failure()
        f.cleanFailure()
        fail(f)
        gc.collect()
        assert "cleaned" in defer_log.text and "Traceback" in defer_log.text


# ------------------------------------------------------------------------------------------
# Middleware hooks


@pytest.fixture
def clean_middleware() -> Iterator[None]:
    saved_active = list(middleware._active)
    saved_created = list(middleware._created)
    middleware._active.clear()
    middleware._created.clear()
    try:
        yield
    finally:
        middleware._active[:] = saved_active
        middleware._created[:] = saved_created


@pytest.mark.usefixtures("clean_middleware")
class TestMiddlewareHooks:
    def test_wrap_called_for_callbacks_and_errbacks(self) -> None:
        wrapped: list[Any] = []
        calls: list[str] = []

        def wrap_callback(cb: Any) -> Any:
            wrapped.append(cb)

            def wrapper(*a: Any, **kw: Any) -> Any:
                calls.append(getattr(cb, "__name__", "?"))
                return cb(*a, **kw)

            return wrapper

        middleware._active.append(wrap_callback)

        def one(r: int) -> int:
            return r + 1

        def two(f: Failure) -> int:
            return 0

        def three(r: int, k: int = 0) -> int:
            return r + k

        d: Deferred[int] = Deferred()
        d.addCallback(one).addErrback(two).addCallbacks(three, two, callbackKeywords={"k": 5})
        d.addBoth(passthru)
        d.callback(1)
        assert wrapped == [one, two, three, two, passthru]  # internal pass-throughs not wrapped
        assert calls == ["one", "three", "passthru"]
        assert result_of(d) == 7

    def test_order_first_enabled_outermost(self) -> None:
        trail: list[str] = []

        def make(name: str) -> Any:
            def wrap_callback(cb: Any) -> Any:
                def wrapper(*a: Any, **kw: Any) -> Any:
                    trail.append(name)
                    return cb(*a, **kw)
                return wrapper
            return wrap_callback

        middleware._active.extend([make("first"), make("second")])
        succeed(1).addCallback(lambda r: trail.append("cb"))
        assert trail == ["first", "second", "cb"]

    def test_not_called_when_none_active(self) -> None:
        d: Deferred[int] = Deferred()

        def cb(r: int) -> int:
            return r

        d.addCallback(cb)
        assert d.callbacks == [cb]  # stored as is: no wrapping, no entry allocation

    def test_created_hook(self) -> None:
        made: list[Any] = []

        def deferred_created(d: Any) -> None:
            made.append(d)
            d._creator = "created here\n"

        middleware._created.append(deferred_created)
        a: Deferred[Any] = Deferred()
        b = succeed(1)
        c = fail(ValueError())
        assert made[:3] == [a, b, c]
        assert a._creator == "created here\n"
        failure_of(c)

    def test_created_hook_with_unhandled_log(self, defer_log: pytest.LogCaptureFixture) -> None:
        middleware._created.append(lambda d: setattr(d, "_creator", "at the factory\n"))
        fail(ValueError("with creator"))
        middleware._created.clear()
        gc.collect()
        assert "Deferred created at:" in defer_log.text and "at the factory" in defer_log.text

    def test_generator_driver_callbacks_are_wrapped(self) -> None:
        wrapped: list[Any] = []
        middleware._active.append(lambda cb: wrapped.append(cb) or cb)
        pending: Deferred[int] = Deferred()

        @inlineCallbacks
        def f() -> Any:
            return (yield pending)

        d = f()
        pending.callback(3)
        assert result_of(d) == 3
        assert len(wrapped) >= 1


def test_public_names() -> None:
    import framework.defer as defer

    for name in defer.__all__:
        assert hasattr(defer, name), name
    assert issubclass(NotACoroutineError, TypeError)
    assert isinstance(Deferred.__slots__, tuple)
    assert not hasattr(Deferred(), "__dict__")
    assert types.CoroutineType is not None


class TestAsyncioInterop:
    def test_asFuture(self) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        try:
            d: Deferred[int] = Deferred()
            fut = d.asFuture(loop)
            loop.call_soon(d.callback, 5)
            assert loop.run_until_complete(fut) == 5
            failing: Deferred[int] = Deferred()
            fut2 = failing.asFuture(loop)
            loop.call_soon(failing.errback, KeyError("k"))
            with pytest.raises(KeyError):
                loop.run_until_complete(fut2)
            cancelled: list[Any] = []
            d3: Deferred[int] = Deferred(cancelled.append)
            fut3 = d3.asFuture(loop)
            fut3.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            assert cancelled == [d3]
            assert d3.called and d3.result is None  # the future's adapter consumed the failure
        finally:
            loop.close()

    def test_fromFuture(self) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        try:
            fut: asyncio.Future[int] = loop.create_future()
            d = Deferred.fromFuture(fut)
            no_result(d)
            fut.set_result(3)
            loop.run_until_complete(asyncio.sleep(0))
            assert result_of(d) == 3
            fut2: asyncio.Future[int] = loop.create_future()
            d2 = Deferred.fromFuture(fut2)
            d2.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            assert fut2.cancelled()
            assert failure_of(d2).check(CancelledError)
            fut3: asyncio.Future[int] = loop.create_future()
            d3 = Deferred.fromFuture(fut3)
            fut3.set_exception(ValueError("e"))
            loop.run_until_complete(asyncio.sleep(0))
            assert failure_of(d3).check(ValueError)
        finally:
            loop.close()


# --- module layout: framework.defer is a facade over modules split by concern -----------


def test_the_facade_re_exports_the_very_objects() -> None:
    import importlib

    import framework.defer as defer

    modules = ["_defer_errors", "_defer_support", "_defer_core", "_defer_shortcuts",
               "_defer_coroutines", "_defer_combinators", "_defer_locks"]
    homes: dict[str, str] = {}
    for name in modules:
        module = importlib.import_module(f"framework.{name}")
        for exported in module.__all__:
            assert exported not in homes, f"{exported} in both {homes[exported]} and {name}"
            homes[exported] = name
            assert getattr(defer, exported) is getattr(module, exported), exported
    assert sorted(homes) == sorted(defer.__all__)


def test_the_split_modules_import_only_downwards() -> None:
    import ast
    from pathlib import Path

    order = ["_defer_errors", "_defer_support", "_defer_core", "_defer_shortcuts",
             "_defer_coroutines", "_defer_combinators", "_defer_locks", "defer"]
    folder = Path(__file__).resolve().parent.parent / "framework"
    for position, name in enumerate(order):
        tree = ast.parse((folder / f"{name}.py").read_text())
        for node in tree.body:  # module level only; TYPE_CHECKING blocks are ast.If, skipped
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("framework."):
                target = node.module.split(".", 1)[1]
                if target in order:
                    assert order.index(target) < position, f"{name} imports {target}"
        assert len((folder / f"{name}.py").read_text().splitlines()) <= 800, name


def test_awaiting_while_asyncio_is_half_imported_finds_no_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The running-loop lookup reads asyncio from sys.modules and never imports it: if another
    thread is still importing asyncio (no ``asyncio.events`` yet), no loop can be running."""
    from framework import _defer_core

    monkeypatch.setattr(_defer_core, "_getRunningLoop", None)
    monkeypatch.delitem(sys.modules, "asyncio.events", raising=False)
    getter = _defer_core._cacheGetRunningLoop()
    assert getter() is None
    assert _defer_core._getRunningLoop is None  # nothing cached: asked again next time


# --- debug mode, canceller release, circular callbacks (Twisted's behaviour) -----------------


@pytest.fixture
def debugging():
    from framework import defer

    was = defer.getDebugging()
    defer.setDebugging(True)
    yield
    defer.setDebugging(was)


def _first_fire(d: Deferred[Any]) -> None:
    d.callback("first")


def _second_fire(d: Deferred[Any]) -> None:
    d.callback("second")


def test_debug_mode_puts_creation_and_first_invocation_in_already_called(debugging) -> None:
    from framework import defer

    assert defer.getDebugging() is True
    d: Deferred[Any] = Deferred()
    assert d.debug
    _first_fire(d)
    with pytest.raises(defer.AlreadyCalledError) as info:
        _second_fire(d)
    lines = str(info.value).splitlines()
    creator = [line for line in lines if line.startswith(" C:")]
    invoker = [line for line in lines if line.startswith(" I:")]
    assert any(line.endswith(" test_debug_mode_puts_creation_and_first_invocation_in_already_called")
               for line in creator)
    assert any(line.endswith(" _first_fire") for line in invoker)
    assert not any(line.endswith(" _second_fire") for line in lines)


def test_without_debug_mode_nothing_is_recorded() -> None:
    from framework import defer

    assert defer.getDebugging() is False
    d: Deferred[Any] = Deferred()
    assert not d.debug and d._debugInfo is None
    d.callback(1)
    with pytest.raises(defer.AlreadyCalledError) as info:
        d.callback(2)
    assert " C:" not in str(info.value) and " I:" not in str(info.value)
    d.debug = True  # per Deferred, as in Twisted
    assert d.debug


def test_debug_info_in_the_unhandled_error_log(debugging, defer_log: pytest.LogCaptureFixture) -> None:
    def doit() -> None:
        d: Deferred[int] = Deferred()
        d.addCallback(lambda x: 1 // 0)
        d.callback(1)

    doit()
    gc.collect()
    assert "Unhandled error in Deferred: (debug:  C: Deferred was created:" in defer_log.text
    assert " I: First Invoker was:" in defer_log.text and "ZeroDivisionError" in defer_log.text


def test_succeed_in_debug_mode_records_too(debugging) -> None:
    from framework import defer

    d = succeed(1)
    assert d.debug and d._debugInfo is not None and d._debugInfo.invoker
    with pytest.raises(defer.AlreadyCalledError, match=" I: First Invoker was"):
        d.callback(2)


@pytest.mark.parametrize("fire", ["callback", "errback"])
def test_the_canceller_is_released_once_fired(fire: str) -> None:
    import weakref

    class Canceller:
        deferred: Any = None

        def __call__(self, d: Any) -> None:
            pass

    canceller = Canceller()
    watch = weakref.ref(canceller)
    d: Deferred[Any] = Deferred(canceller)
    canceller.deferred = d  # a cycle through the canceller
    watch_d = weakref.ref(d)
    if fire == "callback":
        d.callback(None)
    else:
        d.errback(ValueError("x"))
        d.addErrback(lambda f: None)
    del d, canceller
    assert watch() is None and watch_d() is None  # freed by reference counting, no gc needed


def test_a_circular_callback_warning_turned_into_an_error_is_the_failure() -> None:
    import warnings as _warnings

    d: Deferred[Any] = Deferred()
    d.addCallback(lambda _: d)
    with _warnings.catch_warnings():
        _warnings.simplefilter("error", DeprecationWarning)
        d.callback("foo")
    assert failure_of(d).check(DeprecationWarning)


def test_first_error_str_shows_the_failure_as_twisted_does() -> None:
    from framework.defer import FirstError
    from framework.failure import Failure

    assert str(FirstError(Failure(ValueError("some text")), 5)) == (
        "FirstError[#5, [Failure instance: ValueError: some text]]")


def test_yield_from_a_deferred_in_a_generator_coroutine() -> None:
    from framework.defer import Deferred, ensureDeferred

    waiting: Deferred[int] = Deferred()

    def run():  # a generator-based coroutine, as older Twisted code writes them
        value = yield from waiting
        return value * 2

    d = ensureDeferred(run())
    assert not d.called
    waiting.callback(21)
    assert d.result == 42
