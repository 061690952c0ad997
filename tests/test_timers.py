"""Timers: callLater and DelayedCall, on every backend."""

from __future__ import annotations

import logging
import math
import socket
import time

import pytest

from framework import error, timers
from framework.eventloop import Reactor
from tests.util import run_until_true


def test_calls_run_in_time_order(reactor: Reactor) -> None:
    seen: list[int] = []
    reactor.callLater(0.03, seen.append, 3)
    reactor.callLater(0.01, seen.append, 1)
    reactor.callLater(0.02, seen.append, 2)
    run_until_true(reactor, lambda: len(seen) == 3)
    assert seen == [1, 2, 3]


def test_same_time_calls_run_in_scheduling_order(reactor: Reactor, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    # Freeze the reactor's clock while scheduling so that every call gets the same time.
    monkeypatch.setattr(timers, "_monotonic", lambda: 0.0)
    calls = [reactor.callLater(0, seen.append, i) for i in range(50)]
    monkeypatch.undo()
    assert len({c.getTime() for c in calls}) == 1
    run_until_true(reactor, lambda: len(seen) == 50)
    assert seen == list(range(50))


def test_kwargs_are_passed(reactor: Reactor) -> None:
    seen: list[tuple[int, int]] = []
    reactor.callLater(0, lambda a, b: seen.append((a, b)), 1, b=2)
    run_until_true(reactor, lambda: seen)
    assert seen == [(1, 2)]


@pytest.mark.parametrize("bad", [-0.001, -5, math.nan, math.inf])
def test_negative_nan_or_infinite_delay_raises(reactor: Reactor, bad: float) -> None:
    with pytest.raises(ValueError, match="finite delay >= 0"):
        reactor.callLater(bad, lambda: None)
    assert reactor.getDelayedCalls() == []
    # An infinite delay used to be accepted, and the loop then died computing its wait.
    reactor.callLater(0, reactor.stop)
    reactor.run(installSignalHandlers=False)


def test_non_callable_raises(reactor: Reactor) -> None:
    with pytest.raises(TypeError, match="callable"):
        reactor.callLater(0, "not callable")  # type: ignore[arg-type]


def test_seconds_is_monotonic_clock(reactor: Reactor) -> None:
    before = time.monotonic()
    now = reactor.seconds()
    assert before <= now <= time.monotonic()


def test_get_time_and_active(reactor: Reactor) -> None:
    before = reactor.seconds()
    call = reactor.callLater(10, lambda: None)
    assert before + 10 <= call.getTime() <= reactor.seconds() + 10
    assert call.active()
    assert reactor.getDelayedCalls() == [call]
    call.cancel()
    assert not call.active()
    assert call.cancelled and not call.called
    assert reactor.getDelayedCalls() == []


def test_cancelled_call_does_not_run(reactor: Reactor) -> None:
    seen: list[str] = []
    reactor.callLater(0.01, seen.append, "cancelled").cancel()
    reactor.callLater(0.02, seen.append, "kept")
    run_until_true(reactor, lambda: seen)
    reactor.iterate(0.02)
    assert seen == ["kept"]


def test_cancel_twice_raises_already_cancelled(reactor: Reactor) -> None:
    call = reactor.callLater(1, lambda: None)
    call.cancel()
    with pytest.raises(error.AlreadyCancelled):
        call.cancel()
    with pytest.raises(error.AlreadyCancelled):
        call.reset(1)
    with pytest.raises(error.AlreadyCancelled):
        call.delay(1)


def test_cancel_after_call_raises_already_called(reactor: Reactor) -> None:
    call = reactor.callLater(0, lambda: None)
    run_until_true(reactor, lambda: call.called)
    assert not call.active()
    with pytest.raises(error.AlreadyCalled):
        call.cancel()
    with pytest.raises(error.AlreadyCalled):
        call.reset(1)
    with pytest.raises(error.AlreadyCalled):
        call.delay(1)


def test_reset_moves_call_later(reactor: Reactor) -> None:
    seen: list[str] = []
    first = reactor.callLater(0.01, seen.append, "first")
    reactor.callLater(0.03, seen.append, "second")
    first.reset(0.06)
    assert first.getTime() > reactor.seconds() + 0.05
    run_until_true(reactor, lambda: len(seen) == 2)
    assert seen == ["second", "first"]
    assert reactor.getDelayedCalls() == []


def test_reset_moves_call_earlier(reactor: Reactor) -> None:
    seen: list[str] = []
    late = reactor.callLater(60, seen.append, "late")
    reactor.callLater(0.03, seen.append, "other")
    late.reset(0)
    run_until_true(reactor, lambda: len(seen) == 2)
    assert seen == ["late", "other"]


def test_reset_rejects_negative(reactor: Reactor) -> None:
    call = reactor.callLater(1, lambda: None)
    with pytest.raises(ValueError):
        call.reset(-1)
    with pytest.raises(ValueError, match="finite"):
        call.reset(math.inf)
    with pytest.raises(ValueError, match="finite"):
        call.delay(math.inf)
    call.cancel()


def test_delay_moves_call(reactor: Reactor) -> None:
    seen: list[str] = []
    a = reactor.callLater(0.01, seen.append, "a")
    reactor.callLater(0.02, seen.append, "b")
    t = a.getTime()
    a.delay(0.03)
    assert a.getTime() == pytest.approx(t + 0.03)
    run_until_true(reactor, lambda: len(seen) == 2)
    assert seen == ["b", "a"]


def test_exception_in_timed_call_is_logged_and_loop_goes_on(
        reactor: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def boom() -> None:
        raise ZeroDivisionError("boom in timer")

    reactor.callLater(0, boom)
    reactor.callLater(0.01, seen.append, "after")
    with caplog.at_level(logging.ERROR, logger="framework.eventloop"):
        run_until_true(reactor, lambda: seen)
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]
    assert records, caplog.text
    assert "boom in timer" in caplog.text
    assert "Traceback" in caplog.text


def test_cancelled_timers_are_compacted(reactor: Reactor) -> None:
    for _ in range(100_000):
        reactor.callLater(1000, lambda: None).cancel()
    assert len(reactor._timers) <= 1000
    assert reactor.getDelayedCalls() == []


def test_reset_many_times_does_not_grow(reactor: Reactor) -> None:
    call = reactor.callLater(1000, lambda: None)
    for i in range(20_000):
        call.reset(1000 + i % 7)
    assert len(reactor._timers) <= 1000
    assert reactor.getDelayedCalls() == [call]
    call.cancel()


def test_cancel_from_inside_another_call(reactor: Reactor) -> None:
    seen: list[str] = []
    victim = reactor.callLater(0.02, seen.append, "victim")
    reactor.callLater(0.01, victim.cancel)
    reactor.callLater(0.03, seen.append, "last")
    run_until_true(reactor, lambda: seen)
    assert seen == ["last"]


def test_zero_delay_call_loop_does_not_starve_io(reactor: Reactor) -> None:
    """A call that reschedules itself with delay 0 runs once per turn, so I/O still runs."""
    a, b = socket.socketpair()
    ticks = [0]
    got: list[bytes] = []

    def spin() -> None:
        ticks[0] += 1
        if not got and ticks[0] < 1_000_000:
            reactor.callLater(0, spin)

    class Reader:
        def fileno(self) -> int:
            return a.fileno()

        def doRead(self) -> None:
            got.append(a.recv(100))
            reactor.removeReader(self)

        def connectionLost(self, reason: object) -> None:
            pass

    try:
        reactor.addReader(Reader())
        b.send(b"x")
        reactor.callLater(0, spin)
        run_until_true(reactor, lambda: got)
        assert got == [b"x"]
        assert ticks[0] < 1_000_000
    finally:
        a.close()
        b.close()
        for call in reactor.getDelayedCalls():
            call.cancel()


def test_timers_survive_a_restart(reactor: Reactor) -> None:
    seen: list[str] = []
    reactor.callLater(0, reactor.stop)
    reactor.callLater(0.02, seen.append, "second run")
    reactor.run(installSignalHandlers=False)
    assert seen == []
    run_until_true(reactor, lambda: seen)
    assert seen == ["second run"]

