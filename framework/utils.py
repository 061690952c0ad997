"""Run a child process and get its output or exit status as a Deferred (Twisted's
``twisted.internet.utils``), on top of ``reactor.spawnProcess``.

``args`` are the arguments after the program name (``argv[1:]``); ``env`` is the child's whole
environment (``{}``, the default, gives it an empty one, as in Twisted); ``path`` its working
directory; ``reactor`` defaults to the global one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from framework import error
from framework.defer import Deferred
from framework.failure import Failure
from framework.main import global_reactor
from framework.protocol import ProcessProtocol

__all__ = [
    "ProcessKilled",
    "getProcessOutput",
    "getProcessOutputAndValue",
    "getProcessValue",
]


class _UnexpectedErrorOutput(IOError):
    """The child wrote to standard error while ``errortoo`` was false. ``processEnded`` is a
    Deferred that fires (with ``None``) once the child has ended."""

    def __init__(self, text: bytes, processEnded: Deferred[None]) -> None:
        super().__init__(f"got stderr: {text!r}")
        self.processEnded = processEnded


class ProcessKilled(Exception):
    """``getProcessOutputAndValue``'s failure when a signal ended the child. Unpacks like
    Twisted's ``(out, err, signal)`` tuple: ``out, err, signum = failure.value``."""

    def __init__(self, out: bytes, err: bytes, signal: int) -> None:
        super().__init__(out, err, signal)
        self.out = out
        self.err = err
        self.signal = signal

    def __iter__(self) -> Iterator[Any]:
        return iter((self.out, self.err, self.signal))

    def __str__(self) -> str:
        return (f"the process was killed by signal {self.signal} "
                f"({len(self.out)} bytes of output, {len(self.err)} of error output)")


def _spawn(protocol: ProcessProtocol, executable: str | bytes, args: Iterable[str | bytes],
           env: Mapping[str, str] | None, path: str | None, reactor: Any) -> None:
    if isinstance(args, (str, bytes)):
        raise TypeError("args must be a sequence of arguments, not one string (split it first)")
    if reactor is None:
        reactor = global_reactor()
    reactor.spawnProcess(protocol, executable, (executable, *args), dict(env or {}), path)


class _OutputGetter(ProcessProtocol):
    def __init__(self, deferred: Deferred[bytes], errortoo: bool) -> None:
        self.deferred = deferred
        self.errortoo = errortoo
        self.chunks: list[bytes] = []
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def errReceived(self, data: bytes) -> None:
        if self.errortoo:
            self.chunks.append(data)
        elif not self.deferred.called:
            self.deferred.errback(_UnexpectedErrorOutput(data, self.ended))
            self.transport.loseConnection()

    def processEnded(self, reason: Failure) -> None:
        if not self.deferred.called:
            self.deferred.callback(b"".join(self.chunks))
        self.ended.callback(None)


def getProcessOutput(executable: str | bytes, args: Iterable[str | bytes] = (),
                     env: Mapping[str, str] | None = None, path: str | None = None,
                     reactor: Any = None, errortoo: bool = False) -> Deferred[bytes]:
    """The child's standard output, once it has ended (whatever its exit status). Anything on
    standard error fails the Deferred with an ``IOError`` and closes the pipes, unless
    ``errortoo`` is true, which mixes standard error into the output."""
    d: Deferred[bytes] = Deferred()
    _spawn(_OutputGetter(d, errortoo), executable, args, env, path, reactor)
    return d


class _ValueGetter(ProcessProtocol):
    def __init__(self, deferred: Deferred[int | None]) -> None:
        self.deferred = deferred

    def processEnded(self, reason: Failure) -> None:
        self.deferred.callback(getattr(reason.value, "exitCode", None))


def getProcessValue(executable: str | bytes, args: Iterable[str | bytes] = (),
                    env: Mapping[str, str] | None = None, path: str | None = None,
                    reactor: Any = None) -> Deferred[int | None]:
    """The child's exit code once it has ended; ``None`` if a signal killed it."""
    d: Deferred[int | None] = Deferred()
    _spawn(_ValueGetter(d), executable, args, env, path, reactor)
    return d


class _EverythingGetter(ProcessProtocol):
    def __init__(self, deferred: Deferred[tuple[bytes, bytes, int]]) -> None:
        self.deferred = deferred
        self.out: list[bytes] = []
        self.err: list[bytes] = []

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        out, err = b"".join(self.out), b"".join(self.err)
        value = reason.value
        signal = getattr(value, "signal", None)
        if isinstance(value, error.ProcessTerminated) and signal is not None:
            self.deferred.errback(ProcessKilled(out, err, signal))
        else:
            self.deferred.callback((out, err, getattr(value, "exitCode", 0)))


def getProcessOutputAndValue(executable: str | bytes, args: Iterable[str | bytes] = (),
                             env: Mapping[str, str] | None = None, path: str | None = None,
                             reactor: Any = None) -> Deferred[tuple[bytes, bytes, int]]:
    """``(stdout, stderr, exit code)`` once the child has ended; a child killed by a signal
    fails the Deferred with ``ProcessKilled`` (which unpacks as ``(out, err, signal)``)."""
    d: Deferred[tuple[bytes, bytes, int]] = Deferred()
    _spawn(_EverythingGetter(d), executable, args, env, path, reactor)
    return d
