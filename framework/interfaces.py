"""The framework's interfaces.

Each interface is an ordinary class so that user code may inherit from it, as the Twisted
tutorial does (``class MySocket(IReadDescriptor)``); inheriting also lets the framework ask
``isinstance(protocol, IHalfCloseableProtocol)``. The methods document the contract; their
bodies raise ``NotImplementedError`` where an implementation is required.

``Multiplexer`` is the contract a reactor backend plugin implements.

The reactor's facets (``IReactorTime``, ``IReactorCore``, ``IReactorTCP``, ``IReactorUNIX``,
``IReactorUDP``, ``IReactorMulticast``, ``IReactorThreads``, ``IReactorFDSet``, Twisted's
names) are different: they
are ``typing.Protocol`` classes, for annotations. Nothing inherits them: ``Reactor``,
``framework.testing.MemoryReactor`` (and ``framework.task.Clock`` for ``IReactorTime``) satisfy
them by having the methods, and mypy checks it. Annotate a parameter with the facet the code
uses (``def __init__(self, clock: IReactorTime)``) and both the real reactor and the test fakes
are accepted, while a wrong call (``clock.callLater("soon", f)``) is reported. They are
``runtime_checkable``: ``isinstance(obj, IReactorTCP)`` checks the method names only.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from framework.failure import Failure
    from framework.protocol import AbstractDatagramProtocol


class Interface:
    """Marker base for the framework's interfaces."""

    __slots__ = ()

    @classmethod
    def providedBy(cls, obj: object) -> bool:
        """Whether ``obj`` implements this interface (Twisted's spelling of ``isinstance``)."""
        return isinstance(obj, cls)


class IAddress(Interface):
    """An endpoint address: ``IPv4Address``, ``IPv6Address``, ``UNIXAddress``..."""

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


class IProcessProtocol(Interface):
    """What a child process talks to (``framework.protocol.ProcessProtocol`` implements it)."""

    __slots__ = ()

    def makeConnection(self, process: Any) -> None:
        raise NotImplementedError

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        raise NotImplementedError

    def childConnectionLost(self, childFD: int) -> None:
        raise NotImplementedError

    def processExited(self, reason: Any) -> None:
        raise NotImplementedError

    def processEnded(self, reason: Any) -> None:
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


class IUDPTransport(Interface):
    """A UDP port as its ``DatagramProtocol`` sees it (``framework.udp.Port``)."""

    __slots__ = ()

    def write(self, packet: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send one datagram to ``addr`` (or to the connected peer when ``addr`` is None)."""
        raise NotImplementedError

    def connect(self, host: str, port: int) -> None:
        """Send to and receive from ``host:port`` only (an IP address, not a name)."""
        raise NotImplementedError

    def getHost(self) -> Any:
        raise NotImplementedError

    def stopListening(self) -> Any:
        raise NotImplementedError

    def setBroadcastAllowed(self, enabled: bool) -> None:
        raise NotImplementedError

    def getBroadcastAllowed(self) -> bool:
        raise NotImplementedError


class IMulticastTransport(IUDPTransport):
    """A UDP port that joins multicast groups (``framework.multicast.MulticastPort``)."""

    __slots__ = ()

    def getOutgoingInterface(self) -> str | int:
        raise NotImplementedError

    def setOutgoingInterface(self, addr: str | int) -> Any:
        """Choose the interface group datagrams are sent by; returns a Deferred."""
        raise NotImplementedError

    def getLoopbackMode(self) -> bool:
        raise NotImplementedError

    def setLoopbackMode(self, mode: bool) -> None:
        raise NotImplementedError

    def getTTL(self) -> int:
        raise NotImplementedError

    def setTTL(self, ttl: int) -> None:
        raise NotImplementedError

    def joinGroup(self, addr: str, interface: str | int = "") -> Any:
        """Receive what is sent to the group ``addr``; a Deferred (``MulticastJoinError``)."""
        raise NotImplementedError

    def leaveGroup(self, addr: str, interface: str | int = "") -> Any:
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


# --------------------------------------------------------------------------------------------
# The reactor's facets: typing.Protocol classes (structural; nothing needs to inherit them).
#
# Parameters before ``*args`` are positional-only (``/``) so that implementations may name
# them as they like; the others keep Twisted's names, since callers pass them by keyword.

_NOTHING = object()

if TYPE_CHECKING:
    _Facet = abc.ABCMeta
else:

    class _Facet(type(Protocol)):
        """The facets' metaclass: Twisted's interface idioms, for code ported from Twisted.

        ``IReactorUNIX(reactor)`` returns ``reactor`` if it has the facet's methods, else raises
        ``TypeError``; ``IReactorUNIX(reactor, None)`` returns ``None`` instead.
        ``IReactorTime.providedBy(obj)`` is ``isinstance(obj, IReactorTime)``.
        """

        def __call__(cls, *args, **kwargs):
            if not cls.__dict__.get("_is_protocol", False) or kwargs or not 1 <= len(args) <= 2:
                return super().__call__(*args, **kwargs)
            obj, default = args[0], args[1] if len(args) == 2 else _NOTHING
            if isinstance(obj, cls):
                return obj
            if default is _NOTHING:
                raise TypeError(f"{obj!r} does not provide {cls.__name__}")
            return default

        def providedBy(cls, obj):
            return isinstance(obj, cls)


@runtime_checkable
class IDelayedCall(Protocol, metaclass=_Facet):
    """What ``callLater`` returns: a scheduled call that can be cancelled or moved."""

    def getTime(self) -> float:
        """When the call is due, in the clock's ``seconds()``."""
        ...

    def cancel(self) -> None:
        """Unschedule it; ``AlreadyCalled``/``AlreadyCancelled`` if it is no longer pending."""
        ...

    def delay(self, secondsLater: float, /) -> None:
        """Move it ``secondsLater`` seconds later."""
        ...

    def reset(self, secondsFromNow: float, /) -> None:
        """Make it due ``secondsFromNow`` seconds from now."""
        ...

    def active(self) -> bool:
        """Whether it has neither run nor been cancelled."""
        ...


@runtime_checkable
class IReactorTime(Protocol, metaclass=_Facet):
    """Time and timers: the reactor, ``framework.task.Clock``, ``MemoryReactor``."""

    def seconds(self) -> float:
        """The current time of this clock, in seconds."""
        ...

    def callLater(self, delay: float, callable: Callable[..., object], /, *args: Any,
                  **kw: Any) -> IDelayedCall:
        """Call ``callable(*args, **kw)`` ``delay`` seconds from now."""
        ...

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        """The calls that are scheduled and still pending."""
        ...


@runtime_checkable
class IReactorCore(Protocol, metaclass=_Facet):
    """Running and stopping the loop, and the system-event triggers."""

    @property
    def running(self) -> bool:
        """Whether the loop is running (between 'startup' and 'shutdown')."""
        ...

    def run(self) -> None:
        """Run the loop until ``stop()``."""
        ...

    def stop(self) -> None:
        """Stop the loop (the 'shutdown' triggers run first)."""
        ...

    def crash(self) -> None:
        """Stop the loop at once, without the 'shutdown' triggers."""
        ...

    def callWhenRunning(self, callable: Callable[..., object], /, *args: Any, **kw: Any) -> Any:
        """Call ``callable`` now if running, else once the loop has started."""
        ...

    def addSystemEventTrigger(self, phase: str, eventType: str, callable: Callable[..., object], /,
                              *args: Any, **kw: Any) -> Any:
        """Call ``callable`` in ``phase`` ('before', 'during', 'after') of ``eventType``;
        returns an id for ``removeSystemEventTrigger``."""
        ...

    def removeSystemEventTrigger(self, triggerID: Any, /) -> None:
        """Remove a trigger by the id ``addSystemEventTrigger`` returned."""
        ...

    def fireSystemEvent(self, eventType: str, /) -> None:
        """Run the triggers of ``eventType``."""
        ...


@runtime_checkable
class IReactorTCP(Protocol, metaclass=_Facet):
    """TCP servers and clients."""

    def listenTCP(self, port: int, factory: IProtocolFactory, backlog: int = 50,
                  interface: str = "") -> IListeningPort:
        """Listen on ``port`` (0: any free port) of ``interface`` ('': all IPv4 addresses)."""
        ...

    def connectTCP(self, host: str, port: int, factory: IProtocolFactory, timeout: float = 30,
                   bindAddress: Any = None) -> IConnector:
        """Connect to ``host``:``port``; the factory is told how it went."""
        ...


@runtime_checkable
class IReactorUNIX(Protocol, metaclass=_Facet):
    """UNIX-domain stream servers and clients."""

    def listenUNIX(self, address: str | bytes, factory: IProtocolFactory, backlog: int = 50,
                   mode: int = 0o666, wantPID: bool = False) -> IListeningPort:
        """Listen on the socket path ``address``."""
        ...

    def connectUNIX(self, address: str | bytes, factory: IProtocolFactory,
                    timeout: float | None = 30, checkPID: bool = False) -> IConnector:
        """Connect to the socket path ``address``."""
        ...


@runtime_checkable
class IReactorUDP(Protocol, metaclass=_Facet):
    """UDP ports."""

    def listenUDP(self, port: int, protocol: AbstractDatagramProtocol, interface: str = "",
                  maxPacketSize: int = 8192) -> IListeningPort:
        """Bind ``port`` of ``interface`` and deliver its datagrams to ``protocol``."""
        ...


@runtime_checkable
class IReactorMulticast(Protocol, metaclass=_Facet):
    """UDP ports that join multicast groups."""

    def listenMulticast(self, port: int, protocol: AbstractDatagramProtocol, interface: str = "",
                        maxPacketSize: int = 8192, listenMultiple: bool = False) -> IListeningPort:
        """Like ``listenUDP``; the transport also has ``joinGroup``, ``leaveGroup``, ``setTTL``..."""
        ...


@runtime_checkable
class IThreadPool(Protocol, metaclass=_Facet):
    """What ``IReactorThreads.getThreadPool`` returns (``framework.threads.ThreadPool``)."""

    def callInThread(self, func: Callable[..., object], /, *args: Any, **kw: Any) -> None:
        """Run ``func(*args, **kw)`` in a worker thread."""
        ...

    def callInThreadWithCallback(self, onResult: Callable[[bool, Any], object],
                                 func: Callable[..., object], /, *args: Any, **kw: Any) -> None:
        """Run ``func`` in a worker, then ``onResult(True, result)`` or
        ``onResult(False, failure)`` in that worker."""
        ...


@runtime_checkable
class IReactorThreads(Protocol, metaclass=_Facet):
    """Handing work to and from threads."""

    def callFromThread(self, callable: Callable[..., object], /, *args: Any, **kw: Any) -> None:
        """From any thread: run ``callable(*args, **kw)`` in the reactor thread, soon."""
        ...

    def callInThread(self, callable: Callable[..., object], /, *args: Any, **kw: Any) -> None:
        """Run ``callable(*args, **kw)`` in a thread of the reactor's pool."""
        ...

    def getThreadPool(self) -> IThreadPool:
        """The reactor's thread pool."""
        ...

    def suggestThreadPoolSize(self, size: int, /) -> None:
        """Let the pool grow to ``size`` threads."""
        ...


@runtime_checkable
class ReadDescriptor(Protocol):
    """What ``addReader`` takes: the structural form of ``IReadDescriptor`` (inheriting that
    class is one way to have these methods; having them is enough)."""

    def fileno(self) -> int: ...

    def doRead(self) -> object: ...

    def connectionLost(self, reason: Failure, /) -> None: ...


@runtime_checkable
class WriteDescriptor(Protocol):
    """What ``addWriter`` takes: the structural form of ``IWriteDescriptor``."""

    def fileno(self) -> int: ...

    def doWrite(self) -> object: ...

    def connectionLost(self, reason: Failure, /) -> None: ...


@runtime_checkable
class IReactorFDSet(Protocol, metaclass=_Facet):
    """Watching file descriptors for readiness."""

    def addReader(self, reader: ReadDescriptor, /) -> None:
        """Call ``reader.doRead()`` whenever its descriptor is readable."""
        ...

    def addWriter(self, writer: WriteDescriptor, /) -> None:
        """Call ``writer.doWrite()`` whenever its descriptor is writable."""
        ...

    def removeReader(self, reader: ReadDescriptor, /) -> None:
        """Stop watching ``reader``."""
        ...

    def removeWriter(self, writer: WriteDescriptor, /) -> None:
        """Stop watching ``writer``."""
        ...

    def removeAll(self) -> Sequence[ReadDescriptor | WriteDescriptor]:
        """Stop watching everything (the reactor's own waker excepted); returns what was removed."""
        ...

    def getReaders(self) -> Sequence[ReadDescriptor]:
        """Everything watched for reading."""
        ...

    def getWriters(self) -> Sequence[WriteDescriptor]:
        """Everything watched for writing."""
        ...


@runtime_checkable
class IStreamTransport(Protocol, metaclass=_Facet):
    """What a stream protocol's ``self.transport`` offers (TCP, UNIX, TLS, the test doubles).

    ``Protocol.transport`` is annotated with it, so a type checker catches
    ``self.transport.write("text")`` or a misspelt method in user code.
    """

    @property
    def disconnecting(self) -> int:
        """True (non-zero) once ``loseConnection`` was called: stop producing."""
        ...

    def write(self, data: bytes, /) -> None:
        """Queue ``data`` for sending; never blocks."""
        ...

    def writeSequence(self, data: Iterable[bytes], /) -> None:
        """``write`` each chunk of ``data`` in order."""
        ...

    def loseConnection(self) -> None:
        """Close once everything queued is sent."""
        ...

    def abortConnection(self) -> None:
        """Close at once, dropping what is queued."""
        ...

    def getPeer(self) -> Any:
        """The remote address (``IPv4Address``, ``UNIXAddress``...)."""
        ...

    def getHost(self) -> Any:
        """The local address."""
        ...

    def registerProducer(self, producer: Any, streaming: bool, /) -> None:
        """Attach a producer that the transport pauses and resumes with its write buffer."""
        ...

    def unregisterProducer(self) -> None:
        """Detach the producer."""
        ...

    def pauseProducing(self) -> None:
        """Stop reading from the peer (back-pressure on it)."""
        ...

    def resumeProducing(self) -> None:
        """Read from the peer again."""
        ...

    def stopProducing(self) -> None:
        """Stop reading for good and close."""
        ...


@runtime_checkable
class IStreamServerEndpoint(Protocol, metaclass=_Facet):
    """Where to listen: ``TCP4ServerEndpoint``, ``UNIXServerEndpoint``, a plugin's..."""

    def listen(self, protocolFactory: Any, /) -> Any:
        """A Deferred firing with the listening port (``IListeningPort``)."""
        ...


@runtime_checkable
class IStreamClientEndpoint(Protocol, metaclass=_Facet):
    """Where to connect: ``TCP4ClientEndpoint``, ``HostnameEndpoint``, ``ProcessEndpoint``..."""

    def connect(self, protocolFactory: Any, /) -> Any:
        """A Deferred firing with the connected protocol."""
        ...
