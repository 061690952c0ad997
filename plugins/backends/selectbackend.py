"""Reactor backend ``select``: ``select(2)``, available everywhere.

``select`` cannot watch descriptors numbered ``FD_SETSIZE`` (1024) or above; registering one
raises ``ValueError`` at once, so only that connection fails, not the whole loop.
"""

from __future__ import annotations

import select
from select import POLLIN, POLLOUT

from framework import hookimpl
from framework.registries import ReactorRegistry
from framework.interfaces import Multiplexer

__all__ = ["FD_SETSIZE", "SelectMultiplexer", "register_reactors"]

#: The highest descriptor number ``select(2)`` can watch, plus one (glibc's fixed limit).
FD_SETSIZE = 1024

_BOTH = POLLIN | POLLOUT
_select = select.select


class SelectMultiplexer(Multiplexer):
    """``select.select`` over two sets of descriptors."""

    __slots__ = ("_readers", "_writers")

    def __init__(self) -> None:
        self._readers: set[int] = set()
        self._writers: set[int] = set()

    def register(self, fd: int, events: int) -> None:
        if fd >= FD_SETSIZE:
            raise ValueError(
                f"the select backend cannot watch file descriptor {fd}: select() only handles "
                f"descriptors below FD_SETSIZE ({FD_SETSIZE}); use the poll or epoll backend "
                f"for this many open files"
            )
        if fd < 0:
            raise ValueError(f"cannot watch negative file descriptor {fd}")
        self._set(fd, events)

    def modify(self, fd: int, events: int) -> None:
        if fd not in self._readers and fd not in self._writers:
            raise FileNotFoundError(f"file descriptor {fd} is not registered")
        self._set(fd, events)

    def _set(self, fd: int, events: int) -> None:
        if events & POLLIN:
            self._readers.add(fd)
        else:
            self._readers.discard(fd)
        if events & POLLOUT:
            self._writers.add(fd)
        else:
            self._writers.discard(fd)

    def unregister(self, fd: int) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        if timeout is not None and timeout < 0.0:
            timeout = 0.0
        # An fd closed behind our back makes select() raise OSError(EBADF): the reactor
        # finds and drops the bad descriptor, then polls again.
        readable, writable, _ = _select(self._readers, self._writers, (), timeout)
        if not writable:
            return [(fd, POLLIN) for fd in readable]
        if not readable:
            return [(fd, POLLOUT) for fd in writable]
        both = set(readable).intersection(writable)
        if not both:
            ready = [(fd, POLLIN) for fd in readable]
            ready += [(fd, POLLOUT) for fd in writable]
            return ready
        ready = [(fd, _BOTH if fd in both else POLLIN) for fd in readable]
        ready += [(fd, POLLOUT) for fd in writable if fd not in both]
        return ready

    def close(self) -> None:
        self._readers.clear()
        self._writers.clear()

    def __repr__(self) -> str:
        return f"<SelectMultiplexer readers={len(self._readers)} writers={len(self._writers)}>"


@hookimpl
def register_reactors(registry: ReactorRegistry) -> None:
    registry.add(
        "select",
        SelectMultiplexer,
        description=f"select(2), portable; descriptors below {FD_SETSIZE} only",
        priority=5,
    )
