"""Child processes: spawnProcess, ProcessProtocol events, pipes, signals, exit status, errors.

Real children (sh, cat, env...) on every backend; every wait is on an event with a timeout.
"""

from __future__ import annotations

import os
import signal
import shutil
import sys
import threading

import pytest

from framework import error
from framework.defer import Deferred
from framework.failure import Failure

from framework.protocol import ProcessProtocol
from util import run_until

SH = shutil.which("sh") or "/bin/sh"
CAT = shutil.which("cat") or "/bin/cat"
PATH_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


class Recorder(ProcessProtocol):
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.data: dict[int, bytes] = {}
        self.ended: Deferred[list[Failure]] = Deferred()  # a list: a Failure result would errback
        self.exited: Failure | None = None

    def connectionMade(self) -> None:
        self.events.append(("made",))

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.data[childFD] = self.data.get(childFD, b"") + data
        super().childDataReceived(childFD, data)

    def childConnectionLost(self, childFD: int) -> None:
        self.events.append(("lost", childFD))

    def processExited(self, reason: Failure) -> None:
        self.exited = reason
        self.events.append(("exited",))

    def processEnded(self, reason: Failure) -> None:
        self.events.append(("ended",))
        self.ended.callback([reason])


def _run(reactor, *args, **kwargs) -> tuple[Recorder, Failure]:
    proto = Recorder()
    reactor.spawnProcess(proto, *args, **kwargs)
    return proto, _ended(reactor, proto)


def _ended(reactor, proto: Recorder) -> Failure:
    return run_until(reactor, proto.ended)[0]


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _zombies() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                found.append(pid)
    return found


def test_cat_round_trip_and_event_order(reactor) -> None:
    proto = Recorder()
    process = reactor.spawnProcess(proto, CAT, [CAT], env={})
    assert isinstance(process.pid, int)
    process.write(b"hello ")
    process.writeSequence([b"child", b"\n"])
    process.closeStdin()
    reason = _ended(reactor, proto)
    assert reason.check(error.ProcessDone)
    assert (reason.value.exitCode, reason.value.signal) == (0, None)
    assert proto.data == {1: b"hello child\n"}
    events = proto.events
    assert events[0] == ("made",) and events[-1] == ("ended",)
    assert sorted(e for e in events if e[0] == "lost") == [("lost", 0), ("lost", 1), ("lost", 2)]
    assert events.index(("exited",)) < events.index(("ended",))
    assert process.pid is None and process.status == 0
    assert not reactor.getReaders() and not reactor.getWriters()


def test_exit_code_and_stderr(reactor) -> None:
    proto, reason = _run(reactor, SH, [SH, "-c", "echo oops >&2; exit 3"], env={})
    assert reason.check(error.ProcessTerminated)
    assert (reason.value.exitCode, reason.value.signal) == (3, None)
    assert os.waitstatus_to_exitcode(reason.value.status) == 3
    assert proto.data == {2: b"oops\n"}


def test_killed_by_a_signal_and_signalling_after_the_end(reactor) -> None:
    proto = Recorder()
    process = reactor.spawnProcess(proto, SH, [SH, "-c", "exec sleep 30"], env=PATH_ENV)
    process.signalProcess("KILL")
    reason = _ended(reactor, proto)
    assert reason.check(error.ProcessTerminated)
    assert (reason.value.exitCode, reason.value.signal) == (None, 9)
    with pytest.raises(error.ProcessExitedAlready):
        process.signalProcess("TERM")
    with pytest.raises(ValueError, match="unknown signal name 'BOGUS'"):
        process.signalProcess("BOGUS")


def test_env_is_passed_as_given_never_inherited(reactor, tmp_path) -> None:
    env = shutil.which("env") or "/usr/bin/env"
    proto, _ = _run(reactor, env, [env], env={"ONLY": "this"})
    assert proto.data.get(1) == b"ONLY=this\n"
    proto, _ = _run(reactor, env, [env])
    assert proto.data.get(1, b"") == b""
    pwd = shutil.which("pwd") or "/bin/pwd"
    proto, _ = _run(reactor, SH, [SH, "-c", "pwd"], env={}, path=str(tmp_path))
    assert proto.data[1].decode().strip() == os.path.realpath(tmp_path)
    assert pwd


def test_child_fds_extra_pipe_and_passed_descriptor(reactor, tmp_path) -> None:
    proto, reason = _run(reactor, SH, [SH, "-c", "echo three >&3; echo out"],
                         env={}, childFDs={0: "w", 1: "r", 2: "r", 3: "r"})
    assert reason.check(error.ProcessDone)
    assert proto.data == {1: b"out\n", 3: b"three\n"}
    target = tmp_path / "out.txt"
    with open(target, "wb") as f:
        proto, reason = _run(reactor, SH, [SH, "-c", "echo to-file"], env={},
                             childFDs={1: f.fileno(), 2: "r"})
    assert target.read_bytes() == b"to-file\n"
    assert proto.data == {}


def test_bad_spawns_raise_clear_os_errors_and_leak_nothing(reactor, tmp_path) -> None:
    before = _fds()
    with pytest.raises(FileNotFoundError, match="cannot run the program"):
        reactor.spawnProcess(Recorder(), "/no/such/program", ["x"])
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError, match="cannot run the program"):
        reactor.spawnProcess(Recorder(), str(plain), [str(plain)])
    with pytest.raises(FileNotFoundError, match="working directory") as info:
        reactor.spawnProcess(Recorder(), SH, [SH, "-c", "true"], path=str(tmp_path / "missing"))
    assert info.value.filename == str(tmp_path / "missing")
    assert _fds() == before
    assert not reactor.getReaders() and not reactor.getWriters()
    assert _zombies() == []


@pytest.mark.parametrize("kwargs, kind, text", [
    ({"args": "sh -c true"}, TypeError, "args must be a sequence"),
    ({"env": ["A=1"]}, TypeError, "env must be a mapping"),
    ({"env": {"A=B": "1"}}, ValueError, "contain no '='"),
    ({"childFDs": {0: "x"}}, ValueError, "must be 'r', 'w' or an open descriptor"),
    ({"childFDs": {1: 999999}}, ValueError, "not an open descriptor"),
    ({"uid": "root"}, TypeError, "uid must be"),
])
def test_bad_arguments_are_refused_before_anything_starts(reactor, kwargs, kind, text) -> None:
    kwargs = dict(kwargs)
    args = kwargs.pop("args", [SH, "-c", "true"])
    with pytest.raises(kind, match=text):
        reactor.spawnProcess(Recorder(), SH, args, **kwargs)
    with pytest.raises(TypeError, match="must be a ProcessProtocol"):
        reactor.spawnProcess(object(), SH, [SH])


def test_a_child_that_never_reads_pauses_the_producer(reactor) -> None:
    proto = Recorder()
    process = reactor.spawnProcess(proto, SH, [SH, "-c", "exec sleep 30"], env=PATH_ENV)

    class Producer:
        paused = 0
        stopped = False

        def pauseProducing(self) -> None:
            self.paused += 1

        def resumeProducing(self) -> None:
            pass

        def stopProducing(self) -> None:
            self.stopped = True

    producer = Producer()
    process.registerProducer(producer, True)
    for _ in range(64):  # 4 MiB offered; the pipe takes 64 KiB
        process.write(b"x" * 65536)
    assert producer.paused == 1
    assert process.pipes[0]._buflen < 5 * 1024 * 1024
    process.signalProcess("KILL")
    reason = _ended(reactor, proto)
    assert reason.value.signal == 9
    assert producer.stopped


def test_child_exits_while_we_write(reactor) -> None:
    head = shutil.which("head") or "/usr/bin/head"
    proto = Recorder()
    process = reactor.spawnProcess(proto, head, [head, "-c", "10"], env={})
    for _ in range(32):
        process.write(b"y" * 65536)
    reason = _ended(reactor, proto)
    assert reason.check(error.ProcessDone)
    assert proto.data[1] == b"y" * 10
    assert proto.events.count(("ended",)) == 1 and ("lost", 0) in proto.events


def test_use_pty(reactor) -> None:
    proto = Recorder()
    process = reactor.spawnProcess(proto, SH, [SH, "-c", "tty; read line; echo got:$line"],
                           env=PATH_ENV, usePTY=True)
    process.write(b"typed\n")
    reason = _ended(reactor, proto)
    assert reason.check(error.ProcessDone)
    out = proto.data[1].replace(b"\r\n", b"\n")  # the terminal echoes what was typed, too
    assert b"/dev/pts/" in out and b"got:typed\n" in out


def test_spawn_from_another_thread_through_call_from_thread(reactor) -> None:
    proto = Recorder()
    spawned = threading.Event()

    def worker() -> None:
        reactor.callFromThread(reactor.spawnProcess, proto, SH, [SH, "-c", "echo threaded"], env={})
        spawned.set()

    threading.Thread(target=worker).start()
    assert spawned.wait(10)
    reason = _ended(reactor, proto)
    assert reason.check(error.ProcessDone) and proto.data[1] == b"threaded\n"


def test_no_zombies_are_left(reactor) -> None:
    for _ in range(5):
        _run(reactor, SH, [SH, "-c", "true"], env={})
    assert _zombies() == []


def test_python_child_sees_argv_and_bytes_arguments(reactor) -> None:
    code = "import sys; sys.stdout.write(repr(sys.argv[1:]))"
    proto, reason = _run(reactor, sys.executable, [sys.executable, "-c", code, "a b", b"c"], env={})
    assert reason.check(error.ProcessDone)
    assert proto.data[1] == b"['a b', 'c']"


def test_without_pidfds_sigchld_through_the_reactor_reaps_our_children(reactor, monkeypatch) -> None:
    import subprocess

    from framework import process as process_module

    monkeypatch.setattr(process_module, "use_pidfd", False)
    foreign = subprocess.Popen([SH, "-c", "exit 0"])  # not ours: must be left to subprocess
    protos = []
    for code in (0, 3):
        proto = Recorder()
        reactor.spawnProcess(proto, SH, [SH, "-c", f"exit {code}"], env={})
        protos.append(proto)
    reasons = [_ended(reactor, p) for p in protos]
    assert reasons[0].check(error.ProcessDone) and reasons[1].value.exitCode == 3
    assert foreign.wait(10) == 0  # still ours to reap: never taken by a waitpid(-1)
    assert _zombies() == []
    reactor.remove_signal_handler(signal.SIGCHLD)
    process_module._sigchld_reactors.discard(reactor)


def test_a_signal_ignored_here_has_its_default_disposition_in_the_child(reactor) -> None:
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        code = "import signal; print(signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL)"
        proto, reason = _run(reactor, sys.executable, [sys.executable, "-c", code], env={})
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert reason.check(error.ProcessDone)
    assert proto.data[1] == b"True\n"


def test_an_error_in_process_ended_is_logged_and_the_child_forgotten(reactor, caplog) -> None:
    import logging

    from framework import process as process_module

    ended: Deferred[None] = Deferred()

    class Raises(ProcessProtocol):
        def processEnded(self, reason) -> None:
            reactor.callLater(0, ended.callback, None)
            raise RuntimeError("deliberate")

    with caplog.at_level(logging.ERROR, logger="framework.process"):
        transport = reactor.spawnProcess(Raises(), CAT, [CAT], env={})
        pid = transport.pid
        assert pid in process_module.reapProcessHandlers
        transport.loseConnection()
        run_until(reactor, ended)
    assert pid not in process_module.reapProcessHandlers
    assert "deliberate" in caplog.text and "processEnded" in caplog.text
    assert not reactor.getReaders() and _zombies() == []
