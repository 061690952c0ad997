"""The Deferred middleware chain.

``_active`` holds the ``wrap_callback`` functions of the enabled middleware, first enabled
first. ``framework.defer`` checks it once per added callback pair and calls ``wrap`` only when
it is non-empty, so with no middleware enabled the hot path pays one truth test.

Middleware comes from plugins (``register_deferred_middleware``) and is opt-in:
``enable(name)`` turns one on, ``disable(name)`` off. Both lists are mutated in place, since
``framework.defer`` may hold references to them.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["created", "disable", "enable", "enabled", "wrap"]

_active: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = []
# Optional ``deferred_created(d)`` hooks of the enabled middleware, in the same order.
# ``Deferred.__init__`` calls ``created(self)`` only when this list is non-empty.
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


def enable(name: str) -> None:
    """Enable the registered middleware ``name`` (after those already enabled, so it wraps
    inside them). Enabling an enabled middleware does nothing. Raises
    ``framework.error.UnknownPluginError`` for a name no plugin registered."""
    from framework import plugins

    entry = plugins.middlewares().get(name)
    with _lock:
        if name in _enabled:
            return
        middleware = entry.middleware
        on_enable = getattr(middleware, "on_enable", None)
        if on_enable is not None:
            on_enable()
        _enabled[name] = (
            middleware,
            middleware.wrap_callback,
            getattr(middleware, "deferred_created", None),
        )
        _rebuild()


def disable(name: str) -> None:
    """Disable middleware ``name``; Deferreds already wrapped keep their wrapping. Disabling
    a registered middleware that is not enabled does nothing; an unknown name raises
    ``framework.error.UnknownPluginError``."""
    with _lock:
        record = _enabled.pop(name, None)
        if record is not None:
            _rebuild()
    if record is None:
        from framework import plugins

        plugins.middlewares().get(name)  # raises for a name nobody registered
        return
    on_disable = getattr(record[0], "on_disable", None)
    if on_disable is not None:
        on_disable()


def enabled() -> list[str]:
    """The enabled middleware names, in enable order (the first is outermost)."""
    return list(_enabled)


def _disable_all() -> None:
    """Disable everything, last enabled first (used by ``framework.plugins.reset``)."""
    for name in reversed(list(_enabled)):
        disable(name)
