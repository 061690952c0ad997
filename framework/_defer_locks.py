"""Concurrency primitives for code running in the reactor: ``DeferredLock``,
``DeferredSemaphore`` and ``DeferredQueue``. Import them from ``framework.defer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from framework._defer_core import Deferred
from framework._defer_errors import QueueOverflow, QueueUnderflow
from framework._defer_shortcuts import maybeDeferred, succeed

__all__ = ["DeferredLock", "DeferredQueue", "DeferredSemaphore"]

_T = TypeVar("_T")


class _ConcurrencyPrimitive:
    waiting: list[Deferred[Any]]

    def __init__(self) -> None:
        self.waiting = []

    def _releaseAndReturn(self, r: Any) -> Any:
        self.release()
        return r

    def _cancelAcquire(self, d: Deferred[Any]) -> None:
        self.waiting.remove(d)

    def acquire(self) -> Deferred[Any]:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Acquire, call ``f(*args, **kwargs)``, release when its result (maybe a Deferred) is in."""

        def execute(ignoredResult: Any) -> Deferred[Any]:
            return maybeDeferred(f, *args, **kwargs).addBoth(self._releaseAndReturn)

        return self.acquire().addCallback(execute)

    def __aenter__(self) -> Deferred[Any]:
        return self.acquire()

    def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> Deferred[bool]:
        self.release()
        return succeed(False)


class DeferredLock(_ConcurrencyPrimitive):
    """A lock for code that runs in the reactor: ``acquire()`` returns a Deferred.

    ``async with lock:`` works inside ``async def`` functions run with ``ensureDeferred``.
    """

    def __init__(self) -> None:
        _ConcurrencyPrimitive.__init__(self)
        self.locked = False

    def acquire(self) -> Deferred[DeferredLock]:
        """A Deferred that fires with this lock once it is ours; cancel it to stop waiting."""
        d: Deferred[DeferredLock] = Deferred(canceller=self._cancelAcquire)
        if self.locked:
            self.waiting.append(d)
        else:
            self.locked = True
            d.callback(self)
        return d

    def release(self) -> None:
        """Release the lock, handing it to the first waiter if there is one."""
        if not self.locked:
            raise RuntimeError("release() of a DeferredLock that is not locked")
        self.locked = False
        if self.waiting:
            self.locked = True
            self.waiting.pop(0).callback(self)


class DeferredSemaphore(_ConcurrencyPrimitive):
    """A semaphore with ``tokens`` slots for code that runs in the reactor."""

    def __init__(self, tokens: int) -> None:
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
            raise ValueError(f"DeferredSemaphore needs a positive integer of tokens, not {tokens!r}")
        _ConcurrencyPrimitive.__init__(self)
        self.tokens = tokens
        self.limit = tokens

    def acquire(self) -> Deferred[DeferredSemaphore]:
        """A Deferred that fires with this semaphore once a token is ours."""
        d: Deferred[DeferredSemaphore] = Deferred(canceller=self._cancelAcquire)
        if self.tokens > 0:
            self.tokens -= 1
            d.callback(self)
        else:
            self.waiting.append(d)
        return d

    def release(self) -> None:
        """Give a token back, handing it to the first waiter if there is one."""
        if self.tokens >= self.limit:
            raise RuntimeError("release() of a DeferredSemaphore with no token acquired")
        self.tokens += 1
        if self.waiting and self.tokens > 0:
            self.tokens -= 1
            self.waiting.pop(0).callback(self)


class DeferredQueue(Generic[_T]):
    """A queue whose ``get()`` returns a Deferred.

    ``size`` bounds the items waiting to be got (``put`` beyond it raises ``QueueOverflow``);
    ``backlog`` bounds the getters waiting for an item (``get`` beyond it raises
    ``QueueUnderflow``). ``None`` means unbounded.
    """

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        for name, value in (("size", size), ("backlog", backlog)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"DeferredQueue {name} must be None or a non-negative int, not {value!r}")
        self.waiting: list[Deferred[_T]] = []
        self.pending: list[_T] = []
        self.size = size
        self.backlog = backlog

    def _cancelGet(self, d: Deferred[_T]) -> None:
        self.waiting.remove(d)

    def put(self, obj: _T) -> None:
        """Give ``obj`` to the first waiting getter, or keep it for the next ``get()``."""
        if isinstance(obj, Deferred):
            raise TypeError("DeferredQueue.put() cannot take a Deferred (it would be chained)")
        if self.waiting:
            self.waiting.pop(0).callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise QueueOverflow(f"queue is full ({self.size} items); {obj!r} was not added")

    def get(self) -> Deferred[_T]:
        """A Deferred of the next item (already fired if one is pending)."""
        if self.pending:
            return succeed(self.pending.pop(0))
        if self.backlog is None or len(self.waiting) < self.backlog:
            d: Deferred[_T] = Deferred(canceller=self._cancelGet)
            self.waiting.append(d)
            return d
        raise QueueUnderflow(f"too many getters already waiting ({self.backlog})")
