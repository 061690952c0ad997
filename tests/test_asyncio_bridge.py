"""Deferred <-> asyncio Future bridges: ``Deferred.asFuture``, ``Deferred.fromFuture`` and
``await``-ing a Deferred in a coroutine run by asyncio. Cancellation crosses in both
directions. These run on plain asyncio loops (``asyncio.run``); no reactor is involved."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from framework import defer
from framework.failure import Failure


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


@pytest.fixture
def unhandled(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The "Unhandled error in Deferred" reports logged during the test (after a collection)."""
    caplog.set_level(logging.ERROR, logger="framework.defer")
    found: list[str] = []
    yield found
    gc.collect()
    found.extend(r.getMessage() for r in caplog.records if "Unhandled" in r.getMessage())
    assert found == [], found


def _canceller(log: list[str]) -> Any:
    return lambda d: log.append("cancelled")


# -- asFuture -----------------------------------------------------------------------------------


def test_as_future_result(loop: asyncio.AbstractEventLoop) -> None:
    d: defer.Deferred[str] = defer.Deferred()
    future = d.asFuture(loop)
    assert not future.done()
    loop.call_soon(d.callback, "value")
    assert loop.run_until_complete(future) == "value"


def test_as_future_of_a_fired_deferred(loop: asyncio.AbstractEventLoop) -> None:
    assert loop.run_until_complete(defer.succeed(7).asFuture(loop)) == 7


def test_as_future_failure(loop: asyncio.AbstractEventLoop, unhandled: list[str]) -> None:
    d: defer.Deferred[Any] = defer.Deferred()
    future = d.asFuture(loop)
    d.errback(KeyError("missing"))
    with pytest.raises(KeyError, match="missing"):
        loop.run_until_complete(future)


def test_cancelling_the_future_cancels_the_deferred(loop: asyncio.AbstractEventLoop,
                                                   unhandled: list[str]) -> None:
    log: list[str] = []
    d: defer.Deferred[Any] = defer.Deferred(_canceller(log))
    future = d.asFuture(loop)
    future.cancel()
    loop.run_until_complete(asyncio.sleep(0))  # done callbacks run on the loop
    assert log == ["cancelled"]
    # Fired with CancelledError, which the bridge consumed: nothing is reported as unhandled.
    assert d.called and d.result is None


def test_cancelling_the_deferred_fails_the_future(loop: asyncio.AbstractEventLoop) -> None:
    d: defer.Deferred[Any] = defer.Deferred()
    future = d.asFuture(loop)
    d.cancel()
    with pytest.raises(defer.CancelledError):  # as Twisted does: an error, not a cancelled future
        loop.run_until_complete(future)


# -- fromFuture ---------------------------------------------------------------------------------


def test_from_future_result_and_failure(loop: asyncio.AbstractEventLoop) -> None:
    ok = loop.create_future()
    bad = loop.create_future()
    results: list[Any] = []
    defer.Deferred.fromFuture(ok).addCallback(results.append)
    failures: list[Failure] = []
    defer.Deferred.fromFuture(bad).addErrback(failures.append)
    ok.set_result("fine")
    bad.set_exception(ValueError("broken"))
    loop.run_until_complete(asyncio.sleep(0))
    assert results == ["fine"]
    assert failures and failures[0].check(ValueError)


def test_cancelling_the_deferred_cancels_the_future(loop: asyncio.AbstractEventLoop,
                                                    unhandled: list[str]) -> None:
    future = loop.create_future()
    d = defer.Deferred.fromFuture(future)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    d.cancel()
    assert future.cancelled()
    assert failures and failures[0].check(defer.CancelledError)
    loop.run_until_complete(asyncio.sleep(0))  # the future's done callback finds d fired
    assert len(failures) == 1


def test_cancelling_the_future_fails_the_deferred(loop: asyncio.AbstractEventLoop) -> None:
    future = loop.create_future()
    failures: list[Failure] = []
    defer.Deferred.fromFuture(future).addErrback(failures.append)
    future.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    # Both framework's CancelledError and asyncio's (what Twisted gives) catch it.
    assert failures and failures[0].check(defer.CancelledError)
    assert failures[0].check(asyncio.CancelledError)


def test_cancelling_the_deferred_of_a_task_cancels_the_coroutine(
        loop: asyncio.AbstractEventLoop, unhandled: list[str]) -> None:
    seen: list[str] = []

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("coroutine cancelled")
            raise

    task = loop.create_task(work())
    loop.run_until_complete(asyncio.sleep(0))
    d = defer.Deferred.fromFuture(task)
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    d.cancel()
    loop.run_until_complete(asyncio.wait([task]))
    assert task.cancelled()
    assert seen == ["coroutine cancelled"]


# -- await a Deferred inside asyncio ------------------------------------------------------------


def test_await_pending_deferred_in_asyncio() -> None:
    async def main() -> tuple[str, str]:
        d: defer.Deferred[str] = defer.Deferred()
        asyncio.get_running_loop().call_later(0.001, d.callback, "later")
        first = await d
        second = await defer.succeed("at once")
        return first, second

    assert asyncio.run(main()) == ("later", "at once")


def test_await_failing_deferred_in_asyncio(unhandled: list[str]) -> None:
    async def main() -> None:
        d: defer.Deferred[Any] = defer.Deferred()
        asyncio.get_running_loop().call_soon(d.errback, ZeroDivisionError("nope"))
        await d

    with pytest.raises(ZeroDivisionError, match="nope"):
        asyncio.run(main())


def test_await_deferred_that_our_side_cancels() -> None:
    async def main() -> str:
        d: defer.Deferred[Any] = defer.Deferred()
        asyncio.get_running_loop().call_soon(d.cancel)
        try:
            await d
        except defer.CancelledError:
            return "saw CancelledError"
        return "not cancelled"

    assert asyncio.run(main()) == "saw CancelledError"


def test_cancelling_the_asyncio_task_cancels_the_awaited_deferred(unhandled: list[str]) -> None:
    log: list[str] = []

    async def waiter(d: defer.Deferred[Any]) -> None:
        await d

    async def main() -> None:
        d: defer.Deferred[Any] = defer.Deferred(_canceller(log))
        task = asyncio.get_running_loop().create_task(waiter(d))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log == ["cancelled"]

    asyncio.run(main())


def test_wait_for_timeout_cancels_the_deferred(unhandled: list[str]) -> None:
    log: list[str] = []

    async def main() -> None:
        d: defer.Deferred[Any] = defer.Deferred(_canceller(log))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(d, 0.001)

    asyncio.run(main())
    assert log == ["cancelled"]


def test_gather_deferreds() -> None:
    async def main() -> list[int]:
        one: defer.Deferred[int] = defer.Deferred()
        two: defer.Deferred[int] = defer.Deferred()
        loop = asyncio.get_running_loop()
        loop.call_soon(two.callback, 2)
        loop.call_soon(one.callback, 1)
        return list(await asyncio.gather(one, two))

    assert asyncio.run(main()) == [1, 2]


def test_ensure_deferred_started_from_asyncio_code() -> None:
    """A Deferred-returning API written with ``async def`` + ``ensureDeferred`` (or
    ``inlineCallbacks``), called from a coroutine run by asyncio: our driver runs it and
    waits on the Deferred itself, asyncio waits on the outer one."""

    async def api(d: defer.Deferred[str]) -> str:
        value = await d
        return value + "!"

    @defer.inlineCallbacks
    def legacy(d: defer.Deferred[str]) -> Any:
        value = yield d
        return value + "?"

    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        a: defer.Deferred[str] = defer.Deferred()
        b: defer.Deferred[str] = defer.Deferred()
        loop.call_later(0.001, a.callback, "async")
        loop.call_later(0.001, b.callback, "generator")
        return await defer.ensureDeferred(api(a)), await legacy(b)

    assert asyncio.run(main()) == ("async!", "generator?")


def test_cancel_reaches_through_ensure_deferred_started_from_asyncio(unhandled: list[str]) -> None:
    log: list[str] = []

    async def api(d: defer.Deferred[Any]) -> Any:
        return await d

    async def main() -> None:
        inner: defer.Deferred[Any] = defer.Deferred(_canceller(log))
        outer = defer.ensureDeferred(api(inner))
        outer.cancel()
        with pytest.raises(defer.CancelledError):
            await outer

    asyncio.run(main())
    assert log == ["cancelled"]


def test_await_outside_asyncio_still_uses_our_driver() -> None:
    """No asyncio loop running: awaiting suspends on the Deferred itself, as before."""
    d: defer.Deferred[int] = defer.Deferred()

    async def main() -> int:
        return await d + 1

    outer = defer.ensureDeferred(main())
    assert not outer.called
    d.callback(1)
    assert outer.result == 2
