"""The reactor's timers: ``DelayedCall`` and the heap that orders them.

``Timers`` owns a binary heap of ``[time, sequence, DelayedCall]`` entries (ordering is C list
comparison; equal times keep scheduling order). Cancelling or moving a call blanks the call
slot of its entry instead of searching the heap; the stale entries are skipped when they reach
the top and compacted away when they make up more than half of it.

A ``DelayedCall`` talks back to its owner (a ``Timers``, or ``framework.task.Clock``) through
``seconds()``, ``_stale``, ``_compact_at``, ``_cancel_call(call)`` and ``_move_call(call)``.
"""

from __future__ import annotations

import logging
import sys
import time
from heapq import heapify, heappop, heappush
from itertools import count
from typing import TYPE_CHECKING, Any, Callable

from framework import error

if TYPE_CHECKING:
    from framework.slowcalls import SlowCallbacks

__all__ = ["MAX_WAIT", "DelayedCall", "Timers"]

# The reactor's owners log under the reactor's name, which users filter on.
logger = logging.getLogger("framework.eventloop")

_is_callable = callable  # the builtin: Twisted's parameter name ``callable`` shadows it
_INF = float("inf")
_monotonic = time.monotonic
#: The longest single wait handed to a backend (one day); the loop simply waits again.
MAX_WAIT = 86400.0
# Compaction of the timer heap starts once this many cancelled entries are waiting in it
# and they make up more than half of it.
_MIN_STALE_TO_COMPACT = 256


class DelayedCall:
    """A call scheduled with ``callLater``: ``cancel``, ``reset``, ``delay``, ``active``,
    ``getTime``. ``called`` and ``cancelled`` say what became of it."""

    __slots__ = ("time", "func", "args", "kw", "called", "cancelled", "_owner", "_entry")

    def __init__(self, time: float, func: Callable[..., Any], args: tuple[Any, ...],
                 kw: dict[str, Any], owner: Any) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self.called = False
        self.cancelled = False
        self._owner = owner
        # The owner's heap entry [time, seq, call] for this call, or None.
        self._entry: list[Any] | None = None

    def getTime(self) -> float:
        """When the call is due, on its clock's ``seconds()`` scale."""
        return self.time

    def _check_active(self) -> None:
        if self.cancelled:
            raise error.AlreadyCancelled(f"{self!r} was already cancelled")
        if self.called:
            raise error.AlreadyCalled(f"{self!r} was already called")

    def cancel(self) -> None:
        """Unschedule the call. Raises ``AlreadyCalled``/``AlreadyCancelled`` if it is not active."""
        if self.called or self.cancelled:
            self._check_active()
        self.cancelled = True
        entry = self._entry
        if entry is not None:
            entry[2] = None
            self._entry = None
        # Its heap entry is now stale and left in place (Timers compacts lazily); a Clock
        # sets _compact_at to -1 to remove the call at once.
        owner = self._owner
        owner._stale += 1
        if owner._stale > owner._compact_at:
            owner._cancel_call(self)

    def reset(self, secondsFromNow: float) -> None:
        """Reschedule the call to run ``secondsFromNow`` seconds from now."""
        self._check_active()
        if not 0 <= secondsFromNow < _INF:
            raise ValueError(f"reset() needs a finite delay >= 0, got {secondsFromNow!r}")
        self.time = self._owner.seconds() + secondsFromNow
        self._owner._move_call(self)

    def delay(self, secondsLater: float) -> None:
        """Move the call ``secondsLater`` seconds later (earlier if negative)."""
        self._check_active()
        if not -_INF < secondsLater < _INF:
            raise ValueError(f"delay() needs a finite number of seconds, got {secondsLater!r}")
        self.time += secondsLater
        self._owner._move_call(self)

    def active(self) -> bool:
        """True until the call has run or been cancelled."""
        return not (self.called or self.cancelled)

    def __repr__(self) -> str:
        state = "called" if self.called else "cancelled" if self.cancelled else "active"
        func = getattr(self.func, "__qualname__", None) or repr(self.func)
        return f"<DelayedCall {func} at {self.time:.6f} ({state})>"


class Timers:
    """The reactor's scheduled calls, on the ``time.monotonic()`` clock."""

    __slots__ = ("heap", "_counter", "_stale", "_compact_at")

    def __init__(self) -> None:
        #: ``[time, seq, DelayedCall or None]`` entries; None marks a stale one.
        self.heap: list[list[Any]] = []
        self._counter = count()
        self._stale = 0
        self._compact_at = sys.maxsize  # see DelayedCall.cancel: compaction is lazy here

    def __len__(self) -> int:
        """The number of heap entries, stale ones included."""
        return len(self.heap)

    def seconds(self) -> float:
        return _monotonic()

    def callLater(self, delay: float, func: Callable[..., Any], args: tuple[Any, ...],
                  kw: dict[str, Any]) -> DelayedCall:
        """Schedule ``func(*args, **kw)`` ``delay`` seconds from now."""
        if not 0 <= delay < _INF:  # NaN, negative and infinite delays fail here, not in the loop
            raise ValueError(f"callLater() needs a finite delay >= 0, got {delay!r}")
        if not _is_callable(func):
            raise TypeError(f"callLater() needs a callable, not {func!r}")
        if self._stale > _MIN_STALE_TO_COMPACT:
            self.compact()
        when = _monotonic() + delay
        call = DelayedCall(when, func, args, kw, self)
        call._entry = entry = [when, next(self._counter), call]
        heappush(self.heap, entry)
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:
        """The scheduled calls that have neither run nor been cancelled."""
        return [entry[2] for entry in self.heap if entry[2] is not None]

    def compact(self) -> None:
        """Drop the stale entries if they are more than half of the heap. Called when timers
        are added and once per loop turn, so cancelled calls never make the heap grow."""
        heap = self.heap
        if self._stale * 2 > len(heap):
            if self._stale == len(heap):
                heap.clear()
            else:
                heap[:] = [entry for entry in heap if entry[2] is not None]
                heapify(heap)
            self._stale = 0

    def _cancel_call(self, call: DelayedCall) -> None:  # never reached: _compact_at is maxsize
        self.compact()

    def _move_call(self, call: DelayedCall) -> None:
        old = call._entry
        if old is not None:
            old[2] = None  # now stale
        self._stale += 1
        if self._stale > _MIN_STALE_TO_COMPACT:
            self.compact()
        call._entry = entry = [call.time, next(self._counter), call]
        heappush(self.heap, entry)

    def run_due(self, slow: SlowCallbacks | None) -> None:
        """Run every call due now (compacting first if stale entries dominate); calls
        scheduled while these run, even with delay 0, wait for the next turn."""
        heap = self.heap
        if self._stale > _MIN_STALE_TO_COMPACT:
            self.compact()
        now = _monotonic()
        if not heap or heap[0][0] > now:
            return
        limit = next(self._counter)
        while heap:
            when, seq, call = heap[0]
            if when > now or seq > limit:
                break
            heappop(heap)
            if call is None:
                self._stale -= 1
                continue
            call._entry = None
            call.called = True
            try:
                if slow is None:
                    call.func(*call.args, **call.kw)
                else:
                    slow.run("delayed call", call.func, call.func, *call.args, **call.kw)
            except Exception:
                logger.error("Unhandled error in delayed call %r", call, exc_info=True)

    def timeout(self) -> float | None:
        """Seconds until the first live call is due (0 if overdue), None if there is none."""
        heap = self.heap
        while heap and heap[0][2] is None:
            heappop(heap)
            self._stale -= 1
        if not heap:
            return None
        timeout: float = heap[0][0] - _monotonic()
        return timeout if timeout > 0.0 else 0.0
