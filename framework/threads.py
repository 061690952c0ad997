"""Handing blocking work to threads and results back to the reactor.

The reactor thread must never block; ``deferToThread`` runs a function in a worker thread and
returns a Deferred that fires, in the reactor thread, with its result.
``blockingCallFromThread`` goes the other way: a worker thread runs something in the reactor
thread and waits for its result.

The functions that take no reactor use the global one (``framework.reactor``), looked up
when they are called.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, Iterable

from framework.defer import Deferred, maybeDeferred
from framework.failure import Failure
from framework.main import global_reactor

if TYPE_CHECKING:
    from framework.eventloop import Reactor

__all__ = [
    "ReactorThreadPool",
    "ThreadPool",
    "blockingCallFromThread",
    "callMultipleInThread",
    "deferToThread",
    "deferToThreadPool",
]

logger = logging.getLogger("framework.threads")

_STOP = object()  # stop() was called: every worker of the generation leaves
_RETIRE = object()  # adjustPoolsize() lowered the maximum: one worker too many leaves


class _Generation:
    """The work queue and workers of a pool between two ``stop()`` calls."""

    __slots__ = ("queue", "threads", "idle", "retiring")

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.idle = 0
        self.retiring = 0  # _RETIRE markers queued by a shrink, not yet taken by a worker


class ThreadPool:
    """A pool of daemon worker threads, started on demand up to ``maxthreads``.

    ``stop(timeout)`` waits at most ``timeout`` seconds for busy workers and logs those it
    gives up on; being daemon threads, they never keep the process alive. A stopped pool
    starts new workers if it is given more work.
    """

    def __init__(self, minthreads: int = 0, maxthreads: int = 10, name: str | None = None) -> None:
        if minthreads < 0 or maxthreads < 1 or minthreads > maxthreads:
            raise ValueError(f"need 0 <= minthreads <= maxthreads and maxthreads >= 1, "
                             f"got {minthreads}, {maxthreads}")
        self.min = minthreads
        self.max = maxthreads
        self.name = name or "pool"
        self.started = False
        self._lock = threading.Lock()
        self._gen = _Generation()
        self._names = count(1)

    @property
    def threads(self) -> list[threading.Thread]:
        """The current worker threads."""
        return list(self._gen.threads)

    def start(self) -> None:
        """Start the minimum number of workers."""
        self.started = True
        with self._lock:
            while len(self._gen.threads) < self.min:
                self._spawn()

    def adjustPoolsize(self, minthreads: int | None = None, maxthreads: int | None = None) -> None:
        minthreads = self.min if minthreads is None else minthreads
        maxthreads = self.max if maxthreads is None else maxthreads
        if minthreads < 0 or maxthreads < 1 or minthreads > maxthreads:
            raise ValueError(f"need 0 <= minthreads <= maxthreads and maxthreads >= 1, "
                             f"got {minthreads}, {maxthreads}")
        self.min, self.max = minthreads, maxthreads
        with self._lock:
            # Workers above the new maximum leave once the work queued before now is done (a
            # worker that takes a marker when the pool is no longer too big ignores it).
            gen = self._gen
            for _ in range(len(gen.threads) - gen.retiring - maxthreads):
                gen.retiring += 1
                gen.queue.put(_RETIRE)
        if self.started:
            self.start()

    def _spawn(self) -> None:
        # Called with the lock held.
        gen = self._gen
        thread = threading.Thread(target=self._work, args=(gen,),
                                  name=f"{self.name}-worker-{next(self._names)}", daemon=True)
        gen.threads.append(thread)
        thread.start()

    def callInThread(self, func: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``func(*args, **kw)`` in a worker; an exception it raises is logged."""
        self.callInThreadWithCallback(None, func, *args, **kw)

    def callInThreadWithCallback(self, onResult: Callable[[bool, Any], Any] | None,
                                 func: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``func(*args, **kw)`` in a worker, then ``onResult(True, result)`` or
        ``onResult(False, failure)`` in that same worker."""
        self.started = True
        with self._lock:
            gen = self._gen
            gen.queue.put((onResult, func, args, kw))
            if len(gen.threads) < self.max and gen.queue.qsize() > gen.idle:
                self._spawn()

    def _work(self, gen: _Generation) -> None:
        lock = self._lock
        get = gen.queue.get
        while True:
            with lock:
                gen.idle += 1
            item = get()
            with lock:
                gen.idle -= 1
                if item is _RETIRE:
                    gen.retiring -= 1
                    if len(gen.threads) <= self.max:
                        continue  # the limit went up again since: stay
                    # Leave now, in this same locked step, so no adjustment counts us twice.
                    current = threading.current_thread()
                    if current in gen.threads:
                        gen.threads.remove(current)
                    return
            if item is _STOP:
                break
            onResult, func, args, kw = item
            del item
            try:
                result = func(*args, **kw)
                ok = True
            except BaseException:
                result = Failure()
                ok = False
            del func, args, kw
            if onResult is not None:
                try:
                    onResult(ok, result)
                except Exception:
                    logger.error("Error in thread pool result callback %r", onResult, exc_info=True)
            elif not ok:
                logger.error("Unhandled error in thread:\n%s", result.getTraceback())
            del onResult, result
        with lock:
            current = threading.current_thread()
            if current in gen.threads:
                gen.threads.remove(current)

    def stop(self, timeout: float | None = None) -> None:
        """Let the workers finish their queued work and exit, waiting at most ``timeout``
        seconds (``None``: forever). Workers still busy then are left to finish alone."""
        with self._lock:
            gen, self._gen = self._gen, _Generation()
            threads = list(gen.threads)
            self.started = False
        for _ in threads:
            gen.queue.put(_STOP)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in threads if t.is_alive()]
        if busy:
            logger.warning("%d worker thread(s) still busy after %.1f s, not waiting for them: %s",
                           len(busy), timeout, ", ".join(busy))


class ReactorThreadPool:
    """The reactor's pool of worker threads, as a mixin of ``Reactor`` (which provides
    ``_check_open``, ``backend_name`` and ``thread_shutdown_timeout``)."""

    _pool: ThreadPool | None = None
    _pool_size = 10
    backend_name: str
    thread_shutdown_timeout: float

    if TYPE_CHECKING:
        def _check_open(self) -> None: ...

    def getThreadPool(self) -> ThreadPool:
        """The reactor's pool of worker threads (created on first use)."""
        pool = self._pool
        if pool is None:
            self._check_open()
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


def deferToThreadPool(reactor: Reactor, threadpool: Any, f: Callable[..., Any],
                      *args: Any, **kwargs: Any) -> Deferred:
    """Run ``f(*args, **kwargs)`` in ``threadpool``; a Deferred firing with its result (or
    failure) in ``reactor``'s thread. ``threadpool`` may also be a
    ``concurrent.futures.Executor``."""
    d: Deferred = Deferred()

    def onResult(success: bool, result: Any) -> None:
        if success:
            reactor.callFromThread(d.callback, result)
        else:
            reactor.callFromThread(d.errback, result)

    if hasattr(threadpool, "callInThreadWithCallback"):
        threadpool.callInThreadWithCallback(onResult, f, *args, **kwargs)
    else:
        threadpool.submit(_call_with_callback, onResult, f, args, kwargs)
    return d


def _call_with_callback(onResult: Callable[[bool, Any], None], f: Callable[..., Any],
                        args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        result = f(*args, **kwargs)
    except BaseException:
        onResult(False, Failure())
    else:
        onResult(True, result)


def deferToThread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
    """Run ``f(*args, **kwargs)`` in the global reactor's thread pool; a Deferred firing with
    its result. A plain function, so ``deferToThread.__get__`` works as a decorator."""
    reactor = global_reactor()
    return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)


def _run_multiple(tupleList: Iterable[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]) -> None:
    for f, args, kwargs in tupleList:
        f(*args, **kwargs)


def callMultipleInThread(tupleList: Iterable[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]],
                         reactor: Reactor | None = None) -> None:
    """Run each ``(f, args, kwargs)`` of ``tupleList``, in order, in one worker thread."""
    (reactor or global_reactor()).callInThread(_run_multiple, list(tupleList))


def blockingCallFromThread(reactor: Reactor | None, f: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """From a non-reactor thread: run ``f(*a, **kw)`` in the reactor thread, wait for its result
    (waiting for a returned Deferred too) and return it, or raise its exception.

    ``reactor`` ``None`` means the global reactor. Calling it from the reactor thread would
    deadlock, so that raises ``RuntimeError``.
    """
    if reactor is None:
        reactor = global_reactor()
    if getattr(reactor, "_loop_thread", None) == threading.get_ident():
        raise RuntimeError("blockingCallFromThread() called from the reactor thread: it would "
                           "wait forever for the reactor it blocks; call the function directly")
    if getattr(reactor, "_closed", False):
        raise RuntimeError(f"blockingCallFromThread(): {reactor!r} is closed; nothing would run the call")
    if not getattr(reactor, "running", True) and getattr(reactor, "_last_loop_thread", None) is (
        threading.current_thread()
    ):
        raise RuntimeError("blockingCallFromThread() called from the thread that ran the reactor, "
                           "which has stopped: this thread would wait for a run() only it could "
                           "start; call the function directly or run the reactor again first")
    done = threading.Event()
    box: list[Any] = []

    def store(result: Any) -> None:
        box.append(result)
        done.set()

    def in_reactor() -> None:
        maybeDeferred(f, *a, **kw).addBoth(store)

    reactor.callFromThread(in_reactor)
    done.wait()
    result = box[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result
