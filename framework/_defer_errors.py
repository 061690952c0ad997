"""The exceptions of ``framework.defer`` (import them from there).

Every name here is re-exported by ``framework.defer``; this module only keeps them in one place
below the modules that raise them.
"""

from __future__ import annotations

import sys
from typing import Any

from framework import error as _error
from framework.failure import Failure

__all__ = [
    "AlreadyCalledError",
    "AlreadyTryingToLockError",
    "CancelledError",
    "FailureGroup",
    "FirstError",
    "NotACoroutineError",
    "QueueOverflow",
    "QueueUnderflow",
    "TimeoutError",
]


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
        return f"FirstError[#{self.index}, {self.subFailure}]"

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



class FailureGroup(Exception):
    """Every Deferred given to ``race`` failed; ``failures`` lists them in input order."""

    def __init__(self, failures: list[Failure]) -> None:
        Exception.__init__(self, failures)
        self.failures = failures

    def __str__(self) -> str:
        return f"all {len(self.failures)} failed: " + "; ".join(
            f"{f.type.__name__}: {f.getErrorMessage()}" for f in self.failures)


_FutureCancelled: type[BaseException] | None = None


def _futureCancelledError() -> BaseException:
    """How a cancelled asyncio Future fails a Deferred: an error that is both framework's
    ``CancelledError`` and asyncio's, so code written for either (or ported from Twisted,
    which gives asyncio's) catches it. Made on first use: asyncio is imported by then."""
    global _FutureCancelled
    if _FutureCancelled is None:
        aio = sys.modules["asyncio"]
        _FutureCancelled = type("FutureCancelledError", (CancelledError, aio.CancelledError),
                                {"__module__": __name__, "__doc__": _futureCancelledError.__doc__})
    return _FutureCancelled()
