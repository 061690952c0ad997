"""Deferreds made of other Deferreds: ``DeferredList``, ``gatherResults`` and ``race``.
Import them from ``framework.defer``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from framework._defer_core import Deferred
from framework._defer_errors import FailureGroup, FirstError
from framework._defer_support import _log
from framework.failure import Failure

__all__ = ["FAILURE", "SUCCESS", "DeferredList", "gatherResults", "race"]

_T = TypeVar("_T")

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


def gatherResults(deferredList: Iterable[Deferred[_T]], consumeErrors: bool = False) -> Deferred[list[_T]]:
    """A Deferred of the list of results, or a ``FirstError`` failure for the first failure."""
    d = DeferredList(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)
    d.addCallback(_parseResults)
    return d



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

