"""The reactor's cross-thread call queue and its waker.

``callFromThread`` appends to a ``collections.deque`` (``append`` is atomic) and, for the first
call since the loop last drained the waker, writes one byte to the ``Waker`` so a blocking
``Multiplexer.poll`` returns. The loop runs the calls queued so far at the top of each turn.

The waker is a non-blocking pipe. It is also what ``signal.set_wakeup_fd`` points at once a
signal handler is added (see ``framework.signals``): the C-level signal handler writes the
signal number into it, and ``Waker.doRead`` hands those numbers to ``on_signals``. Thread
hand-offs write a zero byte, which no signal has.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from framework.failure import Failure
    from framework.slowcalls import SlowCallbacks

__all__ = ["ThreadCalls", "Waker"]

# The reactor's owners log under the reactor's name, which users filter on.
logger = logging.getLogger("framework.eventloop")

_is_callable = callable
_get_ident = threading.get_ident


class Waker:
    """The reactor's own readable descriptor: other threads and signals write to it to end a
    blocking ``poll`` at once."""

    __slots__ = ("_rfd", "write_fd", "_owner", "on_signals")

    def __init__(self, owner: ThreadCalls) -> None:
        self._owner = owner
        self._rfd, self.write_fd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self.write_fd, False)  # signal.set_wakeup_fd requires it
        #: Called on the reactor thread with the signal numbers read from the pipe.
        self.on_signals: Callable[[bytes], None] | None = None

    def fileno(self) -> int:
        return self._rfd

    def wake(self) -> None:
        try:
            os.write(self.write_fd, b"\0")
        except OSError:
            # Already full (so the reactor will wake anyway) or closed during shutdown.
            pass

    def doRead(self) -> None:
        # Drain first, then clear the flag: a thread that sees the flag still set in between
        # skips its write, but its call is already queued and the loop looks at the queue
        # before it sleeps again. (Clearing first could swallow that thread's write and leave
        # the flag set with nothing left to wake the loop.)
        signums = b""
        try:
            while True:
                data = os.read(self._rfd, 4096)
                if not data:
                    break
                signums += data.replace(b"\0", b"")
        except OSError:
            pass
        self._owner.wake_pending = False
        if signums and self.on_signals is not None:
            self.on_signals(signums)

    def doWrite(self) -> None:  # never registered for writing
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "waker"

    def close(self) -> None:
        for fd in (self._rfd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class ThreadCalls:
    """Calls handed to the reactor thread, run at the top of each loop turn."""

    __slots__ = ("queue", "waker", "wake_pending", "loop_thread")

    def __init__(self) -> None:
        self.queue: deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self.waker = Waker(self)
        self.wake_pending = False
        #: The id of the thread running the loop, None while it is not running.
        self.loop_thread: int | None = None

    def push(self, func: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        """Queue ``func(*args, **kw)``; wakes the loop unless a wake-up is pending or this is
        the loop's own thread. Safe from any thread."""
        if not _is_callable(func):
            raise TypeError(f"callFromThread() needs a callable, not {func!r}")
        self.queue.append((func, args, kw))
        if not self.wake_pending and self.loop_thread != _get_ident():
            self.wake_pending = True
            self.waker.wake()

    def run(self, slow: SlowCallbacks | None) -> None:
        """Run the calls queued so far: later ones wait a turn, so timers and I/O still run."""
        calls = self.queue
        popleft = calls.popleft
        for _ in range(len(calls)):
            func, args, kw = popleft()
            try:
                if slow is None:
                    func(*args, **kw)
                else:
                    slow.run("call from thread", func, func, *args, **kw)
            except Exception:
                logger.error("Unhandled error in call from thread %r", func, exc_info=True)

    def close(self) -> None:
        self.waker.close()
