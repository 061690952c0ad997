"""The reactor's slow-callback detector: one measurement for every kind of handler.

Off by default (the reactor holds ``None`` and its loops call handlers directly). Switched on
by ``Reactor.set_slow_callback_threshold(seconds)`` — which the ``slow-callbacks`` Deferred
middleware plugin calls when it is enabled — the reactor's owners route each readiness handler
(``doRead``/``doWrite``), delayed call, call from another thread and signal handler through
``SlowCallbacks.run``, which times it and logs a WARNING when it blocked the loop too long.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

__all__ = ["SlowCallbacks", "describe_handler"]

# The reactor's owners log under the reactor's name, which users filter on.
logger = logging.getLogger("framework.eventloop")

_perf_counter = time.perf_counter
_HANDLER_METHODS = ("doRead", "doWrite")


def describe_handler(obj: Any) -> str:
    """A readiness handler as ``logPrefix() (repr)``, or its repr without a prefix."""
    try:
        prefix = obj.logPrefix()
    except Exception:
        prefix = None
    return f"{prefix} ({obj!r})" if prefix else repr(obj)


class SlowCallbacks:
    """Times the calls handed to ``run`` against ``threshold`` seconds."""

    __slots__ = ("threshold",)

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def run(self, kind: str, subject: Any, func: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """``func(*args, **kw)``, timed; its result or exception passes through. ``kind``
        (``"doRead"``, ``"delayed call"``...) and ``subject`` name it in the warning."""
        started = _perf_counter()
        try:
            return func(*args, **kw)
        finally:
            took = _perf_counter() - started
            if took > self.threshold:
                if kind in _HANDLER_METHODS:
                    what = f"{kind} of {describe_handler(subject)}"
                else:
                    what = f"{kind} {subject!r}"
                logger.warning("Slow callback: %s took %.3f s (threshold %.3f s)", what, took,
                               self.threshold)

    def __repr__(self) -> str:
        return f"SlowCallbacks(threshold={self.threshold!r})"
