"""Two protocols talking to each other with no network: Twisted's ``protocols.loopback``.

- :func:`loopbackAsync` connects a server and a client protocol through in-memory transports
  and delivers what each writes to the other on later reactor turns (never from inside the
  writer's ``write``); the Deferred it returns fires once either side has closed and both
  have had ``connectionLost``. A *pump policy* decides how queued chunks are delivered:
  :func:`identityPumpPolicy` (one ``dataReceived`` per ``write``, the default) or
  :func:`collapsingPumpPolicy` (all queued chunks joined into one call).
- :func:`loopbackTCP` / :func:`loopbackUNIX` do the same over a real socket on 127.0.0.1 or
  a UNIX socket in a temporary directory.
- :class:`LoopbackRelay`: a transport that buffers writes until ``clearBuffer()``.

Mostly for tests of protocols: both sides run in this process, on the reactor.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Callable

from framework.address import UNIXAddress
from framework.defer import Deferred, FirstError, gatherResults, maybeDeferred
from framework.failure import Failure
from framework.interfaces import IAddress
from framework.main import CONNECTION_DONE, global_reactor
from framework.protocol import ClientFactory, Factory, connectionDone
from framework.wrapping import ProtocolWrapper, WrappingFactory
from framework.writing import coerce

__all__ = [
    "LoopbackRelay",
    "collapsingPumpPolicy",
    "identityPumpPolicy",
    "loopbackAsync",
    "loopbackTCP",
    "loopbackUNIX",
]

PumpPolicy = Callable[["_LoopbackQueue", Any], None]


class _LoopbackQueue:
    """The chunks one side wrote and the other has not received yet; ``None`` marks the
    writer's close. ``put`` wakes whoever waits for data (``_notificationDeferred``)."""

    def __init__(self) -> None:
        self._queue: list[bytes | None] = []
        self._notificationDeferred: Deferred[None] | None = None
        self.disconnect = False

    def put(self, chunk: bytes | None) -> None:
        self._queue.append(chunk)
        d, self._notificationDeferred = self._notificationDeferred, None
        if d is not None and not d.called:
            d.callback(None)

    def get(self) -> bytes | None:
        return self._queue.pop(0)

    def __bool__(self) -> bool:
        return bool(self._queue)


class _LoopbackAddress(IAddress):
    """The address of either end of an in-memory loopback connection."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "_LoopbackAddress()"


class _LoopbackTransport:
    """One side's transport: writes go into the queue the other side is fed from."""

    disconnecting = False
    producer: Any = None
    streamingProducer = False

    def __init__(self, queue: _LoopbackQueue) -> None:
        self._queue = queue

    def write(self, data: bytes) -> None:
        self._queue.put(coerce(data))

    def writeSequence(self, data: Any) -> None:
        self._queue.put(b"".join(coerce(chunk) for chunk in data))

    def loseConnection(self) -> None:
        if not self._queue.disconnect:
            self.disconnecting = True
            self._queue.disconnect = True
            self._queue.put(None)

    abortConnection = loseConnection

    def getPeer(self) -> _LoopbackAddress:
        return _LoopbackAddress()

    def getHost(self) -> _LoopbackAddress:
        return _LoopbackAddress()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(f"a producer is already registered: {self.producer!r}")
        self.producer = producer
        self.streamingProducer = streaming
        if not streaming:
            producer.resumeProducing()  # nothing is queued yet: ask for the first chunk

    def unregisterProducer(self) -> None:
        if self.producer is None:
            raise RuntimeError("no producer is registered")
        self.producer = None

    # A loopback transport has no reading to pause.
    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.loseConnection()


def identityPumpPolicy(queue: _LoopbackQueue, target: Any) -> None:
    """Deliver each queued chunk with its own ``dataReceived`` call, up to a close marker."""
    while queue:
        chunk = queue.get()
        if chunk is None:
            break
        target.dataReceived(chunk)


def collapsingPumpPolicy(queue: _LoopbackQueue, target: Any) -> None:
    """Deliver every queued chunk, up to a close marker, in one ``dataReceived`` call."""
    chunks = []
    while queue:
        chunk = queue.get()
        if chunk is None:
            break
        chunks.append(chunk)
    if chunks:
        target.dataReceived(b"".join(chunks))


def loopbackAsync(server: Any, client: Any, pumpPolicy: PumpPolicy = identityPumpPolicy,
                  clock: Any = None) -> Deferred[None]:
    """Connect ``server`` and ``client`` in memory; fires once the connection is closed.

    Data moves on later turns of ``clock`` (the global reactor by default), so a protocol's
    ``dataReceived`` never runs from inside its own peer's ``write``.
    """
    toClient, toServer = _LoopbackQueue(), _LoopbackQueue()
    server.makeConnection(_LoopbackTransport(toClient))
    client.makeConnection(_LoopbackTransport(toServer))
    return _Pump(server, toClient, client, toServer, pumpPolicy, clock).run()


class _Pump:
    """Moves queued chunks between the two sides until one closes."""

    def __init__(self, server: Any, toClient: _LoopbackQueue, client: Any, toServer: _LoopbackQueue,
                 pumpPolicy: PumpPolicy, clock: Any) -> None:
        self.server, self.toClient, self.client, self.toServer = server, toClient, client, toServer
        self.pumpPolicy = pumpPolicy
        self.clock = clock
        self.finished: Deferred[None] = Deferred()

    def _deliver(self, source: Any, queue: _LoopbackQueue, target: Any) -> bool:
        if not queue:
            return False
        self.pumpPolicy(queue, target)
        transport = source.transport
        producer = getattr(transport, "producer", None)
        if not queue and producer is not None and not getattr(transport, "streamingProducer", True):
            producer.resumeProducing()  # its chunk was delivered: a pull producer writes the next
        return True

    def run(self) -> Deferred[None]:
        while True:
            toClientSent = self._deliver(self.server, self.toClient, self.client)
            toServerSent = self._deliver(self.client, self.toServer, self.server)
            if self.toClient.disconnect or self.toServer.disconnect:
                # Whatever the closing side wrote before closing is delivered first.
                self._deliver(self.server, self.toClient, self.client)
                self._deliver(self.client, self.toServer, self.server)
                self.server.connectionLost(Failure(CONNECTION_DONE))
                self.client.connectionLost(Failure(CONNECTION_DONE))
                if not self.finished.called:
                    self.finished.callback(None)
                return self.finished
            if not (toClientSent or toServerSent):
                wake: Deferred[None] = Deferred()
                self.toClient._notificationDeferred = self.toServer._notificationDeferred = wake
                wake.addCallback(self._later)
                return self.finished

    def _later(self, _: None) -> None:
        self.toClient._notificationDeferred = self.toServer._notificationDeferred = None
        clock = self.clock if self.clock is not None else global_reactor()
        clock.callLater(0, self.run)


class _FireOnClose(ProtocolWrapper):
    """The server side of loopbackTCP/UNIX: fires ``closed`` once its connection is gone."""

    def __init__(self, factory: Any, wrappedProtocol: Any) -> None:
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self.closed: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        ProtocolWrapper.connectionLost(self, reason)
        self.closed.callback(None)


class _OneClientFactory(ClientFactory):
    """Connects ``client`` once; ``closed`` fires when its connection ends or fails."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.closed: Deferred[None] = Deferred()

    def buildProtocol(self, addr: Any) -> Any:
        return self.client

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.closed.errback(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.closed.callback(None)


def _serve_once(server: Any, noisy: bool) -> tuple[WrappingFactory, _FireOnClose]:
    factory = WrappingFactory(Factory())
    factory.noisy = noisy
    wrapper = _FireOnClose(factory, server)
    factory.buildProtocol = lambda addr: wrapper  # type: ignore[method-assign]
    return factory, wrapper


def _both_closed(port: Any, wrapper: _FireOnClose, clientFactory: _OneClientFactory,
                 cleanup: Callable[[], None] | None = None) -> Deferred[None]:
    """Fires once both sides are closed (or the client could not connect) and the port has
    stopped listening, with the connection failure if there was one."""
    done: Deferred[Any] = gatherResults([clientFactory.closed, wrapper.closed], consumeErrors=True)

    def unwrap(failure: Failure) -> Failure:
        first = failure.value  # gatherResults' FirstError: report the failure itself
        assert isinstance(first, FirstError)
        return first.subFailure

    done.addErrback(unwrap)

    def stop(result: Any) -> Deferred[Any]:
        stopped = maybeDeferred(port.stopListening)
        if cleanup is not None:
            stopped.addBoth(lambda _: cleanup())
        return stopped.addBoth(lambda _: result if isinstance(result, Failure) else None)

    return done.addBoth(stop)


def loopbackTCP(server: Any, client: Any, port: int = 0, noisy: bool = True,
                reactor: Any = None) -> Deferred[None]:
    """Connect ``server`` and ``client`` over TCP on 127.0.0.1; fires once both sides have
    lost the connection and the listening port is closed. ``reactor``: the global one by
    default."""
    reactor = reactor if reactor is not None else global_reactor()
    factory, wrapper = _serve_once(server, noisy)
    listening = reactor.listenTCP(port, factory, interface="127.0.0.1")
    clientFactory = _OneClientFactory(client)
    clientFactory.noisy = noisy
    reactor.connectTCP("127.0.0.1", listening.getHost().port, clientFactory)
    return _both_closed(listening, wrapper, clientFactory)


def loopbackUNIX(server: Any, client: Any, noisy: bool = True, reactor: Any = None) -> Deferred[None]:
    """Like :func:`loopbackTCP`, over a UNIX socket in a new temporary directory (removed
    once both sides are closed)."""
    reactor = reactor if reactor is not None else global_reactor()
    directory = tempfile.mkdtemp(prefix="loopback-")
    path = os.path.join(directory, "socket")
    factory, wrapper = _serve_once(server, noisy)
    try:
        listening = reactor.listenUNIX(path, factory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    clientFactory = _OneClientFactory(client)
    clientFactory.noisy = noisy
    reactor.connectUNIX(path, clientFactory)
    return _both_closed(listening, wrapper, clientFactory,
                        cleanup=lambda: shutil.rmtree(directory, ignore_errors=True))


class LoopbackRelay:
    """A transport that keeps what is written until ``clearBuffer()`` hands it to ``target``
    (Twisted's older, synchronous loopback); ``loseConnection`` takes effect there too."""

    buffer = b""
    shouldLose = 0  # 1: close at the next clearBuffer; -1: closed
    disconnecting = False
    producer: Any = None

    def __init__(self, target: Any, logFile: Any = None) -> None:
        self.target = target
        self.logFile = logFile

    def write(self, data: bytes) -> None:
        data = coerce(data)
        self.buffer += data
        if self.logFile is not None:
            self.logFile.write(f"loopback writing {data!r}\n")

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(coerce(chunk) for chunk in data))

    def clearBuffer(self) -> None:
        """Deliver what was written; then, if asked to, close the target's connection."""
        if self.shouldLose == -1:
            return
        if self.producer is not None:
            self.producer.resumeProducing()
        if self.buffer:
            if self.logFile is not None:
                self.logFile.write(f"loopback receiving {self.buffer!r}\n")
            buffer, self.buffer = self.buffer, b""
            self.target.dataReceived(buffer)
        if self.shouldLose == 1:
            self.shouldLose = -1
            self.target.connectionLost(Failure(CONNECTION_DONE))

    def loseConnection(self) -> None:
        if self.shouldLose != -1:
            self.shouldLose = 1
            self.disconnecting = True

    def getHost(self) -> UNIXAddress:
        return UNIXAddress("loopback")

    def getPeer(self) -> UNIXAddress:
        return UNIXAddress("loopback")

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None
