"""task.Cooperator / coiterate / cooperate and task.react."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from framework import defer, task
from framework.failure import Failure
from framework.task import (
    Cooperator, NotPaused, SchedulerStopped, TaskDone, TaskFailed, TaskStopped, react,
)
from util import run_until


def _one_step_per_tick():
    return lambda: True


class Ticks:
    """A scheduler run by hand: ``advance()`` runs what was scheduled before it (one turn)."""

    class _Call:
        def __init__(self, work) -> None:
            self.work, self.cancelled = work, False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.pending: list[Ticks._Call] = []

    def __call__(self, work):
        call = Ticks._Call(work)
        self.pending.append(call)
        return call

    def advance(self, _amount: float = 0) -> None:
        calls, self.pending = self.pending, []
        for call in calls:
            if not call.cancelled:
                call.work()


def _cooperator(clock: Ticks, **kwargs) -> Cooperator:
    kwargs.setdefault("terminationPredicateFactory", _one_step_per_tick)
    return Cooperator(scheduler=clock, **kwargs)


def _result(d):
    box = []
    d.addBoth(box.append)
    return box[0] if box else None


def test_coiterate_runs_to_the_end_and_fires_with_the_iterator() -> None:
    clock = Ticks()
    seen: list[int] = []
    iterator = (seen.append(i) for i in range(5))
    d = _cooperator(clock).coiterate(iterator)
    for _ in range(5):
        assert not d.called
        clock.advance(0)
    clock.advance(0)
    assert seen == [0, 1, 2, 3, 4]
    assert _result(d) is iterator


def test_tasks_take_turns_within_a_time_slice() -> None:
    clock = Ticks()
    steps = iter(range(100))
    coop = _cooperator(clock, terminationPredicateFactory=lambda: (lambda: next(steps) % 3 == 2))
    order: list[str] = []
    coop.cooperate(order.append(f"a{i}") for i in range(3))
    coop.cooperate(order.append(f"b{i}") for i in range(3))
    clock.advance(0)
    assert order == ["a0", "b0", "a1"]  # three steps, then the slice is over
    clock.advance(0)
    clock.advance(0)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_a_yielded_deferred_pauses_the_task_until_it_fires() -> None:
    clock = Ticks()
    gate: defer.Deferred[None] = defer.Deferred()
    seen: list[str] = []

    def job():
        seen.append("before")
        yield gate
        seen.append("after")

    done = _cooperator(clock).coiterate(job())
    for _ in range(5):
        clock.advance(0)
    assert seen == ["before"] and not done.called
    gate.callback(None)
    for _ in range(3):
        clock.advance(0)
    assert seen == ["before", "after"] and done.called


def test_pause_resume_stop_and_their_errors() -> None:
    clock = Ticks()
    seen: list[int] = []
    t = _cooperator(clock).cooperate(seen.append(i) for i in range(10))
    clock.advance(0)
    t.pause()
    t.pause()
    clock.advance(0)
    t.resume()
    clock.advance(0)
    assert seen == [0]
    t.resume()
    clock.advance(0)
    assert seen == [0, 1]
    with pytest.raises(NotPaused):
        t.resume()
    whenDone = t.whenDone()
    t.stop()
    assert _result(whenDone).check(TaskStopped)
    with pytest.raises(TaskStopped):
        t.pause()
    with pytest.raises(TaskStopped):
        t.stop()
    assert _result(t.whenDone()).check(TaskStopped)


def test_a_failing_iterator_fails_when_done() -> None:
    clock = Ticks()

    def job():
        yield None
        raise ValueError("step two broke")

    t = _cooperator(clock).cooperate(job())
    d = t.whenDone()
    clock.advance(0)
    clock.advance(0)
    failure = _result(d)
    assert isinstance(failure, Failure) and failure.check(ValueError)
    with pytest.raises(TaskFailed):
        t.pause()

    finished = _cooperator(clock).cooperate(iter([]))
    clock.advance(0)
    with pytest.raises(TaskDone):
        finished.stop()


def test_stopping_the_cooperator_fails_its_tasks_until_started_again() -> None:
    clock = Ticks()
    coop = _cooperator(clock)
    d = coop.coiterate(iter(range(10)))
    coop.stop()
    assert not coop.running
    assert _result(d).check(SchedulerStopped)
    assert _result(coop.coiterate(iter(range(3)))).check(SchedulerStopped)
    coop.start()
    d = coop.coiterate(iter(range(2)))
    for _ in range(3):
        clock.advance(0)
    assert d.called and not isinstance(_result(d), Failure)


def test_not_started_waits_for_start() -> None:
    clock = Ticks()
    coop = _cooperator(clock, started=False)
    seen: list[int] = []
    coop.cooperate(seen.append(i) for i in range(2))
    clock.advance(0)
    assert seen == [] and not coop.running
    coop.start()
    clock.advance(0)
    clock.advance(0)
    assert seen == [0, 1]


def test_cooperate_needs_an_iterator() -> None:
    with pytest.raises(TypeError, match="needs an iterator, not list"):
        Cooperator(scheduler=lambda f: None).cooperate([1, 2])


def test_default_time_slices_on_a_real_reactor(reactor) -> None:
    coop = Cooperator(scheduler=lambda work: reactor.callLater(0, work))
    total = []
    d = coop.coiterate(total.append(i) for i in range(20000))
    run_until(reactor, d)
    assert len(total) == 20000


# --- react ------------------------------------------------------------------------------


def _react(reactor, main, argv=()) -> object:
    with pytest.raises(SystemExit) as exit_info:
        react(main, argv, _reactor=reactor)
    assert not reactor.running
    return exit_info.value.code


def test_react_success_after_a_delay_exits_0(reactor) -> None:
    seen = []

    def main(r, a, b):
        seen.append((a, b))
        return task.deferLater(r, 0.01, lambda: None)

    assert _react(reactor, main, ["x", "y"]) == 0
    assert seen == [("x", "y")]


def test_react_coroutine_and_synchronous_results(reactor) -> None:
    async def main(r):
        await task.deferLater(r, 0, lambda: None)

    assert _react(reactor, main) == 0
    assert _react(reactor, lambda r: defer.succeed("done")) == 0
    assert _react(reactor, lambda r: None) == 0


def test_react_failures_exit_1_and_are_logged(reactor, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="framework.task"):
        assert _react(reactor, lambda r: defer.fail(ValueError("bad thing"))) == 1

        def raises(r):
            raise KeyError("at once")

        assert _react(reactor, raises) == 1
    text = caplog.text
    assert "main function encountered error" in text and "bad thing" in text and "at once" in text
    # Each record carries the Failure itself, for handlers that collect failures.
    failures = [r.failure for r in caplog.records if hasattr(r, "failure")]
    assert [f.type for f in failures] == [ValueError, KeyError]


def test_react_system_exit_code_and_external_stop(reactor) -> None:
    def exits(r):
        return task.deferLater(r, 0, lambda: sys.exit(3))

    assert _react(reactor, exits) == 3

    def stopped_elsewhere(r):
        r.callLater(0, r.stop)
        return defer.Deferred()

    assert _react(reactor, stopped_elsewhere) == 0


def test_react_in_a_real_program_with_the_global_reactor() -> None:
    code = textwrap.dedent("""
        from framework import task

        async def main(reactor, greeting):
            print(greeting, flush=True)
            await task.deferLater(reactor, 0.01, lambda: None)
            raise SystemExit(7)

        task.react(main, ["hello"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 7, out.stderr
    assert out.stdout == "hello\n"
