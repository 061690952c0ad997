"""Signal handling on the reactor thread: the one mechanism behind ``add_signal_handler``.

asyncio's design: the Python-level handler does nothing; ``signal.set_wakeup_fd`` points at
the reactor's waker (``framework.threadcalls.Waker``), so the C-level handler writes the signal
number there, the wait ends, and the waker hands the numbers read to ``Signals.received``, which
queues the handler as a call for the reactor thread. The handler never runs inside the signal
handler, and runs even when the reactor runs in a thread other than the main one.

A backend that runs another event loop may deliver signals itself (``Multiplexer``'s optional
``add_signal_handler(signum, callback)``/``remove_signal_handler(signum)``, as the asyncio and
uvloop backends do, since their loop owns the wakeup fd while it runs); the handler is then
queued the same way.

The reactor's own SIGINT/SIGTERM handling (stop, then crash on a second signal) is a default
handler installed by ``run()`` on the same mechanism; a user handler for the signal replaces it.
Whenever the reactor lets a signal go, the Python handler it found there is put back.
"""

from __future__ import annotations

import errno
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from framework.descriptors import Descriptors
    from framework.threadcalls import ThreadCalls

__all__ = ["DEFAULT_SIGNALS", "Signals", "signal_name"]

# The reactor's owners log under the reactor's name, which users filter on.
logger = logging.getLogger("framework.eventloop")

#: The signals ``run(installSignalHandlers=True)`` makes stop the reactor.
DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_UNCATCHABLE = {getattr(signal, name) for name in ("SIGKILL", "SIGSTOP") if hasattr(signal, name)}


def _noop(signum: int, frame: Any) -> None:
    """The Python-level handler: the work is done on the reactor thread."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _check_signal(signum: Any) -> None:
    if not isinstance(signum, int) or isinstance(signum, bool):
        raise TypeError(f"sig must be an int, not {signum!r}")
    if signum not in signal.valid_signals():
        raise ValueError(f"invalid signal number {signum}")


class Signals:
    """The signal handlers of one reactor; ``io.mux`` is its current multiplexer."""

    __slots__ = ("_calls", "_io", "_handlers", "_defaults", "_saved", "_saved_wakeup",
                 "_via_backend", "_sigpipe")

    def __init__(self, calls: ThreadCalls, io: Descriptors) -> None:
        self._calls = calls
        self._io = io
        calls.waker.on_signals = self.received
        self._handlers: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        self._defaults: dict[int, Callable[[int], None]] = {}  # the reactor's own, during run()
        self._saved: dict[int, Any] = {}  # signum -> the Python handler found there
        self._saved_wakeup: int | None = None  # the wakeup fd found there, while we own it
        self._via_backend: set[int] = set()  # delivered by the multiplexer's own loop
        self._sigpipe: Any = None

    # -- the public API -----------------------------------------------------------------------

    def add(self, signum: int, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        _check_signal(signum)
        if not callable(callback):
            raise TypeError(f"a signal handler must be callable, not {callback!r}")
        if signum in _UNCATCHABLE:
            raise RuntimeError(f"sig {signum} cannot be caught")
        self._claim(signum)
        self._handlers[signum] = (callback, args)

    def remove(self, signum: int) -> bool:
        _check_signal(signum)
        if signum not in self._handlers:
            return False
        if not _in_main_thread():
            raise RuntimeError("remove_signal_handler() works only in the main thread")
        del self._handlers[signum]
        if signum not in self._defaults:
            self._release(signum)
        return True

    # -- run() --------------------------------------------------------------------------------

    def install_defaults(self, handler: Callable[[int], None]) -> None:
        """For ``run()``: ``handler(signum)`` for SIGINT and SIGTERM unless the user handles
        them, and SIGPIPE ignored. Only in the main thread; undone by ``restore_defaults``."""
        if not _in_main_thread():
            return
        for signum in DEFAULT_SIGNALS:
            self._claim(signum)
            self._defaults[signum] = handler
        if hasattr(signal, "SIGPIPE"):
            self._sigpipe = signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def restore_defaults(self) -> None:
        defaults, self._defaults = self._defaults, {}
        for signum in defaults:
            if signum not in self._handlers:
                self._release(signum)
        sigpipe, self._sigpipe = self._sigpipe, None
        if sigpipe is not None:
            signal.signal(signal.SIGPIPE, sigpipe)

    def close(self) -> None:
        """Let every signal go (the reactor is closing)."""
        if _in_main_thread():
            self.restore_defaults()
            for signum in list(self._handlers):
                self.remove(signum)

    def after_fork(self) -> None:
        """In a forked child: put back the Python handlers and the wakeup fd found, so a
        signal to the child never reaches the parent's reactor through the shared waker."""
        for signum, previous in self._saved.items():
            try:
                signal.signal(signum, previous)
            except (OSError, ValueError):
                pass
        self._saved.clear()
        self._via_backend.clear()
        self._handlers.clear()
        self._defaults.clear()
        if self._saved_wakeup is not None:
            try:
                signal.set_wakeup_fd(self._saved_wakeup)
            except ValueError:
                pass
            self._saved_wakeup = None

    # -- delivery -----------------------------------------------------------------------------

    def received(self, signums: bytes) -> None:
        """Signal numbers read from the waker (reactor thread): queue their handlers."""
        for signum in signums:
            self._calls.push(_SignalCall(self, signum), (), {})

    def _from_backend(self, signum: int) -> None:
        # Called by the backend's loop inside poll(): queue the handler and end the wait.
        self._calls.queue.append((_SignalCall(self, signum), (), {}))
        self._calls.waker.wake()

    def _current(self, signum: int) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        """The handler of ``signum`` now: the user's, else the reactor's default, else None."""
        entry = self._handlers.get(signum)
        if entry is not None:
            return entry
        default = self._defaults.get(signum)
        return None if default is None else (default, (signum,))

    # -- taking a signal and letting it go ----------------------------------------------------

    def _claim(self, signum: int) -> None:
        if signum in self._saved:
            return
        if not _in_main_thread():
            raise RuntimeError("signal handlers can only be added in the main thread")
        previous = signal.getsignal(signum)
        backend_add = getattr(self._io.mux, "add_signal_handler", None)
        if backend_add is not None:
            try:
                backend_add(signum, self._from_backend, signum)
            except OSError as exc:
                raise RuntimeError(f"sig {signum} cannot be caught") from exc
            self._via_backend.add(signum)
        else:
            if self._saved_wakeup is None:
                self._saved_wakeup = signal.set_wakeup_fd(self._calls.waker.write_fd)
            try:
                signal.signal(signum, _noop)
                signal.siginterrupt(signum, False)
            except OSError as exc:
                if not self._saved.keys() - self._via_backend:
                    self._restore_wakeup()
                if exc.errno == errno.EINVAL:
                    raise RuntimeError(f"sig {signum} cannot be caught") from exc
                raise
        self._saved[signum] = signal.SIG_DFL if previous is None else previous

    def _release(self, signum: int) -> None:
        previous = self._saved.pop(signum, None)
        if previous is None:
            return
        if signum in self._via_backend:
            self._via_backend.discard(signum)
            backend_remove = getattr(self._io.mux, "remove_signal_handler", None)
            if backend_remove is not None:
                backend_remove(signum)
        signal.signal(signum, previous)
        if not self._saved.keys() - self._via_backend:
            self._restore_wakeup()

    def _restore_wakeup(self) -> None:
        saved, self._saved_wakeup = self._saved_wakeup, None
        if saved is None:
            return
        current = signal.set_wakeup_fd(saved)
        if current != self._calls.waker.write_fd:
            signal.set_wakeup_fd(current)  # someone else took it since: leave theirs in place


class _SignalCall:
    """One delivery of a signal, queued as a call for the reactor thread; runs the handler
    current at that time (none if it was removed meanwhile). Its repr names the handler in
    the slow-callback warning."""

    __slots__ = ("signals", "signum")

    def __init__(self, signals: Signals, signum: int) -> None:
        self.signals = signals
        self.signum = signum

    def __call__(self) -> None:
        entry = self.signals._current(self.signum)
        if entry is None:
            return
        try:
            entry[0](*entry[1])
        except Exception:
            logger.error("Unhandled error in the handler of %s %r", signal_name(self.signum), entry[0],
                         exc_info=True)

    def __repr__(self) -> str:
        entry = self.signals._current(self.signum)
        return f"<handler of {signal_name(self.signum)}: {entry[0] if entry else None!r}>"


def signal_name(signum: int) -> str:
    """``SIGINT`` for 2; the number as text for one with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
