"""Deferred middleware ``tracing``: records where each Deferred was created, so an
"Unhandled error in Deferred" report says which code made the Deferred that nobody handled.

It uses the ``deferred_created`` hook: each new Deferred gets ``_creator`` set to the formatted
stack of its creation (the framework's own frames left out). This costs a stack walk per
Deferred: a debugging aid, not for production load.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Callable

from framework import hookimpl
from framework.registries import MiddlewareRegistry

__all__ = ["TracingMiddleware", "register_deferred_middleware"]

#: Frames from these files are the machinery, not the creator: skip them.
_SKIP = (
    os.path.join("framework", "defer.py"),
    os.path.join("framework", "_defer_core.py"),
    os.path.join("framework", "_defer_shortcuts.py"),
    os.path.join("framework", "_defer_coroutines.py"),
    os.path.join("framework", "_defer_combinators.py"),
    os.path.join("framework", "_defer_locks.py"),
    os.path.join("framework", "middleware.py"),
    os.path.join("middleware", "tracing.py"),
)


class TracingMiddleware:
    """Sets ``d._creator`` to the creation stack of every new Deferred."""

    def __init__(self, depth: int = 12) -> None:
        self.depth = depth

    def wrap_callback(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        return callback

    def deferred_created(self, deferred: Any) -> None:
        frame: Any = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.endswith(_SKIP):
            frame = frame.f_back
        stack = traceback.extract_stack(frame, limit=self.depth)
        try:
            deferred._creator = "".join(traceback.format_list(stack)).rstrip("\n")
        except AttributeError:  # a Deferred implementation without the slot: nothing to record
            pass

    def __repr__(self) -> str:
        return "TracingMiddleware()"


@hookimpl
def register_deferred_middleware(registry: MiddlewareRegistry) -> None:
    registry.add(
        "tracing",
        TracingMiddleware(),
        description="record where each Deferred was created, for unhandled-error reports",
    )
