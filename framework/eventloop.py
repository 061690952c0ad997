"""The backend-agnostic reactor: run/stop, timers, system-event triggers, the descriptor
registry, readiness dispatch and the hand-off of work between threads.

A ``Reactor`` drives one ``Multiplexer`` (a backend plugin: select, poll, epoll, ...). Each turn
of its loop runs the calls handed over from other threads, then the timers that are due, then
waits in ``Multiplexer.poll`` until a descriptor is ready, the next timer is due or another
thread wakes it, and finally calls ``doRead``/``doWrite`` on the ready descriptors.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import weakref
from collections import deque
from heapq import heapify, heappop, heappush
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, Iterable

from framework import error
from framework.address import isIPAddress, isIPv6Address
from framework.failure import Failure
from framework.interfaces import Multiplexer

if TYPE_CHECKING:
    from framework.defer import Deferred
    from framework.threads import ThreadPool

__all__ = ["DelayedCall", "Reactor"]

logger = logging.getLogger("framework.eventloop")

_is_callable = callable
_INF = float("inf")
#: The longest single wait handed to a backend (one day); the loop simply waits again.
MAX_WAIT = 86400.0
_monotonic = time.monotonic
_perf_counter = time.perf_counter
_get_ident = threading.get_ident

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
POLLERR = select.POLLERR
POLLHUP = select.POLLHUP
POLLNVAL = select.POLLNVAL
# Hang-ups and errors go to doRead (which sees EOF or the error) and then to doWrite.
_READ_EVENTS = POLLIN | getattr(select, "POLLPRI", 0) | POLLHUP | POLLERR
_WRITE_EVENTS = POLLOUT | POLLHUP | POLLERR

_PHASES = ("before", "during", "after")
# Compaction of the timer heap starts once this many cancelled entries are waiting in it
# and they make up more than half of it.
_MIN_STALE_TO_COMPACT = 256
# Kernel-side multiplexers (epoll, kqueue) silently forget an fd closed behind the reactor's
# back; a descriptor whose fileno() became -1 is looked for this often (seconds).
_PREEN_INTERVAL = 1.0


def _fdesc_went_away() -> Failure:
    return Failure(error.ConnectionFdescWentAway("Filedescriptor went away"))


def _describe(obj: Any) -> str:
    try:
        prefix = obj.logPrefix()
    except Exception:
        prefix = None
    return f"{prefix} ({obj!r})" if prefix else repr(obj)


class DelayedCall:
    """A call scheduled with ``callLater``: ``cancel``, ``reset``, ``delay``, ``active``,
    ``getTime``. ``called`` and ``cancelled`` say what became of it."""

    __slots__ = ("time", "func", "args", "kw", "called", "cancelled", "_owner", "_entry")

    def __init__(self, time: float, func: Callable[..., Any], args: tuple[Any, ...],
                 kw: dict[str, Any], owner: Any) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self.called = False
        self.cancelled = False
        self._owner = owner
        # The reactor's heap entry [time, seq, call] for this call, or None.
        self._entry: list[Any] | None = None

    def getTime(self) -> float:
        """When the call is due, on its clock's ``seconds()`` scale."""
        return self.time

    def _check_active(self) -> None:
        if self.cancelled:
            raise error.AlreadyCancelled(f"{self!r} was already cancelled")
        if self.called:
            raise error.AlreadyCalled(f"{self!r} was already called")

    def cancel(self) -> None:
        """Unschedule the call. Raises ``AlreadyCalled``/``AlreadyCancelled`` if it is not active."""
        if self.called or self.cancelled:
            self._check_active()
        self.cancelled = True
        entry = self._entry
        if entry is not None:
            entry[2] = None
            self._entry = None
        # Its heap entry is now stale and left in place (the reactor compacts lazily); a
        # Clock sets _compact_at to -1 to remove the call at once.
        owner = self._owner
        owner._stale += 1
        if owner._stale > owner._compact_at:
            owner._cancel_call(self)

    def reset(self, secondsFromNow: float) -> None:
        """Reschedule the call to run ``secondsFromNow`` seconds from now."""
        self._check_active()
        if not 0 <= secondsFromNow < _INF:
            raise ValueError(f"reset() needs a finite delay >= 0, got {secondsFromNow!r}")
        self.time = self._owner.seconds() + secondsFromNow
        self._owner._move_call(self)

    def delay(self, secondsLater: float) -> None:
        """Move the call ``secondsLater`` seconds later (earlier if negative)."""
        self._check_active()
        if not -_INF < secondsLater < _INF:
            raise ValueError(f"delay() needs a finite number of seconds, got {secondsLater!r}")
        self.time += secondsLater
        self._owner._move_call(self)

    def active(self) -> bool:
        """True until the call has run or been cancelled."""
        return not (self.called or self.cancelled)

    def __repr__(self) -> str:
        state = "called" if self.called else "cancelled" if self.cancelled else "active"
        func = getattr(self.func, "__qualname__", None) or repr(self.func)
        return f"<DelayedCall {func} at {self.time:.6f} ({state})>"


class _Waker:
    """The reactor's own readable descriptor: other threads (and signal handlers) write to it
    to end a blocking ``poll`` at once. An eventfd on Linux, a pipe elsewhere."""

    __slots__ = ("_rfd", "_wfd", "_reactor", "_eventfd")

    def __init__(self, reactor: Reactor) -> None:
        self._reactor = reactor
        eventfd = getattr(os, "eventfd", None)
        if eventfd is not None:
            fd = eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._rfd = self._wfd = fd
            self._eventfd = True
        else:
            self._rfd, self._wfd = os.pipe()
            os.set_blocking(self._rfd, False)
            os.set_blocking(self._wfd, False)
            self._eventfd = False

    def fileno(self) -> int:
        return self._rfd

    def wake(self) -> None:
        try:
            if self._eventfd:
                os.eventfd_write(self._wfd, 1)
            else:
                os.write(self._wfd, b"\0")
        except (BlockingIOError, OSError):
            # Already full (so the reactor will wake anyway) or closed during shutdown.
            pass

    def doRead(self) -> None:
        # Drain first, then clear the flag: a thread that sees the flag still set in between
        # skips its write, but its call is already queued and the loop looks at the queue
        # before it sleeps again. (Clearing first could swallow that thread's write and leave
        # the flag set with nothing left to wake the loop.)
        try:
            if self._eventfd:
                os.eventfd_read(self._rfd)
            else:
                while os.read(self._rfd, 4096):
                    pass
        except (BlockingIOError, OSError):
            pass
        self._reactor._wake_pending = False

    def doWrite(self) -> None:  # never registered for writing
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "waker"

    def close(self) -> None:
        for fd in {self._rfd, self._wfd}:
            try:
                os.close(fd)
            except OSError:
                pass


class _Event:
    """The triggers of one system event (startup, shutdown, ...), by phase."""

    __slots__ = ("before", "during", "after", "firing")

    def __init__(self) -> None:
        self.before: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.during: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.after: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        # A fresh token while firing, None otherwise; a firing abandoned by the end of run()
        # gets a new token (or None), so its late 'before' Deferreds are ignored.
        self.firing: object | None = None


class Reactor:
    """An event loop over one ``Multiplexer`` backend.

    ``Reactor(multiplexer, backend_name)`` builds a private reactor; most programs use the
    process-wide one, ``from framework import reactor``.
    """

    #: Seconds ``stop()`` waits for busy worker threads before giving up on them (and logging).
    thread_shutdown_timeout: float = 5.0

    def __init__(self, multiplexer: Multiplexer, backend_name: str) -> None:
        self.backend_name = backend_name
        self.running = False
        self._mux = multiplexer
        # Readiness registry: fd -> handler for dispatch, handler -> fd for removal.
        self._rfds: dict[int, Any] = {}
        self._wfds: dict[int, Any] = {}
        self._readers: dict[Any, int] = {}
        self._writers: dict[Any, int] = {}
        self._masks: dict[int, int] = {}
        # Timers: a heap of [time, seq, DelayedCall]; cancelled or moved calls leave stale
        # entries behind (lazy deletion), counted in _stale and compacted when they dominate.
        self._timers: list[list[Any]] = []
        self._counter = count()
        self._stale = 0
        self._compact_at = sys.maxsize  # see DelayedCall.cancel: the reactor compacts lazily
        # Calls handed over by callFromThread, run at the top of each loop turn.
        self._thread_calls: deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self._wake_pending = False
        self._events: dict[str, _Event] = {}
        self._started = False       # the loop is turning
        self._stopped = True        # stop() has been called, or run() has not
        self._just_stopped = False  # stop() was called; fire shutdown at the next turn
        self._loop_thread: int | None = None
        # The thread that ran the loop last (the object, not its id: ids are reused).
        self._last_loop_thread: threading.Thread | None = None
        self._slow: float | None = None
        self._pool: ThreadPool | None = None
        self._pool_size = 10
        self._name_resolver: Callable[..., Any] = socket.getaddrinfo
        self._closed = False
        # fileno() is optional in the backend contract; -1 means no kernel-side interest set.
        fileno = getattr(multiplexer, "fileno", None)
        self._preen_every = None if fileno is not None and fileno() == -1 else _PREEN_INTERVAL
        self._next_preen = 0.0
        self._waker = _Waker(self)
        # Set in a forked child (see _after_fork_in_child): this reactor belongs to the parent.
        self._forked_from: int | None = None
        _all_reactors.add(self)
        self._rfds[self._waker.fileno()] = self._waker
        self._update(self._waker.fileno())

    def __repr__(self) -> str:
        state = "running" if self._started else "closed" if self._closed else "idle"
        return f"<Reactor backend={self.backend_name!r} {state}>"

    # -- time ---------------------------------------------------------------------------------

    @property
    def multiplexer(self) -> Multiplexer:
        """The backend this reactor waits on (read-only)."""
        return self._mux

    def seconds(self) -> float:
        """The reactor's clock: ``time.monotonic()``, in seconds."""
        return _monotonic()

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Call ``callable(*args, **kw)`` ``delay`` seconds from now; returns a ``DelayedCall``.

        Calls due at the same time run in the order they were scheduled.
        """
        if not 0 <= delay < _INF:  # NaN, negative and infinite delays fail here, not in the loop
            raise ValueError(f"callLater() needs a finite delay >= 0, got {delay!r}")
        if not _is_callable(callable):
            raise TypeError(f"callLater() needs a callable, not {callable!r}")
        if self._stale > _MIN_STALE_TO_COMPACT:
            self._compact()
        seq = next(self._counter)
        when = _monotonic() + delay
        call = DelayedCall(when, callable, args, kw, self)
        call._entry = entry = [when, seq, call]
        heappush(self._timers, entry)
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:
        """The scheduled calls that have neither run nor been cancelled."""
        return [entry[2] for entry in self._timers if entry[2] is not None]

    def _compact(self) -> None:
        """Drop the stale entries if they are more than half of the heap. Called when timers
        are added and once per loop turn, so cancelled calls never make the heap grow."""
        heap = self._timers
        if self._stale * 2 > len(heap):
            if self._stale == len(heap):
                heap.clear()
            else:
                heap[:] = [entry for entry in heap if entry[2] is not None]
                heapify(heap)
            self._stale = 0

    def _move_call(self, call: DelayedCall) -> None:
        old = call._entry
        if old is not None:
            old[2] = None  # now stale
        self._stale += 1
        if self._stale > _MIN_STALE_TO_COMPACT:
            self._compact()
        call._entry = entry = [call.time, next(self._counter), call]
        heappush(self._timers, entry)

    def _run_timers(self, now: float) -> None:
        heap = self._timers
        # Calls scheduled while these run (even with delay 0) wait for the next turn.
        limit = next(self._counter)
        while heap:
            when, seq, call = heap[0]
            if when > now or seq > limit:
                break
            heappop(heap)
            if call is None:
                self._stale -= 1
                continue
            call._entry = None
            call.called = True
            try:
                call.func(*call.args, **call.kw)
            except Exception:
                logger.error("Unhandled error in delayed call %r", call, exc_info=True)

    def _run_timers_timed(self, now: float) -> None:
        heap = self._timers
        limit = next(self._counter)
        threshold = self._slow or 0.0
        while heap:
            when, seq, call = heap[0]
            if when > now or seq > limit:
                break
            heappop(heap)
            if call is None:
                self._stale -= 1
                continue
            call._entry = None
            call.called = True
            started = _perf_counter()
            try:
                call.func(*call.args, **call.kw)
            except Exception:
                logger.error("Unhandled error in delayed call %r", call, exc_info=True)
            took = _perf_counter() - started
            if took > threshold:
                self._log_slow(f"delayed call {call.func!r}", took)

    def set_slow_callback_threshold(self, seconds: float | None) -> None:
        """Log a WARNING for each handler, timer or thread hand-off call that runs longer than
        ``seconds``; ``None`` (the default) turns detection off and dispatch pays nothing."""
        if seconds is not None and not seconds >= 0:
            raise ValueError(f"slow-callback threshold must be >= 0 or None, got {seconds!r}")
        self._slow = seconds

    def _log_slow(self, what: str, took: float) -> None:
        logger.warning("Slow callback: %s took %.3f s (threshold %.3f s)", what, took, self._slow)

    # -- threads ------------------------------------------------------------------------------

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``callable(*args, **kw)`` in the reactor thread, soon. Safe from any thread,
        and before ``run()`` (the call waits for the loop)."""
        if not _is_callable(callable):
            raise TypeError(f"callFromThread() needs a callable, not {callable!r}")
        self._thread_calls.append((callable, args, kw))
        if not self._wake_pending and self._loop_thread != _get_ident():
            self._wake_pending = True
            self._waker.wake()

    def _run_thread_calls(self) -> None:
        calls = self._thread_calls
        popleft = calls.popleft
        # Only the calls queued so far: later ones wait a turn, so timers and I/O still run.
        for _ in range(len(calls)):
            func, args, kw = popleft()
            try:
                func(*args, **kw)
            except Exception:
                logger.error("Unhandled error in call from thread %r", func, exc_info=True)

    def _run_thread_calls_timed(self) -> None:
        calls = self._thread_calls
        popleft = calls.popleft
        threshold = self._slow or 0.0
        for _ in range(len(calls)):
            func, args, kw = popleft()
            started = _perf_counter()
            try:
                func(*args, **kw)
            except Exception:
                logger.error("Unhandled error in call from thread %r", func, exc_info=True)
            took = _perf_counter() - started
            if took > threshold:
                self._log_slow(f"call from thread {func!r}", took)

    def getThreadPool(self) -> ThreadPool:
        """The reactor's pool of worker threads (created on first use)."""
        pool = self._pool
        if pool is None:
            self._check_open()
            from framework.threads import ThreadPool

            pool = self._pool = ThreadPool(0, self._pool_size, name=f"reactor-{self.backend_name}")
            pool.start()
        return pool

    def callInThread(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``callable(*args, **kw)`` in a worker thread of the reactor's pool."""
        self.getThreadPool().callInThread(callable, *args, **kw)

    def suggestThreadPoolSize(self, size: int) -> None:
        """Let the thread pool grow to ``size`` workers."""
        if size < 1:
            raise ValueError(f"thread pool size must be >= 1, got {size!r}")
        self._pool_size = size
        if self._pool is not None:
            self._pool.adjustPoolsize(maxthreads=size)

    def _stop_thread_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop(timeout=self.thread_shutdown_timeout)

    def resolve(self, name: str, timeout: Any = None) -> Deferred:
        """Look ``name`` up in a worker thread; a Deferred firing with its (IPv4, else IPv6)
        address, or failing with ``DNSLookupError``. Numeric addresses are answered at once."""
        from framework import defer

        if not isinstance(name, str) or not name:
            return defer.fail(error.DNSLookupError(f"not a host name: {name!r}"))
        if isIPAddress(name) or isIPv6Address(name):
            return defer.succeed(name)
        from framework.threads import deferToThreadPool

        return deferToThreadPool(self, self.getThreadPool(), _lookup, self.getaddrinfo, name)

    def set_name_resolver(self, getaddrinfo: Callable[..., Any] | None) -> Callable[..., Any]:
        """Replace the blocking lookup behind ``resolve`` and ``connectTCP`` to host names.

        ``getaddrinfo`` has ``socket.getaddrinfo``'s signature and is called in a worker
        thread; ``None`` restores the system resolver. Returns the previous one. Useful for a
        custom resolver, and for tests that must not send DNS queries.
        """
        previous, self._name_resolver = self._name_resolver, getaddrinfo or socket.getaddrinfo
        return previous

    def getaddrinfo(self, host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                    flags: int = 0) -> list[Any]:
        """The installed name resolver (``socket.getaddrinfo`` by default). Blocking: call it
        only from a worker thread."""
        return self._name_resolver(host, port, family, type, proto, flags)  # type: ignore[no-any-return]

    # -- readiness ----------------------------------------------------------------------------

    def _update(self, fd: int) -> None:
        """Tell the multiplexer what is now wanted for ``fd``."""
        new = (POLLIN if fd in self._rfds else 0) | (POLLOUT if fd in self._wfds else 0)
        masks = self._masks
        old = masks.get(fd, 0)
        if new == old:
            return
        mux = self._mux
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

    def _add(self, handler: Any, registry: dict[Any, int], fds: dict[int, Any], what: str) -> None:
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
            self._update(current)
        other = fds.get(fd)
        if other is not None:
            if other is self._waker or self._claims(other, fd):
                raise ValueError(f"cannot {what} {handler!r}: fd {fd} is already watched for "
                                 f"the same events by {other!r}")
            # The other handler's fd was closed behind our back and the number reused.
            self._disconnect(other, _fdesc_went_away())
        fds[fd] = handler
        registry[handler] = fd
        try:
            self._update(fd)
        except BaseException:
            del fds[fd]
            del registry[handler]
            raise

    @staticmethod
    def _claims(handler: Any, fd: int) -> bool:
        try:
            return bool(handler.fileno() == fd)
        except Exception:
            return False

    def _remove(self, handler: Any, registry: dict[Any, int], fds: dict[int, Any]) -> None:
        fd = registry.pop(handler, None)
        if fd is None:
            return
        if fds.get(fd) is handler:
            del fds[fd]
        self._update(fd)

    def addReader(self, reader: Any) -> None:
        """Call ``reader.doRead()`` whenever its ``fileno()`` is readable."""
        self._add(reader, self._readers, self._rfds, "addReader")

    def addWriter(self, writer: Any) -> None:
        """Call ``writer.doWrite()`` whenever its ``fileno()`` is writable."""
        self._add(writer, self._writers, self._wfds, "addWriter")

    def removeReader(self, reader: Any) -> None:
        """Stop watching ``reader``; a no-op if it is not watched."""
        self._remove(reader, self._readers, self._rfds)

    def removeWriter(self, writer: Any) -> None:
        """Stop watching ``writer``; a no-op if it is not watched."""
        self._remove(writer, self._writers, self._wfds)

    def removeAll(self) -> list[Any]:
        """Stop watching every reader and writer; returns them (each once)."""
        handlers = list(dict.fromkeys([*self._readers, *self._writers]))
        for handler in handlers:
            self.removeReader(handler)
            self.removeWriter(handler)
        return handlers

    def getReaders(self) -> list[Any]:
        return list(self._readers)

    def getWriters(self) -> list[Any]:
        return list(self._writers)

    def _disconnect(self, handler: Any, why: Any) -> None:
        """Drop ``handler`` (both directions) and tell it, once, with a Failure."""
        self._remove(handler, self._readers, self._rfds)
        self._remove(handler, self._writers, self._wfds)
        if isinstance(why, Failure):
            reason = why
        elif isinstance(why, BaseException):
            reason = Failure(why)
        else:
            reason = Failure(error.ConnectionDone(f"handler returned {why!r}"))
        try:
            handler.connectionLost(reason)
        except Exception:
            logger.error("Error in connectionLost of %s", _describe(handler), exc_info=True)

    def _handler_failed(self, handler: Any, method: str) -> Failure:
        reason = Failure()
        logger.error("Unhandled error in %s of %s; dropping it", method, _describe(handler),
                     exc_info=(reason.type, reason.value, reason.tb))
        return reason

    def _invalid_fd(self, fd: int) -> None:
        """POLLNVAL: ``fd`` was closed behind the reactor's back."""
        found = False
        for fds in (self._rfds, self._wfds):
            handler = fds.get(fd)
            if handler is not None and handler is not self._waker:
                found = True
                self._disconnect(handler, _fdesc_went_away())
        if not found and fd in self._masks:
            del self._masks[fd]
            try:
                self._mux.unregister(fd)
            except (OSError, ValueError, KeyError):
                pass

    def _preen(self, check_os: bool) -> bool:
        """Drop every descriptor whose fileno() changed or became -1 (or, with ``check_os``,
        whose fd the OS no longer knows). Returns whether any was dropped."""
        bad = []
        for registry in (self._readers, self._writers):
            for handler, fd in registry.items():
                if not self._claims(handler, fd):
                    bad.append(handler)
                elif check_os:
                    try:
                        os.fstat(fd)
                    except OSError:
                        bad.append(handler)
        for handler in dict.fromkeys(bad):
            self._disconnect(handler, _fdesc_went_away())
        return bool(bad)

    def _poll_failed(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and exc.errno not in (errno.EBADF, errno.EINVAL):
            raise exc
        if not self._preen(check_os=True):
            raise exc

    def _dispatch(self, events: Iterable[tuple[int, int]]) -> None:
        rget = self._rfds.get
        pollin = POLLIN
        for fd, ev in events:
            if ev != pollin:
                self._dispatch_other(fd, ev)
                continue
            # The common case, inline: readable and nothing else.
            handler = rget(fd)
            if handler is not None:
                try:
                    why = handler.doRead()
                except Exception:
                    why = self._handler_failed(handler, "doRead")
                if why:
                    self._disconnect(handler, why)

    def _dispatch_other(self, fd: int, ev: int) -> None:
        """An event that is not a plain read: invalid, hang-up/error, writable, or several."""
        if ev & POLLNVAL:
            self._invalid_fd(fd)
            return
        if ev & _READ_EVENTS and self._call_handler(self._rfds.get(fd), "doRead"):
            return  # disconnected by doRead: no doWrite
        if ev & _WRITE_EVENTS:
            self._call_handler(self._wfds.get(fd), "doWrite")

    def _call_handler(self, handler: Any, method: str) -> bool:
        """Run ``handler.<method>()``; True if that disconnected it."""
        if handler is None:
            return False
        try:
            why = getattr(handler, method)()
        except Exception:
            why = self._handler_failed(handler, method)
        if why:
            self._disconnect(handler, why)
            return True
        return False

    def _dispatch_timed(self, events: Iterable[tuple[int, int]]) -> None:
        rget = self._rfds.get
        wget = self._wfds.get
        threshold = self._slow or 0.0
        for fd, ev in events:
            if ev & POLLNVAL:
                self._invalid_fd(fd)
                continue
            for mask, get, method in ((_READ_EVENTS, rget, "doRead"), (_WRITE_EVENTS, wget, "doWrite")):
                if not ev & mask:
                    continue
                handler = get(fd)
                if handler is None:
                    continue
                started = _perf_counter()
                try:
                    why = getattr(handler, method)()
                except Exception:
                    why = self._handler_failed(handler, method)
                took = _perf_counter() - started
                if took > threshold:
                    self._log_slow(f"{method} of {_describe(handler)}", took)
                if why:
                    self._disconnect(handler, why)
                    break

    # -- the loop -----------------------------------------------------------------------------

    def _run_once(self, max_timeout: float | None) -> None:
        """One turn: thread hand-offs, due timers, pending shutdown, poll, dispatch."""
        heap = self._timers
        calls = self._thread_calls
        slow = self._slow
        if calls:
            if slow is None:
                self._run_thread_calls()
            else:
                self._run_thread_calls_timed()
        if heap:
            if self._stale > _MIN_STALE_TO_COMPACT:
                self._compact()
            now = _monotonic()
            if heap and heap[0][0] <= now:
                if slow is None:
                    self._run_timers(now)
                else:
                    self._run_timers_timed(now)
        if self._just_stopped:
            self._just_stopped = False
            self.fireSystemEvent("shutdown")
        if max_timeout is None and not self._started:
            return
        if calls:
            timeout: float | None = 0.0
        elif heap:
            while heap and heap[0][2] is None:
                heappop(heap)
                self._stale -= 1
            if heap:
                timeout = heap[0][0] - _monotonic()
                if timeout < 0.0:
                    timeout = 0.0
            else:
                timeout = None
        else:
            timeout = None
        if max_timeout is not None and (timeout is None or timeout > max_timeout):
            timeout = max_timeout
        if timeout is not None and timeout > MAX_WAIT:
            timeout = MAX_WAIT  # a far timer is legal; poll()/select() reject such waits
        if self._preen_every is not None and (self._readers or self._writers):
            timeout = self._maybe_preen(timeout)
        try:
            events = self._mux.poll(timeout)
        except InterruptedError:
            return
        except (OSError, ValueError) as exc:
            self._poll_failed(exc)
            return
        if events:
            if slow is None:
                self._dispatch(events)
            else:
                self._dispatch_timed(events)

    def _maybe_preen(self, timeout: float | None) -> float | None:
        now = _monotonic()
        if now >= self._next_preen:
            if self._next_preen:
                self._preen(check_os=True)
            self._next_preen = now + (self._preen_every or _PREEN_INTERVAL)
        until = self._next_preen - now
        return until if timeout is None or timeout > until else timeout

    def iterate(self, delay: float = 0.0) -> None:
        """Run one turn of the loop, waiting at most ``delay`` seconds for events."""
        self._check_open()
        self._run_once(max(0.0, delay))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._forked_from is not None:
            raise error.ReactorForkedError(_forked_message(self))

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run the loop until ``stop()`` (or ``crash()``). May be called again afterwards.

        With ``installSignalHandlers`` (and in the main thread), SIGINT and SIGTERM stop the
        reactor cleanly, SIGPIPE is ignored, and the previous handlers are put back on return.
        """
        self._check_open()
        if self._started:
            raise error.ReactorAlreadyRunning(f"{self!r} is already running")
        self._started = True
        self._stopped = False
        self._just_stopped = False
        self._loop_thread = _get_ident()
        self._last_loop_thread = threading.current_thread()
        saved = self._install_signal_handlers() if installSignalHandlers else None
        try:
            self.fireSystemEvent("startup")
            run_once = self._run_once
            while self._started:
                run_once(None)
        finally:
            self._started = False
            self.running = False
            self._stopped = True
            self._just_stopped = False
            self._loop_thread = None
            # A startup or shutdown left waiting on a Deferred by crash() is abandoned.
            for name in ("startup", "shutdown"):
                event = self._events.get(name)
                if event is not None:
                    event.firing = None
            if saved:
                for signum, handler in saved.items():
                    signal.signal(signum, handler)

    def stop(self) -> None:
        """Stop the loop after running the shutdown triggers ('before' ones may return Deferreds
        that delay it). Raises ``ReactorNotRunning`` if not running or already stopping."""
        if self._stopped:
            raise error.ReactorNotRunning("Can't stop a reactor that isn't running.")
        self._stopped = True
        self._just_stopped = True
        if self._loop_thread != _get_ident():
            self._waker.wake()

    def crash(self) -> None:
        """Stop the loop at once, without the shutdown triggers."""
        if not self._started:
            raise error.ReactorNotRunning("Can't crash a reactor that isn't running.")
        self._started = False
        self.running = False

    def close(self) -> None:
        """Release the reactor's resources: its worker threads, its waker and the multiplexer.
        Registered descriptors are dropped from it (their sockets are left alone)."""
        if self._started:
            raise RuntimeError(f"cannot close {self!r} while it is running")
        if self._closed:
            return
        # Closed first: a worker that hands more work over while the pool stops gets an error
        # instead of starting a new pool.
        self._closed = True
        self._stop_thread_pool()
        self.removeAll()
        waker_fd = self._waker.fileno()
        self._rfds.pop(waker_fd, None)
        self._update(waker_fd)
        self._waker.close()
        self._mux.close()

    # -- signals ------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        saved: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            saved[signum] = signal.SIG_DFL if previous is None else previous
            signal.signal(signum, self._on_signal)
        if hasattr(signal, "SIGPIPE"):
            previous = signal.getsignal(signal.SIGPIPE)
            saved[signal.SIGPIPE] = signal.SIG_DFL if previous is None else previous
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        return saved

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Runs in the main thread between bytecodes, possibly while poll() is being retried
        # after EINTR: queue the work and always write to the waker so poll returns at once.
        self._thread_calls.append((self._signal_received, (signum,), {}))
        self._wake_pending = True
        self._waker.wake()

    def _signal_received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._stopped:
            logger.info("Received %s, shutting down.", name)
            self.stop()
        elif self._started:
            logger.warning("Received %s again while shutting down; stopping at once.", name)
            self.crash()

    # -- system events ------------------------------------------------------------------------

    def addSystemEventTrigger(self, phase: str, eventType: str, callable: Callable[..., Any],
                              *args: Any, **kw: Any) -> tuple[str, str, Any]:
        """Call ``callable`` in ``phase`` ('before', 'during' or 'after') of ``eventType``
        ('startup', 'shutdown' or any other name). Returns an id for
        ``removeSystemEventTrigger``. Triggers run once."""
        if phase not in _PHASES:
            raise KeyError(f"invalid phase {phase!r}: use 'before', 'during' or 'after'")
        if not _is_callable(callable):
            raise TypeError(f"trigger must be callable, not {callable!r}")
        event = self._events.get(eventType)
        if event is None:
            event = self._events[eventType] = _Event()
        entry = (callable, args, kw)
        getattr(event, phase).append(entry)
        return (eventType, phase, entry)

    def removeSystemEventTrigger(self, triggerID: tuple[str, str, Any]) -> None:
        """Remove a trigger added by ``addSystemEventTrigger``; ValueError if unknown."""
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

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> tuple[str, str, Any] | None:
        """Call ``callable`` now if the reactor is running, else once it has started."""
        if self.running:
            callable(*args, **kw)
            return None
        return self.addSystemEventTrigger("after", "startup", callable, *args, **kw)

    def fireSystemEvent(self, eventType: str) -> None:
        """Run the triggers of ``eventType``: 'before' ones (waiting for any Deferreds they
        return), then 'during', then 'after'. Firing 'shutdown' stops the loop."""
        event = self._events.get(eventType)
        if event is None:
            event = self._events[eventType] = _Event()
        if event.firing is not None:
            return
        token = event.firing = object()
        pending: list[Any] = []
        while event.before:
            func, args, kw = event.before.pop(0)
            try:
                result = func(*args, **kw)
            except Exception:
                logger.error("Error in 'before' %s trigger %r", eventType, func, exc_info=True)
                continue
            if result is not None and _is_deferred(result):
                pending.append(result)
        if not pending:
            self._continue_firing(eventType, event)
            return
        remaining = [len(pending)]

        def one_done(result: Any) -> None:
            if isinstance(result, Failure):
                logger.error("'before' %s trigger failed:\n%s", eventType, result.getTraceback())
            remaining[0] -= 1
            if remaining[0] == 0 and event.firing is token:
                self._continue_firing(eventType, event)

        for d in pending:
            d.addBoth(one_done)

    def _continue_firing(self, eventType: str, event: _Event) -> None:
        if eventType == "startup":
            self.running = self._started
        elif eventType == "shutdown":
            self._started = False
            self.running = False
        try:
            while event.during:
                func, args, kw = event.during.pop(0)
                try:
                    func(*args, **kw)
                except Exception:
                    logger.error("Error in 'during' %s trigger %r", eventType, func, exc_info=True)
            if eventType == "shutdown":
                self._stop_thread_pool()
            while event.after:
                func, args, kw = event.after.pop(0)
                try:
                    func(*args, **kw)
                except Exception:
                    logger.error("Error in 'after' %s trigger %r", eventType, func, exc_info=True)
        finally:
            event.firing = None

    # -- transports (implemented in framework.tcp, .unix, .udp) ----------------------------------

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        self._check_open()
        from framework import tcp

        return tcp.listenTCP(self, port, factory, backlog, interface)

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,
                   bindAddress: Any = None) -> Any:
        self._check_open()
        from framework import tcp

        return tcp.connectTCP(self, host, port, factory, timeout, bindAddress)

    def listenSSL(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
                  interface: str = "") -> Any:
        self._check_open()
        from framework import tls

        return tls.listenSSL(self, port, factory, contextFactory, backlog, interface)

    def connectSSL(self, host: str, port: int, factory: Any, contextFactory: Any,
                   timeout: float = 30, bindAddress: Any = None) -> Any:
        self._check_open()
        from framework import tls

        return tls.connectSSL(self, host, port, factory, contextFactory, timeout, bindAddress)

    def listenUNIX(self, address: str | bytes, factory: Any, backlog: int = 50, mode: int = 0o666,
                   wantPID: bool = False) -> Any:
        self._check_open()
        from framework import unix

        return unix.listenUNIX(self, address, factory, backlog, mode, wantPID)

    def connectUNIX(self, address: str | bytes, factory: Any, timeout: float | None = 30, checkPID: bool = False) -> Any:
        self._check_open()
        from framework import unix

        return unix.connectUNIX(self, address, factory, timeout, checkPID)

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> Any:
        self._check_open()
        from framework import udp

        return udp.listenUDP(self, port, protocol, interface, maxPacketSize)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> Any:
        """Listen on an already listening stream socket (duplicated; close your own copy)."""
        self._check_open()
        from framework import systemd

        return systemd.adoptStreamPort(self, fileDescriptor, addressFamily, factory)

    def spawnProcess(self, processProtocol: Any, executable: str | bytes, args: Any = (),
                     env: Any = None, path: str | None = None, uid: int | None = None,
                     gid: int | None = None, usePTY: bool = False, childFDs: Any = None) -> Any:
        """Start a child process talking to ``processProtocol`` (see ``framework.process``).
        ``args`` is the whole argv (program name first); ``env`` the child's whole environment
        (``None``/``{}``: empty, never inherited)."""
        self._check_open()
        from framework import process

        return process.spawnProcess(self, processProtocol, executable, args, env, path, uid, gid,
                                    usePTY, childFDs)


def _is_deferred(obj: Any) -> bool:
    from framework.defer import Deferred

    return isinstance(obj, Deferred)


def _lookup(getaddrinfo: Callable[..., Any], name: str) -> str:
    try:
        infos = getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise error.DNSLookupError(f"address {name!r} not found: {e}") from e
    for family, _type, _proto, _canon, sockaddr in infos:
        if family == socket.AF_INET:
            return str(sockaddr[0])
    if not infos:
        raise error.DNSLookupError(f"address {name!r} not found")
    return str(infos[0][4][0])


# -- fork safety ----------------------------------------------------------------------------------

_all_reactors: "weakref.WeakSet[Reactor]" = weakref.WeakSet()


def _forked_message(reactor: Reactor) -> str:
    return (f"{reactor!r} was created in process {reactor._forked_from} and cannot be used in "
            f"the forked child {os.getpid()}: its descriptors and multiplexer are shared with "
            f"the parent; build a new reactor in the child (after fork, before any use)")


class _ForkedMultiplexer:
    """Replaces a reactor's multiplexer in a forked child: registering anything raises, and
    nothing the child does reaches the parent's kernel-side interest set (epoll/kqueue)."""

    def __init__(self, reactor: Reactor, original: Any) -> None:
        self._reactor = reactor
        self._original = original

    def _refuse(self, *args: Any) -> Any:
        raise error.ReactorForkedError(_forked_message(self._reactor))

    register = modify = poll = _refuse

    def unregister(self, fd: int) -> None:
        """Nothing to undo in the child (the interest set is the parent's)."""

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        # Nothing: a backend's own close() may unregister descriptors, which would reach the
        # parent's interest set. The child's copy of the descriptor goes with the process.
        pass


def _after_fork_in_child() -> None:
    parent = os.getppid()
    for reactor in list(_all_reactors):
        if reactor._forked_from is None and not reactor._closed:
            reactor._forked_from = parent
            reactor._mux = _ForkedMultiplexer(reactor, reactor._mux)  # type: ignore[assignment]
            # The parent's worker threads do not exist here: queueing work for them would wait
            # forever, so the pool goes and getThreadPool() raises ReactorForkedError.
            reactor._pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
