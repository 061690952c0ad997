"""``Deferred``: a result that is not available yet, with callback and errback chains.

Semantics follow ``twisted.internet.defer`` so Twisted code ports by changing the import
(the deliberate differences are listed in ``docs/deferred.md``). This module is the one import
path: it re-exports every name; the code lives in private modules, one concern each, imported
in this order (each only imports the ones before it):

- ``framework._defer_errors``: the exceptions (``CancelledError``, ``TimeoutError``, ...);
- ``framework._defer_support``: chain-entry markers, failure capture, unhandled-error logging,
  the asyncio await bridge, ``passthru``, ``logError``;
- ``framework._defer_core``: ``Deferred`` (chains, flat run loop, awaiting, asyncio Futures)
  and the generator driver;
- ``framework._defer_shortcuts``: ``succeed``, ``fail``, ``execute``, ``maybeDeferred``;
- ``framework._defer_coroutines``: ``inlineCallbacks``, ``returnValue``, ``ensureDeferred``;
- ``framework._defer_combinators``: ``DeferredList``, ``gatherResults``, ``race``;
- ``framework._defer_locks``: ``DeferredLock``, ``DeferredSemaphore``, ``DeferredQueue``.

Everything logs on the logger ``framework.defer``.
"""

from __future__ import annotations

from framework._defer_combinators import FAILURE, SUCCESS, DeferredList, gatherResults, race
from framework._defer_core import Deferred, getDebugging, setDebugging
from framework._defer_coroutines import ensureDeferred, inlineCallbacks, returnValue
from framework._defer_errors import (
    AlreadyCalledError,
    AlreadyTryingToLockError,
    CancelledError,
    FailureGroup,
    FirstError,
    NotACoroutineError,
    QueueOverflow,
    QueueUnderflow,
    TimeoutError,
)
from framework._defer_locks import DeferredLock, DeferredQueue, DeferredSemaphore
from framework._defer_shortcuts import execute, fail, maybeDeferred, succeed
from framework._defer_support import logError, passthru

__all__ = [
    "getDebugging",
    "setDebugging",
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
