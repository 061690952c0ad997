"""Reactor conformance: run/stop, triggers, readiness dispatch and signals, on every backend."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from framework import error, main
from framework.defer import Deferred
from framework.eventloop import Reactor
from framework.failure import Failure
from tests.util import run_until, run_until_true


class Handler:
    """A readiness handler over one socket that records what the reactor does to it."""

    def __init__(self, sock: Any, read_result: Any = None, write_result: Any = None) -> None:
        self.sock = sock
        self.reads = 0
        self.writes = 0
        self.data = b""
        self.lost: list[Failure] = []
        self.read_result = read_result
        self.write_result = write_result

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> Any:
        self.reads += 1
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return None
        if not chunk:
            return main.CONNECTION_DONE
        self.data += chunk
        return self.read_result

    def doWrite(self) -> Any:
        self.writes += 1
        return self.write_result

    def connectionLost(self, reason: Failure) -> None:
        self.lost.append(reason)

    def logPrefix(self) -> str:
        return "TestHandler"


@pytest.fixture
def pair() -> Any:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def stop_soon(reactor: Reactor) -> None:
    reactor.callLater(0, reactor.stop)


# -- run / stop / crash ------------------------------------------------------------------------


def test_backend_name_attribute(reactor: Reactor) -> None:
    assert isinstance(reactor.backend_name, str) and reactor.backend_name


def test_stop_before_run_raises(reactor: Reactor) -> None:
    with pytest.raises(error.ReactorNotRunning):
        reactor.stop()
    with pytest.raises(error.ReactorNotRunning):
        reactor.crash()


def test_running_is_accurate(reactor: Reactor) -> None:
    seen: list[tuple[str, bool]] = []
    assert reactor.running is False
    reactor.callWhenRunning(lambda: seen.append(("started", reactor.running)))
    reactor.addSystemEventTrigger("during", "shutdown", lambda: seen.append(("during", reactor.running)))
    reactor.addSystemEventTrigger("after", "shutdown", lambda: seen.append(("after", reactor.running)))
    reactor.callLater(0, lambda: (seen.append(("timer", reactor.running)), reactor.stop()))
    reactor.run(installSignalHandlers=False)
    assert seen == [("started", True), ("timer", True), ("during", False), ("after", False)]
    assert reactor.running is False


def test_stop_twice_raises(reactor: Reactor) -> None:
    errors: list[type] = []

    def stop_twice() -> None:
        reactor.stop()
        try:
            reactor.stop()
        except error.ReactorNotRunning:
            errors.append(error.ReactorNotRunning)

    reactor.callWhenRunning(stop_twice)
    reactor.run(installSignalHandlers=False)
    assert errors == [error.ReactorNotRunning]


def test_run_again_after_return(reactor: Reactor) -> None:
    for i in range(3):
        seen: list[int] = []
        reactor.callWhenRunning(seen.append, i)
        stop_soon(reactor)
        reactor.run(installSignalHandlers=False)
        assert seen == [i]
        assert not reactor.running


def test_run_while_running_raises(reactor: Reactor) -> None:
    raised: list[BaseException] = []

    def nested() -> None:
        try:
            reactor.run(installSignalHandlers=False)
        except error.ReactorAlreadyRunning as e:
            raised.append(e)
        reactor.stop()

    reactor.callWhenRunning(nested)
    reactor.run(installSignalHandlers=False)
    assert len(raised) == 1


def test_call_when_running_while_running_calls_at_once(reactor: Reactor) -> None:
    seen: list[str] = []

    def started() -> None:
        reactor.callWhenRunning(seen.append, "now")
        seen.append("after")
        reactor.stop()

    reactor.callWhenRunning(started)
    reactor.run(installSignalHandlers=False)
    assert seen == ["now", "after"]


def test_crash_skips_shutdown_triggers(reactor: Reactor) -> None:
    seen: list[str] = []
    trigger = reactor.addSystemEventTrigger("before", "shutdown", seen.append, "shutdown")
    reactor.callWhenRunning(reactor.crash)
    reactor.run(installSignalHandlers=False)
    assert seen == []
    assert not reactor.running
    reactor.removeSystemEventTrigger(trigger)


def test_exception_escaping_a_callback_leaves_reactor_reusable(reactor: Reactor) -> None:
    def die() -> None:
        raise SystemExit(3)

    reactor.callLater(0, die)
    with pytest.raises(SystemExit):
        reactor.run(installSignalHandlers=False)
    assert not reactor.running
    stop_soon(reactor)
    reactor.run(installSignalHandlers=False)


# -- system event triggers ---------------------------------------------------------------------


def test_shutdown_trigger_phases_in_order(reactor: Reactor) -> None:
    seen: list[str] = []
    reactor.addSystemEventTrigger("after", "shutdown", seen.append, "after")
    reactor.addSystemEventTrigger("during", "shutdown", seen.append, "during")
    reactor.addSystemEventTrigger("before", "shutdown", seen.append, "before1")
    reactor.addSystemEventTrigger("before", "shutdown", seen.append, "before2")
    stop_soon(reactor)
    reactor.run(installSignalHandlers=False)
    assert seen == ["before1", "before2", "during", "after"]


def test_startup_triggers(reactor: Reactor) -> None:
    seen: list[tuple[str, bool]] = []
    for phase in ("after", "during", "before"):
        reactor.addSystemEventTrigger(phase, "startup", lambda p=phase: seen.append((p, reactor.running)))
    stop_soon(reactor)
    reactor.run(installSignalHandlers=False)
    assert seen == [("before", False), ("during", True), ("after", True)]


def test_before_trigger_deferred_delays_shutdown(reactor: Reactor) -> None:
    seen: list[str] = []
    d: Deferred[None] = Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", lambda: d)
    reactor.addSystemEventTrigger("during", "shutdown", seen.append, "during")

    def check_then_fire() -> None:
        seen.append(f"still running={reactor.running}")
        d.callback(None)

    def stop() -> None:
        reactor.stop()
        reactor.callLater(0.01, check_then_fire)

    reactor.callWhenRunning(stop)
    reactor.run(installSignalHandlers=False)
    assert seen == ["still running=True", "during"]


def test_crash_during_shutdown_then_run_again(reactor: Reactor) -> None:
    """A shutdown abandoned by crash() (e.g. a second Ctrl-C) does not stick to the next run."""
    stuck: Deferred[None] = Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", lambda: stuck)
    reactor.callWhenRunning(reactor.stop)
    reactor.callWhenRunning(reactor.callLater, 0.01, reactor.crash)
    reactor.run(installSignalHandlers=False)
    seen: list[str] = []
    reactor.addSystemEventTrigger("after", "shutdown", seen.append, "second shutdown")
    reactor.callWhenRunning(reactor.stop)
    guard = reactor.callLater(10, reactor.crash)
    reactor.run(installSignalHandlers=False)
    assert seen == ["second shutdown"]
    assert guard.active()
    guard.cancel()
    stuck.callback(None)  # late: must not disturb anything
    assert not reactor.running


def test_failing_before_deferred_still_shuts_down(reactor: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    d: Deferred[None] = Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", lambda: d)
    reactor.callWhenRunning(reactor.stop)
    reactor.callWhenRunning(reactor.callLater, 0, d.errback, RuntimeError("cleanup failed"))
    with caplog.at_level(logging.ERROR, logger="framework.eventloop"):
        reactor.run(installSignalHandlers=False)
    assert "cleanup failed" in caplog.text


def test_trigger_exception_is_logged_and_others_run(reactor: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def bad() -> None:
        raise KeyError("bad trigger")

    reactor.addSystemEventTrigger("during", "shutdown", bad)
    reactor.addSystemEventTrigger("during", "shutdown", seen.append, "good")
    stop_soon(reactor)
    with caplog.at_level(logging.ERROR, logger="framework.eventloop"):
        reactor.run(installSignalHandlers=False)
    assert seen == ["good"]
    assert "bad trigger" in caplog.text


def test_remove_system_event_trigger(reactor: Reactor) -> None:
    seen: list[str] = []
    trigger = reactor.addSystemEventTrigger("before", "shutdown", seen.append, "removed")
    reactor.removeSystemEventTrigger(trigger)
    with pytest.raises(ValueError):
        reactor.removeSystemEventTrigger(trigger)
    with pytest.raises(ValueError):
        reactor.removeSystemEventTrigger(("nonsense",))  # type: ignore[arg-type]
    stop_soon(reactor)
    reactor.run(installSignalHandlers=False)
    assert seen == []


def test_bad_phase_raises(reactor: Reactor) -> None:
    with pytest.raises(KeyError, match="phase"):
        reactor.addSystemEventTrigger("sometime", "shutdown", lambda: None)


def test_triggers_run_once_across_runs(reactor: Reactor) -> None:
    seen: list[str] = []
    reactor.addSystemEventTrigger("before", "shutdown", seen.append, "x")
    for _ in range(2):
        stop_soon(reactor)
        reactor.run(installSignalHandlers=False)
    assert seen == ["x"]


def test_custom_event(reactor: Reactor) -> None:
    seen: list[str] = []
    reactor.addSystemEventTrigger("after", "custom", seen.append, "after")
    reactor.addSystemEventTrigger("before", "custom", seen.append, "before")
    reactor.fireSystemEvent("custom")
    assert seen == ["before", "after"]


# -- readiness ---------------------------------------------------------------------------------


def test_add_reader_dispatches_do_read(reactor: Reactor, pair: Any) -> None:
    a, b = pair
    h = Handler(a)
    reactor.addReader(h)
    assert reactor.getReaders() == [h]
    b.send(b"hello")
    run_until_true(reactor, lambda: h.data == b"hello")
    reactor.removeReader(h)
    assert reactor.getReaders() == []
    assert h.lost == []


def test_add_writer_dispatches_do_write(reactor: Reactor, pair: Any) -> None:
    a, _ = pair
    h = Handler(a)
    reactor.addWriter(h)
    assert reactor.getWriters() == [h]
    run_until_true(reactor, lambda: h.writes >= 3)
    reactor.removeWriter(h)
    assert reactor.getWriters() == []
    assert h.reads == 0


def test_reader_and_writer_on_one_handler(reactor: Reactor, pair: Any) -> None:
    a, b = pair
    h = Handler(a)
    reactor.addReader(h)
    reactor.addWriter(h)
    reactor.addReader(h)  # adding twice is harmless
    b.send(b"x")
    run_until_true(reactor, lambda: h.data and h.writes)
    reactor.removeWriter(h)
    assert reactor.getReaders() == [h] and reactor.getWriters() == []
    b.send(b"y")
    run_until_true(reactor, lambda: h.data == b"xy")
    assert reactor.removeAll() == [h]
    assert reactor.getReaders() == [] and reactor.getWriters() == []


def test_remove_unregistered_is_noop(reactor: Reactor, pair: Any) -> None:
    h = Handler(pair[0])
    reactor.removeReader(h)
    reactor.removeWriter(h)
    assert reactor.removeAll() == []


def test_add_descriptor_without_fd_raises(reactor: Reactor) -> None:
    class Closed:
        def fileno(self) -> int:
            return -1

    with pytest.raises(ValueError, match="fileno"):
        reactor.addReader(Closed())
    with pytest.raises(ValueError, match="fileno"):
        reactor.addWriter(Closed())
    assert reactor.getReaders() == [] and reactor.getWriters() == []


@pytest.mark.parametrize("sentinel", ["CONNECTION_DONE", "CONNECTION_LOST"])
def test_truthy_do_read_drops_and_calls_connection_lost_once(reactor: Reactor, pair: Any, sentinel: str) -> None:
    a, b = pair
    h = Handler(a, read_result=getattr(main, sentinel))
    reactor.addReader(h)
    reactor.addWriter(h)
    b.send(b"data")
    run_until_true(reactor, lambda: h.lost)
    b.send(b"more")
    reactor.iterate(0.01)
    assert len(h.lost) == 1
    assert h.lost[0] is getattr(main, sentinel)
    assert reactor.getReaders() == [] and reactor.getWriters() == []


def test_peer_close_gives_connection_done(reactor: Reactor, pair: Any) -> None:
    a, b = pair
    h = Handler(a)
    reactor.addReader(h)
    b.close()
    run_until_true(reactor, lambda: h.lost)
    assert len(h.lost) == 1
    assert h.lost[0].check(error.ConnectionDone)


def test_pipe_hangup_dispatches_do_read(reactor: Reactor) -> None:
    """A pipe whose writer closed reports POLLHUP (not POLLIN) on poll/epoll: doRead must run."""
    r, w = os.pipe()
    os.set_blocking(r, False)

    class PipeReader:
        lost: list[Failure] = []

        def fileno(self) -> int:
            return r

        def doRead(self) -> Any:
            return main.CONNECTION_DONE if os.read(r, 100) == b"" else None

        def connectionLost(self, reason: Failure) -> None:
            self.lost.append(reason)

    h = PipeReader()
    try:
        reactor.addReader(h)
        os.close(w)
        run_until_true(reactor, lambda: h.lost)
        assert h.lost[0].check(error.ConnectionDone)
    finally:
        os.close(r)


@pytest.mark.parametrize("also_writer", [False, True], ids=["reader", "reader+writer"])
def test_exception_in_do_read_drops_with_failure(reactor: Reactor, pair: Any,
                                                 caplog: pytest.LogCaptureFixture,
                                                 also_writer: bool) -> None:
    """Both dispatch paths: a read-only event (the fast path) and a read+write event."""
    a, b = pair

    class Broken(Handler):
        def doRead(self) -> Any:
            self.reads += 1
            raise ValueError("broken reader")

    h = Broken(a)
    other = Handler(socket.socket())  # unrelated, never registered
    reactor.addReader(h)
    if also_writer:
        reactor.addWriter(h)
    b.send(b"x")
    with caplog.at_level(logging.ERROR, logger="framework.eventloop"):
        run_until_true(reactor, lambda: h.lost)
    reactor.iterate(0.01)
    other.sock.close()
    assert len(h.lost) == 1 and h.reads == 1
    assert h.lost[0].check(ValueError)
    assert h.lost[0].getErrorMessage() == "broken reader"
    assert reactor.getReaders() == [] and reactor.getWriters() == []
    assert "broken reader" in caplog.text and "TestHandler" in caplog.text


def test_exception_in_do_write_drops_with_failure(reactor: Reactor, pair: Any) -> None:
    class Broken(Handler):
        def doWrite(self) -> Any:
            raise OSError("broken writer")

    h = Broken(pair[0])
    reactor.addWriter(h)
    run_until_true(reactor, lambda: h.lost)
    reactor.iterate(0.01)
    assert len(h.lost) == 1 and h.lost[0].check(OSError)
    assert reactor.getWriters() == []


def test_truthy_do_write_drops(reactor: Reactor, pair: Any) -> None:
    h = Handler(pair[0], write_result=main.CONNECTION_LOST)
    reactor.addWriter(h)
    run_until_true(reactor, lambda: h.lost)
    assert h.writes == 1 and h.lost == [main.CONNECTION_LOST]


def test_exception_in_connection_lost_is_logged(reactor: Reactor, pair: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    class Grumpy(Handler):
        def connectionLost(self, reason: Failure) -> None:
            self.lost.append(reason)
            raise RuntimeError("grumpy connectionLost")

    a, b = pair
    h = Grumpy(a, read_result=main.CONNECTION_DONE)
    reactor.addReader(h)
    b.send(b"x")
    with caplog.at_level(logging.ERROR, logger="framework.eventloop"):
        run_until_true(reactor, lambda: h.lost)
    assert "grumpy connectionLost" in caplog.text


def test_handler_removed_by_another_in_same_turn_is_not_dispatched(reactor: Reactor) -> None:
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        handlers: list[Handler] = []

        class Remover(Handler):
            def doRead(self) -> Any:
                self.reads += 1
                for other in handlers:
                    reactor.removeReader(other)
                return None

        handlers.extend(Remover(a) for a, _ in pairs)
        for h in handlers:
            reactor.addReader(h)
        for _, b in pairs:
            b.send(b"x")  # both readable before the first poll
        run_until_true(reactor, lambda: sum(h.reads for h in handlers) > 0)
        assert sorted(h.reads for h in handlers) == [0, 1]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_closed_descriptor_dropped_alone(reactor: Reactor) -> None:
    """A socket closed behind the reactor's back (fileno() now -1) is dropped with
    ConnectionFdescWentAway; the other descriptors keep being served."""
    bad_a, bad_b = socket.socketpair()
    good_a, good_b = socket.socketpair()
    try:
        bad, good = Handler(bad_a), Handler(good_a)
        reactor.addReader(bad)
        reactor.addReader(good)
        bad_a.close()
        good_b.send(b"one")
        run_until_true(reactor, lambda: good.data == b"one" and bad.lost)
        assert bad.lost[0].check(error.ConnectionFdescWentAway)
        assert len(bad.lost) == 1
        assert reactor.getReaders() == [good]
        good_b.send(b"two")
        run_until_true(reactor, lambda: good.data == b"onetwo")
        reactor.removeReader(good)
    finally:
        for s in (bad_a, bad_b, good_a, good_b):
            s.close()


def test_fd_closed_under_a_live_socket_object(reactor: Reactor) -> None:
    """The fd itself is closed (the socket object still reports its old number): EBADF or
    POLLNVAL drops that descriptor alone."""
    bad_a, bad_b = socket.socketpair()
    good_a, good_b = socket.socketpair()
    spare = socket.socket()  # keep the freed number from being reused by the waker etc.
    try:
        bad, good = Handler(bad_a), Handler(good_a)
        reactor.addReader(bad)
        reactor.addReader(good)
        os.close(bad_a.fileno())
        good_b.send(b"one")
        run_until_true(reactor, lambda: good.data == b"one" and bad.lost)
        assert bad.lost[0].check(error.ConnectionFdescWentAway)
        assert reactor.getReaders() == [good]
        reactor.removeReader(good)
    finally:
        bad_a.detach()
        for s in (bad_b, good_a, good_b, spare):
            s.close()


def test_readd_after_fd_reuse(reactor: Reactor) -> None:
    """A stale handler whose fd number was reused is dropped when the new owner registers."""
    a, b = socket.socketpair()
    stale = Handler(a)
    reactor.addReader(stale)
    number = a.fileno()
    a.close()
    c, d = socket.socketpair()
    try:
        target = c if c.fileno() == number else d if d.fileno() == number else None
        if target is None:
            pytest.skip("the OS did not reuse the descriptor number")
        fresh = Handler(target)
        reactor.addReader(fresh)
        assert stale.lost and stale.lost[0].check(error.ConnectionFdescWentAway)
        assert reactor.getReaders() == [fresh]
        reactor.removeReader(fresh)
    finally:
        for s in (b, c, d):
            s.close()


def test_two_handlers_for_one_fd_is_an_error(reactor: Reactor, pair: Any) -> None:
    h1, h2 = Handler(pair[0]), Handler(pair[0])
    reactor.addReader(h1)
    with pytest.raises(ValueError, match="already"):
        reactor.addReader(h2)
    assert reactor.getReaders() == [h1]
    reactor.removeReader(h1)


def test_many_descriptors(reactor: Reactor) -> None:
    pairs = [socket.socketpair() for _ in range(50)]
    try:
        handlers = [Handler(a) for a, _ in pairs]
        for h in handlers:
            reactor.addReader(h)
        for i, (_, b) in enumerate(pairs):
            b.send(str(i).encode())
        run_until_true(reactor, lambda: all(h.data for h in handlers))
        assert [h.data for h in handlers] == [str(i).encode() for i in range(50)]
        assert set(reactor.removeAll()) == set(handlers)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_tcp_sockets_on_loopback(reactor: Reactor) -> None:
    """Readiness over a real TCP connection: accept, read, write, EOF."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    client = socket.create_connection(server.getsockname())
    accepted: list[socket.socket] = []

    class Acceptor:
        def fileno(self) -> int:
            return server.fileno()

        def doRead(self) -> None:
            conn, _ = server.accept()
            conn.setblocking(False)
            accepted.append(conn)
            reactor.removeReader(self)

        def connectionLost(self, reason: Failure) -> None:
            pass

    try:
        reactor.addReader(Acceptor())
        run_until_true(reactor, lambda: accepted)
        h = Handler(accepted[0])
        reactor.addReader(h)
        client.sendall(b"ping")
        run_until_true(reactor, lambda: h.data == b"ping")
        client.close()
        run_until_true(reactor, lambda: h.lost)
        assert h.lost[0].check(error.ConnectionDone)
    finally:
        server.close()
        client.close()
        for conn in accepted:
            conn.close()


def test_interrupted_poll_is_retried(reactor: Reactor) -> None:
    real = reactor._mux
    interrupted = [0]

    class Flaky:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def poll(self, timeout: float | None) -> list[tuple[int, int]]:
            if interrupted[0] < 3:
                interrupted[0] += 1
                raise InterruptedError(4, "Interrupted system call")
            return real.poll(timeout)

    reactor._mux = Flaky()  # type: ignore[assignment]
    try:
        reactor.callLater(0.01, reactor.stop)
        reactor.run(installSignalHandlers=False)
    finally:
        reactor._mux = real
    assert interrupted[0] == 3


def test_signal_during_poll_does_not_escape(reactor: Reactor) -> None:
    """A signal handled by Python while the loop sleeps interrupts poll (EINTR) harmlessly."""
    got: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))

    def kill_then_stop() -> None:
        os.kill(os.getpid(), signal.SIGUSR1)
        reactor.callFromThread(reactor.stop)

    try:
        reactor.callWhenRunning(lambda: threading.Thread(target=kill_then_stop).start())
        guard = reactor.callLater(10, reactor.crash)
        reactor.run(installSignalHandlers=False)
        assert guard.active(), "the reactor was not woken"
        guard.cancel()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert got == [signal.SIGUSR1]


# -- slow-callback detection -------------------------------------------------------------------


def test_slow_callback_threshold_logs(reactor: Reactor, pair: Any, caplog: pytest.LogCaptureFixture) -> None:
    import time

    a, b = pair
    h = Handler(a)
    reactor.addReader(h)
    reactor.set_slow_callback_threshold(0.01)

    def sluggish_timer() -> None:
        time.sleep(0.05)  # the slowness under test, not synchronisation

    reactor.callLater(0, sluggish_timer)
    b.send(b"x")
    with caplog.at_level(logging.WARNING, logger="framework.eventloop"):
        run_until_true(reactor, lambda: h.data)
        reactor.set_slow_callback_threshold(0.0)
        b.send(b"y")
        run_until_true(reactor, lambda: h.data == b"xy")
    reactor.removeReader(h)
    slow = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("sluggish_timer" in m for m in slow), slow
    assert any("doRead" in m and "TestHandler" in m for m in slow), slow


def test_slow_callback_off_by_default(reactor: Reactor, pair: Any, caplog: pytest.LogCaptureFixture) -> None:
    a, b = pair
    h = Handler(a)
    reactor.addReader(h)
    reactor.set_slow_callback_threshold(0.0)
    reactor.set_slow_callback_threshold(None)
    b.send(b"x")
    with caplog.at_level(logging.WARNING, logger="framework.eventloop"):
        run_until_true(reactor, lambda: h.data)
    reactor.removeReader(h)
    assert not [r for r in caplog.records if "Slow callback" in r.getMessage()]
    with pytest.raises(ValueError):
        reactor.set_slow_callback_threshold(-1)


# -- signals (in a subprocess: they are process-wide) ------------------------------------------

SIGNAL_SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading
    from framework import plugins
    from framework.eventloop import Reactor

    def own_handler(signum, frame):
        pass

    signal.signal(signal.SIGTERM, own_handler)
    entry = plugins.reactors().get(sys.argv[1])
    reactor = Reactor(entry.factory(), entry.name)
    seen = []
    reactor.addSystemEventTrigger("before", "shutdown", seen.append, "before")
    reactor.addSystemEventTrigger("after", "shutdown", seen.append, "after")
    signum = getattr(signal, sys.argv[2])

    def send():
        os.kill(os.getpid(), signum)

    def started():
        seen.append("pipe ignored" if signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN else "pipe?")
        threading.Thread(target=send).start()

    reactor.callWhenRunning(started)
    guard = reactor.callLater(20, reactor.crash)
    reactor.run()
    seen.append("guard intact" if guard.active() else "guard fired")
    seen.append("term restored" if signal.getsignal(signal.SIGTERM) is own_handler else "term lost")
    seen.append("int restored" if signal.getsignal(signal.SIGINT) is signal.default_int_handler
                else "int lost")
    print(",".join(seen))
""")


SECOND_SIGNAL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from framework import plugins
    from framework.defer import Deferred
    from framework.eventloop import Reactor

    entry = plugins.reactors().get(sys.argv[1])
    reactor = Reactor(entry.factory(), entry.name)

    def slow_cleanup():
        os.kill(os.getpid(), signal.SIGINT)  # the impatient second Ctrl-C
        return Deferred()                    # never fires

    reactor.addSystemEventTrigger("before", "shutdown", slow_cleanup)
    reactor.callWhenRunning(os.kill, os.getpid(), signal.SIGINT)
    reactor.run()
    print("returned", reactor.running)
""")


def test_second_signal_stops_at_once(reactor: Reactor) -> None:
    proc = subprocess.run([sys.executable, "-c", SECOND_SIGNAL_SCRIPT, reactor.backend_name],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "returned False"


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_handlers_are_restored(reactor: Reactor, signame: str) -> None:
    proc = subprocess.run([sys.executable, "-c", SIGNAL_SCRIPT, reactor.backend_name, signame],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pipe ignored,before,after,guard intact,term restored,int restored"


def test_no_signal_handlers_outside_main_thread(reactor: Reactor) -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[Any] = []

    def in_thread() -> None:
        reactor.callWhenRunning(lambda: (seen.append(signal.getsignal(signal.SIGINT)), reactor.stop()))
        reactor.run()  # installSignalHandlers=True, but not the main thread

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(20)
    assert seen == [before]


# -- misc --------------------------------------------------------------------------------------


def test_iterate_runs_one_turn(reactor: Reactor) -> None:
    seen: list[int] = []
    reactor.callLater(0, seen.append, 1)
    reactor.iterate()
    assert seen == [1]


def test_closed_reactor_refuses_to_run(reactor: Reactor) -> None:
    reactor.close()
    with pytest.raises(RuntimeError, match="closed"):
        reactor.run(installSignalHandlers=False)
    reactor.close()  # idempotent


def test_closed_reactor_refuses_new_ports_connections_and_threads(reactor: Reactor, tmp_path: Any) -> None:
    from framework.protocol import ClientFactory, DatagramProtocol, Factory

    reactor.close()
    before = len(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()
    attempts = [
        lambda: reactor.listenTCP(0, Factory(), interface="127.0.0.1"),
        lambda: reactor.connectTCP("127.0.0.1", 9, ClientFactory()),
        lambda: reactor.listenUNIX(str(tmp_path / "s.sock"), Factory()),
        lambda: reactor.connectUNIX(str(tmp_path / "s.sock"), ClientFactory()),
        lambda: reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1"),
        lambda: reactor.callInThread(lambda: None),
        reactor.getThreadPool,
    ]
    for attempt in attempts:
        with pytest.raises(RuntimeError, match="is closed"):
            attempt()
    assert len(os.listdir("/proc/self/fd")) == before  # nothing bound and leaked
    assert threading.active_count() == threads_before
    assert not os.path.exists(tmp_path / "s.sock")


def test_call_from_thread_refuses_a_non_callable_at_once(reactor: Reactor) -> None:
    with pytest.raises(TypeError, match="callFromThread\\(\\) needs a callable, not 5"):
        reactor.callFromThread(5)  # type: ignore[arg-type]


def test_resolve_numeric_is_immediate(reactor: Reactor) -> None:
    d = reactor.resolve("127.0.0.1")
    assert d.called and d.result == "127.0.0.1"
    d6 = reactor.resolve("::1")
    assert d6.called and d6.result == "::1"


def test_resolve_localhost(reactor: Reactor) -> None:
    assert run_until(reactor, reactor.resolve("localhost")) in ("127.0.0.1", "::1")


def test_resolve_bad_name_fails_with_dns_lookup_error(reactor: Reactor) -> None:
    # A label longer than 63 characters is refused locally, without asking any DNS server.
    with pytest.raises(error.DNSLookupError):
        run_until(reactor, reactor.resolve("x" * 70 + ".test"))


def test_resolve_uses_the_installed_name_resolver(reactor: Reactor) -> None:
    asked: list[str] = []

    def getaddrinfo(host: str, port: Any, *rest: Any) -> Any:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.7", 0))]

    previous = reactor.set_name_resolver(getaddrinfo)
    assert previous is socket.getaddrinfo
    assert run_until(reactor, reactor.resolve("db.internal")) == "127.0.0.7"
    assert asked == ["db.internal"]
    assert reactor.set_name_resolver(None) is getaddrinfo
