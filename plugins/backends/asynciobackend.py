"""Reactor backends ``asyncio`` and ``uvloop``: the reactor waits inside an asyncio event loop.

Each time the reactor waits for readiness, ``AsyncioMultiplexer.poll`` runs the asyncio loop
(``run_forever``) until one of the reactor's descriptors is ready or the reactor's timeout
passes. While it waits, asyncio tasks, callbacks, timers and libraries run as usual, so asyncio
code and our protocols share one thread and one loop. The reactor keeps its own timers,
thread hand-offs and signal handling; its waker descriptor is just one more watched fd.

Get the loop with ``get_event_loop()`` (the installed reactor's) or ``get_event_loop(reactor)``.
The reactor dispatches (``doRead``/``dataReceived``, ``callLater`` functions) *between* two runs
of the loop, so ``asyncio.get_running_loop()`` is not available there; ``loop.create_task(coro)``
is. Every callback asyncio code schedules ends the current wait once it has run, so what it did
to the reactor (``callLater``, ``stop()``, ...) is seen at once. See ``docs/asyncio.md``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from select import POLLIN, POLLOUT
from typing import Any, Callable

import framework
from framework import hookimpl
from framework.registries import ReactorRegistry
from framework.interfaces import Multiplexer

__all__ = ["AsyncioMultiplexer", "UVLoopMultiplexer", "get_event_loop", "register_reactors"]

logger = logging.getLogger("framework.asynciobackend")

#: Seconds ``close()`` lets the asyncio tasks still pending finish after cancelling them.
SHUTDOWN_TIMEOUT = 5.0


class AsyncioMultiplexer(Multiplexer):
    """A ``Multiplexer`` whose ``poll`` runs an asyncio event loop.

    ``AsyncioMultiplexer()`` makes a new ``asyncio.SelectorEventLoop`` (owned: closed by
    ``close()``); ``AsyncioMultiplexer(loop)`` uses the given, not running, loop and leaves it
    open. Error and hang-up conditions are reported as readiness (``POLLIN``/``POLLOUT``), as
    asyncio does; the next read or write then reports the error.
    """

    __slots__ = ("loop", "_owns_loop", "_masks", "_ready", "_stopping", "_stop", "_call_later",
                 "_run_forever", "_timed_out_cb", "_hooks", "_made_current")

    #: Makes the loop of a new multiplexer (a subclass may use another implementation).
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.SelectorEventLoop

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is None:
            loop = type(self).loop_factory()
            self._owns_loop = True
        else:
            if loop.is_closed():
                raise ValueError(f"cannot use closed event loop {loop!r}")
            if loop.is_running():
                raise ValueError(f"cannot use running event loop {loop!r}: the reactor runs it")
            self._owns_loop = False
        #: The asyncio event loop this backend runs.
        self.loop = loop
        self._masks: dict[int, int] = {}
        self._ready: dict[int, int] = {}
        # True when the loop must not be stopped: a stop is already requested, or no poll()
        # is running (the loop runs for someone else, e.g. close() draining tasks).
        self._stopping = True
        self._stop = loop.stop
        self._run_forever = loop.run_forever
        self._call_later = loop.call_later  # before the hooks: our timeout stays unwrapped
        self._timed_out_cb = self._wake
        self._hooks = _install_hooks(loop, self)
        # asyncio.get_event_loop() and ensure_future() outside a running loop (in reactor
        # callbacks, callWhenRunning functions) find this loop, as with Twisted's asyncio
        # reactor. Done here for the thread that builds the reactor, and by the first poll()
        # for a thread that runs it.
        self._made_current: int | None = None
        self._make_current()

    # -- registrations ------------------------------------------------------------------------

    def register(self, fd: int, events: int) -> None:
        if fd in self._masks:
            raise FileExistsError(f"file descriptor {fd} is already registered")
        if fd < 0:
            raise ValueError(f"cannot watch negative file descriptor {fd}")
        self._set(fd, 0, events)

    def modify(self, fd: int, events: int) -> None:
        old = self._masks.get(fd)
        if old is None:
            raise FileNotFoundError(f"file descriptor {fd} is not registered")
        try:
            self._set(fd, old, events)
        except OSError:
            # The kernel forgot the fd (closed, number reused) while asyncio still knew it:
            # start again from nothing.
            self._forget(fd)
            self._set(fd, 0, events)

    def _set(self, fd: int, old: int, new: int) -> None:
        loop = self.loop
        want_read = new & POLLIN
        want_write = new & POLLOUT
        self._masks[fd] = new & (POLLIN | POLLOUT)
        try:
            if want_read and not old & POLLIN:
                loop.add_reader(fd, self._readable, fd)
            elif old & POLLIN and not want_read:
                loop.remove_reader(fd)
            if want_write and not old & POLLOUT:
                loop.add_writer(fd, self._writable, fd)
            elif old & POLLOUT and not want_write:
                loop.remove_writer(fd)
        except BaseException:
            self._forget(fd)
            raise

    def _forget(self, fd: int) -> None:
        """Drop every trace of ``fd`` here and in the loop, whatever state it is in."""
        self._masks.pop(fd, None)
        self._ready.pop(fd, None)
        for remove in (self.loop.remove_reader, self.loop.remove_writer):
            try:
                remove(fd)
            except (OSError, ValueError, KeyError, RuntimeError):
                pass

    def unregister(self, fd: int) -> None:
        old = self._masks.pop(fd, None)
        self._ready.pop(fd, None)
        if old is None or self.loop.is_closed():
            return
        try:
            if old & POLLIN:
                self.loop.remove_reader(fd)
            if old & POLLOUT:
                self.loop.remove_writer(fd)
        except (OSError, ValueError, KeyError):
            # Closed before we were told: the kernel already forgot it; make sure asyncio does.
            self._forget(fd)

    # -- readiness callbacks (run inside the loop) --------------------------------------------

    def _readable(self, fd: int) -> None:
        ready = self._ready
        ready[fd] = ready.get(fd, 0) | POLLIN
        if not self._stopping:
            self._stopping = True
            self._stop()

    def _writable(self, fd: int) -> None:
        ready = self._ready
        ready[fd] = ready.get(fd, 0) | POLLOUT
        if not self._stopping:
            self._stopping = True
            self._stop()

    def _wake(self) -> None:
        """End poll() once this round of the loop ends: its timeout passed, or a callback of
        asyncio code ran, and the reactor must see what it did (a callLater, a stop()...)."""
        if not self._stopping:
            self._stopping = True
            self._stop()

    # -- waiting ------------------------------------------------------------------------------

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        """Run the asyncio loop until a watched fd is ready or ``timeout`` seconds pass.

        Every fd that became ready in the loop's last round of I/O is reported. Raises
        ``RuntimeError`` if another asyncio loop is running in this thread.
        """
        if self._made_current != threading.get_ident():
            self._make_current()
        timer = None
        if timeout is None:
            self._stopping = False
        elif timeout > 0.0:
            self._stopping = False
            timer = self._call_later(timeout, self._timed_out_cb)
        else:
            # stop() before run_forever(): one round of I/O without waiting, then return.
            self._stopping = True
            self._stop()
        try:
            self._run_forever()
        finally:
            if timer is not None:
                timer.cancel()
            self._stopping = True  # callbacks from a later, foreign run must not stop it
        ready = self._ready
        if not ready:
            return []
        self._ready = {}
        return list(ready.items())

    # -- signals ------------------------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callable[..., Any], *args: Any) -> None:
        """Optional in the backend contract: the reactor's signals are delivered by the asyncio
        loop, which owns ``signal.set_wakeup_fd`` while it runs (uvloop sets it on every
        run) and so shares it with asyncio code's own ``loop.add_signal_handler``."""
        self.loop.add_signal_handler(signum, callback, *args)

    def remove_signal_handler(self, signum: int) -> bool:
        if self.loop.is_closed():
            return False
        return self.loop.remove_signal_handler(signum)

    # -- lifetime -----------------------------------------------------------------------------

    def _make_current(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._made_current = threading.get_ident()

    def close(self) -> None:
        """Stop watching everything; an owned loop has its tasks cancelled (they get up to
        ``SHUTDOWN_TIMEOUT`` seconds to finish), its async generators and default executor
        shut down, and is closed."""
        loop = self.loop
        if loop.is_closed():
            return
        if self._owns_loop and self._made_current == threading.get_ident():
            asyncio.set_event_loop(None)  # leave no closed loop behind as the current one
            self._made_current = None
        for fd in list(self._masks):
            self.unregister(fd)
        if not self._owns_loop:
            _remove_hooks(loop, self._hooks)
            return
        try:
            if asyncio._get_running_loop() is None and not loop.is_running():
                _drain(loop)
        finally:
            loop.close()

    def fileno(self) -> int:
        # The loop's kernel-side multiplexer, if it shows it: the reactor then looks for
        # descriptors closed behind its back (epoll forgets them silently).
        selector = getattr(self.loop, "_selector", None)
        if selector is not None:
            try:
                return int(selector.fileno())
            except (AttributeError, OSError, ValueError, TypeError):
                return -1
        backend_id = getattr(self.loop, "_get_backend_id", None)  # uvloop: libuv's epoll fd
        if backend_id is not None:
            try:
                return int(backend_id())
            except Exception:
                return -1
        return -1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} loop={type(self.loop).__name__} fds={len(self._masks)}>"


class _WakeAfter:
    """A callback of asyncio code: after it runs, the reactor's poll() returns at the end of
    this round of the loop."""

    __slots__ = ("callback", "mux")

    def __init__(self, callback: Callable[..., Any], mux: AsyncioMultiplexer) -> None:
        self.callback = callback
        self.mux = mux

    def __call__(self, *args: Any) -> Any:
        try:
            return self.callback(*args)
        finally:
            self.mux._wake()

    def __repr__(self) -> str:
        return repr(self.callback)


def _install_hooks(loop: asyncio.AbstractEventLoop, mux: AsyncioMultiplexer) -> dict[str, Any]:
    """Shadow the loop's scheduling methods (per instance) so every callback asyncio code
    schedules wakes the reactor after it runs. The loop's own I/O callbacks and ours are not
    wrapped."""
    raw_call_soon = loop.call_soon
    raw_threadsafe = loop.call_soon_threadsafe
    raw_call_later = loop.call_later
    raw_call_at = loop.call_at
    timed_out = mux._timed_out_cb

    def call_soon(callback: Callable[..., Any], *args: Any, context: Any = None) -> asyncio.Handle:
        return raw_call_soon(_WakeAfter(callback, mux), *args, context=context)

    def call_soon_threadsafe(callback: Callable[..., Any], *args: Any,
                             context: Any = None) -> asyncio.Handle:
        return raw_threadsafe(_WakeAfter(callback, mux), *args, context=context)

    # One of call_later/call_at calls the other (which depends on the loop): wrap once.
    def call_later(delay: float, callback: Callable[..., Any], *args: Any,
                   context: Any = None) -> asyncio.TimerHandle:
        if type(callback) is not _WakeAfter and callback is not timed_out:
            callback = _WakeAfter(callback, mux)
        return raw_call_later(delay, callback, *args, context=context)

    def call_at(when: float, callback: Callable[..., Any], *args: Any,
                context: Any = None) -> asyncio.TimerHandle:
        if type(callback) is not _WakeAfter and callback is not timed_out:
            callback = _WakeAfter(callback, mux)
        return raw_call_at(when, callback, *args, context=context)

    hooks = {"call_soon": call_soon, "call_soon_threadsafe": call_soon_threadsafe,
             "call_later": call_later, "call_at": call_at}
    for name, hook in hooks.items():
        setattr(loop, name, hook)
    return hooks


def _remove_hooks(loop: asyncio.AbstractEventLoop, hooks: dict[str, Any]) -> None:
    for name, hook in hooks.items():
        if loop.__dict__.get(name) is hook:
            delattr(loop, name)


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the loop's pending tasks and let them finish; shut down async generators and
    the default executor (what ``asyncio.run`` does on the way out)."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if tasks:
        for task in tasks:
            task.cancel()
        done, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT))
        for task in pending:
            logger.warning("asyncio task %r did not finish within %.1f s of being cancelled",
                           task, SHUTDOWN_TIMEOUT)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler({
                    "message": "unhandled exception in an asyncio task while closing the reactor",
                    "exception": task.exception(),
                    "task": task,
                })
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


# -- uvloop -----------------------------------------------------------------------------------


def _new_uvloop() -> asyncio.AbstractEventLoop:
    import uvloop  # type: ignore[import-not-found, unused-ignore]  # reason: optional dependency

    return uvloop.new_event_loop()  # type: ignore[no-any-return]


class UVLoopMultiplexer(AsyncioMultiplexer):
    """The ``asyncio`` backend over a uvloop (libuv) event loop; needs ``uvloop`` installed."""

    __slots__ = ()
    loop_factory = staticmethod(_new_uvloop)


def _uvloop_available() -> bool | str:
    try:
        import uvloop  # noqa: F401  # reason: optional dependency, probed
    except ImportError as exc:
        return (f"uvloop is not installed ({exc}); install it with "
                "'pip install reactor-framework[uvloop]'")
    return True


# -- access to the loop -----------------------------------------------------------------------


def get_event_loop(reactor: Any = None) -> asyncio.AbstractEventLoop:
    """The asyncio loop of ``reactor`` (default: the installed reactor).

    Raises ``RuntimeError`` if no reactor is installed or it does not use the ``asyncio`` or
    ``uvloop`` backend. Installs nothing.
    """
    if reactor is None:
        reactor = framework.installed_reactor()
        if reactor is None:
            raise RuntimeError("no reactor is installed: call framework.install_reactor('asyncio') "
                               "(or 'uvloop') before asking for its asyncio loop")
    mux = getattr(reactor, "multiplexer", None)
    if not isinstance(mux, AsyncioMultiplexer):
        name = getattr(reactor, "backend_name", None)
        raise RuntimeError(f"{reactor!r} uses backend {name!r}, which has no asyncio loop: "
                           "use the 'asyncio' or 'uvloop' backend")
    return mux.loop


@hookimpl
def register_reactors(registry: ReactorRegistry) -> None:
    registry.add(
        "asyncio",
        AsyncioMultiplexer,
        description="runs inside an asyncio event loop, so asyncio code shares the thread",
        priority=1,
    )
    registry.add(
        "uvloop",
        UVLoopMultiplexer,
        description="the asyncio backend on a uvloop (libuv) event loop",
        available=_uvloop_available,
        priority=2,
    )
