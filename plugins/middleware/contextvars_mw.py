"""Deferred middleware ``contextvars``: each callback and errback runs in a copy of the
:mod:`contextvars` context that was current when it was added.

So a request ID set in a ``ContextVar`` before ``d.addCallback(f)`` is what ``f`` sees, even
when the Deferred is fired later from another callback, a timer or a thread hand-off. As with
asyncio's callbacks, each callback gets its own copy: a variable it sets does not leak into
callbacks added elsewhere.
"""

from __future__ import annotations

import contextvars
from typing import Any, Callable

from framework import hookimpl
from framework.registries import MiddlewareRegistry

__all__ = ["ContextVarsMiddleware", "register_deferred_middleware"]


class ContextVarsMiddleware:
    """Binds each callback to the context current at ``addCallback`` time."""

    __slots__ = ()

    def wrap_callback(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        run = contextvars.copy_context().run

        def in_context(*args: Any, **kwargs: Any) -> Any:
            return run(callback, *args, **kwargs)

        in_context.__wrapped__ = callback  # type: ignore[attr-defined]
        return in_context

    def __repr__(self) -> str:
        return "ContextVarsMiddleware()"


@hookimpl
def register_deferred_middleware(registry: MiddlewareRegistry) -> None:
    registry.add(
        "contextvars",
        ContextVarsMiddleware(),
        description="run each Deferred callback in the contextvars context current when it was added",
    )
