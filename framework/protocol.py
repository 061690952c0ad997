"""Protocols turn bytes into meaning; factories build one protocol per connection.

Semantics follow ``twisted.internet.protocol``: a transport calls ``makeConnection`` once it is
connected, then ``dataReceived`` for every chunk read and ``connectionLost`` exactly once at the
end. A listening port calls its factory's ``doStart`` when it starts and ``doStop`` when it
stops; the factory's ``startFactory``/``stopFactory`` run around the first and last port.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from framework import error
from framework.defer import Deferred
from framework.failure import Failure
from framework.interfaces import (
    ILoggingContext,
    IStreamTransport,
    IProcessProtocol,
    IProtocol,
    IProtocolFactory,
)
from framework.main import global_reactor

if TYPE_CHECKING:
    from framework.interfaces import IConnector, IDelayedCall, IReactorTime

__all__ = [
    "AbstractDatagramProtocol",
    "BaseProtocol",
    "ClientCreator",
    "ClientFactory",
    "ConnectedDatagramProtocol",
    "DatagramProtocol",
    "Factory",
    "FileWrapper",
    "ProcessProtocol",
    "Protocol",
    "ReconnectingClientFactory",
    "ServerFactory",
    "connectionDone",
]

log = logging.getLogger("framework.protocol")

#: The default ``reason`` of ``connectionLost``: a clean close.
connectionDone = Failure(error.ConnectionDone())

_F = TypeVar("_F", bound="Factory")


class BaseProtocol:
    """The connection half every stream protocol shares: ``makeConnection`` and
    ``connectionMade``."""

    connected = 0
    transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and announce the connection (called once by the transport)."""
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """The connection is up and ``self.transport`` is set. Override to greet the peer."""


class Protocol(BaseProtocol, IProtocol, ILoggingContext):
    """A stream protocol: override ``dataReceived`` and, when needed, ``connectionMade`` and
    ``connectionLost``. ``factory`` is the factory that built it (set by ``buildProtocol``).
    ``transport`` is typed as always set, as it is from ``makeConnection`` on (``None`` before)."""

    factory: Any = None
    transport: IStreamTransport = None  # type: ignore[assignment]

    def logPrefix(self) -> str:
        return self.__class__.__name__

    def dataReceived(self, data: bytes) -> None:
        """Some bytes arrived. Chunk boundaries are arbitrary: buffer as the framing needs."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The connection is gone (``reason`` wraps ``ConnectionDone`` for a clean close,
        ``ConnectionLost`` otherwise). Called exactly once."""


class Factory(IProtocolFactory, ILoggingContext):
    """Builds protocols: ``buildProtocol(addr)`` instantiates ``self.protocol`` and sets its
    ``factory``. Counts the ports it serves (``numPorts``) so that ``startFactory`` runs once
    before the first and ``stopFactory`` once after the last."""

    protocol: Callable[[], Any] | None = None
    numPorts = 0
    noisy = True

    @classmethod
    def forProtocol(cls: type[_F], protocol: Callable[[], Any], *args: Any, **kwargs: Any) -> _F:
        """A factory of this class (built with ``*args, **kwargs``) that builds ``protocol``."""
        factory = cls(*args, **kwargs)
        factory.protocol = protocol
        return factory

    def logPrefix(self) -> str:
        return self.__class__.__name__

    def doStart(self) -> None:
        """Called by a port when it starts listening (or a connector when it starts)."""
        if not self.numPorts:
            if self.noisy:
                log.info("Starting factory %r", self)
            self.startFactory()
        self.numPorts += 1

    def doStop(self) -> None:
        """Called by a port when it stops; ignored when no port is counted."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        if not self.numPorts:
            if self.noisy:
                log.info("Stopping factory %r", self)
            self.stopFactory()

    def startFactory(self) -> None:
        """Acquire shared resources (open files, pools...). Runs before the first port."""

    def stopFactory(self) -> None:
        """Release what ``startFactory`` acquired. Runs after the last port stops."""

    def buildProtocol(self, addr: Any) -> Any:
        """Build the protocol for a connection from/to ``addr``; ``None`` refuses it."""
        protocol = self.protocol
        if protocol is None:
            raise TypeError(
                f"{self.__class__.__name__}.protocol is not set: assign a Protocol class to it, "
                f"use {self.__class__.__name__}.forProtocol(cls), or override buildProtocol"
            )
        p = protocol()
        p.factory = self
        return p


class ServerFactory(Factory):
    """A factory for listening ports."""


class ClientFactory(Factory):
    """A factory for outgoing connections, told how each attempt went."""

    def startedConnecting(self, connector: IConnector) -> None:
        """A connection attempt started; ``connector.stopConnecting()`` cancels it."""

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """The attempt failed (refused, timed out, DNS...); ``connector.connect()`` retries."""

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        """An established connection ended; ``connector.connect()`` reconnects."""


class ReconnectingClientFactory(ClientFactory):
    """A client factory that reconnects with exponential back-off after each failure or loss.

    The delay starts at ``initialDelay``, is multiplied by ``factor`` after every attempt, is
    capped at ``maxDelay`` and randomised by ``jitter`` (relative standard deviation). After
    ``maxRetries`` consecutive attempts (``None``: no limit) it gives up. Call ``resetDelay()``
    from ``buildProtocol`` or ``connectionMade`` once a connection succeeds, and ``stopTrying()``
    to stop for good. Timers go through ``clock`` (default: the global reactor, looked up only
    when first needed), so tests can set it to a ``framework.task.Clock``.
    """

    maxDelay: float = 3600
    initialDelay: float = 1.0
    # e and a small jitter: successive delays grow fast without synchronised retry storms.
    factor: float = 2.7182818284590451
    jitter: float = 0.11962656472
    delay: float = initialDelay
    retries = 0
    maxRetries: int | None = None
    continueTrying = 1
    connector: IConnector | None = None
    #: What schedules the retries (anything with ``callLater``: the reactor, a ``Clock``);
    #: ``None`` means the global reactor, looked up at the first retry.
    clock: IReactorTime | None = None
    _callID: IDelayedCall | None = None

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def retry(self, connector: IConnector | None = None) -> None:
        """Schedule ``connector.connect()`` (default: the last connector seen) after the next
        back-off delay, unless stopped or out of retries."""
        if not self.continueTrying:
            if self.noisy:
                log.info("Abandoning %r on explicit request", connector)
            return
        if connector is None:
            if self.connector is None:
                raise ValueError("no connector to retry: pass one or connect first")
            connector = self.connector
        self.retries += 1
        if self.maxRetries is not None and self.retries > self.maxRetries:
            if self.noisy:
                log.info("Abandoning %r after %d retries", connector, self.maxRetries)
            return
        delay = min(self.delay * self.factor, self.maxDelay)
        if self.jitter:
            delay = random.normalvariate(delay, delay * self.jitter)
        self.delay = max(0.0, min(delay, self.maxDelay))
        if self.noisy:
            log.info("%r will retry in %g seconds", connector, self.delay)

        target = connector

        def reconnect() -> None:
            self._callID = None
            target.connect()

        clock = self.clock
        if clock is None:
            clock = self.clock = global_reactor()
        self._callID = clock.callLater(self.delay, reconnect)

    def stopTrying(self) -> None:
        """Cancel any pending reconnection and stop the attempt in progress, if any."""
        if self._callID is not None:
            self._callID.cancel()
            self._callID = None
        self.continueTrying = 0
        if self.connector is not None:
            try:
                self.connector.stopConnecting()
            except error.NotConnectingError:
                pass

    def resetDelay(self) -> None:
        """Back to the initial delay and zero retries (call after a successful connection)."""
        self.delay = self.initialDelay
        self.retries = 0
        self._callID = None
        self.continueTrying = 1


class _InstanceFactory(ClientFactory):
    """Hands one ready protocol instance to one connection attempt, for ``ClientCreator``."""

    noisy = False

    def __init__(self, reactor: Any, instance: Any, deferred: Deferred[Any]) -> None:
        self.reactor = reactor
        self.instance = instance
        self.deferred = deferred
        self.pending: Any = None  # the DelayedCall that will fire ``deferred``

    def __repr__(self) -> str:
        return f"<ClientCreator factory: {self.instance!r}>"

    def buildProtocol(self, addr: Any) -> Any:
        if self.deferred.called:  # cancelled while the connect was in flight
            return None
        # Fired on the next turn, once the transport has called connectionMade.
        self.pending = self.reactor.callLater(0, self._fire, self.instance)
        return self.instance

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        if not self.deferred.called:
            self.pending = self.reactor.callLater(0, self._fire, reason)

    def _fire(self, result: Any) -> None:
        self.pending = None
        if not self.deferred.called:
            if isinstance(result, Failure):
                self.deferred.errback(result)
            else:
                self.deferred.callback(result)


class FileWrapper:
    """A transport that writes into a file object (Twisted's, for debugging protocols and for
    tests): ``write`` goes to ``file.write``; a pull producer is asked for more after each
    write, as a real transport with an empty buffer would."""

    closed = 0
    disconnecting = 0
    producer: Any = None
    streamingProducer = False

    def __init__(self, file: Any) -> None:
        self.file = file

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except Exception:
            self.handleException()
        self._checkProducer()

    def writeSequence(self, iovec: Any) -> None:
        self.write(b"".join(iovec))

    def _checkProducer(self) -> None:
        if self.producer is not None and not self.streamingProducer:
            self.producer.resumeProducing()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        self.streamingProducer = streaming
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        self.producer = None

    def stopConsuming(self) -> None:
        self.unregisterProducer()
        self.loseConnection()

    def loseConnection(self) -> None:
        self.closed = 1

    def getPeer(self) -> tuple[str, str]:
        return ("file", "file")

    def getHost(self) -> tuple[str, str]:
        return ("file", "file")

    def handleException(self) -> None:
        """A write to the file raised: ignored (override to report it)."""

    def resumeProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.loseConnection()


class ClientCreator:
    """Connect and get a protocol instance, without writing a factory (Twisted's API).

    ``ClientCreator(reactor, Proto, *args, **kwargs).connectTCP(host, port)`` returns a
    Deferred that fires with ``Proto(*args, **kwargs)`` once it is connected (after its
    ``connectionMade``), or fails as the connection attempt did. Cancelling the Deferred
    stops the attempt, or drops the connection if it was just made.
    """

    def __init__(self, reactor: Any, protocolClass: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not callable(protocolClass):
            raise TypeError(f"protocolClass must be callable, not {type(protocolClass).__name__}")
        self.reactor = reactor
        self.protocolClass = protocolClass
        self.args = args
        self.kwargs = kwargs

    def _connect(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        connector: list[Any] = []
        factory: list[_InstanceFactory] = []

        def cancel(d: Deferred[Any]) -> None:
            if factory and factory[0].pending is not None:
                factory[0].pending.cancel()
                factory[0].pending = None
            if connector:
                connector[0].disconnect()

        d: Deferred[Any] = Deferred(cancel)
        f = _InstanceFactory(self.reactor, self.protocolClass(*self.args, **self.kwargs), d)
        factory.append(f)
        connector.append(method(*args, factory=f, **kwargs))
        return d

    def connectTCP(self, host: str, port: int, timeout: float = 30, bindAddress: Any = None) -> Deferred[Any]:
        return self._connect(self.reactor.connectTCP, host, port, timeout=timeout, bindAddress=bindAddress)

    def connectUNIX(self, address: str | bytes, timeout: float = 30, checkPID: bool = False) -> Deferred[Any]:
        return self._connect(self.reactor.connectUNIX, address, timeout=timeout, checkPID=checkPID)

    def connectSSL(self, host: str, port: int, contextFactory: Any, timeout: float = 30,
                   bindAddress: Any = None) -> Deferred[Any]:
        return self._connect(self.reactor.connectSSL, host, port, contextFactory=contextFactory,
                             timeout=timeout, bindAddress=bindAddress)


class ProcessProtocol(BaseProtocol, IProcessProtocol):
    """What a child process started by ``reactor.spawnProcess`` talks to (Twisted's API).

    Output arrives through ``childDataReceived(fd, data)``, which hands descriptor 1 to
    ``outReceived`` and 2 to ``errReceived``; a pipe's end is ``childConnectionLost(fd)``
    (``inConnectionLost``/``outConnectionLost``/``errConnectionLost`` for 0/1/2). Then
    ``processExited(reason)`` when the child has exited and ``processEnded(reason)`` once it
    has exited *and* every pipe is closed; ``reason.value`` is ``ProcessDone`` or
    ``ProcessTerminated`` (``exitCode``, ``signal``, ``status``).
    """

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 1:
            self.outReceived(data)
        elif childFD == 2:
            self.errReceived(data)

    def outReceived(self, data: bytes) -> None:
        """Bytes from the child's standard output."""

    def errReceived(self, data: bytes) -> None:
        """Bytes from the child's standard error."""

    def childConnectionLost(self, childFD: int) -> None:
        if childFD == 0:
            self.inConnectionLost()
        elif childFD == 1:
            self.outConnectionLost()
        elif childFD == 2:
            self.errConnectionLost()

    def inConnectionLost(self) -> None:
        """The child's standard input was closed."""

    def outConnectionLost(self) -> None:
        """The child closed its standard output."""

    def errConnectionLost(self) -> None:
        """The child closed its standard error."""

    def processExited(self, reason: Failure) -> None:
        """The child exited (its pipes may still hold data)."""

    def processEnded(self, reason: Failure) -> None:
        """The child exited and all its pipes are closed: the last call this protocol gets."""


class AbstractDatagramProtocol(ILoggingContext):
    """What UDP protocols share: the transport and the start/stop bookkeeping."""

    transport: Any = None
    numPorts = 0
    noisy = True

    def logPrefix(self) -> str:
        return self.__class__.__name__

    def doStart(self) -> None:
        """Called by the port when it starts listening; runs ``startProtocol`` the first time."""
        if not self.numPorts:
            if self.noisy:
                log.info("Starting protocol %r", self)
            self.startProtocol()
        self.numPorts += 1

    def doStop(self) -> None:
        """Called by the port when it stops; runs ``stopProtocol`` after the last port."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        self.transport = None
        if not self.numPorts:
            if self.noisy:
                log.info("Stopping protocol %r", self)
            self.stopProtocol()

    def startProtocol(self) -> None:
        """The protocol is listening: ``self.transport`` is set."""

    def stopProtocol(self) -> None:
        """The protocol has stopped listening."""

    def makeConnection(self, transport: Any) -> None:
        """Attach the port's transport and start the protocol (called by the port)."""
        if self.transport is not None:
            raise RuntimeError(f"{self!r} is already attached to transport {self.transport!r}")
        self.transport = transport
        self.doStart()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """One datagram arrived from ``addr`` (a ``(host, port)`` tuple)."""


class DatagramProtocol(AbstractDatagramProtocol):
    """A UDP protocol: override ``datagramReceived(data, addr)``; write with
    ``self.transport.write(data, addr)``."""

    def connectionRefused(self) -> None:
        """On a connected UDP transport, the peer answered a datagram with ICMP unreachable."""


class ConnectedDatagramProtocol(AbstractDatagramProtocol):
    """A protocol for a UDP transport connected to a single peer."""

    def datagramReceived(self, datagram: bytes) -> None:  # type: ignore[override]
        """One datagram arrived from the connected peer."""

    def connectionFailed(self, failure: Failure) -> None:
        """Connecting the transport failed (e.g. a DNS error)."""
