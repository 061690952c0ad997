"""Reactor backend ``poll``: POSIX ``poll(2)`` through ``select.poll``."""

from __future__ import annotations

import math
import select

from framework import hookimpl
from framework.registries import ReactorRegistry
from framework.interfaces import Multiplexer

__all__ = ["PollMultiplexer", "register_reactors"]


class PollMultiplexer(Multiplexer):
    """A ``select.poll`` object; masks go in and come out untouched."""

    __slots__ = ("_pollobj", "_poll")

    def __init__(self) -> None:
        self._pollobj = select.poll()
        self._poll = self._pollobj.poll

    def register(self, fd: int, events: int) -> None:
        self._pollobj.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self._pollobj.modify(fd, events)

    def unregister(self, fd: int) -> None:
        try:
            self._pollobj.unregister(fd)
        except KeyError:  # not registered (any more): nothing to stop watching
            pass

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        # poll(2) takes milliseconds: round up, so a timer due in 0.2 ms is waited for
        # (1 ms) rather than polled for in a busy loop.
        if timeout is None:
            return self._poll(None)
        return self._poll(math.ceil(timeout * 1000.0) if timeout > 0.0 else 0)

    def close(self) -> None:
        # A poll object holds no OS resource; drop the registrations so a stale use fails
        # loudly instead of watching nothing.
        self._pollobj = select.poll()
        self._poll = self._pollobj.poll

    def __repr__(self) -> str:
        return "<PollMultiplexer>"


def _available() -> bool | str:
    return True if hasattr(select, "poll") else "select.poll does not exist on this system"


@hookimpl
def register_reactors(registry: ReactorRegistry) -> None:
    registry.add(
        "poll",
        PollMultiplexer,
        description="POSIX poll(2)",
        available=_available,
        priority=20,
    )
