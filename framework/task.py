"""Time-based helpers: ``LoopingCall``, ``deferLater`` and the deterministic ``Clock``; also
``react`` (framework.react) and ``Cooperator``/``coiterate``/``cooperate`` (framework.cooperator),
under Twisted's module name.

``LoopingCall`` and ``deferLater`` take their clock explicitly (``deferLater``) or through the
``clock`` attribute (``LoopingCall``, default: the global reactor, looked up at ``start``), so
tests drive them with a ``Clock`` instead of waiting for real time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from framework.cooperator import (
    CooperativeTask,
    Cooperator,
    NotPaused,
    SchedulerError,
    SchedulerStopped,
    TaskDone,
    TaskFailed,
    TaskFinished,
    TaskStopped,
    coiterate,
    cooperate,
)
from framework.defer import Deferred, maybeDeferred
from framework.failure import Failure
from framework.main import global_reactor
from framework.react import react
from framework.timers import DelayedCall

if TYPE_CHECKING:
    from framework.interfaces import IDelayedCall, IReactorTime

__all__ = [
    "Clock", "CooperativeTask", "Cooperator", "LoopingCall", "NotPaused", "SchedulerError",
    "SchedulerStopped", "TaskDone", "TaskFailed", "TaskFinished", "TaskStopped", "coiterate",
    "cooperate", "deferLater", "react",
]


_is_callable = callable  # the builtin: Twisted's parameter name ``callable`` shadows it

class Clock:
    """A fake reactor clock: time stands still until ``advance`` moves it, and then the calls
    that came due run, in time order (scheduling order for equal times). Exceptions from the
    calls propagate out of ``advance`` so that tests see them."""

    rightNow = 0.0

    def __init__(self) -> None:
        self.rightNow = 0.0
        self.calls: list[DelayedCall] = []
        # DelayedCall.cancel bookkeeping: -1 makes every cancel call _cancel_call.
        self._stale = 0
        self._compact_at = -1

    def seconds(self) -> float:
        """The current fake time (starts at 0)."""
        return self.rightNow

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Schedule ``callable(*args, **kw)`` ``delay`` fake seconds from now."""
        if not 0 <= delay < float("inf"):
            raise ValueError(f"callLater() needs a finite delay >= 0, got {delay!r}")
        if not _is_callable(callable):
            raise TypeError(f"callLater() needs a callable, not {callable!r}")
        call = DelayedCall(self.rightNow + delay, callable, args, kw, self)
        self.calls.append(call)
        self._sort()
        return call

    def _sort(self) -> None:
        self.calls.sort(key=_due)

    def _cancel_call(self, call: DelayedCall) -> None:
        self.calls.remove(call)

    def _move_call(self, call: DelayedCall) -> None:
        self._sort()

    def getDelayedCalls(self) -> list[DelayedCall]:
        """The calls that have neither run nor been cancelled, soonest first."""
        return list(self.calls)

    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` seconds and run every call that came due."""
        if not amount >= 0:
            raise ValueError(f"advance() needs an amount >= 0, got {amount!r}")
        self.rightNow += amount
        while self.calls and self.calls[0].time <= self.rightNow:
            call = self.calls.pop(0)
            call.called = True
            call.func(*call.args, **call.kw)

    def pump(self, timings: Sequence[float]) -> None:
        """``advance`` by each amount in turn."""
        for amount in timings:
            self.advance(amount)


def _due(call: DelayedCall) -> float:
    return call.time


class LoopingCall:
    """Call ``f(*a, **kw)`` every ``interval`` seconds.

    ``start(interval, now=True)`` returns a Deferred that fires with the LoopingCall when
    ``stop()`` is called, or errbacks (and the loop stops) when ``f`` raises or its Deferred
    fails. If ``f`` returns a Deferred, the next call waits for it. Ticks missed because ``f``
    (or the process) ran late are skipped, not run in a burst; ``withCount`` tells ``f`` how
    many intervals passed since its previous call.
    """

    def __init__(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        self.f = f
        self.a = a
        self.kw = kw
        #: What schedules the calls; ``None`` means the global reactor, looked up in ``start``.
        self.clock: IReactorTime | None = None
        self.call: IDelayedCall | None = None
        self.running = False
        self.interval: float | None = None
        self.starttime: float | None = None
        self._deferred: Deferred | None = None
        self._run_at_start = False
        self._last_tick: int | None = None  # the interval number of the previous call (withCount)

    @classmethod
    def withCount(cls, countCallable: Callable[[int], Any]) -> LoopingCall:
        """A LoopingCall that calls ``countCallable(n)``, ``n`` being the number of intervals
        since the previous call (1 when on time; more when ticks were skipped)."""
        loop = cls(lambda: loop._counted(countCallable))
        return loop

    def _counted(self, countCallable: Callable[[int], Any]) -> Any:
        if not self.interval:
            return countCallable(1)
        assert self.starttime is not None and self.clock is not None
        # The epsilon keeps a call made exactly on a boundary from counting as just before it.
        tick = int((self.clock.seconds() - self.starttime) / self.interval + 1e-9)
        if self._last_tick is None:
            previous = -1 if self._run_at_start else 0
        else:
            previous = self._last_tick
        self._last_tick = tick
        return countCallable(max(1, tick - previous))

    @property
    def deferred(self) -> Deferred | None:
        """The Deferred returned by ``start`` while running."""
        return self._deferred

    def start(self, interval: float, now: bool = True) -> Deferred:
        """Start calling every ``interval`` seconds, the first time at once if ``now``."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        if not interval >= 0:
            raise ValueError(f"LoopingCall interval must be >= 0, got {interval!r}")
        if self.clock is None:
            self.clock = global_reactor()
        self.running = True
        d = self._deferred = Deferred()
        self.starttime = self.clock.seconds()
        self.interval = interval
        self._run_at_start = now
        self._last_tick = None
        if now:
            self()
        else:
            self._schedule_from(self.starttime)
        return d

    def stop(self) -> None:
        """Stop calling; the Deferred from ``start`` fires (at once, or when a call in
        progress finishes)."""
        if not self.running:
            raise RuntimeError(f"{self!r} is not running")
        self.running = False
        if self.call is not None:
            self.call.cancel()
            self.call = None
            self._finish()

    def reset(self) -> None:
        """Restart the interval from now."""
        if not self.running:
            raise RuntimeError(f"{self!r} is not running")
        if self.call is not None:
            assert self.clock is not None
            self.call.cancel()
            self.call = None
            self.starttime = self.clock.seconds()
            self._last_tick = None
            self._run_at_start = False
            self._schedule_from(self.starttime)

    def _finish(self) -> None:
        d, self._deferred = self._deferred, None
        if d is not None:
            d.callback(self)

    def __call__(self) -> None:
        self.call = None
        d = maybeDeferred(self.f, *self.a, **self.kw)
        d.addCallbacks(self._called, self._failed)

    def _called(self, result: Any) -> None:
        if self.running:
            assert self.clock is not None
            self._schedule_from(self.clock.seconds())
        else:
            self._finish()

    def _failed(self, failure: Failure) -> None:
        self.running = False
        d, self._deferred = self._deferred, None
        if d is not None:
            d.errback(failure)

    def _schedule_from(self, when: float) -> None:
        """Schedule the next call at the first interval boundary after ``when``."""
        assert self.interval is not None and self.starttime is not None and self.clock is not None
        if self.interval == 0:
            delay = 0.0
        else:
            elapsed = when - self.starttime
            delay = self.interval - (elapsed % self.interval)
            # A clock a hair short of a boundary (0.1 added ten times is 0.9999999999999999)
            # is on it: the next call is a whole interval away, never a rounding error away.
            if delay < self.interval * 1e-9 or when + delay == when:
                delay = self.interval
        self.call = self.clock.callLater(delay, self)

    def __repr__(self) -> str:
        """Twisted's form: ``LoopingCall<interval>(function, *args, **kwargs)``."""
        func = getattr(self.f, "__qualname__", None) or getattr(self.f, "__name__", None) or repr(self.f)
        return f"LoopingCall<{self.interval!r}>({func}, *{self.a!r}, **{self.kw!r})"


def deferLater(clock: IReactorTime, delay: float, callable: Callable[..., Any] | None = None,
               *args: Any, **kw: Any) -> Deferred:
    """A Deferred that fires ``delay`` seconds later on ``clock`` with ``callable(*args, **kw)``
    (or ``None`` without a callable). Cancelling it unschedules the call."""
    def cancel(d: Deferred) -> None:
        call.cancel()

    d: Deferred = Deferred(cancel)

    def fire() -> None:
        if callable is None:
            d.callback(None)
        else:
            maybeDeferred(callable, *args, **kw).chainDeferred(d)

    call = clock.callLater(delay, fire)
    return d
