"""The coroutine entry points of ``framework.defer``: ``inlineCallbacks``, ``returnValue`` and
``ensureDeferred`` (the driver they start is ``framework._defer_core``'s). Import them from
``framework.defer``.
"""

from __future__ import annotations

import functools
import types
import warnings
from collections.abc import Awaitable, Callable, Generator
from typing import Any, NoReturn, ParamSpec, TypeVar

from framework._defer_core import Deferred, _startGenerator
from framework._defer_errors import NotACoroutineError, _DefGen_Return

__all__ = ["ensureDeferred", "inlineCallbacks", "returnValue"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


def inlineCallbacks(
    f: Callable[_P, Generator[Any, Any, _T]],
) -> Callable[_P, Deferred[_T]]:
    """Decorate a generator function so it can ``yield`` Deferreds and get their results.

    The decorated function returns a Deferred that fires with the generator's ``return``
    value (or its exception). Each yielded Deferred's result is sent back into the generator
    (its failure is raised there); a yielded coroutine is run as with ``ensureDeferred``. The
    generator runs in a copy of the caller's context.
    """

    @functools.wraps(f)
    def unwindGenerator(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
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

