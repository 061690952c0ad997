"""The backend-agnostic reactor: ``Reactor`` composes the owners of its concerns and runs the loop.

A ``Reactor`` drives one ``Multiplexer`` (a backend plugin: select, poll, epoll, ...). Each turn
of its loop runs the calls handed over from other threads, then the timers that are due, then
asks the descriptor registry to wait (``Multiplexer.poll``) until a descriptor is ready, the
next timer is due or another thread (or a signal) wakes it, and hands the events back to it
for ``doRead``/``doWrite``.

The owners, one module each:

- ``framework.timers``: ``DelayedCall`` and the timer heap;
- ``framework.threadcalls``: the cross-thread call queue and the waker;
- ``framework.descriptors``: the descriptor registry and readiness dispatch (owns the backend);
- ``framework.sysevents``: system-event triggers;
- ``framework.signals``: signal handlers run on the reactor thread;
- ``framework.slowcalls``: the slow-callback detector, one measurement for every handler kind;
- ``framework.frontdoor`` (a mixin): ``listenTCP`` & co. and name resolution;
- ``framework.threads.ReactorThreadPool`` (a mixin): the worker-thread pool.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import weakref
from time import monotonic as _monotonic
from typing import Any, Callable

from framework import error
from framework.descriptors import Descriptors
from framework.frontdoor import FrontDoor
from framework.interfaces import Multiplexer
from framework.signals import Signals, signal_name
from framework.slowcalls import SlowCallbacks
from framework.sysevents import SystemEvents
from framework.threadcalls import ThreadCalls
from framework.threads import ReactorThreadPool
from framework.timers import MAX_WAIT, DelayedCall, Timers

__all__ = ["MAX_WAIT", "DelayedCall", "Reactor"]

logger = logging.getLogger("framework.eventloop")

_get_ident = threading.get_ident


class Reactor(FrontDoor, ReactorThreadPool):
    """An event loop over one ``Multiplexer`` backend.

    ``Reactor(multiplexer, backend_name)`` builds a private reactor; most programs use the
    process-wide one, ``from framework import reactor``.
    """

    #: Seconds ``stop()`` waits for busy worker threads before giving up on them (and logging).
    thread_shutdown_timeout: float = 5.0

    def __init__(self, multiplexer: Multiplexer, backend_name: str) -> None:
        self.backend_name = backend_name
        self.running = False
        self._io = Descriptors(multiplexer)
        self._timers = Timers()
        self._calls = ThreadCalls()
        self._signals = Signals(self._calls, self._io)
        self._events = SystemEvents(self._event_phase)
        self._slow: SlowCallbacks | None = None
        self._started = False       # the loop is turning
        self._stopped = True        # stop() has been called, or run() has not
        self._just_stopped = False  # stop() was called; fire shutdown at the next turn
        # The thread that ran the loop last (the object, not its id: ids are reused).
        self._last_loop_thread: threading.Thread | None = None
        self._pool = None
        self._name_resolver: Callable[..., Any] = socket.getaddrinfo
        self._closed = False
        # Set in a forked child (see _after_fork_in_child): this reactor belongs to the parent.
        self._forked_from: int | None = None
        _all_reactors.add(self)
        self._io.watch_internal(self._calls.waker)

    def __repr__(self) -> str:
        state = "running" if self._started else "closed" if self._closed else "idle"
        return f"<Reactor backend={self.backend_name!r} {state}>"

    @property
    def multiplexer(self) -> Multiplexer:
        """The backend this reactor waits on (read-only)."""
        return self._io.mux

    # The owners' state under the names the reactor used before it was split (tests use them).
    _mux = property(lambda self: self._io.mux, lambda self, mux: setattr(self._io, "mux", mux))
    _rfds = property(lambda self: self._io.rfds)
    _masks = property(lambda self: self._io.masks)
    _loop_thread = property(lambda self: self._calls.loop_thread)

    # -- time ---------------------------------------------------------------------------------

    def seconds(self) -> float:
        """The reactor's clock: ``time.monotonic()``, in seconds."""
        return _monotonic()

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Call ``callable(*args, **kw)`` ``delay`` seconds from now; returns a ``DelayedCall``.
        Calls due at the same time run in the order they were scheduled."""
        return self._timers.callLater(delay, callable, args, kw)

    def getDelayedCalls(self) -> list[DelayedCall]:
        """The scheduled calls that have neither run nor been cancelled."""
        return self._timers.getDelayedCalls()

    def set_slow_callback_threshold(self, seconds: float | None) -> None:
        """Log a WARNING for each handler, timer, thread hand-off or signal handler that runs
        longer than ``seconds``; ``None`` (the default) turns detection off and dispatch pays
        nothing."""
        if seconds is not None and not seconds >= 0:
            raise ValueError(f"slow-callback threshold must be >= 0 or None, got {seconds!r}")
        self._slow = None if seconds is None else SlowCallbacks(seconds)

    # -- threads ------------------------------------------------------------------------------

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``callable(*args, **kw)`` in the reactor thread, soon. Safe from any thread,
        and before ``run()`` (the call waits for the loop)."""
        self._calls.push(callable, args, kw)

    # -- readiness ----------------------------------------------------------------------------

    def addReader(self, reader: Any) -> None:
        """Call ``reader.doRead()`` whenever its ``fileno()`` is readable."""
        io = self._io
        io.add(reader, io.readers, io.rfds, "addReader")

    def addWriter(self, writer: Any) -> None:
        """Call ``writer.doWrite()`` whenever its ``fileno()`` is writable."""
        io = self._io
        io.add(writer, io.writers, io.wfds, "addWriter")

    def removeReader(self, reader: Any) -> None:
        """Stop watching ``reader``; a no-op if it is not watched."""
        io = self._io
        io.remove(reader, io.readers, io.rfds)

    def removeWriter(self, writer: Any) -> None:
        """Stop watching ``writer``; a no-op if it is not watched."""
        io = self._io
        io.remove(writer, io.writers, io.wfds)

    def removeAll(self) -> list[Any]:
        """Stop watching every reader and writer; returns them (each once)."""
        return self._io.remove_all()

    def getReaders(self) -> list[Any]:
        return list(self._io.readers)

    def getWriters(self) -> list[Any]:
        return list(self._io.writers)

    # -- signals ------------------------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the reactor thread whenever signal ``signum`` arrives
        (asyncio's ``loop.add_signal_handler``); replaces a previous handler, including the
        reactor's own SIGINT/SIGTERM one. Main thread only (``RuntimeError`` elsewhere);
        ``ValueError`` for an invalid number, ``RuntimeError`` for SIGKILL/SIGSTOP."""
        self._check_open()
        self._signals.add(signum, callback, args)

    def remove_signal_handler(self, signum: int) -> bool:
        """Remove the handler of ``signum``; True if there was one. The Python handler found
        before (or, while ``run()`` runs, the reactor's own SIGINT/SIGTERM one) is back."""
        return self._signals.remove(signum)

    def _stop_signal(self, signum: int) -> None:
        """The reactor's own SIGINT/SIGTERM handler: stop; a second signal crashes."""
        name = signal_name(signum)
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
        return self._events.add(phase, eventType, callable, args, kw)

    def removeSystemEventTrigger(self, triggerID: tuple[str, str, Any]) -> None:
        """Remove a trigger added by ``addSystemEventTrigger``; ValueError if unknown."""
        self._events.remove(triggerID)

    def fireSystemEvent(self, eventType: str) -> None:
        """Run the triggers of ``eventType``: 'before' ones (waiting for any Deferreds they
        return), then 'during', then 'after'. Firing 'shutdown' stops the loop."""
        self._events.fire(eventType)

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> tuple[str, str, Any] | None:
        """Call ``callable`` now if the reactor is running, else once it has started."""
        if self.running:
            callable(*args, **kw)
            return None
        return self.addSystemEventTrigger("after", "startup", callable, *args, **kw)

    def _event_phase(self, eventType: str, phase: str) -> None:
        if phase == "during":
            if eventType == "startup":
                self.running = self._started
            elif eventType == "shutdown":
                self._started = False
                self.running = False
        elif eventType == "shutdown":  # after 'during', before 'after'
            self._stop_thread_pool()

    # -- the loop -----------------------------------------------------------------------------

    def _run_once(self, max_timeout: float | None) -> None:
        """One turn: thread hand-offs, due timers, pending shutdown, poll, dispatch."""
        calls = self._calls.queue
        timers = self._timers
        slow = self._slow
        if calls:
            self._calls.run(slow)
        if timers.heap:
            timers.run_due(slow)
        if self._just_stopped:
            self._just_stopped = False
            self.fireSystemEvent("shutdown")
        if max_timeout is None and not self._started:
            return
        if calls:
            timeout: float | None = 0.0
        elif timers.heap:
            timeout = timers.timeout()
        else:
            timeout = None
        if max_timeout is not None and (timeout is None or timeout > max_timeout):
            timeout = max_timeout
        if timeout is not None and timeout > MAX_WAIT:
            timeout = MAX_WAIT  # a far timer is legal; poll()/select() reject such waits
        events = self._io.poll(timeout)
        if events:
            if slow is None:
                self._io.dispatch(events)
            else:
                self._io.dispatch_timed(events, slow)

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
        reactor cleanly unless ``add_signal_handler`` gave them a handler, SIGPIPE is ignored,
        and the previous handlers are put back on return.
        """
        self._check_open()
        if self._started:
            raise error.ReactorAlreadyRunning(f"{self!r} is already running")
        self._started = True
        self._stopped = False
        self._just_stopped = False
        self._calls.loop_thread = _get_ident()
        self._last_loop_thread = threading.current_thread()
        if installSignalHandlers:
            self._signals.install_defaults(self._stop_signal)
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
            self._calls.loop_thread = None
            # A startup or shutdown left waiting on a Deferred by crash() is abandoned.
            self._events.abandon("startup", "shutdown")
            self._signals.restore_defaults()

    def stop(self) -> None:
        """Stop the loop after running the shutdown triggers ('before' ones may return Deferreds
        that delay it). Raises ``ReactorNotRunning`` if not running or already stopping."""
        if self._stopped:
            raise error.ReactorNotRunning("Can't stop a reactor that isn't running.")
        self._stopped = True
        self._just_stopped = True
        if self._calls.loop_thread != _get_ident():
            self._calls.waker.wake()

    def crash(self) -> None:
        """Stop the loop at once, without the shutdown triggers."""
        if not self._started:
            raise error.ReactorNotRunning("Can't crash a reactor that isn't running.")
        self._started = False
        self.running = False

    def close(self) -> None:
        """Release the reactor's resources: its worker threads, its signal handlers, its waker
        and the multiplexer. Registered descriptors are dropped from it (their sockets are left
        alone)."""
        if self._started:
            raise RuntimeError(f"cannot close {self!r} while it is running")
        if self._closed:
            return
        # Closed first: a worker that hands more work over while the pool stops gets an error
        # instead of starting a new pool.
        self._closed = True
        self._stop_thread_pool()
        self._signals.close()
        self.removeAll()
        self._io.unwatch_internal(self._calls.waker)
        self._calls.close()
        self._io.mux.close()


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
            reactor._io.mux = _ForkedMultiplexer(reactor, reactor._io.mux)  # type: ignore[assignment]
            # The parent's worker threads do not exist here: queueing work for them would wait
            # forever, so the pool goes and getThreadPool() raises ReactorForkedError.
            reactor._pool = None
            # A signal to the child must not reach the parent's reactor through the waker.
            reactor._signals.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
