"""Reactor backend ``epoll``: Linux ``epoll(7)``, level-triggered.

On Linux the ``EPOLL*`` bits equal the ``POLL*`` bits, so interest masks go in and ready
masks come out untouched.
"""

from __future__ import annotations

import select

from framework import hookimpl
from framework.registries import ReactorRegistry
from framework.interfaces import Multiplexer

__all__ = ["EPollMultiplexer", "register_reactors"]


class EPollMultiplexer(Multiplexer):
    """A level-triggered ``select.epoll`` object."""

    __slots__ = ("_epoll", "_poll")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._poll = self._epoll.poll

    def register(self, fd: int, events: int) -> None:
        self._epoll.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self._epoll.modify(fd, events)

    def unregister(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            # EBADF/ENOENT: closed before we were told (the kernel already forgot it),
            # or the epoll object itself is closed. Either way it is no longer watched.
            pass

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        # epoll takes seconds and rounds sub-millisecond waits up to 1 ms, so a loop waiting
        # for a timer due in 0.2 ms sleeps instead of spinning.
        if timeout is None:
            return self._poll(-1)
        return self._poll(timeout if timeout > 0.0 else 0.0)

    def close(self) -> None:
        self._epoll.close()

    def fileno(self) -> int:
        return self._epoll.fileno()

    def __repr__(self) -> str:
        return f"<EPollMultiplexer fd={self._epoll.fileno()}>"


def _available() -> bool | str:
    return True if hasattr(select, "epoll") else "select.epoll does not exist on this system"


@hookimpl
def register_reactors(registry: ReactorRegistry) -> None:
    registry.add(
        "epoll",
        EPollMultiplexer,
        description="Linux epoll(7), level-triggered",
        available=_available,
        priority=30,
    )
