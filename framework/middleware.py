"""The Deferred middleware chain.

(Stub: the plugin-machinery work adds ``enable``/``disable``/``enabled``.)

``_active`` holds the ``wrap_callback`` functions of the enabled middleware, first enabled
first. ``framework.defer`` checks it once per added callback pair and calls ``wrap`` only when
it is non-empty, so with no middleware enabled the hot path pays one truth test.
"""

from __future__ import annotations

from typing import Any, Callable

_active: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = []


def wrap(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``callback`` with every enabled middleware; the first enabled is outermost."""
    for wrap_callback in reversed(_active):
        callback = wrap_callback(callback)
    return callback
