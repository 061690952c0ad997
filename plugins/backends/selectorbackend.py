"""Reactor backend ``selector``: the standard library's ``selectors.DefaultSelector``.

This gives the best mechanism the platform has (kqueue on BSD/macOS, devpoll on Solaris,
epoll on Linux). ``selectors`` only knows "readable" and "writable", so errors and hang-ups
are reported as readiness (the next read or write then reports the error), never as
``POLLERR``/``POLLHUP`` bits.
"""

from __future__ import annotations

import selectors
from select import POLLIN, POLLOUT

from framework import hookimpl
from framework.registries import ReactorRegistry
from framework.interfaces import Multiplexer

__all__ = ["SelectorMultiplexer", "register_reactors"]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
# selectors event mask (0..3) -> poll mask
_TO_POLL = tuple(
    (POLLIN if events & _READ else 0) | (POLLOUT if events & _WRITE else 0) for events in range(4)
)


def _to_selector(events: int) -> int:
    return (_READ if events & POLLIN else 0) | (_WRITE if events & POLLOUT else 0)


class SelectorMultiplexer(Multiplexer):
    """A ``selectors.DefaultSelector`` translated to poll masks."""

    __slots__ = ("_selector", "_select")

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._select = self._selector.select

    def register(self, fd: int, events: int) -> None:
        self._selector.register(fd, _to_selector(events))

    def modify(self, fd: int, events: int) -> None:
        self._selector.modify(fd, _to_selector(events))

    def unregister(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError, OSError):
            # Not registered, or closed behind our back: either way no longer watched.
            pass

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        # selectors take seconds and round sub-millisecond waits up themselves.
        table = _TO_POLL
        return [(key.fd, table[events]) for key, events in self._select(timeout)]

    def close(self) -> None:
        self._selector.close()

    def fileno(self) -> int:
        fileno = getattr(self._selector, "fileno", None)
        return fileno() if fileno is not None else -1

    def __repr__(self) -> str:
        return f"<SelectorMultiplexer {type(self._selector).__name__}>"


@hookimpl
def register_reactors(registry: ReactorRegistry) -> None:
    registry.add(
        "selector",
        SelectorMultiplexer,
        description=f"selectors.DefaultSelector (here: {selectors.DefaultSelector.__name__})",
        priority=10,
    )
