"""Twisted's protocol-wrapping policies, built on :class:`framework.wrapping.ProtocolWrapper`.

Each is a :class:`~framework.wrapping.WrappingFactory` around the user's factory, importable
from ``framework.policies`` as in Twisted:

- :class:`ThrottlingFactory`: a connection cap and per-second read/write budgets (reading is
  paused, the registered producer is paused, until the budget recovers);
- :class:`LimitConnectionsByPeer`, :class:`LimitTotalConnectionsFactory`: connection caps;
- :class:`TimeoutFactory`: drop a connection after ``timeoutPeriod`` seconds without traffic;
- :class:`TrafficLoggingFactory`, :class:`SpewingFactory`: record what passes.

``reactor-serve`` uses its own ``framework.policies.PolicyFactory`` instead (limits counted
from accept, message deadlines, write-buffer caps); these are for code ported from Twisted.
Timers go through the factory's ``callLater`` (override it to use a ``task.Clock``).
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any, Callable, Iterable

from framework import error
from framework.failure import Failure
from framework.main import global_reactor
from framework.protocol import ServerFactory, connectionDone
from framework.wrapping import ProtocolWrapper, WrappingFactory

__all__ = [
    "check_period",
    "LimitConnectionsByPeer",
    "LimitTotalConnectionsFactory",
    "SpewingFactory",
    "SpewingProtocol",
    "ThrottlingFactory",
    "ThrottlingProtocol",
    "TimeoutFactory",
    "TimeoutProtocol",
    "TrafficLoggingFactory",
    "TrafficLoggingProtocol",
]

log = logging.getLogger("framework.policies")


def check_period(name: str, value: Any, *, positive: bool = True, integer: bool = False) -> None:
    """Raise a clear error unless ``value`` is ``None`` or a number above zero (at least zero
    when not ``positive``; a whole number when ``integer``)."""
    if value is None:
        return
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "a whole number" if integer else "a number"
        raise TypeError(f"{name} must be {what} or None, not {value!r}")
    number = float(value)  # type: ignore[arg-type]  # an int or a float, checked above
    if number < 0 or (positive and number == 0) or number != number:
        bound = "above 0" if positive else "0 or more"
        raise ValueError(f"{name} must be {bound} (or None), not {value!r}")


def _cancel(call: Any) -> None:
    if call is not None and call.active():
        call.cancel()


class ThrottlingProtocol(ProtocolWrapper):
    """Counts the bytes read and written into its :class:`ThrottlingFactory`'s budgets."""

    producer: Any = None

    def write(self, data: bytes) -> None:
        self.factory.registerWritten(len(data))
        ProtocolWrapper.write(self, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        chunks = list(data)
        self.factory.registerWritten(sum(map(len, chunks)))
        ProtocolWrapper.writeSequence(self, chunks)

    def dataReceived(self, data: bytes) -> None:
        self.factory.registerRead(len(data))
        ProtocolWrapper.dataReceived(self, data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        ProtocolWrapper.registerProducer(self, producer, streaming)

    def unregisterProducer(self) -> None:
        self.producer = None
        ProtocolWrapper.unregisterProducer(self)

    def throttleReads(self) -> None:
        self.transport.pauseProducing()

    def unthrottleReads(self) -> None:
        self.transport.resumeProducing()

    def throttleWrites(self) -> None:
        if self.producer is not None:
            self.producer.pauseProducing()

    def unthrottleWrites(self) -> None:
        if self.producer is not None:
            self.producer.resumeProducing()


class ThrottlingFactory(WrappingFactory):
    """At most ``maxConnectionCount`` connections (more are refused), and, over all of them,
    at most ``readLimit``/``writeLimit`` bytes per second.

    Each second the budgets are checked: over the read budget, every connection stops
    reading; over the write budget, every registered producer is paused; both for as long as
    the excess takes to pay back at the limit.
    """

    protocol = ThrottlingProtocol

    def __init__(self, wrappedFactory: Any, maxConnectionCount: int = sys.maxsize,
                 readLimit: float | None = None, writeLimit: float | None = None) -> None:
        check_period("maxConnectionCount", maxConnectionCount, positive=False, integer=True)
        if maxConnectionCount is None:
            raise TypeError("maxConnectionCount must be a whole number, not None")
        check_period("readLimit", readLimit)
        check_period("writeLimit", writeLimit)
        WrappingFactory.__init__(self, wrappedFactory)
        self.connectionCount = 0
        self.maxConnectionCount = maxConnectionCount
        self.readLimit = readLimit
        self.writeLimit = writeLimit
        self.readThisSecond = 0
        self.writtenThisSecond = 0
        self.unthrottleReadsID: Any = None
        self.checkReadBandwidthID: Any = None
        self.unthrottleWritesID: Any = None
        self.checkWriteBandwidthID: Any = None

    def callLater(self, period: float, func: Callable[[], object]) -> Any:
        """Schedule ``func`` on the reactor (override to use another clock)."""
        return global_reactor().callLater(period, func)

    def registerWritten(self, length: int) -> None:
        self.writtenThisSecond += length

    def registerRead(self, length: int) -> None:
        self.readThisSecond += length

    def checkReadBandwidth(self) -> None:
        """Once a second: throttle reads if the last second read more than ``readLimit``."""
        assert self.readLimit is not None
        if self.readThisSecond > self.readLimit:
            self.throttleReads()
            self.unthrottleReadsID = self.callLater(self.readThisSecond / self.readLimit - 1.0,
                                                    self.unthrottleReads)
        self.readThisSecond = 0
        self.checkReadBandwidthID = self.callLater(1, self.checkReadBandwidth)

    def checkWriteBandwidth(self) -> None:
        """Once a second: throttle writes if the last second wrote more than ``writeLimit``."""
        assert self.writeLimit is not None
        if self.writtenThisSecond > self.writeLimit:
            self.throttleWrites()
            self.unthrottleWritesID = self.callLater(self.writtenThisSecond / self.writeLimit - 1.0,
                                                     self.unthrottleWrites)
        self.writtenThisSecond = 0
        self.checkWriteBandwidthID = self.callLater(1, self.checkWriteBandwidth)

    def _tell(self, method: str) -> None:
        for p in list(self.protocols):
            getattr(p, method)()

    def throttleReads(self) -> None:
        log.debug("throttling reads on %s", self)
        self._tell("throttleReads")

    def unthrottleReads(self) -> None:
        self.unthrottleReadsID = None
        self._tell("unthrottleReads")

    def throttleWrites(self) -> None:
        log.debug("throttling writes on %s", self)
        self._tell("throttleWrites")

    def unthrottleWrites(self) -> None:
        self.unthrottleWritesID = None
        self._tell("unthrottleWrites")

    def buildProtocol(self, addr: Any) -> Any:
        if self.connectionCount == 0:
            if self.readLimit is not None:
                self.checkReadBandwidth()
            if self.writeLimit is not None:
                self.checkWriteBandwidth()
        if self.connectionCount >= self.maxConnectionCount:
            log.info("%s: %d connections, the maximum: refusing one from %s",
                     self.logPrefix(), self.connectionCount, addr)
            return None
        built = WrappingFactory.buildProtocol(self, addr)
        if built is not None:
            self.connectionCount += 1
        return built

    def unregisterProtocol(self, p: Any) -> None:
        WrappingFactory.unregisterProtocol(self, p)
        self.connectionCount -= 1
        if self.connectionCount == 0:
            for name in ("unthrottleReadsID", "checkReadBandwidthID", "unthrottleWritesID",
                         "checkWriteBandwidthID"):
                _cancel(getattr(self, name))
                setattr(self, name, None)


class SpewingProtocol(ProtocolWrapper):
    """Logs (DEBUG, logger ``framework.policies``) every chunk received and sent."""

    def dataReceived(self, data: bytes) -> None:
        log.debug("Received: %r", data)
        ProtocolWrapper.dataReceived(self, data)

    def write(self, data: bytes) -> None:
        log.debug("Sending: %r", data)
        ProtocolWrapper.write(self, data)


class SpewingFactory(WrappingFactory):
    protocol = SpewingProtocol


class LimitConnectionsByPeer(WrappingFactory):
    """At most ``maxConnectionsPerPeer`` connections from one peer host; more are refused."""

    maxConnectionsPerPeer = 5

    def startFactory(self) -> None:
        self.peerConnections: dict[Any, int] = {}

    def _host(self, addr: Any) -> Any:
        host = getattr(addr, "host", None)
        return host if host is not None else addr[0]

    def buildProtocol(self, addr: Any) -> Any:
        if not hasattr(self, "peerConnections"):
            self.startFactory()
        host = self._host(addr)
        count = self.peerConnections.get(host, 0)
        if count >= self.maxConnectionsPerPeer:
            return None
        built = WrappingFactory.buildProtocol(self, addr)
        if built is not None:
            self.peerConnections[host] = count + 1
            built._limitedPeerHost = host
        return built

    def unregisterProtocol(self, p: Any) -> None:
        WrappingFactory.unregisterProtocol(self, p)
        host = p.__dict__.get("_limitedPeerHost")
        if host in self.peerConnections:
            self.peerConnections[host] -= 1
            if self.peerConnections[host] <= 0:
                del self.peerConnections[host]


class LimitTotalConnectionsFactory(ServerFactory):
    """A server factory serving at most ``connectionLimit`` connections at once (``None``: no
    limit). Over it, a connection gets ``overflowProtocol`` if set (it counts too), else is
    refused. ``connectionCount`` is the number open."""

    connectionCount = 0
    connectionLimit: int | None = None
    overflowProtocol: Callable[[], Any] | None = None

    def buildProtocol(self, addr: Any) -> Any:
        if self.connectionLimit is None or self.connectionCount < self.connectionLimit:
            wrapped = ServerFactory.buildProtocol(self, addr)
        elif self.overflowProtocol is None:
            return None
        else:
            wrapped = self.overflowProtocol()
            wrapped.factory = self
        self.connectionCount += 1
        return ProtocolWrapper(self, wrapped)  # type: ignore[arg-type]

    def registerProtocol(self, p: Any) -> None:
        pass

    def unregisterProtocol(self, p: Any) -> None:
        self.connectionCount -= 1


class TimeoutProtocol(ProtocolWrapper):
    """Drops the connection after ``timeoutPeriod`` seconds without a read or a write."""

    def __init__(self, factory: Any, wrappedProtocol: Any, timeoutPeriod: float | None) -> None:
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self.timeoutCall: Any = None
        self.timeoutPeriod: float | None = None
        self.setTimeout(timeoutPeriod)

    def setTimeout(self, timeoutPeriod: float | None = None) -> None:
        """Start the countdown again with ``timeoutPeriod`` (``None``: no timeout)."""
        check_period("timeoutPeriod", timeoutPeriod, positive=False)
        self.cancelTimeout()
        self.timeoutPeriod = timeoutPeriod
        if timeoutPeriod is not None:
            self.timeoutCall = self.factory.callLater(timeoutPeriod, self.timeoutFunc)

    def cancelTimeout(self) -> None:
        """Stop the countdown (harmless if none runs, or it already fired or was cancelled)."""
        self.timeoutPeriod = None
        call, self.timeoutCall = self.timeoutCall, None
        if call is not None:
            try:
                call.cancel()
            except (error.AlreadyCalled, error.AlreadyCancelled):
                pass

    def resetTimeout(self) -> None:
        if self.timeoutCall is not None and self.timeoutPeriod is not None:
            self.timeoutCall.reset(self.timeoutPeriod)

    def write(self, data: bytes) -> None:
        self.resetTimeout()
        ProtocolWrapper.write(self, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.resetTimeout()
        ProtocolWrapper.writeSequence(self, data)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        ProtocolWrapper.dataReceived(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.cancelTimeout()
        ProtocolWrapper.connectionLost(self, reason)

    def timeoutFunc(self) -> None:
        """The countdown ran out: close the connection."""
        self.loseConnection()


class TimeoutFactory(WrappingFactory):
    """Wraps each connection in a :class:`TimeoutProtocol` of ``timeoutPeriod`` seconds."""

    protocol = TimeoutProtocol

    def __init__(self, wrappedFactory: Any, timeoutPeriod: float | None = 30 * 60) -> None:
        check_period("timeoutPeriod", timeoutPeriod, positive=False)
        WrappingFactory.__init__(self, wrappedFactory)
        self.timeoutPeriod = timeoutPeriod

    def buildProtocol(self, addr: Any) -> Any:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped, timeoutPeriod=self.timeoutPeriod)

    def callLater(self, period: float, func: Callable[[], object]) -> Any:
        """Schedule ``func`` on the reactor (override to use another clock)."""
        return global_reactor().callLater(period, func)


class TrafficLoggingProtocol(ProtocolWrapper):
    """Writes one line per event to ``logfile``: ``*`` connected, ``C n: data`` received,
    ``S n: data`` sent, ``SV n: [chunks]`` a writeSequence, ``S n: *`` closed by us,
    ``C n: reason`` the connection lost (``n`` numbers the connection)."""

    def __init__(self, factory: Any, wrappedProtocol: Any, logfile: IO[str],
                 lengthLimit: int | None = None, number: int = 0) -> None:
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self.logfile = logfile
        self.lengthLimit = lengthLimit
        self._number = number

    def _log(self, line: str) -> None:
        self.logfile.write(line + "\n")
        self.logfile.flush()

    def _mungeData(self, data: Any) -> Any:
        if self.lengthLimit and len(data) > self.lengthLimit:
            data = data[: self.lengthLimit - 12] + b"<... elided>"
        return data

    def connectionMade(self) -> None:
        self._log("*")
        ProtocolWrapper.connectionMade(self)

    def dataReceived(self, data: bytes) -> None:
        self._log(f"C {self._number}: {self._mungeData(data)!r}")
        ProtocolWrapper.dataReceived(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._log(f"C {self._number}: {reason!r}")
        ProtocolWrapper.connectionLost(self, reason)

    def write(self, data: bytes) -> None:
        self._log(f"S {self._number}: {self._mungeData(data)!r}")
        ProtocolWrapper.write(self, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        chunks = list(data)
        self._log(f"SV {self._number}: {[self._mungeData(d) for d in chunks]!r}")
        ProtocolWrapper.writeSequence(self, chunks)

    def loseConnection(self) -> None:
        self._log(f"S {self._number}: *")
        ProtocolWrapper.loseConnection(self)


class TrafficLoggingFactory(WrappingFactory):
    """Logs each connection's traffic to its own file, ``<logfilePrefix>-<n>``."""

    protocol = TrafficLoggingProtocol
    _counter = 0

    def __init__(self, wrappedFactory: Any, logfilePrefix: str, lengthLimit: int | None = None) -> None:
        if not isinstance(logfilePrefix, str) or not logfilePrefix:
            raise TypeError(f"logfilePrefix must be a non-empty str, not {logfilePrefix!r}")
        check_period("lengthLimit", lengthLimit, positive=False, integer=True)
        WrappingFactory.__init__(self, wrappedFactory)
        self.logfilePrefix = logfilePrefix
        self.lengthLimit = lengthLimit

    def open(self, name: str) -> IO[str]:
        """Open one connection's log file (override to log elsewhere)."""
        return open(name, "w")

    def buildProtocol(self, addr: Any) -> Any:
        self._counter += 1
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        logfile = self.open(f"{self.logfilePrefix}-{self._counter}")
        return self.protocol(self, wrapped, logfile, self.lengthLimit, self._counter)

    def resetCounter(self) -> None:
        """Number the next connection 1 again."""
        self._counter = 0
