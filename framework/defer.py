"""``Deferred``: a result that is not available yet, with callback and errback chains.

Semantics follow ``twisted.internet.defer`` so Twisted code ports by changing the import.
Differences (all deliberate, see ``docs/deferred.md``): ``callback(a_deferred)`` raises
``TypeError``; a callback that returns the very Deferred it was added to fails with
``TypeError`` instead of hanging; chains of ``chainDeferred`` run iteratively; ``unpause()`` on a
Deferred that is not paused raises ``RuntimeError``; an exception raised by a canceller errbacks
the Deferred instead of escaping from ``cancel()``.

The run loop is flat: a callback returning an unfired Deferred, or a ``chainDeferred`` link,
parks the outer Deferred on an explicit stack instead of recursing, so chains of any depth fire
without ``RecursionError``.
"""

from __future__ import annotations

import functools
import logging
import sys
import types
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, cast

from framework import error as _error
from framework import chain as _middleware
from framework.failure import Failure

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "AlreadyCalledError",
    "AlreadyTryingToLockError",
    "CancelledError",
    "Deferred",
    "DeferredList",
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "FAILURE",
    "FailureGroup",
    "FirstError",
    "NotACoroutineError",
    "QueueOverflow",
    "QueueUnderflow",
    "SUCCESS",
    "TimeoutError",
    "ensureDeferred",
    "execute",
    "fail",
    "gatherResults",
    "inlineCallbacks",
    "logError",
    "maybeDeferred",
    "passthru",
    "race",
    "returnValue",
    "succeed",
]

_T = TypeVar("_T")
_log = logging.getLogger("framework.defer")

# The middleware module mutates these lists in place; binding them here keeps the hot-path
# check to one global load and one truth test.
_mw_active = _middleware._active
_mw_created = _middleware._created


# --------------------------------------------------------------------------------------------
# Exceptions


class AlreadyCalledError(Exception):
    """``callback`` or ``errback`` was called on a Deferred that has already fired."""


class CancelledError(Exception):
    """The Deferred was cancelled before it had a result."""


class TimeoutError(_error.TimeoutError):
    """A Deferred given a deadline with ``addTimeout`` did not fire in time.

    A subclass of ``framework.error.TimeoutError``, so ``except error.TimeoutError`` catches it
    too. Constructed as ``TimeoutError(timeout, "Deferred")``, like Twisted's.
    """

    def __init__(self, timeout: float | None = None, string: str = "Deferred") -> None:
        _error.TimeoutError.__init__(self, timeout, string)
        self.timeout = timeout

    def __str__(self) -> str:
        what = self.args[0] if self.args and self.args[0] else "Deferred"
        if self.timeout is None:
            return f"{what} timed out"
        return f"{what} timed out after {self.timeout} seconds"


class NotACoroutineError(TypeError):
    """``ensureDeferred``/``Deferred.fromCoroutine`` was given something that is not a coroutine."""


class AlreadyTryingToLockError(Exception):
    """Kept for Twisted compatibility (``DeferredFilesystemLock``); not raised here."""


class QueueOverflow(Exception):
    """``DeferredQueue.put`` on a queue that already holds ``size`` items."""


class QueueUnderflow(Exception):
    """``DeferredQueue.get`` with ``backlog`` getters already waiting."""


class FirstError(Exception):
    """The first failure in a ``DeferredList(fireOnOneErrback=True)`` or ``gatherResults``.

    ``subFailure`` is that ``Failure``; ``index`` is the position of its Deferred in the list.
    """

    def __init__(self, failure: Failure, index: int) -> None:
        Exception.__init__(self, failure, index)
        self.subFailure = failure
        self.index = index

    def __repr__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure.value!r}]"

    def __str__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure.getErrorMessage()}]"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, tuple):
            return tuple(self.args) == other
        if isinstance(other, FirstError):
            return self.index == other.index and self.subFailure.value == other.subFailure.value
        return False

    def __hash__(self) -> int:
        return hash((self.index, type(self.subFailure.value)))


class _DefGen_Return(BaseException):
    """Raised by the legacy ``returnValue``; carries the generator's result."""

    def __init__(self, value: Any) -> None:
        BaseException.__init__(self, value)
        self.value = value


# --------------------------------------------------------------------------------------------
# Chain entries
#
# ``Deferred.callbacks`` holds one entry per stage. ``addCallback(f)`` without extra arguments
# (the common case) stores ``f`` itself; anything else is a 4-tuple
# ``(callback, cbExtra, errback, ebExtra)`` where ``extra`` is ``None`` (call with the result
# only), ``(args, kwargs)``, or one of the markers below, in which case the function slot holds
# the Deferred the marker refers to.

_SKIP = ("skip",)  # this side of the stage is a pass-through: leave the result alone
_CONTINUE = ("continue",)  # hand the result to the Deferred waiting on this one
_CHAIN = ("chain",)  # fire the chainDeferred target with the result
_RESUME = ("resume",)  # resume the generator whose Deferred is in the function slot


def _returnArg(ignored: object, value: _T) -> _T:
    return value


def passthru(arg: _T) -> _T:
    """Return ``arg`` unchanged (the default other half of ``addCallback``/``addErrback``)."""
    return arg


class _Unhandled:
    """Holds a Deferred's final Failure; logs it when the Deferred is garbage-collected.

    Created only when a chain ends in a Failure, so successful Deferreds pay nothing. It is
    referenced only by its Deferred, so it dies with it.
    """

    __slots__ = ("failure", "creator")

    def __init__(self, failure: Failure, creator: str | None) -> None:
        self.failure: Failure | None = failure
        self.creator = creator

    def __del__(self) -> None:
        failure = self.failure
        if failure is None:
            return
        self.failure = None
        try:
            _logUnhandled(failure, self.creator)
        except Exception:  # pragma: no cover - logging torn down at interpreter exit
            pass


def _logUnhandled(failure: Failure, creator: str | None) -> None:
    where = f"\nDeferred created at:\n{creator.rstrip()}" if creator else ""
    if failure.tb is not None or failure.value.__traceback__ is not None:
        _log.error(
            "Unhandled error in Deferred:%s",
            where,
            exc_info=(failure.type, failure.value, failure.tb or failure.value.__traceback__),
        )
    else:
        _log.error("Unhandled error in Deferred:%s\n%s", where, failure.getTraceback().rstrip())


def _callbackFailure() -> Failure:
    """A Failure for the exception being handled, without the catching frame.

    The catching frame is the run loop or the generator driver: noise in a user's traceback.
    """
    value = sys.exc_info()[1]
    assert value is not None
    tb = value.__traceback__
    if tb is not None:
        tb = tb.tb_next
        value.__traceback__ = tb
    return Failure(value, type(value), tb)


def _checkCallable(f: object, what: str) -> None:
    if not callable(f):
        raise TypeError(f"{what} must be callable, not {f!r}")


# --------------------------------------------------------------------------------------------
# Deferred


class Deferred(Generic[_T]):
    """A result that is not available yet.

    Add callbacks (success chain) and errbacks (failure chain) with ``addCallbacks`` and
    friends; fire it once with ``callback(result)`` or ``errback(failure)``. Each stage gets
    the previous stage's output: returning a value continues down the callback chain, raising
    (or returning a ``Failure``) continues down the errback chain. A stage that returns an
    unfired Deferred pauses this chain until that one fires, then continues with its result.
    """

    __slots__ = (
        "callbacks",
        "called",
        "paused",
        "result",
        "_canceller",
        "_runningCallbacks",
        "_suppressAlreadyCalled",
        "_chainedTo",
        "_unhandled",
        "_creator",
        "__weakref__",
    )

    callbacks: list[Any]
    called: bool
    paused: int
    result: Any
    _canceller: Callable[[Deferred[Any]], None] | None
    _runningCallbacks: bool
    _suppressAlreadyCalled: bool
    _chainedTo: Deferred[Any] | None
    _unhandled: _Unhandled | None
    _creator: str | None

    def __init__(self, canceller: Callable[[Deferred[Any]], None] | None = None) -> None:
        """``canceller(d)``, if given, is called by ``cancel()`` to abort the underlying work."""
        if canceller is not None and not callable(canceller):
            raise TypeError(f"canceller must be callable, not {canceller!r}")
        self.callbacks = []
        self.called = False
        self.paused = 0
        self._canceller = canceller
        self._runningCallbacks = False
        self._suppressAlreadyCalled = False
        self._chainedTo = None
        self._unhandled = None
        self._creator = None
        if _mw_created:
            _middleware.created(self)

    # -- adding stages -----------------------------------------------------------------------

    def addCallbacks(
        self,
        callback: Callable[..., Any],
        errback: Callable[..., Any] | None = None,
        callbackArgs: Iterable[Any] = (),
        callbackKeywords: dict[str, Any] | None = None,
        errbackArgs: Iterable[Any] = (),
        errbackKeywords: dict[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Add ``callback`` and ``errback`` as one stage: exactly one of them will run."""
        if not callable(callback):
            _checkCallable(callback, "callback")
        cbExtra = (tuple(callbackArgs), dict(callbackKeywords or {})) if (
            callbackArgs or callbackKeywords) else None
        if _mw_active:
            callback = _middleware.wrap(callback)
        if errback is None:
            ebExtra: Any = _SKIP
            errback = passthru
        else:
            if not callable(errback):
                _checkCallable(errback, "errback")
            ebExtra = (tuple(errbackArgs), dict(errbackKeywords or {})) if (
                errbackArgs or errbackKeywords) else None
            if _mw_active:
                errback = _middleware.wrap(errback)
        self.callbacks.append((callback, cbExtra, errback, ebExtra))
        if self.called:
            self._runCallbacks()
        return self

    def addCallback(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add a success-chain stage: ``callback(result, *args, **kwargs)``."""
        if not callable(callback):
            _checkCallable(callback, "callback")
        if _mw_active:
            callback = _middleware.wrap(callback)
        if not self.called:
            if args or kwargs:
                self.callbacks.append((callback, (args, kwargs), passthru, _SKIP))
            else:
                self.callbacks.append(callback)
            return self
        if self.paused or self._runningCallbacks or self.callbacks:
            self.callbacks.append((callback, (args, kwargs), passthru, _SKIP))
            self._runCallbacks()
            return self
        # Fired and idle: run the callback right here, without the general loop.
        result = self.result
        if isinstance(result, Failure):
            return self  # the stage passes a failure through untouched
        self._runningCallbacks = True
        try:
            result = callback(result, *args, **kwargs) if args or kwargs else callback(result)
        except BaseException:
            result = _callbackFailure()
        self._runningCallbacks = False
        if isinstance(result, Deferred):
            # Let the general loop take or wait for the returned Deferred.
            self.result = None
            self.callbacks.insert(0, (_returnArg, ((result,), {}), passthru, _SKIP))
            self._runCallbacks()
            return self
        self.result = result
        if self.callbacks:  # added by the callback itself
            self._runCallbacks()
        elif isinstance(result, Failure):
            self._setUnhandled(result)
        return self

    def addErrback(self, errback: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add a failure-chain stage: ``errback(failure, *args, **kwargs)``."""
        if not callable(errback):
            _checkCallable(errback, "errback")
        if _mw_active:
            errback = _middleware.wrap(errback)
        self.callbacks.append((passthru, _SKIP, errback, (args, kwargs) if args or kwargs else None))
        if self.called:
            self._runCallbacks()
        return self

    def addBoth(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``callback`` to both chains as one stage (it gets a value or a ``Failure``)."""
        if not callable(callback):
            _checkCallable(callback, "callback")
        if _mw_active:
            callback = _middleware.wrap(callback)
        extra = (args, kwargs) if args or kwargs else None
        self.callbacks.append((callback, extra, callback, extra))
        if self.called:
            self._runCallbacks()
        return self

    def chainDeferred(self, d: Deferred[Any]) -> Deferred[Any]:
        """Fire ``d`` with this Deferred's result at this stage (this chain then sees ``None``).

        Equivalent to ``addCallbacks(d.callback, d.errback)``, but runs iteratively, so long
        chains of chained Deferreds do not recurse.
        """
        if not isinstance(d, Deferred):
            raise TypeError(f"chainDeferred needs a Deferred, not {d!r}")
        if d is self:
            raise ValueError("a Deferred cannot be chained to itself")
        d._chainedTo = self
        self.callbacks.append((d, _CHAIN, d, _CHAIN))
        if self.called:
            self._runCallbacks()
        return self

    def addTimeout(
        self,
        timeout: float,
        clock: Any,
        onTimeoutCancel: Callable[[Any, float], Any] | None = None,
    ) -> Deferred[_T]:
        """Cancel this Deferred if it has not fired after ``timeout`` seconds of ``clock``.

        ``clock`` is anything with ``callLater`` (a reactor, ``framework.task.Clock``). On
        timeout the Deferred is cancelled and its ``CancelledError`` becomes
        ``framework.defer.TimeoutError``, or whatever ``onTimeoutCancel(result, timeout)``
        returns. Firing in time cancels the timer.
        """
        timedOut = False

        def timeItOut() -> None:
            nonlocal timedOut
            timedOut = True
            self.cancel()

        delayedCall = clock.callLater(timeout, timeItOut)

        def convertCancelled(result: Any) -> Any:
            if timedOut:
                return (onTimeoutCancel or _cancelledToTimedOutError)(result, timeout)
            return result

        def cancelTimeout(result: Any) -> Any:
            if delayedCall.active():
                delayedCall.cancel()
            return result

        self.addBoth(convertCancelled)
        self.addBoth(cancelTimeout)
        return self

    # -- firing ------------------------------------------------------------------------------

    def callback(self, result: _T) -> None:
        """Fire the success chain with ``result``."""
        if self.called:
            self._alreadyCalled()
            return
        if isinstance(result, Deferred):
            raise TypeError(
                "callback() was given a Deferred; chain it instead "
                "(d2.chainDeferred(d) or d.addCallback(lambda _: d2))"
            )
        self.called = True
        self.result = result
        self._runCallbacks()

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        """Fire the failure chain with ``fail``.

        ``fail`` may be a ``Failure`` or an exception; with no argument, inside an ``except``
        block, the exception being handled is used.
        """
        if fail is None:
            fail = Failure()
        elif not isinstance(fail, Failure):
            fail = Failure(fail)
        if self.called:
            self._alreadyCalled()
            return
        self.called = True
        self.result = fail
        self._runCallbacks()

    def _alreadyCalled(self) -> None:
        if self._suppressAlreadyCalled:
            # The first result after a cancel without a canceller is dropped, once.
            self._suppressAlreadyCalled = False
            return
        raise AlreadyCalledError(f"{self!r} has already been fired")

    # -- pausing and cancelling --------------------------------------------------------------

    def pause(self) -> None:
        """Stop running callbacks until a matching ``unpause()``."""
        self.paused += 1

    def unpause(self) -> None:
        """Undo one ``pause()``; when none is left and there is a result, run the callbacks."""
        if self.paused <= 0:
            raise RuntimeError("unpause() called on a Deferred that is not paused")
        self.paused -= 1
        if not self.paused and self.called:
            self._runCallbacks()

    def cancel(self) -> None:
        """Abort the work this Deferred waits for.

        Before it fires: call the canceller; if that did not fire the Deferred, errback it with
        ``CancelledError`` (without a canceller the next ``callback``/``errback`` from the
        original source is then ignored, once). While it waits on another Deferred returned by
        a callback: cancel that one. After it fired: nothing.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is None:
                self._suppressAlreadyCalled = True
            else:
                try:
                    canceller(self)
                except BaseException:
                    if self.called:
                        _log.error("canceller of %r raised after firing it", self, exc_info=True)
                    else:
                        self.errback(Failure())
                    return
            if not self.called:
                self.errback(Failure(CancelledError()))
        elif isinstance(self.result, Deferred):
            self.result.cancel()

    # -- the run loop ------------------------------------------------------------------------

    def _runCallbacks(self) -> None:
        """Run every runnable stage of this Deferred and of the Deferreds it releases.

        Iterative: when a stage hands the result on to another Deferred (continuation of a
        Deferred waiting on this one, or a chainDeferred target), the current Deferred is parked
        on ``stack`` if it still has stages, and the other one runs next.
        """
        if self._runningCallbacks:
            return  # re-entered from one of our own callbacks: the running loop picks it up
        current = self
        stack: list[Deferred[Any]] | None = None
        while True:
            nxt = None
            if current.paused:
                current._runningCallbacks = False
            else:
                cbs = current.callbacks
                result = current.result
                waiting = False
                if cbs:
                    current._runningCallbacks = True
                    it: Any = iter(cbs)
                    for item in it:
                        if item.__class__ is tuple:
                            cb, extra, eb, ebExtra = item
                            if isinstance(result, Failure):
                                cb = eb
                                extra = ebExtra
                        elif isinstance(result, Failure):
                            continue
                        else:
                            # A bare callable: ``addCallback(f)`` without extra arguments.
                            cb = item
                            extra = None
                        if extra is None:
                            try:
                                result = cb(result)
                            except BaseException:
                                result = _callbackFailure()
                                continue
                        elif extra is _SKIP:
                            continue
                        elif extra is _RESUME:
                            # ``cb`` is a generator's Deferred waiting on this one.
                            try:
                                cb._resume(result)
                                result = None
                            except BaseException:
                                result = _callbackFailure()
                            continue
                        elif extra is _CONTINUE:
                            # ``cb`` is the Deferred that waits on this one.
                            cb.result = result
                            cb.paused -= 1
                            cb._chainedTo = None
                            result = None
                            nxt = cb
                            break
                        elif extra is _CHAIN:
                            # ``cb`` is a chainDeferred target: fire it with the result.
                            if cb.called:
                                if cb._suppressAlreadyCalled:
                                    cb._suppressAlreadyCalled = False
                                    result = None
                                else:
                                    result = Failure(AlreadyCalledError(
                                        f"chainDeferred target {cb!r} has already been fired"))
                                continue
                            cb.called = True
                            cb.result = result
                            result = None
                            nxt = cb
                            break
                        else:
                            try:
                                result = cb(result, *extra[0], **extra[1])
                            except BaseException:
                                result = _callbackFailure()
                                continue
                        if isinstance(result, Deferred):
                            inner = result
                            if inner is current:
                                result = Failure(TypeError(
                                    f"callback {cb!r} returned the Deferred it was added to"))
                            elif (inner.called and not inner.paused and not inner.callbacks
                                  and not inner._runningCallbacks):
                                # Already fired: take its result now.
                                result = inner.result
                                inner.result = None
                                if inner._unhandled is not None:
                                    inner._unhandled.failure = None
                            else:
                                # Wait for it: park this Deferred until its continuation runs.
                                current.paused += 1
                                current._chainedTo = inner
                                inner.callbacks.append((current, _CONTINUE, current, _CONTINUE))
                                waiting = True
                                break
                    else:
                        it = None
                    if it is None:
                        cbs.clear()
                    else:
                        # Stopped early: drop the stages that ran, keep the rest.
                        del cbs[:len(cbs) - it.__length_hint__()]
                current.result = result
                if waiting:
                    current._runningCallbacks = False
                elif nxt is not None and cbs:
                    # More stages after the hand-off: resume this Deferred afterwards.
                    if stack is None:
                        stack = [current]
                    else:
                        stack.append(current)
                else:
                    current._runningCallbacks = False
                    if isinstance(result, Failure):
                        current._setUnhandled(result)
                    elif current._unhandled is not None:
                        current._unhandled.failure = None
            if nxt is not None:
                current = nxt
            elif stack:
                current = stack.pop()
            else:
                return

    def _setUnhandled(self, failure: Failure) -> None:
        """The chain ended in ``failure``: log it if it is still unhandled at collection."""
        unhandled = self._unhandled
        if unhandled is None:
            self._unhandled = _Unhandled(failure, self._creator)
        else:
            unhandled.failure = failure
            unhandled.creator = self._creator

    # -- awaiting ----------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, Any, _T]:
        if self.called and not self.paused:
            result = self.result
            if isinstance(result, Failure):
                if self._unhandled is not None:
                    self._unhandled.failure = None
                result.raiseException()
            return cast(_T, result)
        # Suspend: the driver (ensureDeferred / inlineCallbacks) waits on this Deferred and
        # sends its result back in, or throws its failure in. An asyncio Task cannot wait on
        # a Deferred, so when an asyncio loop runs in this thread, wait on a Future instead.
        getLoop = _getRunningLoop
        if getLoop is not None or "asyncio" in _sys_modules:
            if getLoop is None:
                getLoop = _cacheGetRunningLoop()
            loop = getLoop()
            if loop is not None:
                return cast(_T, (yield from _awaitInLoop(self, loop)))
        return cast(_T, (yield self))

    @classmethod
    def fromCoroutine(cls, coro: Coroutine[Any, Any, _T] | Generator[Any, Any, _T]) -> Deferred[_T]:
        """Run coroutine ``coro`` (awaiting Deferreds) and return a Deferred of its result.

        ``cancel()`` on that Deferred cancels the Deferred the coroutine is awaiting.
        """
        if not isinstance(coro, (types.CoroutineType, types.GeneratorType)):
            raise NotACoroutineError(f"{coro!r} is not a coroutine")
        return _startGenerator(coro)

    # -- asyncio interoperation --------------------------------------------------------------

    def asFuture(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[_T]:
        """An asyncio Future on ``loop`` with this Deferred's result (cancelling it cancels us)."""
        future = loop.create_future()

        def checkCancel(f: asyncio.Future[_T]) -> None:
            if f.cancelled():
                self.cancel()

        def adapt(result: Any) -> None:
            if future.cancelled():
                return None
            if isinstance(result, Failure):
                future.set_exception(result.value)
            else:
                future.set_result(result)
            return None

        future.add_done_callback(checkCancel)
        self.addBoth(adapt)
        return future

    @classmethod
    def fromFuture(cls, future: asyncio.Future[_T]) -> Deferred[_T]:
        """A Deferred with the asyncio ``future``'s result (cancelling it cancels the future)."""

        def cancelFuture(d: Deferred[Any]) -> None:
            future.cancel()

        d: Deferred[_T] = cls(cancelFuture)

        def adapt(f: asyncio.Future[_T]) -> None:
            if d.called:
                return
            if f.cancelled():
                d.errback(Failure(CancelledError()))
                return
            exc = f.exception()
            if exc is not None:
                d.errback(Failure(exc))
            else:
                d.callback(f.result())

        future.add_done_callback(adapt)
        return d

    # -- display -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        name = type(self).__name__.lstrip("_").replace("GeneratorDeferred", "Deferred")
        if self._chainedTo is not None and not self.called:
            state = f" waiting on Deferred at 0x{id(self._chainedTo):x}"
        elif not self.called:
            state = ""
        elif isinstance(self.result, Deferred):
            state = f" waiting on Deferred at 0x{id(self.result):x}"
        else:
            try:
                state = f" current result: {self.result!r}"
            except Exception:
                state = " current result: <unrepresentable>"
        return f"<{name} at 0x{id(self):x}{state}>"

    __str__ = __repr__


_sys_modules = sys.modules
# asyncio's _get_running_loop, once asyncio is imported (until then no loop can be running).
_getRunningLoop: Callable[[], asyncio.AbstractEventLoop | None] | None = None


def _cacheGetRunningLoop() -> Callable[[], asyncio.AbstractEventLoop | None]:
    global _getRunningLoop
    from asyncio import events

    _getRunningLoop = events._get_running_loop
    return _getRunningLoop


def _awaitInLoop(d: Deferred[Any], loop: asyncio.AbstractEventLoop) -> Generator[Any, Any, Any]:
    """Wait for unfired ``d`` from a coroutine running while ``loop`` runs.

    Yields a Future of ``loop`` bridged to ``d`` (cancelling either cancels the other). Our own
    driver (ensureDeferred/inlineCallbacks started from asyncio code) sends a non-Deferred
    straight back: then the bridge is switched off (a pass-through) and ``d`` itself waited on.
    """
    future = loop.create_future()
    live = True

    def adapt(result: Any) -> Any:
        if not live:
            return result
        if not future.cancelled():
            if isinstance(result, Failure):
                try:
                    future.set_exception(result.value)
                except TypeError:  # StopIteration cannot cross a Future
                    future.set_exception(RuntimeError(f"Deferred failed with {result.value!r}"))
            else:
                future.set_result(result)
        return None

    def checkCancel(f: asyncio.Future[Any]) -> None:
        if live and f.cancelled():
            d.cancel()

    future.add_done_callback(checkCancel)
    d.addBoth(adapt)
    future._asyncio_future_blocking = True  # what Future.__await__ sets: "wait for me"
    sent = yield future
    if sent is future:
        live = False
        future.remove_done_callback(checkCancel)
        return (yield d)
    return future.result()


def _cancelledToTimedOutError(value: Any, timeout: float) -> Any:
    if isinstance(value, Failure):
        value.trap(CancelledError)
        raise TimeoutError(timeout, "Deferred")
    return value


# --------------------------------------------------------------------------------------------
# Shortcuts


def succeed(result: _T) -> Deferred[_T]:
    """A Deferred that has already fired with ``result``."""
    if isinstance(result, Deferred):
        raise TypeError("succeed() was given a Deferred; return it directly instead")
    # Deferred.__init__ inlined: succeed() is on the hot path of code awaiting fired results.
    d: Deferred[_T] = _newObject(Deferred)
    d.callbacks = []
    d.called = True
    d.paused = 0
    d.result = result
    d._canceller = None
    d._runningCallbacks = False
    d._suppressAlreadyCalled = False
    d._chainedTo = None
    d._unhandled = None
    d._creator = None
    if _mw_created:
        _middleware.created(d)
    return d


_newObject = object.__new__


def fail(result: Failure | BaseException | None = None) -> Deferred[Any]:
    """A Deferred that has already failed with ``result`` (default: the current exception)."""
    d: Deferred[Any] = Deferred()
    d.errback(result)
    return d


def execute(callable: Callable[..., _T], *args: Any, **kwargs: Any) -> Deferred[_T]:
    """Call ``callable`` now; return a fired Deferred with its result or its exception."""
    try:
        result = callable(*args, **kwargs)
    except BaseException:
        return fail()
    return succeed(result)


def maybeDeferred(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    """Call ``f`` and return its result as a Deferred, whatever it returned or raised.

    A Deferred is returned as is, a ``Failure`` or an exception becomes a failed Deferred, a
    coroutine is run with ``Deferred.fromCoroutine``, anything else a fired Deferred.
    """
    try:
        result = f(*args, **kwargs)
    except BaseException:
        return fail(Failure())
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Failure):
        return fail(result)
    if isinstance(result, types.CoroutineType):
        return Deferred.fromCoroutine(result)
    return succeed(result)


def logError(err: Failure) -> None:
    """Log ``err`` at ERROR on logger ``framework.defer`` and swallow it (an errback)."""
    _log.error("Unhandled error: %s", err.getErrorMessage(),
               exc_info=(err.type, err.value, err.tb or err.value.__traceback__))
    return None


# --------------------------------------------------------------------------------------------
# DeferredList and gatherResults

SUCCESS = True
FAILURE = False


class DeferredList(Deferred[Any]):
    """A Deferred that fires when every Deferred in a list has fired.

    By default it fires with ``[(success, result), ...]`` in list order. With
    ``fireOnOneCallback`` it fires with ``(result, index)`` of the first success; with
    ``fireOnOneErrback`` it errbacks with ``FirstError`` on the first failure. With
    ``consumeErrors`` the failures are swallowed in the listed Deferreds' chains (so they are
    not logged as unhandled).
    """

    def __init__(
        self,
        deferredList: Iterable[Deferred[Any]],
        fireOnOneCallback: bool = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None:
        self._deferredList = list(deferredList)
        for d in self._deferredList:
            if not isinstance(d, Deferred):
                raise TypeError(f"DeferredList needs Deferreds, got {d!r}")
        self.resultList: list[Any] = [None] * len(self._deferredList)
        self.fireOnOneCallback = fireOnOneCallback
        self.fireOnOneErrback = fireOnOneErrback
        self.consumeErrors = consumeErrors
        self.finishedCount = 0
        Deferred.__init__(self)
        if not self._deferredList and not fireOnOneCallback:
            self.callback([])
        for index, d in enumerate(self._deferredList):
            d.addCallbacks(self._cbDeferred, self._cbDeferred,
                           callbackArgs=(index, SUCCESS), errbackArgs=(index, FAILURE))

    def _cbDeferred(self, result: Any, index: int, succeeded: bool) -> Any:
        self.resultList[index] = (succeeded, result)
        self.finishedCount += 1
        if not self.called:
            if succeeded and self.fireOnOneCallback:
                self.callback((result, index))
            elif not succeeded and self.fireOnOneErrback:
                self.errback(Failure(FirstError(result, index)))
            elif self.finishedCount == len(self.resultList):
                self.callback(self.resultList)
        if not succeeded and self.consumeErrors:
            return None
        return result

    def cancel(self) -> None:
        """Cancel every Deferred in the list that has not fired yet."""
        if self.called:
            return
        for d in self._deferredList:
            try:
                d.cancel()
            except BaseException:
                _log.error("Exception raised from user supplied canceller", exc_info=True)


def _parseResults(results: list[tuple[bool, Any]]) -> list[Any]:
    return [r[1] for r in results]


def gatherResults(deferredList: Iterable[Deferred[Any]], consumeErrors: bool = False) -> Deferred[list[Any]]:
    """A Deferred of the list of results, or a ``FirstError`` failure for the first failure."""
    d = DeferredList(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)
    d.addCallback(_parseResults)
    return d


class FailureGroup(Exception):
    """Every Deferred given to ``race`` failed; ``failures`` lists them in input order."""

    def __init__(self, failures: list[Failure]) -> None:
        Exception.__init__(self, failures)
        self.failures = failures

    def __str__(self) -> str:
        return f"all {len(self.failures)} failed: " + "; ".join(
            f"{f.type.__name__}: {f.getErrorMessage()}" for f in self.failures)


def race(ds: Iterable[Deferred[_T]]) -> Deferred[tuple[int, _T]]:
    """A Deferred of ``(index, result)`` of the first Deferred in ``ds`` to succeed.

    The others are then cancelled. If all fail, it fails with ``FailureGroup``. Cancelling it
    cancels them all.
    """
    racers = list(ds)
    winner: Deferred[_T] | None = None
    failures: list[tuple[int, Failure]] = []

    def cancelAll(d: Deferred[Any]) -> None:
        for racer in racers:
            racer.cancel()

    final: Deferred[tuple[int, _T]] = Deferred(cancelAll)

    def succeeded(value: _T, index: int) -> None:
        nonlocal winner
        if winner is None:
            winner = racers[index]
            for racer in racers:
                if racer is not winner:
                    racer.cancel()
            final.callback((index, value))

    def failed(failure: Failure, index: int) -> None:
        failures.append((index, failure))
        if len(failures) == len(racers):
            failures.sort(key=lambda pair: pair[0])
            final.errback(FailureGroup([f for _, f in failures]))

    for index, d in enumerate(racers):
        d.addCallbacks(succeeded, failed, callbackArgs=(index,), errbackArgs=(index,))
    return final


# --------------------------------------------------------------------------------------------
# inlineCallbacks and coroutines


class _GeneratorDeferred(Deferred[_T]):
    """The Deferred of a running generator/coroutine, and its driver.

    ``cancel()`` cancels the Deferred the generator is waiting on (its ``CancelledError`` is
    thrown into the generator, which may catch it and carry on).
    """

    __slots__ = ("_waitingOn", "_gen", "_ctx")

    def __init__(self, gen: Any, ctx: Context) -> None:
        Deferred.__init__(self)
        self._waitingOn: Deferred[Any] | None = None
        self._gen = gen
        self._ctx = ctx

    def cancel(self) -> None:
        if not self.called:
            awaited = self._waitingOn
            if awaited is not None:
                awaited.cancel()
                return
        Deferred.cancel(self)

    def _resume(self, result: Any) -> None:
        """The awaited Deferred fired with ``result``: carry on (its result becomes None)."""
        self._waitingOn = None
        self._step(result)
        return None

    def _step(self, result: Any) -> None:
        # Only the generator runs in its context; our own callbacks run in the caller's.
        outcome = self._ctx.run(_stepGenerator, result, self._gen, self)
        if outcome is None:
            return
        self._gen = None
        ok, value = outcome
        if not ok:
            self.errback(value)
        elif isinstance(value, Deferred):
            value.chainDeferred(self)
        else:
            self.callback(value)


_CoroutineType = types.CoroutineType


def _stepGenerator(result: Any, gen: Any, d: _GeneratorDeferred[Any]) -> Any:
    """Drive ``gen`` until it waits on an unfired Deferred (-> None) or ends (-> outcome)."""
    while True:
        try:
            if isinstance(result, Failure):
                result = gen.throw(result.value.with_traceback(result.tb))
            else:
                result = gen.send(result)
        except StopIteration as e:
            return (True, e.value)
        except _DefGen_Return as e:
            return (True, e.value)
        except BaseException:
            return (False, _callbackFailure())
        if result.__class__ is _CoroutineType:
            result = ensureDeferred(result)  # a yielded coroutine is awaited, as in Twisted
        if isinstance(result, Deferred):
            if (result.called and not result.paused and not result.callbacks
                    and not result._runningCallbacks):
                # Already fired: no callback, no recursion, just take the result.
                r = result.result
                result.result = None
                if result._unhandled is not None:
                    result._unhandled.failure = None
                result = r
                continue
            d._waitingOn = result
            if _mw_active:
                result.addBoth(d._resume)
            else:
                # Not runnable now (unfired, paused or mid-run), so appending is enough.
                result.callbacks.append((d, _RESUME, d, _RESUME))
            return None


def _startGenerator(gen: Any) -> Deferred[Any]:
    d: _GeneratorDeferred[Any] = _GeneratorDeferred(gen, copy_context())
    d._step(None)
    return d


def inlineCallbacks(
    f: Callable[..., Generator[Any, Any, _T]],
) -> Callable[..., Deferred[_T]]:
    """Decorate a generator function so it can ``yield`` Deferreds and get their results.

    The decorated function returns a Deferred that fires with the generator's ``return``
    value (or its exception). Each yielded Deferred's result is sent back into the generator
    (its failure is raised there); a yielded coroutine is run as with ``ensureDeferred``. The
    generator runs in a copy of the caller's context.
    """

    @functools.wraps(f)
    def unwindGenerator(*args: Any, **kwargs: Any) -> Deferred[_T]:
        try:
            gen = f(*args, **kwargs)
        except _DefGen_Return:
            raise TypeError(
                f"inlineCallbacks requires {f!r} to produce a generator; instead caught "
                "returnValue being used in a non-generator"
            ) from None
        if not isinstance(gen, types.GeneratorType):
            raise TypeError(f"inlineCallbacks requires {f!r} to produce a generator; instead got {gen!r}")
        return _startGenerator(gen)

    return unwindGenerator


def returnValue(val: object) -> NoReturn:
    """Legacy: end an ``inlineCallbacks`` generator with ``val``. Use ``return val`` instead."""
    warnings.warn("returnValue() is deprecated; use 'return value' in the generator",
                  DeprecationWarning, stacklevel=2)
    raise _DefGen_Return(val)


def ensureDeferred(coro: Awaitable[_T] | Deferred[_T]) -> Deferred[_T]:
    """Return ``coro`` if it is a Deferred, else run the coroutine and return its Deferred."""
    if isinstance(coro, Deferred):
        return coro
    if isinstance(coro, (types.CoroutineType, types.GeneratorType)):
        return _startGenerator(coro)
    raise NotACoroutineError(f"{coro!r} is not a coroutine or a Deferred")


# --------------------------------------------------------------------------------------------
# Locks, semaphores, queues


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
