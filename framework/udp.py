"""UDP: a listening ``Port`` that is the transport of a ``DatagramProtocol``.

Semantics follow ``twisted.internet.udp``: ``datagramReceived(data, (host, port))`` for every
datagram, ``transport.write(data, (host, port))``, and connected UDP
(``transport.connect(host, port)`` then ``write(data)``; an ICMP "port unreachable" answer
calls ``protocol.connectionRefused()``). Hosts must be IP addresses: resolving a name would
block the reactor (use ``reactor.resolve`` first).
"""

from __future__ import annotations

import errno
import logging
import operator
import socket
from typing import Any, Iterable

from framework import error
from framework.address import from_sockaddr, isIPAddress, isIPv6Address
from framework.defer import Deferred, succeed
from framework.failure import Failure
from framework.interfaces import IListeningPort, IReadDescriptor, IUDPTransport
from framework.main import global_reactor
from framework.protocol import ConnectedDatagramProtocol

__all__ = ["Port", "listenUDP"]

log = logging.getLogger("framework.udp")

#: Most datagrams read per read event, so one busy port cannot starve the others.
READ_BATCH = 128


def _checkHost(host: Any) -> None:
    if not isinstance(host, str) or not (isIPAddress(host) or isIPv6Address(host)):
        raise error.InvalidAddressError(
            host, f"UDP needs an IP address, not {host!r}: resolve names first (reactor.resolve)")


class Port(IReadDescriptor, IListeningPort, IUDPTransport):
    """A UDP socket bound to ``interface:port``, delivering datagrams to ``protocol``."""

    def __init__(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192,
                 reactor: Any = None) -> None:
        if reactor is None:
            reactor = global_reactor()
        try:
            size = operator.index(maxPacketSize)
        except TypeError:
            size = 0
        if not 1 <= size <= 65535 or isinstance(maxPacketSize, bool):
            raise ValueError(f"maxPacketSize must be an integer 1-65535, not {maxPacketSize!r}")
        maxPacketSize = size
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize
        self.reactor = reactor
        self.socket: socket.socket | None = None
        self.connected = False
        self._fd = -1
        self._reading = False
        self._connectedAddr: tuple[str, int] | None = None
        self._realPortNumber: int | None = None
        self._hosts: set[str] = set()
        self._hostAddress: Any = None

    def __repr__(self) -> str:
        where = self._realPortNumber if self._realPortNumber is not None else self.port
        state = "listening" if self.connected else "not listening"
        return f"<{type(self.protocol).__name__} on UDP {where!r} ({state})>"

    def logPrefix(self) -> str:
        return f"{type(self.protocol).__name__} (UDP)"

    def fileno(self) -> int:
        return self._fd

    def getHandle(self) -> socket.socket | None:
        return self.socket

    # -- setup -----------------------------------------------------------------------------

    def startListening(self) -> None:
        """Bind now (``CannotListenError`` on failure), then start the protocol."""
        if self.connected:
            raise error.AlreadyListened(f"{self!r} is already listening")
        iface = self.interface
        family = socket.AF_INET6 if iface and isIPv6Address(iface) else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as e:
            raise error.CannotListenError(iface, self.port, e) from e
        try:
            self._configureSocket(sock)
            sock.bind((iface, self.port))
            sock.setblocking(False)
        except (OSError, OverflowError, TypeError) as e:
            sock.close()
            raise error.CannotListenError(iface, self.port, e) from e
        self.socket = sock
        self._fd = sock.fileno()
        self._realPortNumber = sock.getsockname()[1]
        self._hostAddress = from_sockaddr(family, sock.getsockname(), "UDP")
        self.connected = True
        try:
            self.protocol.makeConnection(self)
        except BaseException:
            self.connected = False
            self._fd = -1
            self.socket = None
            sock.close()
            raise
        if self.connected:
            self._reading = True
            self.reactor.addReader(self)

    def _configureSocket(self, sock: socket.socket) -> None:
        """Set options that must precede ``bind`` (a subclass's hook: multicast sharing)."""

    # -- reading -----------------------------------------------------------------------------

    def doRead(self) -> Any:
        sock = self.socket
        if sock is None or not self._reading:
            return None
        recvfrom = sock.recvfrom
        size = self.maxPacketSize
        protocol = self.protocol
        received = protocol.datagramReceived
        plain = not isinstance(protocol, ConnectedDatagramProtocol)
        for _ in range(READ_BATCH):
            try:
                data, addr = recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return None
            except ConnectionRefusedError:
                if self._connectedAddr is not None:
                    self._refused()
                continue
            except OSError as e:
                if e.errno in (errno.EMSGSIZE, errno.ECONNRESET, errno.ENETUNREACH,
                               errno.EHOSTUNREACH):
                    continue
                log.error("%s: reading failed: %s", self.logPrefix(), e)
                return None
            if len(addr) > 2:
                addr = addr[:2]
            try:
                if plain:
                    received(data, addr)
                else:
                    received(data)
            except Exception:
                log.error("Unhandled exception in %s.datagramReceived (from %r)",
                          type(protocol).__name__, addr, exc_info=True)
            if not self._reading:
                return None
        return None

    def _refused(self) -> None:
        try:
            self.protocol.connectionRefused()
        except Exception:
            log.exception("Error in %s.connectionRefused", type(self.protocol).__name__)

    # -- writing ------------------------------------------------------------------------------

    def write(self, datagram: bytes, addr: tuple[str, int] | None = None) -> Any:
        """Send one datagram to ``addr`` (or to the connected peer, when ``addr`` is None).

        Raises ``MessageLengthError`` when it is too long for the socket. A datagram refused
        by a connected peer calls ``protocol.connectionRefused()``.
        """
        sock = self.socket
        if sock is None or not self.connected:
            raise RuntimeError(f"{self!r} is not listening: cannot write")
        if isinstance(datagram, str):
            raise TypeError("write() takes bytes, not str: encode the text first")
        connected = self._connectedAddr
        for _ in range(8):
            try:
                if connected is None:
                    if addr is None:
                        raise ValueError("write() needs an address: this UDP transport is not "
                                         "connected (see transport.connect)")
                    if addr.__class__ is not tuple or len(addr) < 2 or addr[0] not in self._hosts:
                        self._checkedHost(addr)
                    return sock.sendto(datagram, addr)
                if addr is not None and tuple(addr) != connected:
                    raise ValueError(f"this UDP transport is connected to {connected!r}; "
                                     f"cannot write to {addr!r}")
                return sock.send(datagram)
            except InterruptedError:
                continue
            except ConnectionRefusedError:
                if connected is not None:
                    self._refused()
                return None
            except socket.gaierror as e:
                host = addr[0] if isinstance(addr, tuple) and addr else None
                if isinstance(host, str) and isIPv6Address(host) != (sock.family == socket.AF_INET6):
                    if sock.family == socket.AF_INET6:
                        hint = (f"use an IPv4 port, or the IPv4-mapped address '::ffff:{host}' "
                                f"from a port listening on '::'")
                        mine = "IPv6"
                    else:
                        hint, mine = "use a port listening on an IPv6 address such as '::'", "IPv4"
                    raise ValueError(f"cannot send to {addr!r} from this {mine} UDP port: {hint}") from e
                raise ValueError(f"UDP needs an IP address, not {addr!r}: {e}") from e
            except OSError as e:
                if e.errno == errno.EMSGSIZE:
                    raise error.MessageLengthError(
                        f"datagram of {len(datagram)} bytes is too long to send") from e
                raise
        return None

    def _checkedHost(self, addr: Any) -> None:
        """Refuse anything but an ``(IP address, port)`` pair (sendto would resolve a host name,
        blocking the reactor); remember the addresses already checked."""
        if not isinstance(addr, tuple) or len(addr) < 2:
            raise ValueError(f"write() needs an address (host, port), not {addr!r}")
        host = addr[0]
        _checkHost(host)
        if len(self._hosts) >= 1024:
            self._hosts.clear()
        self._hosts.add(host)

    def writeSequence(self, seq: Iterable[bytes], addr: tuple[str, int] | None = None) -> Any:
        """Send the chunks of ``seq`` joined as one datagram."""
        return self.write(b"".join(seq), addr)

    def connect(self, host: str, port: int) -> None:
        """Talk to ``host:port`` only: ``write(data)`` needs no address, datagrams from others
        are dropped by the kernel, and ICMP refusals reach ``connectionRefused``."""
        if self._connectedAddr is not None:
            raise RuntimeError(f"already connected to {self._connectedAddr!r}; "
                               "reconnecting is not supported")
        if self.socket is None:
            raise RuntimeError(f"{self!r} is not listening: cannot connect")
        _checkHost(host)
        self.socket.connect((host, port))
        self._connectedAddr = (host, port)

    # -- options ------------------------------------------------------------------------------

    def setBroadcastAllowed(self, enabled: bool) -> None:
        if self.socket is not None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(bool(enabled)))

    def getBroadcastAllowed(self) -> bool:
        if self.socket is None:
            return False
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))

    # -- stopping ----------------------------------------------------------------------------

    def stopListening(self) -> Deferred:
        """Close the socket and stop the protocol; the Deferred has fired once closed."""
        if self.connected:
            self.connectionLost(Failure(error.ConnectionDone("port closed")))
        return succeed(None)

    loseConnection = stopListening

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.connected:
            return
        self.connected = False
        if self._reading:
            self._reading = False
            self.reactor.removeReader(self)
        self._fd = -1
        if self.socket is not None:
            self.socket.close()
        self._connectedAddr = None
        try:
            self.protocol.doStop()
        except Exception:
            log.exception("Error stopping protocol %r", self.protocol)

    def getHost(self) -> Any:
        """The bound address (with the real port); still known after stopping."""
        if self._hostAddress is None:
            raise RuntimeError(f"{self!r} has never listened")
        return self._hostAddress


def listenUDP(reactor: Any, port: int, protocol: Any, interface: str = "",
              maxPacketSize: int = 8192) -> Port:
    """Bind a UDP socket on ``interface:port`` now and start ``protocol`` on it."""
    p = Port(port, protocol, interface, maxPacketSize, reactor)
    p.startListening()
    return p
