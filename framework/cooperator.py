"""Cooperative multitasking over iterators (Twisted's ``task.Cooperator``), re-exported by
``framework.task``.

A long job written as a generator yields between small steps; a ``Cooperator`` advances all
its tasks round-robin, a few steps per reactor turn, until its termination predicate says the
turn has had enough time (10 ms by default), then gives the reactor back. A step that yields a
``Deferred`` pauses that task until the Deferred fires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from framework.defer import Deferred
from framework.failure import Failure
from framework.main import global_reactor

__all__ = [
    "CooperativeTask",
    "Cooperator",
    "NotPaused",
    "SchedulerError",
    "SchedulerStopped",
    "TaskDone",
    "TaskFailed",
    "TaskFinished",
    "TaskStopped",
    "coiterate",
    "cooperate",
]


class SchedulerError(Exception):
    """A ``CooperativeTask`` or ``Cooperator`` was used in a state that does not allow it."""


class SchedulerStopped(SchedulerError):
    """The task's cooperator was stopped before the task finished."""


class TaskFinished(SchedulerError):
    """The task has already finished: it cannot be paused or stopped."""


class TaskDone(TaskFinished):
    """The task's iterator is exhausted."""


class TaskStopped(TaskFinished):
    """The task was stopped with ``stop()``."""


class TaskFailed(TaskFinished):
    """The task's iterator raised, or a Deferred it yielded failed."""


class NotPaused(SchedulerError):
    """``resume()`` was called on a task that is not paused."""


#: The default scheduler's delay: the next turn, after the reactor has polled.
_EPSILON = 0.00001
#: How long one turn of the default termination predicate lets the tasks run.
_TIME_SLICE = 0.01


class _TimeSlice:
    """The default termination predicate: true once ``_TIME_SLICE`` has passed."""

    __slots__ = ("end",)

    def __init__(self) -> None:
        self.end = time.monotonic() + _TIME_SLICE

    def __call__(self) -> bool:
        return time.monotonic() >= self.end


def _default_scheduler(work: Callable[[], None]) -> Any:
    return global_reactor().callLater(_EPSILON, work)


class CooperativeTask:
    """One iterator being advanced by a ``Cooperator``; made by ``Cooperator.cooperate``."""

    def __init__(self, iterator: Iterator[Any], cooperator: Cooperator) -> None:
        self._iterator = iterator
        self._cooperator = cooperator
        self._waiting: list[Deferred[Any]] = []
        self._pauses = 0
        self._finished: TaskFinished | SchedulerStopped | None = None
        self._result: Any = None
        cooperator._add(self)

    def __repr__(self) -> str:
        state = "running" if self._finished is None else type(self._finished).__name__
        return f"<CooperativeTask {self._iterator!r} {state}{' paused' if self._pauses else ''}>"

    def whenDone(self) -> Deferred[Any]:
        """A Deferred firing with the iterator once it is exhausted, or failing with the
        iterator's error, ``TaskStopped`` or ``SchedulerStopped``."""
        d: Deferred[Any] = Deferred()
        if self._finished is None:
            self._waiting.append(d)
        else:
            self._deliver(d)
        return d

    def pause(self) -> None:
        """Stop advancing this task until a matching ``resume()`` (pauses nest)."""
        self._check_running()
        self._pauses += 1
        if self._pauses == 1:
            self._cooperator._remove(self)

    def resume(self) -> None:
        """Undo one ``pause()``; raises ``NotPaused`` if the task is not paused."""
        if self._pauses == 0:
            raise NotPaused(f"{self!r} is not paused")
        self._pauses -= 1
        if self._pauses == 0 and self._finished is None:
            self._cooperator._add(self)

    def stop(self) -> None:
        """Stop the task for good: ``whenDone()`` fails with ``TaskStopped``."""
        self._check_running()
        self._complete(TaskStopped(), Failure(TaskStopped(f"{self!r} was stopped")))

    def _check_running(self) -> None:
        if self._finished is not None:
            raise self._finished

    def _deliver(self, d: Deferred[Any]) -> None:
        if isinstance(self._result, Failure):
            d.errback(self._result)
        else:
            d.callback(self._result)

    def _complete(self, state: TaskFinished | SchedulerStopped, result: Any) -> None:
        self._finished = state
        self._result = result
        if not self._pauses:
            self._cooperator._remove(self)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            self._deliver(d)
        if isinstance(result, Failure) and not waiting and not isinstance(state, (TaskStopped, SchedulerStopped)):
            # Nobody will ever see this error through whenDone(): keep it from vanishing.
            Deferred().errback(result)

    def _step(self) -> None:
        try:
            value = next(self._iterator)
        except StopIteration:
            self._complete(TaskDone(), self._iterator)
        except Exception:
            self._complete(TaskFailed(), Failure())
        else:
            if isinstance(value, Deferred):
                self.pause()
                value.addCallbacks(self._waited, self._wait_failed)

    def _waited(self, _result: Any) -> None:
        if self._finished is None:
            self.resume()

    def _wait_failed(self, failure: Failure) -> None:
        if self._finished is None:
            self._complete(TaskFailed(), failure)


class Cooperator:
    """Advances its tasks round-robin in time slices.

    ``terminationPredicateFactory()`` is called at the start of each slice and returns a
    predicate that says when the slice is over (default: after 10 ms); ``scheduler(f)``
    arranges for ``f()`` to run later and returns an object with ``cancel()`` (default:
    ``reactor.callLater`` with a tiny delay). ``started=False`` makes it wait for ``start()``.
    """

    def __init__(self, terminationPredicateFactory: Callable[[], Callable[[], bool]] = _TimeSlice,
                 scheduler: Callable[[Callable[[], None]], Any] = _default_scheduler,
                 started: bool = True) -> None:
        self._tasks: list[CooperativeTask] = []
        self._round: Iterator[CooperativeTask] = iter(())
        self._predicate_factory = terminationPredicateFactory
        self._scheduler = scheduler
        self._pending: Any = None
        self._started = started
        self._stopped = False
        self._schedule_on_start = False

    def __repr__(self) -> str:
        return f"<Cooperator {len(self._tasks)} task(s) {'running' if self.running else 'not running'}>"

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._started and not self._stopped

    def coiterate(self, iterator: Iterator[Any], doneDeferred: Deferred[Any] | None = None) -> Deferred[Any]:
        """Advance ``iterator`` cooperatively; the Deferred fires with it once exhausted."""
        if doneDeferred is None:
            doneDeferred = Deferred()
        CooperativeTask(iterator, self).whenDone().chainDeferred(doneDeferred)
        return doneDeferred

    def cooperate(self, iterator: Iterator[Any]) -> CooperativeTask:
        """Advance ``iterator`` cooperatively; the task can be paused, resumed and stopped."""
        if not hasattr(iterator, "__next__"):
            raise TypeError(f"cooperate() needs an iterator, not {type(iterator).__name__}")
        return CooperativeTask(iterator, self)

    def start(self) -> None:
        """Begin (or begin again after ``stop()``) running tasks."""
        self._stopped = False
        self._started = True
        if self._schedule_on_start:
            self._schedule_on_start = False
            self._reschedule()

    def stop(self) -> None:
        """Stop every task (their ``whenDone()`` fail with ``SchedulerStopped``); tasks added
        while stopped fail the same way at once, until ``start()``."""
        self._stopped = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task._complete(SchedulerStopped(), Failure(SchedulerStopped(f"{self!r} was stopped")))
        self._cancel_pending()

    def _add(self, task: CooperativeTask) -> None:
        self._tasks.append(task)
        if self._stopped:
            task._complete(SchedulerStopped(), Failure(SchedulerStopped(f"{self!r} is stopped")))
        else:
            self._reschedule()

    def _remove(self, task: CooperativeTask) -> None:
        try:
            self._tasks.remove(task)
        except ValueError:
            return
        if not self._tasks:
            self._cancel_pending()

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _reschedule(self) -> None:
        if not self._started:
            self._schedule_on_start = True
        elif self._pending is None and self._tasks:
            self._pending = self._scheduler(self._tick)

    def _tick(self) -> None:
        self._pending = None
        done = self._predicate_factory()
        while self._tasks and not self._stopped:
            for task in self._round:
                if task._finished is not None or task._pauses:
                    continue  # paused or finished earlier in this round
                task._step()
                if done():
                    self._reschedule()
                    return
            self._round = iter(list(self._tasks))
        self._reschedule()


_global = Cooperator()


def coiterate(iterator: Iterator[Any]) -> Deferred[Any]:
    """``Cooperator.coiterate`` on the global cooperator."""
    return _global.coiterate(iterator)


def cooperate(iterator: Iterator[Any]) -> CooperativeTask:
    """``Cooperator.cooperate`` on the global cooperator."""
    return _global.cooperate(iterator)
