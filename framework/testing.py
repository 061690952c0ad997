"""Fakes for unit-testing protocols without sockets.

- ``StringTransport``: a transport that records what is written (``value()``), whether the
  protocol asked to disconnect (``disconnecting``) and the registered producer.
- ``StringTransportWithDisconnection``: the same, but ``loseConnection`` calls the protocol's
  ``connectionLost`` as a real transport would.
- ``MemoryReactor``: records ``listenTCP``/``connectTCP``/``listenUNIX``/``connectUNIX``/
  ``listenUDP``/``adoptStreamPort`` calls (``tcpServers``, ``tcpClients``, ...) and is a
  ``Clock``, so timers run when the test calls ``advance``. It satisfies every reactor facet of
  ``framework.interfaces`` (``IReactorTime``, ``IReactorCore``, ``IReactorTCP``,
  ``IReactorUNIX``, ``IReactorUDP``, ``IReactorThreads``, ``IReactorFDSet``), so code typed
  against a facet takes it as it takes the real reactor.
- ``FakeThreadPool``: ``MemoryReactor.getThreadPool()``; runs each call at once, in the calling
  thread, so code that hands work to threads stays deterministic under test.
- ``Clock``: ``framework.task.Clock``, re-exported.

The pytest plugin ``reactor_framework`` (fixtures for these fakes and a real ``reactor``) is
``framework.pytest_plugin``. Importing this module installs no reactor and loads no plugin.
"""

from __future__ import annotations

import io
import socket
from typing import Any, Callable, Iterable

from framework import error
from framework.address import IPv4Address, IPv6Address, UNIXAddress
from framework.defer import Deferred, succeed
from framework.failure import Failure
from framework.interfaces import (
    IConnector,
    IListeningPort,
    IProtocolFactory,
    ReadDescriptor,
    WriteDescriptor,
)
from framework.protocol import AbstractDatagramProtocol
from framework.task import Clock

__all__ = [
    "Clock",
    "FakeConnector",
    "FakePort",
    "FakeThreadPool",
    "MemoryReactor",
    "RaisingMemoryReactor",
    "MemoryReactorClock",
    "StringIOWithoutClosing",
    "StringTransport",
    "StringTransportWithDisconnection",
]

_Address = IPv4Address | IPv6Address | UNIXAddress


class StringTransport:
    """An in-memory transport for one protocol.

    Writes accumulate in ``value()`` (``clear()`` empties it); ``loseConnection`` and
    ``abortConnection`` only set ``disconnecting`` (and ``aborted``) so the test decides when
    to call the protocol's ``connectionLost``. ``producer``/``streaming`` hold the registered
    producer and ``producerState`` (``'producing'``, ``'paused'``, ``'stopped'``) records what
    the protocol asked of the transport as a producer.
    """

    disconnecting = False
    aborted = False
    producer: Any = None
    streaming: bool | None = None
    producerState = "producing"
    noDelay = False
    keepAlive = False
    writeDisconnected = False

    def __init__(self, hostAddress: _Address | None = None, peerAddress: _Address | None = None) -> None:
        self.io = io.BytesIO()
        self.hostAddr: _Address = hostAddress or IPv4Address("TCP", "127.0.0.1", 12345)
        self.peerAddr: _Address = peerAddress or IPv4Address("TCP", "127.0.0.1", 54321)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self.peerAddr!r} {len(self.value())} bytes written>"

    def value(self) -> bytes:
        """Everything written since creation or the last ``clear()``."""
        return self.io.getvalue()

    def clear(self) -> None:
        """Forget what was written."""
        self.io = io.BytesIO()

    def write(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self.io.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()

    def loseWriteConnection(self) -> None:
        self.writeDisconnected = True

    def getPeer(self) -> _Address:
        return self.peerAddr

    def getHost(self) -> _Address:
        return self.hostAddr

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = bool(enabled)

    def getTcpNoDelay(self) -> bool:
        return self.noDelay

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepAlive = bool(enabled)

    def getTcpKeepAlive(self) -> bool:
        return self.keepAlive

    # The consumer side: what a protocol registers with its transport.
    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(f"a producer is already registered: {self.producer!r}")
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        if self.producer is None:
            raise RuntimeError("no producer is registered")
        self.producer = None
        self.streaming = None

    # The producer side: what a protocol asks of its transport (e.g. LineReceiver pausing).
    def _checkState(self) -> None:
        if self.disconnecting:
            raise RuntimeError("cannot pause or resume producing after loseConnection")
        if self.producerState == "stopped":
            raise RuntimeError("cannot pause or resume a stopped producer")

    def pauseProducing(self) -> None:
        self._checkState()
        self.producerState = "paused"

    def resumeProducing(self) -> None:
        self._checkState()
        self.producerState = "producing"

    def stopProducing(self) -> None:
        self.producerState = "stopped"


class StringTransportWithDisconnection(StringTransport):
    """A ``StringTransport`` whose ``loseConnection`` calls ``protocol.connectionLost`` (once)
    with ``ConnectionDone`` (``ConnectionAborted`` for ``abortConnection``). Set ``protocol``
    before use."""

    connected = True
    protocol: Any = None

    def loseConnection(self) -> None:
        self._lose(error.ConnectionDone("Bye."))

    def abortConnection(self) -> None:
        self.aborted = True
        self._lose(error.ConnectionAborted())

    def _lose(self, reason: BaseException) -> None:
        self.disconnecting = True
        if self.connected:
            if self.protocol is None:
                raise RuntimeError(
                    "StringTransportWithDisconnection.protocol is not set: assign the protocol "
                    "so loseConnection can call its connectionLost"
                )
            self.connected = False
            self.protocol.connectionLost(Failure(reason))


def _address_for(kind: str, host: str, port: int, default_host: str) -> IPv4Address | IPv6Address:
    if ":" in host:
        return IPv6Address(kind, host, port)  # type: ignore[arg-type]
    return IPv4Address(kind, host or default_host, port)  # type: ignore[arg-type]


class FakePort(IListeningPort):
    """What ``MemoryReactor.listen*`` returns: ``getHost()`` and ``stopListening()``."""

    def __init__(self, address: _Address, factory: Any = None) -> None:
        self._address = address
        self.factory = factory
        self.listening = True

    def __repr__(self) -> str:
        return f"<FakePort {self._address!r}>"

    def getHost(self) -> _Address:
        return self._address

    def startListening(self) -> None:
        self.listening = True

    def stopListening(self) -> Deferred[None]:
        """Mark the port stopped; returns an already fired Deferred."""
        self.listening = False
        return succeed(None)

    loseConnection = stopListening


class FakeConnector(IConnector):
    """What ``MemoryReactor.connect*`` returns: records ``connect``/``disconnect``/
    ``stopConnecting`` calls instead of doing them."""

    def __init__(self, address: _Address, factory: Any = None) -> None:
        self._address = address
        self.factory = factory
        self.connectCalls = 0
        self.disconnected = False
        self.stoppedConnecting = False
        self.state = "connecting"

    def __repr__(self) -> str:
        return f"<FakeConnector {self._address!r}>"

    def getDestination(self) -> _Address:
        return self._address

    def connect(self) -> None:
        """Record a (re)connection attempt, telling the factory as a real connector would."""
        self.connectCalls += 1
        self.state = "connecting"
        self.stoppedConnecting = False
        started = getattr(self.factory, "startedConnecting", None)
        if started is not None:  # a plain Factory has no client callbacks
            started(self)

    def disconnect(self) -> None:
        self.disconnected = True
        self.state = "disconnected"

    def stopConnecting(self) -> None:
        if self.state != "connecting":
            raise error.NotConnectingError("we are not trying to connect")
        self.stoppedConnecting = True
        self.state = "disconnected"


class FakeThreadPool:
    """``MemoryReactor.getThreadPool()``: runs each call at once, in the calling thread (no
    thread is started, so tests stay deterministic), and records it in ``calls`` as
    ``(func, args, kw)``.

    ``callInThread``: an exception from ``func`` propagates to the caller, so the test sees it.
    ``callInThreadWithCallback``: ``onResult(True, result)`` or ``onResult(False, failure)``, as
    a real pool's worker would call it. ``deferToThreadPool(memory_reactor, pool, f)`` therefore
    runs ``f`` at once and fires its Deferred at the reactor's next ``advance(0)``.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []

    def callInThread(self, func: Callable[..., object], *args: Any, **kw: Any) -> None:
        self.calls.append((func, args, kw))
        func(*args, **kw)

    def callInThreadWithCallback(self, onResult: Callable[[bool, Any], object] | None,
                                 func: Callable[..., object], *args: Any, **kw: Any) -> None:
        self.calls.append((func, args, kw))
        try:
            result: Any = func(*args, **kw)
        except BaseException:
            if onResult is None:
                raise
            onResult(False, Failure())
            return
        if onResult is not None:
            onResult(True, result)


class MemoryReactor(Clock):
    """A reactor that records what it is asked to do and does none of it; timers are a
    ``Clock``'s (``advance`` runs them).

    ``tcpServers`` holds ``(port, factory, backlog, interface)``, ``tcpClients``
    ``(host, port, factory, timeout, bindAddress)``, ``unixServers``
    ``(address, factory, backlog, mode, wantPID)``, ``unixClients``
    ``(address, factory, timeout, checkPID)`` and ``udpServers``
    ``(port, protocol, interface, maxPacketSize)``, ``adoptedPorts``
    ``(fileDescriptor, addressFamily, factory)``, ``spawnedProcesses`` ``(processProtocol,
    executable, args, env, path, uid, gid, usePTY, childFDs)``. ``connectors``, ``ports`` and
    ``processes`` hold what was returned. A ``listen*`` call for a port that is in ``failListen`` raises
    ``CannotListenError``, to test error paths. ``callInThread`` runs the call at once through
    ``threadPool`` (a ``FakeThreadPool``); ``suggestThreadPoolSize`` records ``threadPoolSize``.
    """

    backend_name = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.tcpServers: list[tuple[Any, ...]] = []
        self.tcpClients: list[tuple[Any, ...]] = []
        self.unixServers: list[tuple[Any, ...]] = []
        self.unixClients: list[tuple[Any, ...]] = []
        self.udpServers: list[tuple[Any, ...]] = []
        self.multicastServers: list[tuple[Any, ...]] = []
        #: ``(port, factory, contextFactory, backlog, interface)`` / ``(host, port, factory,
        #: contextFactory, timeout, bindAddress)``, as Twisted's MemoryReactor records them.
        self.sslServers: list[tuple[Any, ...]] = []
        self.sslClients: list[tuple[Any, ...]] = []
        #: ``(fileDescriptor, addressFamily, factory)`` of each ``adoptStreamPort`` call.
        self.adoptedPorts: list[tuple[int, int, Any]] = []
        #: ``(processProtocol, executable, args, env, path, uid, gid, usePTY, childFDs)`` of
        #: each ``spawnProcess`` call; ``processes`` holds the ``MemoryProcess`` transports.
        self.spawnedProcesses: list[tuple[Any, ...]] = []
        self.processes: list[MemoryProcess] = []
        self.connectors: list[FakeConnector] = []
        self.ports: list[FakePort] = []
        self.failListen: set[Any] = set()
        self.readers: set[Any] = set()
        self.writers: set[Any] = set()
        self.threadPool = FakeThreadPool()
        self.threadPoolSize = 10
        self.running = False
        self.hasRun = False
        self.hasStopped = False
        self.hasCrashed = False
        self.whenRunningHooks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.triggers: dict[str, dict[str, list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]]] = {}

    # Core
    def run(self, installSignalHandlers: bool = True) -> None:
        """Run the ``callWhenRunning`` hooks, then stop (nothing else is driven)."""
        if self.running:
            raise error.ReactorAlreadyRunning("MemoryReactor is already running")
        self.running = True
        self.hasRun = True
        for f, args, kwargs in self.whenRunningHooks:
            f(*args, **kwargs)
        self.stop()

    def stop(self) -> None:
        self.running = False
        self.hasStopped = True

    def crash(self) -> None:
        self.hasCrashed = True
        self.running = False

    def callWhenRunning(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.whenRunningHooks.append((f, args, kwargs))

    def addSystemEventTrigger(
        self, phase: str, eventType: str, f: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[str, str, int]:
        triggers = self.triggers.setdefault(phase, {}).setdefault(eventType, [])
        triggers.append((f, args, kwargs))
        return (phase, eventType, len(triggers) - 1)

    def removeSystemEventTrigger(self, triggerID: tuple[str, str, int]) -> None:
        phase, eventType, index = triggerID
        self.triggers[phase][eventType][index] = (lambda: None, (), {})

    def fireSystemEvent(self, eventType: str) -> None:
        """Run the recorded triggers for ``eventType`` (before, during, after)."""
        for phase in ("before", "during", "after"):
            for f, args, kwargs in list(self.triggers.get(phase, {}).get(eventType, ())):
                f(*args, **kwargs)

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queued as a zero-delay timer: runs at the next ``advance``."""
        if not callable(f):
            raise TypeError(f"callFromThread() needs a callable, not {f!r}")
        self.callLater(0, f, *args, **kwargs)

    def callInThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run at once, in this thread, through ``threadPool`` (see ``FakeThreadPool``)."""
        self.threadPool.callInThread(f, *args, **kwargs)

    def getThreadPool(self) -> FakeThreadPool:
        return self.threadPool

    def suggestThreadPoolSize(self, size: int) -> None:
        """Recorded in ``threadPoolSize``; as the real reactor, refuses a size below 1."""
        if size < 1:
            raise ValueError(f"thread pool size must be >= 1, got {size!r}")
        self.threadPoolSize = size

    # Descriptors
    def addReader(self, reader: ReadDescriptor) -> None:
        self.readers.add(reader)

    def removeReader(self, reader: ReadDescriptor) -> None:
        self.readers.discard(reader)

    def addWriter(self, writer: WriteDescriptor) -> None:
        self.writers.add(writer)

    def removeWriter(self, writer: WriteDescriptor) -> None:
        self.writers.discard(writer)

    def removeAll(self) -> list[Any]:
        everything = list(self.readers | self.writers)
        self.readers.clear()
        self.writers.clear()
        return everything

    def getReaders(self) -> list[Any]:
        return list(self.readers)

    def getWriters(self) -> list[Any]:
        return list(self.writers)

    # Network
    def _listen(self, key: Any, interface: str, address: _Address, factory: Any) -> FakePort:
        if key in self.failListen:
            raise error.CannotListenError(interface, key, OSError("address in use (MemoryReactor.failListen)"))
        port = FakePort(address, factory)
        self.ports.append(port)
        return port

    def listenTCP(self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = "") -> FakePort:
        self.tcpServers.append((port, factory, backlog, interface))
        return self._listen(port, interface, _address_for("TCP", interface, port, "0.0.0.0"), factory)

    def connectTCP(
        self, host: str, port: int, factory: IProtocolFactory, timeout: float = 30,
        bindAddress: Any = None,
    ) -> FakeConnector:
        self.tcpClients.append((host, port, factory, timeout, bindAddress))
        return self._connect(_address_for("TCP", host, port, host), factory)

    def listenUNIX(
        self, address: str | bytes, factory: IProtocolFactory, backlog: int = 50, mode: int = 0o666, wantPID: bool = False
    ) -> FakePort:
        self.unixServers.append((address, factory, backlog, mode, wantPID))
        return self._listen(address, "", UNIXAddress(address), factory)

    def connectUNIX(
        self, address: str | bytes, factory: IProtocolFactory, timeout: float | None = 30, checkPID: bool = False
    ) -> FakeConnector:
        self.unixClients.append((address, factory, timeout, checkPID))
        return self._connect(UNIXAddress(address), factory)

    def listenUDP(
        self, port: int, protocol: AbstractDatagramProtocol, interface: str = "",
        maxPacketSize: int = 8192,
    ) -> FakePort:
        self.udpServers.append((port, protocol, interface, maxPacketSize))
        return self._listen(port, interface, _address_for("UDP", interface, port, "0.0.0.0"), protocol)

    def listenMulticast(
        self, port: int, protocol: AbstractDatagramProtocol, interface: str = "",
        maxPacketSize: int = 8192, listenMultiple: bool = False,
    ) -> FakePort:
        self.multicastServers.append((port, protocol, interface, maxPacketSize, listenMultiple))
        return self._listen(port, interface, _address_for("UDP", interface, port, "0.0.0.0"), protocol)

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> FakePort:
        self.sslServers.append((port, factory, contextFactory, backlog, interface))
        return self._listen(port, interface, _address_for("TCP", interface, port, "0.0.0.0"), factory)

    def connectSSL(
        self, host: str, port: int, factory: Any, contextFactory: Any, timeout: float = 30,
        bindAddress: Any = None,
    ) -> FakeConnector:
        self.sslClients.append((host, port, factory, contextFactory, timeout, bindAddress))
        return self._connect(_address_for("TCP", host, port, host), factory)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> FakePort:
        """Record ``(fileDescriptor, addressFamily, factory)`` in ``adoptedPorts``; the
        descriptor is never touched. Bad arguments raise as the real reactor's do."""
        if isinstance(fileDescriptor, bool) or not isinstance(fileDescriptor, int):
            raise TypeError(f"fileDescriptor must be an int, not {type(fileDescriptor).__name__}")
        if fileDescriptor < 0:
            raise ValueError(f"cannot adopt descriptor {fileDescriptor}: not a valid descriptor")
        address: _Address
        if addressFamily == socket.AF_INET:
            address = IPv4Address("TCP", "0.0.0.0", 0)
        elif addressFamily == socket.AF_INET6:
            address = IPv6Address("TCP", "::", 0)
        elif addressFamily == socket.AF_UNIX:
            address = UNIXAddress(None)
        else:
            raise ValueError(
                f"cannot adopt a stream socket of address family {addressFamily!r}: "
                "AF_INET, AF_INET6 or AF_UNIX only"
            )
        self.adoptedPorts.append((fileDescriptor, addressFamily, factory))
        port = FakePort(address, factory)
        self.ports.append(port)
        return port

    def spawnProcess(self, processProtocol: Any, executable: str | bytes, args: Any = (),
                     env: Any = None, path: str | None = None, uid: int | None = None,
                     gid: int | None = None, usePTY: bool = False, childFDs: Any = None) -> MemoryProcess:
        """Record the call and connect ``processProtocol`` to a ``MemoryProcess``; nothing runs.
        The test plays the child: ``process.childData(1, b"...")``, ``process.exit(0)``."""
        self.spawnedProcesses.append((processProtocol, executable, args, env, path, uid, gid,
                                      usePTY, childFDs))
        process = MemoryProcess(processProtocol, 1000 + len(self.processes))
        self.processes.append(process)
        processProtocol.makeConnection(process)
        return process

    def _connect(self, address: _Address, factory: Any) -> FakeConnector:
        connector = FakeConnector(address, factory)
        self.connectors.append(connector)
        started = getattr(factory, "startedConnecting", None)
        if started is not None:
            started(connector)
        return connector


class RaisingMemoryReactor:
    """A reactor whose every listen raises ``listenException`` and every connect raises
    ``connectException`` (Twisted's), for testing how code reports those failures."""

    def __init__(self, listenException: BaseException | None = None,
                 connectException: BaseException | None = None) -> None:
        self._listenException = listenException
        self._connectException = connectException

    def _listen(self, *args: Any, **kwargs: Any) -> Any:
        raise self._listenException if self._listenException is not None else RuntimeError("listen")

    def _connect(self, *args: Any, **kwargs: Any) -> Any:
        raise self._connectException if self._connectException is not None else RuntimeError("connect")

    adoptStreamPort = listenTCP = listenSSL = listenUNIX = _listen
    connectTCP = connectSSL = connectUNIX = _connect


class MemoryProcess:
    """The transport ``MemoryReactor.spawnProcess`` gives: records what the protocol does
    (``written`` per child descriptor, ``closed`` descriptors, ``signals``) and lets the test
    act as the child (``childData``, ``closeChild``, ``exit``)."""

    def __init__(self, protocol: Any, pid: int) -> None:
        self.proto = protocol
        self.pid: int | None = pid
        self.status: int | None = None
        self.written: dict[int, bytes] = {}
        self.closed: list[int] = []
        self.signals: list[str | int] = []
        self.lostConnection = False

    def write(self, data: bytes) -> None:
        self.writeToChild(0, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.writeToChild(0, b"".join(data))

    def writeToChild(self, childFD: int, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        self.written[childFD] = self.written.get(childFD, b"") + data

    def closeChildFD(self, childFD: int) -> None:
        if childFD not in self.closed:
            self.closed.append(childFD)

    def closeStdin(self) -> None:
        self.closeChildFD(0)

    def closeStdout(self) -> None:
        self.closeChildFD(1)

    def closeStderr(self) -> None:
        self.closeChildFD(2)

    def loseConnection(self) -> None:
        self.lostConnection = True
        for fd in (0, 1, 2):
            self.closeChildFD(fd)

    def signalProcess(self, signalID: str | int) -> None:
        if self.pid is None:
            raise error.ProcessExitedAlready("the process has already exited")
        self.signals.append(signalID)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    # The test's side: what the child does.
    def childData(self, childFD: int, data: bytes) -> None:
        """The child wrote ``data`` on its descriptor ``childFD``."""
        self.proto.childDataReceived(childFD, data)

    def closeChild(self, childFD: int) -> None:
        """The child closed its descriptor ``childFD``."""
        self.proto.childConnectionLost(childFD)

    def exit(self, code: int = 0, signal: int | None = None) -> None:
        """The child exits (or is killed by ``signal``): ``processExited``, then
        ``processEnded``, with Twisted's reasons."""
        self.pid = None
        if signal is not None:
            self.status = signal
            reason = Failure(error.ProcessTerminated(None, signal, signal))
        elif code == 0:
            self.status = 0
            reason = Failure(error.ProcessDone(0))
        else:
            self.status = code << 8
            reason = Failure(error.ProcessTerminated(code, None, code << 8))
        self.proto.processExited(reason)
        self.proto.processEnded(reason)


class StringIOWithoutClosing(io.BytesIO):
    """A ``BytesIO`` whose ``close()`` does nothing, so a test can read what was written after
    the code under test closed it (Twisted's ``proto_helpers.StringIOWithoutClosing``)."""

    def close(self) -> None:
        pass


#: Twisted's name for a memory reactor that is also a clock.
MemoryReactorClock = MemoryReactor
