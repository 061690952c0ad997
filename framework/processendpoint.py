"""``ProcessEndpoint``: a child process as a client endpoint (Twisted's).

``ProcessEndpoint(reactor, executable, args, ...).connect(factory)`` spawns the process and
connects the factory's stream protocol to it: what the protocol writes goes to the child's
standard input, what the child writes to its standard output arrives in ``dataReceived``,
and the child's exit is ``connectionLost`` (``ConnectionDone`` for exit status 0, else
``ConnectionLost``). Its standard error is logged (``StandardErrorBehavior.LOG``, the
default) or dropped (``StandardErrorBehavior.DROP``).
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Iterable, Mapping

from framework import error
from framework.address import ProcessAddress
from framework.defer import Deferred, fail, succeed
from framework.failure import Failure
from framework.interfaces import IConsumer, IPushProducer, ITransport
from framework.protocol import ProcessProtocol

__all__ = ["ProcessEndpoint", "StandardErrorBehavior"]

log = logging.getLogger("framework.endpoints")


class StandardErrorBehavior(enum.Enum):
    """What a ``ProcessEndpoint`` does with the child's standard error."""

    LOG = "log"
    DROP = "drop"


class _ProcessEndpointTransport(ITransport, IConsumer, IPushProducer):
    """The stream protocol's transport: the process's standard input and its producer
    controls, and nothing else of the process transport."""

    def __init__(self, process: Any) -> None:
        self._process = process

    def write(self, data: bytes) -> None:
        self._process.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self._process.writeSequence(data)

    def loseConnection(self) -> None:
        self._process.loseConnection()

    def getHost(self) -> Any:
        return self._process.getHost()

    def getPeer(self) -> Any:
        return self._process.getPeer()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._process.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._process.unregisterProducer()

    def pauseProducing(self) -> None:
        self._process.pauseProducing()

    def resumeProducing(self) -> None:
        self._process.resumeProducing()

    def stopProducing(self) -> None:
        self._process.stopProducing()


class _WrapIProtocol(ProcessProtocol):
    """The process protocol that drives the stream protocol: standard output in, exit as
    ``connectionLost``."""

    def __init__(self, proto: Any, executable: Any, errFlag: StandardErrorBehavior) -> None:
        self.protocol = proto
        self.executable = executable
        self.errFlag = errFlag

    def makeConnection(self, process: Any) -> None:
        self.transport = _ProcessEndpointTransport(process)
        self.protocol.makeConnection(self.transport)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 1:
            self.protocol.dataReceived(data)
        elif childFD == 2 and self.errFlag == StandardErrorBehavior.LOG:
            log.warning("process %r wrote stderr unhandled by %s: %r", self.executable,
                        type(self.protocol).__name__, data)

    def processEnded(self, reason: Failure) -> None:
        if reason.check(error.ProcessDone) and getattr(reason.value, "status", 0) == 0:
            self.protocol.connectionLost(Failure(error.ConnectionDone()))
        else:
            self.protocol.connectionLost(Failure(error.ConnectionLost(str(reason.value))))


class ProcessEndpoint:
    """Spawn ``executable`` with ``args`` (and ``env``, ``path``, ``uid``, ``gid``, ``usePTY``,
    ``childFDs``, as ``reactor.spawnProcess`` takes them) for each ``connect``."""

    def __init__(self, reactor: Any, executable: Any, args: Any = (), env: Mapping[Any, Any] | None = None,
                 path: Any = None, uid: int | None = None, gid: int | None = None, usePTY: bool | int = 0,
                 childFDs: Mapping[int, Any] | None = None,
                 errFlag: StandardErrorBehavior = StandardErrorBehavior.LOG) -> None:
        self._reactor = reactor
        self._executable = executable
        self._args = args
        self._env = {} if env is None else env
        self._path = path
        self._uid = uid
        self._gid = gid
        self._usePTY = usePTY
        self._childFDs = childFDs
        self._errFlag = errFlag
        self._spawnProcess = reactor.spawnProcess

    def __repr__(self) -> str:
        return f"ProcessEndpoint({self._executable!r}, {self._args!r})"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Spawn the process; the Deferred fires with the connected protocol (at once)."""
        try:
            proto = protocolFactory.buildProtocol(ProcessAddress())
            if proto is None:
                raise error.ConnectError(string=f"{protocolFactory!r} refused to build a protocol")
            wrapped = _WrapIProtocol(proto, self._executable, self._errFlag)
            self._spawnProcess(wrapped, self._executable, self._args, self._env, self._path,
                               self._uid, self._gid, self._usePTY, self._childFDs)
        except BaseException:
            return fail()
        return succeed(proto)
