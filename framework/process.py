"""Child processes as transports: ``reactor.spawnProcess`` (Twisted's ``IReactorProcess``).

A ``Process`` is the transport a ``ProcessProtocol`` gets: one pipe per child descriptor it
talks over (``childFDs``), readers for the child's output, a buffered writer with flow
control for its input, and an exit watcher. ``processExited`` comes when the child has
exited, ``processEnded`` once it has exited *and* every pipe is closed.

Exit detection never polls: a pidfd (Linux 5.3+) registered as a reader wakes the reactor
when the child exits, and only that child is reaped (``waitpid(pid)``, never ``-1``), so
children the framework did not start are left to their owners. Where pidfds are missing,
the reactor's ``SIGCHLD`` handler checks the children it started.
"""

from __future__ import annotations

import errno
import logging
import os
import signal as _signal
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from framework import error, spawn
from framework.failure import Failure
from framework.interfaces import (
    IConsumer, IFileDescriptor, IPushProducer, IReadDescriptor, IWriteDescriptor,
)
from framework.address import ProcessAddress
from framework.main import CONNECTION_DONE, CONNECTION_LOST
from framework.stream import HIGH_WATER, LOW_WATER, MAX_WRITE_BUFFER
from framework.writing import coerce as coerce_bytes

__all__ = ["Process", "ProcessAddress", "spawnProcess"]

log = logging.getLogger("framework.process")

READ_SIZE = 65536
_SIGNALS: dict[str, int] = {"TERM": _signal.SIGTERM, "KILL": _signal.SIGKILL, "INT": _signal.SIGINT,
            "HUP": _signal.SIGHUP, "QUIT": _signal.SIGQUIT, "USR1": _signal.SIGUSR1,
            "USR2": _signal.SIGUSR2, "STOP": _signal.SIGSTOP, "CONT": _signal.SIGCONT}
_HAS_PIDFD = hasattr(os, "pidfd_open")
#: Set to False to watch exits through SIGCHLD even where pidfds exist (tests, old kernels).
use_pidfd = True
_DEFAULT_CHILD_FDS = {0: "w", 1: "r", 2: "r"}

#: The children started here and not reaped yet, by pid (Twisted's name for the same table).
reapProcessHandlers: dict[int, Process] = {}


class _Pipe(IFileDescriptor):
    """The parent's end of one child descriptor: which process, which child fd, which of ours."""

    __slots__ = ("process", "childFD", "fd", "reactor")

    def __init__(self, process: Process, childFD: int, fd: int) -> None:
        self.process = process
        self.childFD = childFD
        self.fd = fd
        self.reactor = process.reactor

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return self.process.logPrefix()


class _Reader(_Pipe, IReadDescriptor):
    """The parent's end of a pipe the child writes to: bytes go to ``childDataReceived``."""

    __slots__ = ("reading",)

    def __init__(self, process: Process, childFD: int, fd: int) -> None:
        super().__init__(process, childFD, fd)
        self.reading = False

    def startReading(self) -> None:
        if not self.reading and self.fd >= 0:
            self.reading = True
            self.reactor.addReader(self)

    def stopReading(self) -> None:
        if self.reading:
            self.reading = False
            self.reactor.removeReader(self)

    def doRead(self) -> Any:
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            return Failure(error.ConnectionLost(e))
        if not data:
            return CONNECTION_DONE
        self.process._childData(self.childFD, data)
        return None

    def close(self) -> None:
        """Stop reading and close the pipe now (``closeChildFD``)."""
        if self.fd < 0:
            return
        if self.reading:
            self.reading = False
            self.reactor.removeReader(self)
        self.connectionLost(Failure(error.ConnectionDone("closed by the parent")))

    def connectionLost(self, reason: Failure) -> None:
        if self.fd < 0:
            return
        self.reading = False
        fd, self.fd = self.fd, -1
        os.close(fd)
        self.process._pipeClosed(self.childFD, reason)


class _Writer(_Pipe, IWriteDescriptor, IConsumer):
    """The parent's end of a pipe the child reads from: a buffered, flow-controlled writer.

    Also registered for reading: a pipe's write end reports an error once the child closes
    its end, so a child that stops reading is noticed even when nothing is being written.
    """

    __slots__ = ("_buf", "_buflen", "_writing", "_watching", "_closing", "_producer",
                 "_streaming", "_producerPaused")

    def __init__(self, process: Process, childFD: int, fd: int) -> None:
        super().__init__(process, childFD, fd)
        self._buf: list[bytes | memoryview] = []
        self._buflen = 0
        self._writing = False
        self._watching = False
        self._closing = False
        self._producer: Any = None
        self._streaming = False
        self._producerPaused = False

    def start(self) -> None:
        if not self._watching and self.fd >= 0:
            self._watching = True
            self.reactor.addReader(self)

    def doRead(self) -> Any:
        return CONNECTION_LOST  # readable/error on a write end: the child closed its end

    def write(self, data: bytes) -> None:
        if data.__class__ is not bytes:
            data = coerce_bytes(data)
        if not data or self.fd < 0 or self._closing:
            return
        if not self._buflen:
            try:
                sent = os.write(self.fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except BrokenPipeError:
                self.reactor.callLater(0, self._lost, Failure(error.ConnectionLost("broken pipe")))
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]  # type: ignore[assignment]
        self._buf.append(data)
        self._buflen += len(data)
        if self._buflen > MAX_WRITE_BUFFER:
            log.warning("%s: the child's descriptor %d buffer went over %d bytes (the child does "
                        "not read and the producer ignores flow control); closing it",
                        self.logPrefix(), self.childFD, MAX_WRITE_BUFFER)
            self._buf.clear()
            self._buflen = 0
            self.reactor.callLater(0, self._lost, Failure(error.ConnectionLost("write buffer full")))
            return
        if not self._writing:
            self._writing = True
            self.reactor.addWriter(self)
        if self._buflen > HIGH_WATER and self._streaming and not self._producerPaused:
            self._producerPaused = True
            self._producer.pauseProducing()

    def doWrite(self) -> Any:
        while self._buf:
            chunk = self._buf[0]
            try:
                sent = os.write(self.fd, chunk)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as e:
                return Failure(error.ConnectionLost(e))
            self._buflen -= sent
            if sent < len(chunk):
                self._buf[0] = memoryview(chunk)[sent:]
                return None
            self._buf.pop(0)
        if self._writing:
            self._writing = False
            self.reactor.removeWriter(self)
        if self._producer is not None:
            if not self._streaming:
                self._producer.resumeProducing()
                return None
            if self._producerPaused and self._buflen < LOW_WATER:
                self._producerPaused = False
                self._producer.resumeProducing()
        if self._closing and not self._buf and self._producer is None:
            return CONNECTION_DONE
        return None

    def loseConnection(self) -> None:
        """Close once everything buffered has been written (and a producer unregistered)."""
        if self.fd < 0 or self._closing:
            return
        self._closing = True
        if not self._buf and self._producer is None:
            self.reactor.callLater(0, self._lost, Failure(error.ConnectionDone("closed by the parent")))
        elif not self._writing:
            self._writing = True
            self.reactor.addWriter(self)

    def _lost(self, reason: Failure) -> None:
        if self.fd < 0:
            return
        self.reactor.removeReader(self)
        self.reactor.removeWriter(self)
        self.connectionLost(reason)

    def connectionLost(self, reason: Failure) -> None:
        if self.fd < 0:
            return
        self._watching = self._writing = False
        self._buf.clear()
        self._buflen = 0
        fd, self.fd = self.fd, -1
        os.close(fd)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Error in %r.stopProducing", producer)
        self.process._pipeClosed(self.childFD, reason)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError(f"Cannot register producer {producer!r}: producer "
                               f"{self._producer!r} was never unregistered")
        if self.fd < 0:
            producer.stopProducing()
            return
        self._producer = producer
        self._streaming = bool(streaming)
        self._producerPaused = False
        if not streaming:
            producer.resumeProducing()
        elif self._buflen > HIGH_WATER:
            self._producerPaused = True
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        self._producer = None
        self._streaming = False
        self._producerPaused = False
        if self._closing and self.fd >= 0 and not self._writing:
            self._writing = True
            self.reactor.addWriter(self)


class Process(IConsumer, IPushProducer):
    """The transport of one child process (Twisted's ``IProcessTransport``)."""

    def __init__(self, reactor: Any, protocol: Any, pid: int, pipes: Mapping[int, _Reader | _Writer],
                 pidfd: int | None, executable: str) -> None:
        self.reactor = reactor
        self.proto = protocol
        self.pid: int | None = pid
        self.status: int | None = None
        self.pipes: dict[int, _Reader | _Writer] = dict(pipes)
        self.executable = executable
        self._pidfd = pidfd
        self._exitWatcher: _ExitWatcher | None = None
        self._ended = False
        self._exitReason: Failure | None = None
        self._closed: set[int] = set()
        self._pty: _PTY | None = None
        self._popen: Any = None  # subprocess.Popen that started the child, told when we reap it
        self.disconnecting = False

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} status={self.status} {self.executable!r}>"

    def logPrefix(self) -> str:
        return f"{type(self.proto).__name__},pid={self.pid}"

    # -- writing to the child ------------------------------------------------------------

    def writeToChild(self, childFD: int, data: bytes) -> None:
        """Write to the child's descriptor ``childFD`` (one it reads: ``"w"`` in childFDs)."""
        pipe = self.pipes.get(childFD)
        if not isinstance(pipe, _Writer):
            if childFD in self._closed:
                return  # closed already: dropped, as on a closed connection
            raise KeyError(f"the child has no descriptor {childFD} to write to")
        pipe.write(data)

    def write(self, data: bytes) -> None:
        """Write to the child's standard input."""
        pipe = self.pipes.get(0)
        if isinstance(pipe, _Writer):
            pipe.write(data)
        elif self._pty is not None:
            self._pty.write(coerce_bytes(data) if data.__class__ is not bytes else data)
        elif data.__class__ is not bytes:
            coerce_bytes(data)  # the type error, even once stdin is closed

    def writeSequence(self, data: Iterable[bytes]) -> None:
        chunks = [coerce_bytes(chunk) if chunk.__class__ is not bytes else chunk for chunk in data]
        self.write(b"".join(chunks))

    # -- closing pipes -------------------------------------------------------------------

    def closeChildFD(self, childFD: int) -> None:
        """Close the pipe of the child's descriptor ``childFD`` (a writer after flushing)."""
        pipe = self.pipes.get(childFD)
        if isinstance(pipe, _Writer):
            pipe.loseConnection()
        elif isinstance(pipe, _Reader):
            pipe.close()

    def closeStdin(self) -> None:
        self.closeChildFD(0)

    def closeStdout(self) -> None:
        self.closeChildFD(1)

    def closeStderr(self) -> None:
        self.closeChildFD(2)

    def loseConnection(self) -> None:
        """Close every pipe (standard input after what was written has gone); the child is
        not signalled: it sees end of input and broken output pipes."""
        self.disconnecting = True
        for childFD in list(self.pipes):
            self.closeChildFD(childFD)

    def signalProcess(self, signalID: str | int) -> None:
        """Send a signal: ``"TERM"``, ``"KILL"``, ``"INT"``... or a number. Raises
        ``ProcessExitedAlready`` once the child has exited (it may have been reaped)."""
        number: int
        if isinstance(signalID, str):
            found = _SIGNALS.get(signalID.upper().removeprefix("SIG"))
            if found is None:
                raise ValueError(f"unknown signal name {signalID!r}: one of {', '.join(_SIGNALS)}")
            number = found
        elif isinstance(signalID, int) and not isinstance(signalID, bool):
            number = signalID
        else:
            raise TypeError(f"signalID must be a signal name or number, not {signalID!r}")
        if self.pid is None:
            raise error.ProcessExitedAlready(f"process {self.executable!r} has already exited")
        if self._pidfd is not None:
            try:
                _signal.pidfd_send_signal(self._pidfd, number)
                return
            except ProcessLookupError:
                raise error.ProcessExitedAlready(f"process {self.executable!r} has already exited") from None
            except (AttributeError, OSError):
                pass
        try:
            os.kill(self.pid, number)
        except ProcessLookupError:
            raise error.ProcessExitedAlready(f"process {self.executable!r} has already exited") from None

    # -- producer/consumer ----------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register a producer of the child's standard input (paused while its pipe is full)."""
        pipe = self.pipes.get(0)
        if not isinstance(pipe, _Writer):
            producer.stopProducing()
            return
        pipe.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        pipe = self.pipes.get(0)
        if isinstance(pipe, _Writer):
            pipe.unregisterProducer()

    def pauseProducing(self) -> None:
        """Stop reading the child's output (the child blocks once its pipes fill)."""
        for pipe in self.pipes.values():
            if isinstance(pipe, _Reader):
                pipe.stopReading()

    def resumeProducing(self) -> None:
        for pipe in self.pipes.values():
            if isinstance(pipe, _Reader):
                pipe.startReading()

    def stopProducing(self) -> None:
        self.loseConnection()

    # -- addresses -----------------------------------------------------------------------

    def getPeer(self) -> ProcessAddress:
        return ProcessAddress()

    def getHost(self) -> ProcessAddress:
        return ProcessAddress()

    # -- events from the pipes and the exit watcher --------------------------------------

    def _start(self) -> None:
        for pipe in self.pipes.values():
            if isinstance(pipe, _Reader):
                pipe.startReading()
            else:
                pipe.start()
        try:
            self.proto.makeConnection(self)
        except Exception:
            log.exception("Unhandled error in %s.makeConnection", type(self.proto).__name__)
        self._exitWatcher = _ExitWatcher(self)
        self._exitWatcher.start()

    def _childData(self, childFD: int, data: bytes) -> None:
        try:
            self.proto.childDataReceived(childFD, data)
        except Exception:
            log.exception("Unhandled error in %s.childDataReceived", type(self.proto).__name__)

    def _pipeClosed(self, childFD: int, reason: Failure) -> None:
        self.pipes.pop(childFD, None)
        self._closed.add(childFD)
        try:
            self.proto.childConnectionLost(childFD)
        except Exception:
            log.exception("Unhandled error in %s.childConnectionLost", type(self.proto).__name__)
        self._maybeEnded()

    def _exited(self, status: int) -> None:
        """The child was reaped with wait status ``status``."""
        if self.pid is not None:
            reapProcessHandlers.pop(self.pid, None)
        self.status = status
        self.pid = None
        if self._popen is not None:
            self._popen.returncode = os.waitstatus_to_exitcode(status)
            self._popen = None
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._exitReason = _reason(status)
        try:
            self.proto.processExited(self._exitReason)
        except Exception:
            log.exception("Unhandled error in %s.processExited", type(self.proto).__name__)
        self._maybeEnded()

    def _maybeEnded(self) -> None:
        if self._ended or self._exitReason is None or self.pipes:
            return
        self._ended = True
        try:
            self.proto.processEnded(self._exitReason)
        except Exception:
            log.exception("Unhandled error in %s.processEnded", type(self.proto).__name__)


def _reason(status: int) -> Failure:
    if os.WIFSIGNALED(status):
        return Failure(error.ProcessTerminated(None, os.WTERMSIG(status), status))
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return Failure(error.ProcessDone(status))
    return Failure(error.ProcessTerminated(code, None, status))


class _ExitWatcher(IReadDescriptor):
    """Wakes when the child exits: a pidfd reader, or the reactor's SIGCHLD handling."""

    __slots__ = ("process", "fd")

    def __init__(self, process: Process) -> None:
        self.process = process
        self.fd = -1 if process._pidfd is None else process._pidfd

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return self.process.logPrefix()

    def start(self) -> None:
        if self.fd >= 0:
            self.process.reactor.addReader(self)
        else:
            _sigchld_watch(self.process)
        self.check()

    def doRead(self) -> Any:
        self.check()  # once reaped, check() has unregistered this watcher itself
        return None

    def check(self) -> bool:
        """Reap the child if it has exited; True if it has."""
        pid = self.process.pid
        if pid is None:
            return True
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (a waitpid(-1) elsewhere)
            reaped, status = pid, 0
        except InterruptedError:
            return False
        if reaped == 0:
            return False
        if self.fd >= 0:
            self.process.reactor.removeReader(self)
            self.fd = -1
        _sigchld_forget(self.process)
        self.process._exited(status)
        return True

    def connectionLost(self, reason: Failure) -> None:
        self.fd = -1


# Without pidfds: the processes a SIGCHLD must check (by pid, never waitpid(-1)), and the
# reactors whose SIGCHLD handler is installed.
_waiting: dict[int, Process] = {}
_sigchld_reactors: weakref.WeakSet[Any] = weakref.WeakSet()


def _sigchld_watch(process: Process) -> None:
    assert process.pid is not None
    reactor = process.reactor
    if reactor not in _sigchld_reactors:
        reactor.add_signal_handler(_signal.SIGCHLD, _on_sigchld)
        _sigchld_reactors.add(reactor)
    _waiting[process.pid] = process


def _sigchld_forget(process: Process) -> None:
    for pid, waiting in list(_waiting.items()):
        if waiting is process:
            del _waiting[pid]


def _on_sigchld() -> None:
    for process in list(_waiting.values()):
        watcher = process._exitWatcher
        if watcher is not None:
            watcher.check()


def _child_fds(childFDs: Mapping[int, Any] | None, usePTY: bool) -> dict[int, Any]:
    if childFDs is None:
        return dict(_DEFAULT_CHILD_FDS)
    if not isinstance(childFDs, Mapping):
        raise TypeError(f"childFDs must be a mapping of child descriptors, not {type(childFDs).__name__}")
    if usePTY:
        raise ValueError("childFDs cannot be combined with usePTY (the pty is descriptors 0-2)")
    checked: dict[int, Any] = {}
    for child, spec in childFDs.items():
        if isinstance(child, bool) or not isinstance(child, int) or child < 0:
            raise ValueError(f"childFDs keys must be descriptor numbers >= 0, not {child!r}")
        if spec in ("r", "w"):
            checked[child] = spec
        elif isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
            try:
                os.fstat(spec)
            except OSError as e:
                raise ValueError(f"childFDs[{child}] = {spec}: not an open descriptor ({e.strerror})") from None
            checked[child] = spec
        else:
            raise ValueError(f"childFDs[{child}] must be 'r', 'w' or an open descriptor, not {spec!r}")
    return checked


def spawnProcess(reactor: Any, processProtocol: Any, executable: str | bytes,
                 args: Any = (), env: Mapping[str, str] | None = None, path: str | None = None,
                 uid: int | None = None, gid: int | None = None, usePTY: bool = False,
                 childFDs: Mapping[int, Any] | None = None) -> Process:
    """Start ``executable`` with ``args`` (argv, program name first) and connect it to
    ``processProtocol``; see ``Reactor.spawnProcess``."""
    for method in ("makeConnection", "childDataReceived", "childConnectionLost", "processEnded"):
        if not callable(getattr(processProtocol, method, None)):
            raise TypeError(f"processProtocol must be a ProcessProtocol (no {method}()): {processProtocol!r}")
    exe, argv, environment, cwd = spawn.check_arguments(executable, args, env, path, uid, gid)
    fds = _child_fds(childFDs, usePTY)
    parent_ends: dict[int, tuple[str, int]] = {}
    child_ends: dict[int, int] = {}
    opened: list[int] = []
    try:
        if usePTY:
            master, slave = os.openpty()
            opened += [master, slave]
            os.set_blocking(master, False)
            child_ends.update({0: slave, 1: slave, 2: slave})
            parent_ends[1] = ("pty", master)
        else:
            for child, spec in fds.items():
                if spec == "r":
                    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                    opened += [r, w]
                    os.set_blocking(w, True)  # the child's end: blocking, as children expect
                    parent_ends[child], child_ends[child] = ("r", r), w
                elif spec == "w":
                    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                    opened += [r, w]
                    os.set_blocking(r, True)
                    parent_ends[child], child_ends[child] = ("w", w), r
                else:
                    child_ends[child] = spec
        popen = None
        if spawn.can_use_popen(child_ends, usePTY):
            popen = spawn.spawn_with_popen(exe, argv, environment, cwd, uid, gid, child_ends)
            pid = popen.pid
        else:
            for std in (0, 1, 2):
                if std not in child_ends:  # as with Popen: an unlisted standard descriptor is /dev/null
                    child_ends[std] = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                    opened.append(child_ends[std])
            pid = spawn.spawn(exe, argv, environment, cwd, uid, gid, child_ends,
                              new_session=usePTY, controlling_tty=usePTY)
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    for fd in set(opened) - {end for _kind, end in parent_ends.values()}:
        os.close(fd)
    pidfd = None
    if _HAS_PIDFD and use_pidfd:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None
    process = Process(reactor, processProtocol, pid, {}, pidfd, os.fsdecode(exe))
    process._popen = popen
    reapProcessHandlers[pid] = process
    for child, (kind, fd) in parent_ends.items():
        if kind == "w":
            process.pipes[child] = _Writer(process, child, fd)
        elif kind == "pty":
            process.pipes[1] = process._pty = _PTY(process, 1, fd)
        else:
            process.pipes[child] = _Reader(process, child, fd)
    process._start()
    return process


class _PTY(_Reader):
    """A pty master: the child's terminal. Its output is descriptor 1, ``write`` is typed into
    it; EIO on read is the pty's end of file (the child side closed)."""

    __slots__ = ()

    def doRead(self) -> Any:
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            return CONNECTION_DONE if e.errno == errno.EIO else Failure(error.ConnectionLost(e))
        if not data:
            return CONNECTION_DONE
        self.process._childData(1, data)
        return None

    def write(self, data: bytes) -> None:
        if self.fd < 0 or not data:
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                log.warning("%s: the terminal's input is full; %d bytes dropped", self.logPrefix(), len(view))
                return
            except OSError as e:
                if e.errno == errno.EIO:
                    return
                raise
