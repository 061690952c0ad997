"""framework.utils over a recording spawnProcess, and ProcessProtocol's dispatch; the real
child-process tests live with the process transport."""

from __future__ import annotations

import pytest

from framework import error
from framework.failure import Failure
from framework.protocol import ProcessProtocol
from framework.testing import StringTransport
from framework.utils import ProcessKilled, getProcessOutput, getProcessOutputAndValue, getProcessValue


class Spawner:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def spawnProcess(self, protocol, executable, args=(), env={}, path=None):
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.calls.append((protocol, executable, args, env, path, transport))


def _result(d):
    box = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def _ended(protocol, exc: BaseException) -> None:
    protocol.processExited(Failure(exc))
    protocol.processEnded(Failure(exc))


def test_output_is_collected_and_args_env_path_passed_as_given() -> None:
    r = Spawner()
    d = getProcessOutput("/bin/tool", ["-x", "y"], env={"A": "1"}, path="/tmp", reactor=r)
    protocol, executable, args, env, path, _ = r.calls[0]
    assert (executable, args, env, path) == ("/bin/tool", ("/bin/tool", "-x", "y"), {"A": "1"}, "/tmp")
    protocol.childDataReceived(1, b"hello ")
    protocol.childDataReceived(1, b"world")
    _ended(protocol, error.ProcessTerminated(3, None, 3 << 8))  # exit status does not matter
    assert _result(d) == b"hello world"


def test_default_env_is_empty_not_inherited() -> None:
    r = Spawner()
    getProcessValue("/bin/true", reactor=r)
    assert r.calls[0][3] == {}


def test_stderr_fails_output_unless_errortoo() -> None:
    r = Spawner()
    d = getProcessOutput("/bin/tool", reactor=r)
    protocol, *_, transport = r.calls[0]
    protocol.childDataReceived(2, b"warning")
    failure = _result(d)
    assert isinstance(failure, Failure) and isinstance(failure.value, IOError)
    assert "warning" in str(failure.value) and transport.disconnecting
    ended = failure.value.processEnded
    assert not ended.called
    _ended(protocol, error.ProcessDone(0))
    assert ended.called

    r = Spawner()
    d = getProcessOutput("/bin/tool", reactor=r, errortoo=True)
    protocol = r.calls[0][0]
    protocol.childDataReceived(1, b"out,")
    protocol.childDataReceived(2, b"err")
    _ended(protocol, error.ProcessDone(0))
    assert _result(d) == b"out,err"


def test_value_and_output_and_value() -> None:
    r = Spawner()
    d = getProcessValue("/bin/false", reactor=r)
    _ended(r.calls[0][0], error.ProcessTerminated(1, None, 256))
    assert _result(d) == 1
    d = getProcessValue("/bin/sleep", reactor=r)
    _ended(r.calls[1][0], error.ProcessTerminated(None, 9, 9))
    assert _result(d) is None

    d = getProcessOutputAndValue("/bin/tool", reactor=r)
    protocol = r.calls[2][0]
    protocol.childDataReceived(1, b"o")
    protocol.childDataReceived(2, b"e")
    _ended(protocol, error.ProcessTerminated(2, None, 512))
    assert _result(d) == (b"o", b"e", 2)

    d = getProcessOutputAndValue("/bin/tool", reactor=r)
    protocol = r.calls[3][0]
    protocol.childDataReceived(1, b"partial")
    _ended(protocol, error.ProcessTerminated(None, 15, 15))
    failure = _result(d)
    assert isinstance(failure.value, ProcessKilled)
    out, err, signum = failure.value
    assert (out, err, signum) == (b"partial", b"", 15)
    assert "killed by signal 15" in str(failure.value)


def test_a_single_string_of_args_is_refused() -> None:
    with pytest.raises(TypeError, match="sequence of arguments"):
        getProcessOutput("/bin/echo", "a b", reactor=Spawner())


def test_process_protocol_dispatches_by_descriptor() -> None:
    seen: list[tuple] = []

    class P(ProcessProtocol):
        def outReceived(self, data): seen.append(("out", data))
        def errReceived(self, data): seen.append(("err", data))
        def inConnectionLost(self): seen.append(("in-lost",))
        def outConnectionLost(self): seen.append(("out-lost",))
        def errConnectionLost(self): seen.append(("err-lost",))

    p = P()
    p.childDataReceived(1, b"a")
    p.childDataReceived(2, b"b")
    p.childDataReceived(3, b"ignored")
    for fd in (0, 1, 2, 3):
        p.childConnectionLost(fd)
    assert seen == [("out", b"a"), ("err", b"b"), ("in-lost",), ("out-lost",), ("err-lost",)]


def test_process_reasons_carry_twisteds_attributes() -> None:
    done = error.ProcessDone(0)
    assert (done.exitCode, done.signal, done.status) == (0, None, 0)
    assert isinstance(done, error.ConnectionDone)
    killed = error.ProcessTerminated(None, 9, 9)
    assert (killed.exitCode, killed.signal, killed.status) == (None, 9, 9)
    assert isinstance(killed, error.ConnectionLost)
    assert str(killed).endswith("process ended by signal 9.")
    assert str(error.ProcessTerminated(1, status=256)).endswith("process ended with exit code 1.")


def test_memory_reactor_records_spawn_process_and_plays_the_child() -> None:
    from framework.testing import MemoryReactor

    reactor = MemoryReactor()
    d = getProcessOutputAndValue("/bin/tool", ["-v"], env={"A": "1"}, path="/srv", reactor=reactor)
    (call,) = reactor.spawnedProcesses
    protocol, executable, args, env, path, uid, gid, usePTY, childFDs = call
    assert (executable, args, env, path, uid, gid, usePTY, childFDs) == (
        "/bin/tool", ("/bin/tool", "-v"), {"A": "1"}, "/srv", None, None, False, None)
    process = reactor.processes[0]
    assert protocol.transport is process and process.pid == 1000
    process.childData(1, b"out")
    process.childData(2, b"err")
    process.exit(2)
    assert _result(d) == (b"out", b"err", 2)
    with pytest.raises(error.ProcessExitedAlready):
        process.signalProcess("TERM")

    class Writer(ProcessProtocol):
        def connectionMade(self):
            self.transport.write(b"input")
            self.transport.closeStdin()
            self.transport.signalProcess("HUP")

    reactor.spawnProcess(Writer(), "/bin/cat", ["/bin/cat"])
    process = reactor.processes[1]
    assert process.written == {0: b"input"} and process.closed == [0] and process.signals == ["HUP"]
