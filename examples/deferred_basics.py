"""Deferred basics, runnable with no network and no reactor: ``python examples/deferred_basics.py``.

A deterministic ``framework.task.Clock`` stands in for the reactor's timers, so the "later"
results below arrive when the script advances the clock.
"""

from __future__ import annotations

from typing import Any

from framework.defer import Deferred, DeferredList, ensureDeferred, inlineCallbacks, succeed
from framework.failure import Failure
from framework.task import Clock

clock = Clock()


def fetch(key: str, delay: float) -> Deferred[str]:
    """Pretend to fetch ``key``: the result arrives ``delay`` seconds later ("boom" fails)."""
    d: Deferred[str] = Deferred()

    def done() -> None:
        if key == "boom":
            d.errback(KeyError(key))
        else:
            d.callback(f"value of {key}")

    clock.callLater(delay, done)
    return d


# 1. Callback and errback chains.
def shout(text: str) -> str:
    return text.upper() + "!"


def recover(failure: Failure) -> str:
    failure.trap(KeyError)
    return f"recovered from {failure.getErrorMessage()}"


fetch("greeting", 1).addCallback(shout).addCallback(print)
fetch("boom", 1).addCallback(shout).addErrback(recover).addCallback(print)


# 2. inlineCallbacks: write the chain as straight-line code.
@inlineCallbacks
def both() -> Any:
    first = yield fetch("first", 2)
    second = yield fetch("second", 1)
    return f"{first} + {second}"


both().addCallback(lambda text: print("inlineCallbacks:", text))


# 3. async def awaiting Deferreds, run with ensureDeferred.
async def total() -> int:
    a = await succeed(20)
    b = len(await fetch("abc", 3))
    return a + b


ensureDeferred(total()).addCallback(lambda n: print("async def:", n))

# 4. Wait for several at once.
DeferredList([fetch("x", 1), fetch("y", 2)]).addCallback(
    lambda results: print("DeferredList:", [value for ok, value in results])
)

# 5. A deadline: this one would take 10 s, but is given 4.
fetch("slow", 10).addTimeout(4, clock).addErrback(
    lambda failure: print("timeout:", failure.getErrorMessage())
)

for second in range(1, 6):
    print(f"-- t={second}s")
    clock.advance(1)
