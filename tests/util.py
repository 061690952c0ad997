"""Helpers for driving a private reactor in tests."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from framework.eventloop import Reactor
from framework.failure import Failure

_POLL_INTERVAL = 0.002


def run_until(reactor: Reactor, d: Any, timeout: float = 10.0) -> Any:
    """Run ``reactor`` until Deferred ``d`` fires; return its result or raise its failure.

    On timeout the reactor is stopped and the test fails.
    """
    box: list[Any] = []

    def done(result: Any) -> None:
        box.append(result)
        if reactor._started:
            reactor.crash()

    d.addBoth(done)
    if not box:
        _run(reactor, timeout, lambda: bool(box), f"Deferred {d!r} did not fire")
    result = box[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def run_until_true(reactor: Reactor, predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Run ``reactor`` until ``predicate()`` is true (checked every few milliseconds).

    On timeout the reactor is stopped and the test fails.
    """
    if predicate():
        return

    def check() -> None:
        if predicate():
            reactor.crash()
        else:
            checker[0] = reactor.callLater(_POLL_INTERVAL, check)

    checker = [reactor.callLater(0, check)]
    try:
        _run(reactor, timeout, predicate, f"condition {predicate!r} did not become true")
    finally:
        if checker[0].active():
            checker[0].cancel()


def _run(reactor: Reactor, timeout: float, finished: Callable[[], Any], what: str) -> None:
    timed_out: list[bool] = []

    def on_timeout() -> None:
        timed_out.append(True)
        reactor.crash()

    timer = reactor.callLater(timeout, on_timeout)
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        if timer.active():
            timer.cancel()
    if not finished():
        if timed_out:
            pytest.fail(f"{what} within {timeout} s", pytrace=False)
        pytest.fail(f"{what}: the reactor stopped first", pytrace=False)


def close_quietly(handler: Any) -> None:
    """Abort (or lose, or close) a handler a test left registered; errors are ignored."""
    for name in ("abortConnection", "loseConnection", "close"):
        method = getattr(handler, name, None)
        if method is not None:
            try:
                method()
            except Exception:
                pass
            return
