"""The ``asyncio`` and ``uvloop`` reactor backends: registration, the Multiplexer contract over
an asyncio loop, asyncio code and the reactor sharing one thread, and the access to the loop.

The shared conformance suite (tests/test_reactor.py, test_tcp.py, ...) also runs against these
backends through the ``reactor`` fixture; this file covers what is specific to them. The
``uvloop`` cases run only where uvloop is installed (it is an optional extra).
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import sys
import threading
import types
from collections.abc import Iterator
import pytest

import framework
from framework import defer, plugins
from framework.eventloop import Reactor
from framework.protocol import ClientFactory, Factory, Protocol
from reactor_framework_plugins.backends.asynciobackend import AsyncioMultiplexer, get_event_loop
from tests.util import run_until, run_until_true

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT

NAMES = [name for name in ("asyncio", "uvloop") if plugins.reactors().get(name).availability() is None]


def _masks(ready: list[tuple[int, int]]) -> dict[int, int]:
    fds = [fd for fd, _ in ready]
    assert len(fds) == len(set(fds)), f"fd reported twice: {ready}"
    return dict(ready)


def _wait(mux: AsyncioMultiplexer, fd: int, bits: int) -> int:
    """Poll until ``fd`` shows one of ``bits`` (bounded), returning its mask."""
    for _ in range(100):
        mask = _masks(mux.poll(0.2)).get(fd, 0)
        if mask & bits:
            return mask
    raise AssertionError(f"fd {fd} never reported {bits:#x}")


@pytest.fixture(params=NAMES)
def mux(request: pytest.FixtureRequest) -> Iterator[AsyncioMultiplexer]:
    m = plugins.reactors().get(request.param).factory()
    try:
        yield m
    finally:
        m.close()
    assert m.loop.is_closed()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(params=NAMES)
def aioreactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    """A private reactor on an asyncio backend (the shared ``reactor`` fixture covers every
    backend; this one only the asyncio ones)."""
    before = set(threading.enumerate())
    r = Reactor(plugins.reactors().get(request.param).factory(), request.param)
    try:
        yield r
    finally:
        if r._started:
            r.crash()
        leftovers = r.removeAll()
        r.close()
        for thread in set(threading.enumerate()) - before:
            thread.join(5.0)
    assert leftovers == []


# -- registration -------------------------------------------------------------------------------


def test_registered_below_the_native_backends() -> None:
    registry = plugins.reactors()
    entry = registry.get("asyncio")
    assert entry.factory is AsyncioMultiplexer
    assert entry.availability() is None
    assert "asyncio" in entry.description
    natives = [registry.get(n).priority for n in ("select", "poll", "epoll", "selector")]
    assert entry.priority < min(natives)
    assert registry.get("uvloop").priority < min(natives)
    assert registry.best().name not in ("asyncio", "uvloop")


def test_uvloop_unavailable_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes "import uvloop" fail
    reason = plugins.reactors().get("uvloop").availability()
    assert reason is not None
    assert "uvloop is not installed" in reason and "reactor-framework[uvloop]" in reason


def test_uvloop_available_when_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", types.ModuleType("uvloop"))
    assert plugins.reactors().get("uvloop").availability() is None


# -- the Multiplexer contract -------------------------------------------------------------------


def test_readable_writable_and_both(mux: AsyncioMultiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    mux.register(a.fileno(), POLLIN)
    assert mux.poll(0) == []
    b.send(b"x")
    assert _wait(mux, a.fileno(), POLLIN) == POLLIN
    mux.modify(a.fileno(), POLLIN | POLLOUT)
    assert _masks(mux.poll(1.0)) == {a.fileno(): POLLIN | POLLOUT}
    mux.modify(a.fileno(), POLLOUT)
    assert _masks(mux.poll(1.0)) == {a.fileno(): POLLOUT}
    mux.unregister(a.fileno())
    assert mux.poll(0) == []


def test_timeout_with_nothing_ready(mux: AsyncioMultiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    mux.register(a.fileno(), POLLIN)
    assert mux.poll(0) == []
    assert mux.poll(0.01) == []
    assert mux.poll(-1.0) == []


def test_bad_registrations(mux: AsyncioMultiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    mux.register(a.fileno(), POLLIN)
    with pytest.raises(FileExistsError, match=str(a.fileno())):
        mux.register(a.fileno(), POLLOUT)
    with pytest.raises(FileNotFoundError, match="not registered"):
        mux.modify(a.fileno() + 1000, POLLIN)
    with pytest.raises(ValueError, match="negative"):
        mux.register(-1, POLLIN)
    mux.unregister(a.fileno() + 1000)  # never registered: nothing to do
    mux.unregister(a.fileno())
    mux.unregister(a.fileno())


def test_hang_up_reported_as_readable(mux: AsyncioMultiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    mux.register(a.fileno(), POLLIN)
    b.close()
    assert _wait(mux, a.fileno(), POLLIN) == POLLIN  # asyncio reports no POLLHUP bit
    assert a.recv(10) == b""


def test_fd_closed_behind_the_back(mux: AsyncioMultiplexer) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    try:
        mux.register(fd, POLLIN)
        os.close(fd)
        assert mux.poll(0) == []  # the kernel multiplexer forgot it, like epoll
        mux.unregister(fd)
        assert mux.poll(0) == []
    finally:
        a.detach()
        b.close()


def test_modify_after_the_number_was_reused(mux: AsyncioMultiplexer) -> None:
    """The fd was closed behind our back and its number reused: modify() starts afresh."""
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    number = a.fileno()
    try:
        mux.register(number, POLLIN)
        a.close()
        os.dup2(c.fileno(), number)  # the same number, now another socket
        mux.modify(number, POLLIN | POLLOUT)
        assert _wait(mux, number, POLLOUT) & POLLOUT
        mux.unregister(number)
    finally:
        os.close(number)
        for s in (b, c, d):
            s.close()


def test_fileno_is_the_kernel_multiplexer(mux: AsyncioMultiplexer) -> None:
    fd = mux.fileno()
    assert fd >= 0  # so the reactor looks for descriptors closed behind its back
    if sys.platform.startswith("linux"):
        assert "eventpoll" in os.readlink(f"/proc/self/fd/{fd}")


# -- asyncio code runs while the reactor waits --------------------------------------------------


def test_asyncio_task_runs_during_poll(mux: AsyncioMultiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    mux.register(a.fileno(), POLLIN)

    async def writer() -> str:
        await asyncio.sleep(0)
        b.send(b"from asyncio")
        return "done"

    task = mux.loop.create_task(writer())
    assert _wait(mux, a.fileno(), POLLIN) == POLLIN
    assert task.result() == "done"
    assert a.recv(100) == b"from asyncio"


def _safety_net(pair: tuple[socket.socket, socket.socket], mux: AsyncioMultiplexer) -> threading.Timer:
    """Make a poll(None) that wrongly keeps waiting return anyway, after 10 s, with ``a``
    readable (which the caller then sees in the result)."""
    a, b = pair
    mux.register(a.fileno(), POLLIN)
    timer = threading.Timer(10.0, b.send, (b"!",))
    timer.start()
    return timer


@pytest.mark.parametrize("how", ["call_soon", "call_later", "call_at", "call_soon_threadsafe", "task"])
def test_poll_returns_after_asyncio_code_ran(
    how: str, mux: AsyncioMultiplexer, pair: tuple[socket.socket, socket.socket]
) -> None:
    """Whatever asyncio code runs may have called the reactor (callLater, stop...): poll()
    returns once that round of the loop is over, so the reactor sees it."""
    loop = mux.loop
    ran: list[str] = []
    net = _safety_net(pair, mux)
    try:
        if how == "call_soon":
            loop.call_soon(ran.append, how)
        elif how == "call_later":
            loop.call_later(0.001, ran.append, how)
        elif how == "call_at":
            loop.call_at(loop.time() + 0.001, ran.append, how)
        elif how == "call_soon_threadsafe":
            t = threading.Thread(target=loop.call_soon_threadsafe, args=(ran.append, how))
            t.start()
            t.join()
        else:
            async def step() -> None:
                ran.append(how)

            loop.create_task(step())
        ready: list[tuple[int, int]] = []
        for _ in range(5):  # a task may need a round to be set up first
            ready = mux.poll(None)
            if ran:
                break
        assert ran == [how]
        assert ready == []  # it returned for the callback, not the safety net
    finally:
        net.cancel()


def test_close_cancels_pending_tasks(mux: AsyncioMultiplexer) -> None:
    cleaned: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("finally ran")

    task = mux.loop.create_task(forever())
    mux.poll(0)  # the task starts and waits
    mux.close()
    assert task.cancelled()
    assert cleaned == ["finally ran"]
    assert mux.loop.is_closed()
    mux.close()  # again: nothing to do


def test_a_given_loop_is_left_open_and_unhooked() -> None:
    loop = asyncio.new_event_loop()
    try:
        m = AsyncioMultiplexer(loop)
        assert m.loop is loop
        assert "call_soon" in vars(loop)
        m.close()
        assert not loop.is_closed()
        assert not any(name in vars(loop) for name in ("call_soon", "call_later", "call_at",
                                                       "call_soon_threadsafe"))
        assert loop.run_until_complete(asyncio.sleep(0, "still usable")) == "still usable"
    finally:
        loop.close()
    with pytest.raises(ValueError, match="closed event loop"):
        AsyncioMultiplexer(loop)


def test_poll_refused_inside_another_running_loop(mux: AsyncioMultiplexer) -> None:
    async def nested() -> None:
        with pytest.raises(RuntimeError, match="another loop is running|running"):
            mux.poll(0)

    asyncio.run(nested())


# -- a reactor on the asyncio backend -----------------------------------------------------------


def test_get_event_loop_of_a_reactor(aioreactor: Reactor) -> None:
    loop = get_event_loop(aioreactor)
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert loop is aioreactor._mux.loop  # type: ignore[attr-defined]


def test_get_event_loop_refuses_other_backends() -> None:
    r = Reactor(plugins.reactors().get("select").factory(), "select")
    try:
        with pytest.raises(RuntimeError, match="'select'.*asyncio"):
            get_event_loop(r)
    finally:
        r.close()


def test_get_event_loop_without_installed_reactor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framework.main, "_installed", None)
    with pytest.raises(RuntimeError, match="install_reactor"):
        get_event_loop()
    assert framework.installed_reactor() is None  # asking installed nothing


class _Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class _Collect(Protocol):
    """Sends ``message`` on connect, fires ``factory.done`` with what came back once it has
    as many bytes."""

    def connectionMade(self) -> None:
        self.buf = b""
        self.transport.write(self.factory.message)

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= len(self.factory.message):
            self.transport.loseConnection()
            self.factory.done.callback(self.buf)


def test_asyncio_streams_client_talks_to_our_server(aioreactor: Reactor) -> None:
    port = aioreactor.listenTCP(0, Factory.forProtocol(_Echo), interface="127.0.0.1")
    loop = get_event_loop(aioreactor)

    async def client() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port.getHost().port)
        writer.write(b"ping from asyncio")
        data = await reader.readexactly(len(b"ping from asyncio"))
        writer.close()
        await writer.wait_closed()
        return data

    try:
        assert run_until(aioreactor, defer.Deferred.fromFuture(loop.create_task(client()))) == \
            b"ping from asyncio"
    finally:
        run_until(aioreactor, port.stopListening())


def test_our_client_talks_to_an_asyncio_server(aioreactor: Reactor) -> None:
    loop = get_event_loop(aioreactor)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    server = run_until(aioreactor, defer.Deferred.fromFuture(
        loop.create_task(asyncio.start_server(handle, "127.0.0.1", 0))))
    try:
        factory = ClientFactory.forProtocol(_Collect)
        factory.message = b"shout"  # type: ignore[attr-defined]
        factory.done = defer.Deferred()  # type: ignore[attr-defined]
        aioreactor.connectTCP("127.0.0.1", server.sockets[0].getsockname()[1], factory)
        assert run_until(aioreactor, factory.done) == b"SHOUT"  # type: ignore[attr-defined]
    finally:
        server.close()
        run_until(aioreactor, defer.Deferred.fromFuture(loop.create_task(server.wait_closed())))


def test_reactor_calls_made_from_asyncio_code_take_effect(aioreactor: Reactor) -> None:
    """callLater and stop() from a coroutine are seen at once, though the reactor was waiting
    with no timer of its own."""
    loop = get_event_loop(aioreactor)
    events: list[str] = []

    async def main() -> None:
        await asyncio.sleep(0)
        aioreactor.callLater(0, events.append, "reactor timer")
        await asyncio.sleep(0.001)
        events.append("coroutine")
        aioreactor.stop()

    aioreactor.callWhenRunning(lambda: loop.create_task(main()))
    safety = aioreactor.callLater(10.0, aioreactor.crash)
    aioreactor.run(installSignalHandlers=False)
    assert safety.active(), "the reactor only stopped through the 10 s safety net"
    safety.cancel()
    assert events == ["reactor timer", "coroutine"]


def test_timers_and_threads_of_both_sides(aioreactor: Reactor) -> None:
    loop = get_event_loop(aioreactor)
    seen: list[str] = []
    aioreactor.callLater(0.002, seen.append, "reactor callLater")
    loop.call_later(0.002, seen.append, "asyncio call_later")
    workers = [
        threading.Thread(target=aioreactor.callFromThread, args=(seen.append, "callFromThread")),
        threading.Thread(target=loop.call_soon_threadsafe, args=(seen.append, "call_soon_threadsafe")),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    run_until_true(aioreactor, lambda: len(seen) == 4)
    assert sorted(seen) == sorted(["reactor callLater", "asyncio call_later", "callFromThread",
                                   "call_soon_threadsafe"])


def test_a_coroutine_awaits_a_deferred_returning_api(aioreactor: Reactor) -> None:
    from framework.task import deferLater

    loop = get_event_loop(aioreactor)

    async def main() -> int:
        value: int = await deferLater(aioreactor, 0.001, lambda: 41)
        return value + 1

    assert run_until(aioreactor, defer.Deferred.fromFuture(loop.create_task(main()))) == 42


def test_deferred_cancel_reaches_an_asyncio_task(aioreactor: Reactor) -> None:
    loop = get_event_loop(aioreactor)
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.Event().wait()

    task = loop.create_task(slow())
    d = defer.Deferred.fromFuture(task)
    run_until(aioreactor, defer.Deferred.fromFuture(loop.create_task(started.wait())))
    d.cancel()
    with pytest.raises(defer.CancelledError):
        run_until(aioreactor, d)
    run_until_true(aioreactor, task.done)
    assert task.cancelled()



def test_ensure_future_in_reactor_callbacks_runs_on_the_reactors_loop(aioreactor: Reactor) -> None:
    """Twisted's idiom ``Deferred.fromFuture(asyncio.ensure_future(coro()))`` in a
    callWhenRunning function (outside a running loop): the coroutine runs on our loop."""
    from framework.defer import Deferred

    results: list[Any] = []

    async def coro() -> str:
        await asyncio.sleep(0)
        return "done"

    def go() -> None:
        results.append(asyncio.get_event_loop() is get_event_loop(aioreactor))
        Deferred.fromFuture(asyncio.ensure_future(coro())).addBoth(results.append)

    aioreactor.callWhenRunning(go)
    run_until_true(aioreactor, lambda: len(results) == 2)
    assert results == [True, "done"]


def test_closing_the_backend_leaves_no_closed_loop_current() -> None:
    mux = AsyncioMultiplexer()
    policy = asyncio.get_event_loop_policy()
    assert policy.get_event_loop() is mux.loop
    mux.close()
    with pytest.raises(RuntimeError, match="no current event loop"):
        policy.get_event_loop()  # not the closed loop
