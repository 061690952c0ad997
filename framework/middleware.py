"""The Deferred middleware chain.

(Stub: the plugin-machinery work adds ``enable``/``disable``/``enabled``.)

``_active`` holds the ``wrap_callback`` functions of the enabled middleware, first enabled
first. ``framework.defer`` checks it once per added callback pair and calls ``wrap`` only when
it is non-empty, so with no middleware enabled the hot path pays one truth test.
"""

from __future__ import annotations

from typing import Any, Callable

_active: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = []
# Optional ``deferred_created(d)`` hooks of the enabled middleware, in the same order.
# ``Deferred.__init__`` calls ``created(self)`` only when this list is non-empty.
_created: list[Callable[[Any], None]] = []


def wrap(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``callback`` with every enabled middleware; the first enabled is outermost."""
    for wrap_callback in reversed(_active):
        callback = wrap_callback(callback)
    return callback


def created(deferred: Any) -> None:
    """Tell every enabled middleware with a ``deferred_created`` hook about a new Deferred."""
    for hook in _created:
        hook(deferred)
