"""The Deferred middleware chain itself: what ``framework.defer`` reads on its hot path.

``_active`` holds the ``wrap_callback`` functions of the enabled middleware, first enabled
first; ``_created`` their optional ``deferred_created`` hooks. ``framework.defer`` checks them
once per added callback pair / new Deferred and calls :func:`wrap` / :func:`created` only when
they are non-empty, so with no middleware enabled the hot path pays one truth test. Both lists
are mutated in place, since ``framework.defer`` holds references to them.

This module knows middleware *objects*, not names or plugins: ``framework.middleware``
(``enable(name)``/``disable(name)``) looks names up in the plugin registry and calls
:func:`activate`/:func:`deactivate`; ``framework.plugins.reset`` calls :func:`deactivate_all`.
It imports nothing of the framework.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["activate", "active_names", "created", "deactivate", "deactivate_all", "wrap"]

_active: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = []
_created: list[Callable[[Any], None]] = []

# name -> (middleware object, its wrap_callback, its deferred_created or None), enable order
_enabled: dict[str, tuple[Any, Callable[..., Any], Callable[[Any], None] | None]] = {}
_lock = threading.Lock()


def wrap(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``callback`` with every enabled middleware; the first enabled is outermost."""
    for wrap_callback in reversed(_active):
        callback = wrap_callback(callback)
    return callback


def created(deferred: Any) -> None:
    """Tell every enabled middleware with a ``deferred_created`` hook about a new Deferred."""
    for hook in _created:
        hook(deferred)


def _rebuild() -> None:
    _active[:] = [record[1] for record in _enabled.values()]
    _created[:] = [record[2] for record in _enabled.values() if record[2] is not None]


def activate(name: str, middleware: Any) -> bool:
    """Put ``middleware`` at the end of the chain (innermost) under ``name``, calling its
    optional ``on_enable()`` first; ``False`` (and nothing done) if ``name`` is active."""
    with _lock:
        if name in _enabled:
            return False
        on_enable = getattr(middleware, "on_enable", None)
        if on_enable is not None:
            on_enable()
        _enabled[name] = (
            middleware,
            middleware.wrap_callback,
            getattr(middleware, "deferred_created", None),
        )
        _rebuild()
    return True


def deactivate(name: str) -> bool:
    """Take ``name`` out of the chain and call its optional ``on_disable()``; ``False`` if it
    was not active. Deferreds already wrapped keep their wrapping."""
    with _lock:
        record = _enabled.pop(name, None)
        if record is not None:
            _rebuild()
    if record is None:
        return False
    on_disable = getattr(record[0], "on_disable", None)
    if on_disable is not None:
        on_disable()
    return True


def active_names() -> list[str]:
    """The active middleware names, in enable order (the first is outermost)."""
    return list(_enabled)


def deactivate_all() -> None:
    """Deactivate everything, last enabled first."""
    for name in reversed(list(_enabled)):
        deactivate(name)
