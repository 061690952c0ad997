"""What the Deferred run loop is built on, none of it needing the ``Deferred`` class itself:
the chain-entry markers, failure capture, unhandled-error logging, the asyncio await bridge and
the ``addTimeout`` conversion. Public names are re-exported by ``framework.defer``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, TypeVar

from framework._defer_errors import CancelledError, TimeoutError
from framework.failure import Failure

if TYPE_CHECKING:
    import asyncio

    from framework._defer_core import Deferred

__all__ = ["logError", "passthru"]

_T = TypeVar("_T")
# One logger for the whole of framework.defer, whichever module logs.
_log = logging.getLogger("framework.defer")


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
    if not creator:
        where = ""
    elif creator.startswith("(debug:"):  # debug mode: creation and invocation stacks
        where = f" {creator}"
    else:
        where = f"\nDeferred created at:\n{creator.rstrip()}"
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



def logError(err: Failure) -> None:
    """Log ``err`` at ERROR on logger ``framework.defer`` and swallow it (an errback)."""
    _log.error("Unhandled error: %s", err.getErrorMessage(),
               exc_info=(err.type, err.value, err.tb or err.value.__traceback__))
    return None



def _cancelledToTimedOutError(value: Any, timeout: float) -> Any:
    if isinstance(value, Failure):
        value.trap(CancelledError)
        raise TimeoutError(timeout, "Deferred")
    return value



# --------------------------------------------------------------------------------------------
# Awaiting a Deferred while an asyncio loop runs


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


class _DebugInfo:
    """The creation and first-invocation stacks of one Deferred (debug mode)."""

    __slots__ = ("creator", "invoker")

    def __init__(self, creator: list[str] | None) -> None:
        self.creator = creator
        self.invoker: list[str] | None = None

    def format(self) -> str:
        """Lines prefixed `` C:`` (creation) and `` I:`` (first invocation), as Twisted's."""
        info = ""
        if self.creator is not None:
            info += " C: Deferred was created:\n C:" + "".join(self.creator).rstrip().replace("\n", "\n C:") + "\n"
        if self.invoker is not None:
            info += " I: First Invoker was:\n I:" + "".join(self.invoker).rstrip().replace("\n", "\n I:") + "\n"
        return info


def _warnCircular(callback: Any) -> None:
    """Twisted's DeprecationWarning for a callback returning its own Deferred, attributed to
    the callback's own source line."""
    code = getattr(callback, "__code__", None)
    message = ("Callback returned the Deferred it was attached to; this breaks the callback "
               "chain and will raise an exception in the future.")
    if code is None:
        warnings.warn(message, DeprecationWarning, stacklevel=3)
        return
    module = getattr(callback, "__module__", None) or "<unknown>"
    warnings.warn_explicit(message, DeprecationWarning, code.co_filename, code.co_firstlineno,
                           module=module)
