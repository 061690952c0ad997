"""Deferreds made from values and calls: ``succeed``, ``fail``, ``execute``,
``maybeDeferred``. Import them from ``framework.defer``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from framework import chain as _middleware
from framework import _defer_core as _core
from framework._defer_core import Deferred
from framework.failure import Failure

__all__ = ["execute", "fail", "maybeDeferred", "succeed"]

_T = TypeVar("_T")
_U = TypeVar("_U")
_P = ParamSpec("_P")

# The list the middleware module mutates in place (see framework._defer_core).
_mw_created = _middleware._created


def succeed(result: _T) -> Deferred[_T]:
    """A Deferred that has already fired with ``result``."""
    if isinstance(result, Deferred):
        raise TypeError("succeed() was given a Deferred; return it directly instead")
    if _debugging:  # debug mode: the full __init__ records where it was made and fired
        fired: Deferred[_T] = Deferred()
        fired.callback(result)
        return fired
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
    d._debugInfo = None
    if _mw_created:
        _middleware.created(d)
    return d


_newObject = object.__new__

# A module-global copy of the debug flag: one global load on succeed()'s path.
_debugging = _core._debugging


def _follow_debugging(on: bool) -> None:
    global _debugging
    _debugging = on


_core._debugging_listeners.append(_follow_debugging)


def fail(result: Failure | BaseException | None = None) -> Deferred[Any]:
    """A Deferred that has already failed with ``result`` (default: the current exception)."""
    d: Deferred[Any] = Deferred()
    d.errback(result)
    return d


def execute(callable: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
    """Call ``callable`` now; return a fired Deferred with its result or its exception."""
    try:
        result = callable(*args, **kwargs)
    except BaseException:
        return fail()
    return succeed(result)


@overload
def maybeDeferred(f: Callable[_P, Deferred[_U]], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_U]: ...


@overload
def maybeDeferred(f: Callable[_P, Coroutine[Any, Any, _U]], *args: _P.args,
                  **kwargs: _P.kwargs) -> Deferred[_U]: ...


@overload
def maybeDeferred(f: Callable[_P, Failure | _U], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_U]: ...


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

