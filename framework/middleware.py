"""Deferred middleware, by name: ``enable(name)`` turns a registered middleware on,
``disable(name)`` off, ``enabled()`` lists them.

Middleware comes from plugins (``register_deferred_middleware``) and is opt-in. The chain the
Deferred hot path reads lives in ``framework.chain`` (which knows objects, not names); this
module looks names up in the plugin registry (``framework.plugins``) and drives the chain.
"""

from __future__ import annotations

from typing import Any, Callable

from framework import chain, plugins
from framework.chain import created, wrap

__all__ = ["created", "disable", "enable", "enabled", "wrap"]

# The chain's lists, under the names this module always had (the same list objects).
_active: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = chain._active
_created: list[Callable[[Any], None]] = chain._created


def enable(name: str) -> None:
    """Enable the registered middleware ``name`` (after those already enabled, so it wraps
    inside them). Enabling an enabled middleware does nothing. Raises
    ``framework.error.UnknownPluginError`` for a name no plugin registered."""
    entry = plugins.middlewares().get(name)
    chain.activate(name, entry.middleware)


def disable(name: str) -> None:
    """Disable middleware ``name``; Deferreds already wrapped keep their wrapping. Disabling
    a registered middleware that is not enabled does nothing; an unknown name raises
    ``framework.error.UnknownPluginError``."""
    if not chain.deactivate(name):
        plugins.middlewares().get(name)  # raises for a name nobody registered


def enabled() -> list[str]:
    """The enabled middleware names, in enable order (the first is outermost)."""
    return chain.active_names()


def _disable_all() -> None:
    """Disable everything, last enabled first (``framework.plugins.reset`` does it too)."""
    chain.deactivate_all()
