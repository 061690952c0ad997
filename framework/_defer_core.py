"""``Deferred`` itself: the two chains, the flat run loop, awaiting, asyncio Futures, and the
coroutine driver behind ``fromCoroutine``/``inlineCallbacks``/``ensureDeferred``. Import it
from ``framework.defer``.

Semantics follow ``twisted.internet.defer`` so Twisted code ports by changing the import.
Differences (all deliberate, see ``docs/deferred.md``): ``callback(a_deferred)`` raises
``TypeError``; a callback that returns the very Deferred it was added to fails with
``TypeError`` instead of hanging; chains of ``chainDeferred`` run iteratively; ``unpause()`` on a
Deferred that is not paused raises ``RuntimeError``; an exception raised by a canceller errbacks
the Deferred instead of escaping from ``cancel()``.

The run loop is flat: a callback returning an unfired Deferred, or a ``chainDeferred`` link,
parks the outer Deferred on an explicit stack instead of recursing, so chains of any depth fire
without ``RecursionError``. The generator driver lives here, not with ``inlineCallbacks``,
because the run loop resumes generators itself (the ``_RESUME`` entries) and
``Deferred.fromCoroutine`` starts them.
"""

from __future__ import annotations

import sys
import traceback
import types
from collections.abc import Callable, Coroutine, Generator, Iterable
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from framework import chain as _middleware
from framework._defer_errors import (
    AlreadyCalledError,
    CancelledError,
    NotACoroutineError,
    _DefGen_Return,
    _futureCancelledError,
)
from framework._defer_support import (
    _CHAIN,
    _CONTINUE,
    _RESUME,
    _SKIP,
    _awaitInLoop,
    _callbackFailure,
    _DebugInfo,
    _cancelledToTimedOutError,
    _checkCallable,
    _log,
    _returnArg,
    _Unhandled,
    _warnCircular,
    passthru,
)
from framework.failure import Failure

if TYPE_CHECKING:
    import asyncio

    from framework.interfaces import IReactorTime

__all__ = ["Deferred", "getDebugging", "setDebugging"]


_T = TypeVar("_T")
_U = TypeVar("_U")
_P = ParamSpec("_P")

# The middleware module mutates these lists in place; binding them here keeps the hot-path
# check to one global load and one truth test.
_mw_active = _middleware._active
_mw_created = _middleware._created

# Debug mode (``setDebugging``): new Deferreds record where they were created and first fired.
_debugging = False


# Modules with their own fast copy of the flag (succeed() inlines __init__) register here.
_debugging_listeners: list[Callable[[bool], None]] = []


def setDebugging(on: bool) -> None:
    """Turn Deferred debugging on or off: Deferreds created while it is on record their
    creation and first-invocation stacks, shown by ``AlreadyCalledError`` and in the log
    line of an unhandled error. Off (the default), it costs nothing."""
    global _debugging
    _debugging = bool(on)
    for listener in _debugging_listeners:
        listener(_debugging)


def getDebugging() -> bool:
    """Whether Deferred debugging is on."""
    return _debugging


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
        "_debugInfo",
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
    _debugInfo: _DebugInfo | None

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
        self._debugInfo = _DebugInfo(traceback.format_stack()[:-1]) if _debugging else None
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

    # The overloads carry types down the chain: on a ``Deferred[int]``, ``addCallback(f)``
    # needs ``f`` to take an int (then the extra arguments) and gives a Deferred of what ``f``
    # returns (a returned Deferred is waited for; a returned Failure goes down the errbacks).
    @overload
    def addCallback(self, callback: Callable[Concatenate[_T, _P], Deferred[_U]],
                    *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_U]: ...

    @overload
    def addCallback(self, callback: Callable[Concatenate[_T, _P], Failure | _U],
                    *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_U]: ...

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

    @overload
    def addErrback(self, errback: Callable[Concatenate[Failure, _P], Deferred[_U]],
                   *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T | _U]: ...

    @overload
    def addErrback(self, errback: Callable[Concatenate[Failure, _P], Failure | _U],
                   *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T | _U]: ...

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

    @overload
    def addBoth(self, callback: Callable[Concatenate[_T | Failure, _P], Deferred[_U]],
                *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_U]: ...

    @overload
    def addBoth(self, callback: Callable[Concatenate[_T | Failure, _P], Failure | _U],
                *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_U]: ...

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

    def chainDeferred(self, d: Deferred[_T]) -> Deferred[None]:
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
        return self  # type: ignore[return-value]  # from here on this chain carries None

    def addTimeout(
        self,
        timeout: float,
        clock: IReactorTime,
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
        self._canceller = None  # nothing to cancel any more: no cycle through it either
        if self._debugInfo is not None:
            self._debugInfo.invoker = traceback.format_stack()[:-1]
        self.result = result
        self._runCallbacks()

    @property
    def debug(self) -> bool:
        """Whether this Deferred records debug information (see ``setDebugging``)."""
        return self._debugInfo is not None

    @debug.setter
    def debug(self, on: bool) -> None:
        if not on:
            self._debugInfo = None
        elif self._debugInfo is None:
            self._debugInfo = _DebugInfo(None)

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
        self._canceller = None
        if self._debugInfo is not None:
            self._debugInfo.invoker = traceback.format_stack()[:-1]
        self.result = fail
        self._runCallbacks()

    def _alreadyCalled(self) -> None:
        if self._suppressAlreadyCalled:
            # The first result after a cancel without a canceller is dropped, once.
            self._suppressAlreadyCalled = False
            return
        message = f"{self!r} has already been fired"
        if self._debugInfo is not None:
            message += "\n" + self._debugInfo.format()
        raise AlreadyCalledError(message)

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
                            cb._canceller = None
                            cb._chainedTo = None  # the chain is resolved
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
                                try:  # Twisted's warning (an error if filtered so), then ours
                                    _warnCircular(cb)
                                    result = Failure(TypeError(
                                        f"callback {cb!r} returned the Deferred it was added to"))
                                except BaseException:
                                    result = _callbackFailure()
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
        creator = self._creator
        if self._debugInfo is not None:
            creator = f"(debug: {self._debugInfo.format().rstrip()})"
        if unhandled is None:
            self._unhandled = _Unhandled(failure, creator)
        else:
            unhandled.failure = failure
            unhandled.creator = creator

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

    #: ``yield from d`` in a generator-based coroutine, as Twisted allows.
    __iter__ = __await__

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
        """A Deferred with the asyncio ``future``'s result. Cancelling it cancels the future;
        either way a cancelled future fails it with an error that is both asyncio's
        ``CancelledError`` (as with Twisted) and framework's."""

        def cancelFuture(d: Deferred[Any]) -> None:
            if future.cancel() or future.cancelled():
                d.errback(Failure(_futureCancelledError()))
            else:  # it finished first: its outcome stands
                adapt(future)

        d: Deferred[_T] = cls(cancelFuture)

        def adapt(f: asyncio.Future[_T]) -> None:
            if d.called:
                return
            if f.cancelled():
                d.errback(Failure(_futureCancelledError()))
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


def _noRunningLoop() -> None:
    return None


def _cacheGetRunningLoop() -> Callable[[], asyncio.AbstractEventLoop | None]:
    """Called once ``asyncio`` is in ``sys.modules``: find and keep its ``_get_running_loop``.

    Read from ``sys.modules`` rather than imported: the framework never imports asyncio itself
    (it costs start-up time and only matters if the program uses asyncio). While another thread
    is still importing asyncio, its ``events`` module may be missing: then no loop runs yet and
    nothing is cached.
    """
    global _getRunningLoop
    events = _sys_modules.get("asyncio.events")
    if events is None:
        return _noRunningLoop
    _getRunningLoop = events._get_running_loop
    return cast(Callable[[], "asyncio.AbstractEventLoop | None"], _getRunningLoop)


# --------------------------------------------------------------------------------------------
# The generator/coroutine driver


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
            result = _startGenerator(result)  # a yielded coroutine is awaited, as in Twisted
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
