"""The reactor's descriptor registry and readiness dispatch; owns the ``Multiplexer``.

``Descriptors`` keeps fd -> handler maps for dispatch and handler -> fd maps for removal, tells
the multiplexer what is wanted for each fd, and turns the ``(fd, mask)`` pairs that ``poll``
returns into ``doRead``/``doWrite`` calls. The run loop only asks it for events (``poll``) and
hands them back (``dispatch``), as trio's ``EpollIOManager`` does.

The common event (readable and nothing else) is dispatched inline in ``dispatch``'s loop: one
dict lookup and one call, no allocation, no logging, no timing. Everything else (hang-ups,
errors, writes, invalid fds, slow-callback timing) takes ``_dispatch_other``.
"""

from __future__ import annotations

import errno
import logging
import os
import select
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any, Iterable

from framework import error
from framework.failure import Failure
from framework.slowcalls import describe_handler

if TYPE_CHECKING:
    from framework.interfaces import Multiplexer
    from framework.slowcalls import SlowCallbacks

__all__ = ["Descriptors"]

# The reactor's owners log under the reactor's name, which users filter on.
logger = logging.getLogger("framework.eventloop")

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
POLLNVAL = select.POLLNVAL
# Hang-ups and errors go to doRead (which sees EOF or the error) and then to doWrite.
_READ_EVENTS = POLLIN | getattr(select, "POLLPRI", 0) | select.POLLHUP | select.POLLERR
_WRITE_EVENTS = POLLOUT | select.POLLHUP | select.POLLERR
# Kernel-side multiplexers (epoll, kqueue) silently forget an fd closed behind the reactor's
# back; a descriptor whose fileno() became -1 is looked for this often (seconds).
_PREEN_INTERVAL = 1.0


def _fdesc_went_away() -> Failure:
    return Failure(error.ConnectionFdescWentAway("Filedescriptor went away"))


def _claims(handler: Any, fd: int) -> bool:
    try:
        return bool(handler.fileno() == fd)
    except Exception:
        return False


class Descriptors:
    """The readers and writers of one reactor, over its multiplexer ``mux``."""

    __slots__ = ("mux", "rfds", "wfds", "readers", "writers", "masks", "internal",
                 "_preen_every", "_next_preen")

    def __init__(self, multiplexer: Multiplexer) -> None:
        self.mux = multiplexer
        self.rfds: dict[int, Any] = {}     # fd -> reader, for dispatch
        self.wfds: dict[int, Any] = {}     # fd -> writer
        self.readers: dict[Any, int] = {}  # reader -> fd, for removal
        self.writers: dict[Any, int] = {}
        self.masks: dict[int, int] = {}    # what the multiplexer was told, per fd
        #: The reactor's own readers (its waker): dispatched, never listed or removed by users.
        self.internal: set[Any] = set()
        # fileno() is optional in the backend contract; -1 means no kernel-side interest set.
        fileno = getattr(multiplexer, "fileno", None)
        self._preen_every = None if fileno is not None and fileno() == -1 else _PREEN_INTERVAL
        self._next_preen = 0.0

    # -- registry -----------------------------------------------------------------------------

    def watch_internal(self, handler: Any) -> None:
        """Dispatch reads of the reactor's own ``handler`` (not listed by ``getReaders``)."""
        self.internal.add(handler)
        self.rfds[handler.fileno()] = handler
        self.update(handler.fileno())

    def unwatch_internal(self, handler: Any) -> None:
        self.internal.discard(handler)
        fd = handler.fileno()
        if self.rfds.get(fd) is handler:
            del self.rfds[fd]
        self.update(fd)

    def update(self, fd: int) -> None:
        """Tell the multiplexer what is now wanted for ``fd``."""
        new = (POLLIN if fd in self.rfds else 0) | (POLLOUT if fd in self.wfds else 0)
        masks = self.masks
        old = masks.get(fd, 0)
        if new == old:
            return
        mux = self.mux
        if not new:
            del masks[fd]
            try:
                mux.unregister(fd)
            except (OSError, ValueError, KeyError):
                pass
        elif not old:
            try:
                mux.register(fd, new)
            except FileExistsError:
                mux.modify(fd, new)
            masks[fd] = new
        else:
            try:
                mux.modify(fd, new)
            except (FileNotFoundError, KeyError):
                # The kernel dropped the fd when it was closed and the number was reused.
                mux.register(fd, new)
            masks[fd] = new

    def add(self, handler: Any, registry: dict[Any, int], fds: dict[int, Any], what: str) -> None:
        fd = handler.fileno()
        current = registry.get(handler)
        if current == fd:
            return
        if not isinstance(fd, int) or fd < 0:
            raise ValueError(f"cannot {what} {handler!r}: fileno() returned {fd!r}")
        if current is not None:  # the handler's descriptor changed under it
            del registry[handler]
            if fds.get(current) is handler:
                del fds[current]
            self.update(current)
        other = fds.get(fd)
        if other is not None:
            if other in self.internal or _claims(other, fd):
                raise ValueError(f"cannot {what} {handler!r}: fd {fd} is already watched for "
                                 f"the same events by {other!r}")
            # The other handler's fd was closed behind our back and the number reused.
            self.disconnect(other, _fdesc_went_away())
        fds[fd] = handler
        registry[handler] = fd
        try:
            self.update(fd)
        except BaseException:
            del fds[fd]
            del registry[handler]
            raise

    def remove(self, handler: Any, registry: dict[Any, int], fds: dict[int, Any]) -> None:
        fd = registry.pop(handler, None)
        if fd is None:
            return
        if fds.get(fd) is handler:
            del fds[fd]
        self.update(fd)

    def remove_all(self) -> list[Any]:
        handlers = list(dict.fromkeys([*self.readers, *self.writers]))
        for handler in handlers:
            self.remove(handler, self.readers, self.rfds)
            self.remove(handler, self.writers, self.wfds)
        return handlers

    def disconnect(self, handler: Any, why: Any) -> None:
        """Drop ``handler`` (both directions) and tell it, once, with a Failure."""
        self.remove(handler, self.readers, self.rfds)
        self.remove(handler, self.writers, self.wfds)
        if isinstance(why, Failure):
            reason = why
        elif isinstance(why, BaseException):
            reason = Failure(why)
        else:
            reason = Failure(error.ConnectionDone(f"handler returned {why!r}"))
        try:
            handler.connectionLost(reason)
        except Exception:
            logger.error("Error in connectionLost of %s", describe_handler(handler), exc_info=True)

    # -- waiting ------------------------------------------------------------------------------

    def poll(self, timeout: float | None) -> list[tuple[int, int]] | None:
        """Wait up to ``timeout`` seconds (None: no limit) for events; None when the wait
        was interrupted or failed on a descriptor closed behind the reactor's back."""
        if self._preen_every is not None and (self.readers or self.writers):
            timeout = self._maybe_preen(timeout)
        try:
            return self.mux.poll(timeout)
        except InterruptedError:
            return None
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EBADF, errno.EINVAL):
                raise
            if not self.preen(check_os=True):
                raise
            return None

    def _maybe_preen(self, timeout: float | None) -> float | None:
        now = _monotonic()
        if now >= self._next_preen:
            if self._next_preen:
                self.preen(check_os=True)
            self._next_preen = now + (self._preen_every or _PREEN_INTERVAL)
        until = self._next_preen - now
        return until if timeout is None or timeout > until else timeout

    def preen(self, check_os: bool) -> bool:
        """Drop every descriptor whose fileno() changed or became -1 (or, with ``check_os``,
        whose fd the OS no longer knows). Returns whether any was dropped."""
        bad = []
        for registry in (self.readers, self.writers):
            for handler, fd in registry.items():
                if not _claims(handler, fd):
                    bad.append(handler)
                elif check_os:
                    try:
                        os.fstat(fd)
                    except OSError:
                        bad.append(handler)
        for handler in dict.fromkeys(bad):
            self.disconnect(handler, _fdesc_went_away())
        return bool(bad)

    # -- dispatch -----------------------------------------------------------------------------

    def dispatch(self, events: Iterable[tuple[int, int]]) -> None:
        """Call the handlers of ``events`` (what ``poll`` returned)."""
        rget = self.rfds.get
        pollin = POLLIN
        for fd, ev in events:
            if ev != pollin:
                self._dispatch_other(fd, ev, None)
                continue
            # The common case, inline: readable and nothing else.
            handler = rget(fd)
            if handler is not None:
                try:
                    why = handler.doRead()
                except Exception:
                    why = self._handler_failed(handler, "doRead")
                if why:
                    self.disconnect(handler, why)

    def dispatch_timed(self, events: Iterable[tuple[int, int]], slow: SlowCallbacks) -> None:
        """``dispatch``, each handler call timed by the slow-callback detector."""
        for fd, ev in events:
            self._dispatch_other(fd, ev, slow)

    def _dispatch_other(self, fd: int, ev: int, slow: SlowCallbacks | None) -> None:
        """Any event: invalid, hang-up/error, readable, writable, or several."""
        if ev & POLLNVAL:
            self._invalid_fd(fd)
            return
        if ev & _READ_EVENTS and self._call_handler(self.rfds.get(fd), "doRead", slow):
            return  # disconnected by doRead: no doWrite
        if ev & _WRITE_EVENTS:
            self._call_handler(self.wfds.get(fd), "doWrite", slow)

    def _call_handler(self, handler: Any, method: str, slow: SlowCallbacks | None) -> bool:
        """Run ``handler.<method>()``; True if that disconnected it."""
        if handler is None:
            return False
        try:
            if slow is None:
                why = getattr(handler, method)()
            else:
                why = slow.run(method, handler, getattr(handler, method))
        except Exception:
            why = self._handler_failed(handler, method)
        if why:
            self.disconnect(handler, why)
            return True
        return False

    def _handler_failed(self, handler: Any, method: str) -> Failure:
        reason = Failure()
        logger.error("Unhandled error in %s of %s; dropping it", method, describe_handler(handler),
                     exc_info=(reason.type, reason.value, reason.tb))
        return reason

    def _invalid_fd(self, fd: int) -> None:
        """POLLNVAL: ``fd`` was closed behind the reactor's back."""
        found = False
        for fds in (self.rfds, self.wfds):
            handler = fds.get(fd)
            if handler is not None and handler not in self.internal:
                found = True
                self.disconnect(handler, _fdesc_went_away())
        if not found and fd in self.masks:
            del self.masks[fd]
            try:
                self.mux.unregister(fd)
            except (OSError, ValueError, KeyError):
                pass

