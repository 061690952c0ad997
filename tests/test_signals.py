"""``reactor.add_signal_handler``/``remove_signal_handler``: real signals sent to this process
with ``os.kill``, on every backend. SIGUSR1/SIGUSR2 in process; SIGINT/SIGTERM (whose defaults
end the process) in a subprocess."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import traceback
from typing import Any

import pytest

from framework.eventloop import Reactor
from util import run_until_true


@pytest.fixture
def usr1() -> Any:
    """SIGUSR1 with a harmless Python handler, put back afterwards."""
    def previous(signum: int, frame: Any) -> None:
        pass

    old = signal.signal(signal.SIGUSR1, previous)
    try:
        yield previous
    finally:
        signal.signal(signal.SIGUSR1, old)


def _kill_from_thread(signum: int) -> None:
    threading.Thread(target=os.kill, args=(os.getpid(), signum)).start()


def test_handler_runs_on_the_reactor_thread_from_the_loop(reactor: Reactor, usr1: Any) -> None:
    seen: list[Any] = []

    def handler(*args: Any) -> None:
        names = [frame.name for frame in traceback.extract_stack()]
        seen.append((args, threading.get_ident(), "_run_once" in names))

    reactor.add_signal_handler(signal.SIGUSR1, handler, "a", 1)
    try:
        assert signal.getsignal(signal.SIGUSR1) is not handler  # never run in the signal handler
        reactor.callWhenRunning(_kill_from_thread, signal.SIGUSR1)
        run_until_true(reactor, lambda: seen)
    finally:
        assert reactor.remove_signal_handler(signal.SIGUSR1) is True
    assert seen == [(("a", 1), threading.get_ident(), True)]
    assert signal.getsignal(signal.SIGUSR1) is usr1  # the handler found there is back
    assert reactor.remove_signal_handler(signal.SIGUSR1) is False


def test_signal_before_run_is_delivered_once_running(reactor: Reactor, usr1: Any) -> None:
    seen: list[int] = []
    reactor.add_signal_handler(signal.SIGUSR1, seen.append, 1)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert seen == []
        run_until_true(reactor, lambda: seen)
    finally:
        reactor.remove_signal_handler(signal.SIGUSR1)
    assert seen == [1]


def test_a_new_handler_replaces_the_previous_one(reactor: Reactor, usr1: Any) -> None:
    seen: list[str] = []
    reactor.add_signal_handler(signal.SIGUSR1, seen.append, "first")
    reactor.add_signal_handler(signal.SIGUSR1, seen.append, "second")
    try:
        reactor.callWhenRunning(_kill_from_thread, signal.SIGUSR1)
        run_until_true(reactor, lambda: seen)
    finally:
        reactor.remove_signal_handler(signal.SIGUSR1)
    assert seen == ["second"]
    assert signal.getsignal(signal.SIGUSR1) is usr1


def test_removed_handler_is_not_called(reactor: Reactor, usr1: Any) -> None:
    seen: list[str] = []
    reactor.add_signal_handler(signal.SIGUSR1, seen.append, "usr1")
    os.kill(os.getpid(), signal.SIGUSR1)  # pending until the loop turns
    assert reactor.remove_signal_handler(signal.SIGUSR1)
    reactor.callLater(0.05, reactor.crash)
    reactor.run(installSignalHandlers=False)
    assert seen == []


def test_handler_error_is_logged_and_the_reactor_goes_on(reactor: Reactor, usr1: Any,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def broken() -> None:
        seen.append("broken")
        raise RuntimeError("boom")

    reactor.add_signal_handler(signal.SIGUSR1, broken)
    try:
        with caplog.at_level(logging.ERROR, logger="framework.eventloop"):
            reactor.callWhenRunning(_kill_from_thread, signal.SIGUSR1)
            run_until_true(reactor, lambda: seen)
            reactor.callLater(0, seen.append, "still running")
            run_until_true(reactor, lambda: len(seen) == 2)
    finally:
        reactor.remove_signal_handler(signal.SIGUSR1)
    assert any("SIGUSR1" in r.getMessage() and r.exc_info for r in caplog.records)


def test_slow_signal_handler_is_named(reactor: Reactor, usr1: Any,
                                      caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []

    def on_usr1() -> None:
        seen.append(1)

    reactor.set_slow_callback_threshold(0.0)
    reactor.add_signal_handler(signal.SIGUSR1, on_usr1)
    try:
        with caplog.at_level(logging.WARNING, logger="framework.eventloop"):
            reactor.callWhenRunning(_kill_from_thread, signal.SIGUSR1)
            run_until_true(reactor, lambda: seen)
    finally:
        reactor.remove_signal_handler(signal.SIGUSR1)
    slow = [r.getMessage() for r in caplog.records if "Slow callback" in r.getMessage()]
    assert any("SIGUSR1" in m and "on_usr1" in m for m in slow), slow


def test_reactor_running_in_another_thread(reactor: Reactor, usr1: Any) -> None:
    """The main thread adds the handler and waits; the reactor thread runs it."""
    ran_in: list[int] = []
    done = threading.Event()

    def handler() -> None:
        ran_in.append(threading.get_ident())
        done.set()

    reactor.add_signal_handler(signal.SIGUSR1, handler)
    started = threading.Event()
    reactor.callWhenRunning(started.set)
    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False})
    thread.start()
    try:
        assert started.wait(10)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert done.wait(10), "the handler did not run"
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(10)
        reactor.remove_signal_handler(signal.SIGUSR1)
    assert ran_in == [thread.ident]


def test_bad_signals_and_callbacks_are_refused(reactor: Reactor) -> None:
    with pytest.raises(TypeError):
        reactor.add_signal_handler("SIGUSR1", print)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reactor.add_signal_handler(0, print)
    with pytest.raises(ValueError):
        reactor.add_signal_handler(100000, print)
    with pytest.raises(TypeError):
        reactor.add_signal_handler(signal.SIGUSR1, "not callable")  # type: ignore[arg-type]
    for uncatchable in (signal.SIGKILL, signal.SIGSTOP):
        with pytest.raises(RuntimeError):
            reactor.add_signal_handler(uncatchable, print)
    with pytest.raises(ValueError):
        reactor.remove_signal_handler(0)
    assert reactor.remove_signal_handler(signal.SIGUSR2) is False


def test_only_in_the_main_thread(reactor: Reactor, usr1: Any) -> None:
    outcomes: list[Any] = []

    def attempt(call: Any) -> None:
        try:
            outcomes.append(call())
        except RuntimeError as e:
            outcomes.append(type(e))

    def in_thread() -> None:
        attempt(lambda: reactor.add_signal_handler(signal.SIGUSR2, print))
        attempt(lambda: reactor.remove_signal_handler(signal.SIGUSR2))  # none: False, as asyncio
        attempt(lambda: reactor.remove_signal_handler(signal.SIGUSR1))  # one: main thread only

    reactor.add_signal_handler(signal.SIGUSR1, print)
    try:
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join(10)
    finally:
        assert reactor.remove_signal_handler(signal.SIGUSR1)
    assert outcomes == [RuntimeError, False, RuntimeError]
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_close_lets_the_signals_go(reactor: Reactor, usr1: Any) -> None:
    reactor.add_signal_handler(signal.SIGUSR1, print)
    reactor.close()
    assert signal.getsignal(signal.SIGUSR1) is usr1
    with pytest.raises(RuntimeError):
        reactor.add_signal_handler(signal.SIGUSR1, print)


# -- SIGINT/SIGTERM and fork (in a subprocess: their defaults end the process) -------------------

REPLACE_DEFAULT_SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading
    from framework import plugins
    from framework.eventloop import Reactor

    entry = plugins.reactors().get(sys.argv[1])
    reactor = Reactor(entry.factory(), entry.name)
    signum = getattr(signal, sys.argv[2])
    before = signal.getsignal(signum)
    seen = []

    def kill():
        threading.Thread(target=os.kill, args=(os.getpid(), signum)).start()

    def mine(tag):
        seen.append(tag)
        # Back to the reactor's own handler (run() is running): the next signal stops it.
        seen.append("removed" if reactor.remove_signal_handler(signum) else "not removed")
        kill()

    reactor.add_signal_handler(signum, mine, "mine")
    reactor.addSystemEventTrigger("before", "shutdown", seen.append, "shutdown")
    reactor.callWhenRunning(kill)
    guard = reactor.callLater(20, reactor.crash)
    reactor.run()
    seen.append("guard intact" if guard.active() else "guard fired")
    seen.append("restored" if signal.getsignal(signum) is before else "lost")
    print(",".join(seen))
""")


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_user_handler_replaces_the_stop_default(reactor: Reactor, signame: str) -> None:
    proc = subprocess.run([sys.executable, "-c", REPLACE_DEFAULT_SCRIPT, reactor.backend_name, signame],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "mine,removed,shutdown,guard intact,restored"


FORK_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from framework import plugins
    from framework.eventloop import Reactor

    entry = plugins.reactors().get(sys.argv[1])
    reactor = Reactor(entry.factory(), entry.name)
    seen = []
    reactor.add_signal_handler(signal.SIGUSR1, seen.append, "parent got it")
    pid = os.fork()
    if pid == 0:
        # The child has the handler found before (the default: terminate) back.
        ok = signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
    reactor.callLater(0.1, reactor.crash)
    reactor.run()
    print("parent", seen)
""")


def test_forked_child_does_not_signal_the_parent(reactor: Reactor) -> None:
    proc = subprocess.run([sys.executable, "-c", FORK_SCRIPT, reactor.backend_name],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["child 0", "parent []"]
