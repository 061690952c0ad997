"""The framework's interfaces.

Each interface is an ordinary class so that user code may inherit from it, as the Twisted
tutorial does (``class MySocket(IReadDescriptor)``); inheriting also lets the framework ask
``isinstance(protocol, IHalfCloseableProtocol)``. The methods document the contract; their
bodies raise ``NotImplementedError`` where an implementation is required.

``Multiplexer`` is the contract a reactor backend plugin implements.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from framework.failure import Failure


class Interface:
    """Marker base for the framework's interfaces."""

    __slots__ = ()


class ILoggingContext(Interface):
    __slots__ = ()

    def logPrefix(self) -> str:
        """A short string naming this object in log lines."""
        return self.__class__.__name__


class IFileDescriptor(ILoggingContext):
    """Something the reactor can watch: it has a file descriptor and can be told it is gone."""

    __slots__ = ()

    def fileno(self) -> int:
        """The OS-level descriptor; -1 once closed (the reactor then drops it)."""
        raise NotImplementedError

    def connectionLost(self, reason: Failure) -> None:
        """Called exactly once when the reactor drops this descriptor."""
        raise NotImplementedError


class IReadDescriptor(IFileDescriptor):
    __slots__ = ()

    def doRead(self) -> Any:
        """The descriptor is readable. A truthy return (e.g. ``main.CONNECTION_DONE``) drops it."""
        raise NotImplementedError


class IWriteDescriptor(IFileDescriptor):
    __slots__ = ()

    def doWrite(self) -> Any:
        """The descriptor is writable. A truthy return drops it."""
        raise NotImplementedError


class IReadWriteDescriptor(IReadDescriptor, IWriteDescriptor):
    __slots__ = ()


class IConsumer(Interface):
    __slots__ = ()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        raise NotImplementedError

    def unregisterProducer(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError


class IProducer(Interface):
    __slots__ = ()

    def stopProducing(self) -> None:
        raise NotImplementedError


class IPushProducer(IProducer):
    """A producer that writes on its own until paused."""

    __slots__ = ()

    def pauseProducing(self) -> None:
        raise NotImplementedError

    def resumeProducing(self) -> None:
        raise NotImplementedError


class IPullProducer(IProducer):
    """A producer that writes once each time ``resumeProducing`` is called."""

    __slots__ = ()

    def resumeProducing(self) -> None:
        raise NotImplementedError


class ITransport(Interface):
    __slots__ = ()

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def writeSequence(self, data: Iterable[bytes]) -> None:
        raise NotImplementedError

    def loseConnection(self) -> None:
        raise NotImplementedError

    def getPeer(self) -> Any:
        raise NotImplementedError

    def getHost(self) -> Any:
        raise NotImplementedError


class ITCPTransport(ITransport):
    __slots__ = ()

    def loseWriteConnection(self) -> None:
        raise NotImplementedError

    def abortConnection(self) -> None:
        raise NotImplementedError

    def getTcpNoDelay(self) -> bool:
        raise NotImplementedError

    def setTcpNoDelay(self, enabled: bool) -> None:
        raise NotImplementedError

    def getTcpKeepAlive(self) -> bool:
        raise NotImplementedError

    def setTcpKeepAlive(self, enabled: bool) -> None:
        raise NotImplementedError


class IProtocol(Interface):
    __slots__ = ()

    def makeConnection(self, transport: Any) -> None:
        raise NotImplementedError

    def connectionMade(self) -> None:
        raise NotImplementedError

    def dataReceived(self, data: bytes) -> None:
        raise NotImplementedError

    def connectionLost(self, reason: Failure) -> None:
        raise NotImplementedError


class IHalfCloseableProtocol(Interface):
    """Inherit this to be told of the peer's EOF (``readConnectionLost``) and keep writing."""

    __slots__ = ()

    def readConnectionLost(self) -> None:
        """The peer will send no more data; the write side is still open."""

    def writeConnectionLost(self) -> None:
        """Our write side is closed (after ``loseWriteConnection``)."""


class IProtocolFactory(Interface):
    __slots__ = ()

    def buildProtocol(self, addr: Any) -> Any:
        raise NotImplementedError

    def doStart(self) -> None:
        raise NotImplementedError

    def doStop(self) -> None:
        raise NotImplementedError


class IListeningPort(Interface):
    __slots__ = ()

    def startListening(self) -> None:
        raise NotImplementedError

    def stopListening(self) -> Any:
        """Stop listening; returns a Deferred that fires once the socket is closed."""
        raise NotImplementedError

    def getHost(self) -> Any:
        raise NotImplementedError


class IConnector(Interface):
    __slots__ = ()

    def stopConnecting(self) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        raise NotImplementedError

    def connect(self) -> None:
        raise NotImplementedError

    def getDestination(self) -> Any:
        raise NotImplementedError


class Multiplexer(abc.ABC):
    """A reactor backend: a synchronous event demultiplexer.

    Constructed with no arguments. ``events`` masks use ``select.POLLIN`` / ``select.POLLOUT``;
    ``poll`` returns ``(fd, mask)`` pairs whose mask uses ``POLLIN``, ``POLLOUT``, ``POLLERR``
    and ``POLLHUP`` (equal to the ``EPOLL*`` values on Linux). The reactor owns everything else:
    it never registers an fd twice and never asks for an empty mask (it unregisters instead).
    """

    @abc.abstractmethod
    def register(self, fd: int, events: int) -> None:
        """Start watching ``fd`` for ``events``."""

    @abc.abstractmethod
    def modify(self, fd: int, events: int) -> None:
        """Change the events watched on an already registered ``fd``."""

    @abc.abstractmethod
    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``; must not fail if the fd was already closed."""

    @abc.abstractmethod
    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` seconds (``None``: forever) and return the ready fds.

        May raise ``InterruptedError``; the reactor retries. An fd that is no longer valid
        may be reported with ``POLLNVAL``/``POLLERR``, or make the call raise ``OSError``
        (EBADF), in which case the reactor finds and drops the bad descriptor.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the OS resources of the multiplexer."""

    def fileno(self) -> int:
        """The multiplexer's own descriptor, or -1 if it has none (select, poll)."""
        return -1
