"""System-event triggers (Twisted's ``addSystemEventTrigger``): startup, shutdown, any name.

``SystemEvents`` keeps, per event, the 'before', 'during' and 'after' triggers. ``fire`` runs
the 'before' ones, waits for the Deferreds they return, then calls the owner's ``on_phase``
(the reactor flips ``running`` there and stops its thread pool on shutdown) before the 'during'
and before the 'after' triggers. Each trigger runs once; exceptions are logged.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from framework.defer import Deferred
from framework.failure import Failure

__all__ = ["PHASES", "SystemEvents"]

# The reactor's owners log under the reactor's name, which users filter on.
logger = logging.getLogger("framework.eventloop")

_is_callable = callable
PHASES = ("before", "during", "after")
Trigger = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Event:
    """The triggers of one system event, by phase."""

    __slots__ = ("before", "during", "after", "firing")

    def __init__(self) -> None:
        self.before: list[Trigger] = []
        self.during: list[Trigger] = []
        self.after: list[Trigger] = []
        # A fresh token while firing, None otherwise; a firing abandoned by the end of run()
        # gets None, so its late 'before' Deferreds are ignored.
        self.firing: object | None = None


class SystemEvents:
    """The triggers of one reactor. ``on_phase(eventType, phase)`` is called before the
    'during' and before the 'after' triggers of every firing."""

    __slots__ = ("_events", "_on_phase")

    def __init__(self, on_phase: Callable[[str, str], None]) -> None:
        self._events: dict[str, _Event] = {}
        self._on_phase = on_phase

    def _event(self, eventType: str) -> _Event:
        event = self._events.get(eventType)
        if event is None:
            event = self._events[eventType] = _Event()
        return event

    def add(self, phase: str, eventType: str, func: Callable[..., Any], args: tuple[Any, ...],
            kw: dict[str, Any]) -> tuple[str, str, Any]:
        if phase not in PHASES:
            raise KeyError(f"invalid phase {phase!r}: use 'before', 'during' or 'after'")
        if not _is_callable(func):
            raise TypeError(f"trigger must be callable, not {func!r}")
        entry = (func, args, kw)
        getattr(self._event(eventType), phase).append(entry)
        return (eventType, phase, entry)

    def remove(self, triggerID: tuple[str, str, Any]) -> None:
        try:
            eventType, phase, entry = triggerID
            triggers = getattr(self._events[eventType], phase)
            for i, candidate in enumerate(triggers):
                if candidate is entry:
                    del triggers[i]
                    return
        except (TypeError, ValueError, KeyError, AttributeError):
            pass
        raise ValueError(f"no such system event trigger: {triggerID!r}")

    def abandon(self, *eventTypes: str) -> None:
        """Forget the firings in progress of ``eventTypes`` (their late Deferreds are ignored)."""
        for name in eventTypes:
            event = self._events.get(name)
            if event is not None:
                event.firing = None

    def fire(self, eventType: str) -> None:
        event = self._event(eventType)
        if event.firing is not None:
            return
        token = event.firing = object()
        pending: list[Deferred] = []
        while event.before:
            func, args, kw = event.before.pop(0)
            try:
                result = func(*args, **kw)
            except Exception:
                logger.error("Error in 'before' %s trigger %r", eventType, func, exc_info=True)
                continue
            if isinstance(result, Deferred):
                pending.append(result)
        if not pending:
            self._continue(eventType, event)
            return
        remaining = [len(pending)]

        def one_done(result: Any) -> None:
            if isinstance(result, Failure):
                logger.error("'before' %s trigger failed:\n%s", eventType, result.getTraceback())
            remaining[0] -= 1
            if remaining[0] == 0 and event.firing is token:
                self._continue(eventType, event)

        for d in pending:
            d.addBoth(one_done)

    def _continue(self, eventType: str, event: _Event) -> None:
        try:
            self._on_phase(eventType, "during")
            self._run(eventType, "during", event.during)
            self._on_phase(eventType, "after")
            self._run(eventType, "after", event.after)
        finally:
            event.firing = None

    @staticmethod
    def _run(eventType: str, phase: str, triggers: list[Trigger]) -> None:
        while triggers:
            func, args, kw = triggers.pop(0)
            try:
                func(*args, **kw)
            except Exception:
                logger.error("Error in '%s' %s trigger %r", phase, eventType, func, exc_info=True)
