"""Deferred middleware ``slow-callbacks``: logs a WARNING (logger ``framework.slow``) naming any
Deferred callback or errback that runs longer than a threshold (default 0.1 s), because a
callback that blocks stalls every connection the reactor serves.

When enabled it also switches on the installed reactor's own detector
(``Reactor.set_slow_callback_threshold``) so a blocking ``dataReceived`` or timer is named too:
``reactor-serve --middleware slow-callbacks`` does it at startup (the ``reactor_installed``
hook); in code it happens on
``enable`` if a reactor is installed, else with the first callback added after one is.
The threshold comes from ``$REACTOR_FRAMEWORK_SLOW_CALLBACK`` (seconds) when set.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import framework
from framework import hookimpl
from framework.registries import MiddlewareRegistry

__all__ = ["DEFAULT_THRESHOLD", "SlowCallbacksMiddleware", "describe", "reactor_installed",
           "register_deferred_middleware"]

DEFAULT_THRESHOLD = 0.1
THRESHOLD_ENV = "REACTOR_FRAMEWORK_SLOW_CALLBACK"
log = logging.getLogger("framework.slow")


def describe(func: Any) -> str:
    """``module.qualname (file:line)`` for a function, best effort for other callables."""
    inner = func
    while hasattr(inner, "__wrapped__"):
        inner = inner.__wrapped__
    inner = getattr(inner, "__func__", inner)
    name = getattr(inner, "__qualname__", None) or repr(inner)
    module = getattr(inner, "__module__", None)
    code = getattr(inner, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{module}.{name}{where}" if module else f"{name}{where}"


def _threshold_from_env() -> float:
    raw = os.environ.get(THRESHOLD_ENV)
    if not raw:
        return DEFAULT_THRESHOLD
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        log.warning("ignoring %s=%r: not a positive number of seconds", THRESHOLD_ENV, raw)
        return DEFAULT_THRESHOLD
    return value


class SlowCallbacksMiddleware:
    """Times each callback; ``threshold`` is in seconds."""

    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = _threshold_from_env() if threshold is None else threshold
        self._reactor: Any = None  # the reactor whose detector this middleware switched on
        self.enabled = False

    def wrap_callback(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        if self._reactor is None:
            self._attach()
        clock = time.perf_counter
        middleware = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return callback(*args, **kwargs)
            finally:
                elapsed = clock() - start
                if elapsed > middleware.threshold:
                    log.warning(
                        "slow Deferred callback %s blocked the reactor for %.3f s (threshold %.3f s)",
                        describe(callback),
                        elapsed,
                        middleware.threshold,
                    )

        timed.__wrapped__ = callback  # type: ignore[attr-defined]
        return timed

    # Called by framework.middleware.enable()/disable().
    def on_enable(self) -> None:
        self.enabled = True
        self._attach()

    def on_disable(self) -> None:
        self.enabled = False
        reactor, self._reactor = self._reactor, None
        if reactor is not None:
            reactor.set_slow_callback_threshold(None)

    def reactor_installed(self, reactor: Any) -> None:
        """Switch on ``reactor``'s own detector (readiness handlers and timers)."""
        setter = getattr(reactor, "set_slow_callback_threshold", None)
        if setter is not None:
            setter(self.threshold)
            self._reactor = reactor

    def _attach(self) -> None:
        reactor = framework.installed_reactor()
        if reactor is not None:
            self.reactor_installed(reactor)

    def __repr__(self) -> str:
        return f"SlowCallbacksMiddleware(threshold={self.threshold})"


_middleware = SlowCallbacksMiddleware()


@hookimpl
def register_deferred_middleware(registry: MiddlewareRegistry) -> None:
    registry.add(
        "slow-callbacks",
        _middleware,
        description="warn about Deferred callbacks (and reactor handlers) that block longer than 0.1 s",
    )


@hookimpl
def reactor_installed(reactor: Any) -> None:
    """When enabled, switch on the detector of the reactor ``reactor-serve`` serves on."""
    if _middleware.enabled:
        _middleware.reactor_installed(reactor)
