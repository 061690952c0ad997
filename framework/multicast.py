"""UDP multicast: a UDP port that joins groups (Twisted's ``IReactorMulticast``).

``reactor.listenMulticast(port, protocol, interface="", maxPacketSize=8192,
listenMultiple=False)`` binds like ``listenUDP`` (to bind to a group address, as here, receives
only that group's datagrams) and returns a :class:`MulticastPort`, the protocol's transport:

- ``joinGroup(group, interface="")`` / ``leaveGroup(...)`` return Deferreds; a bad group or
  interface fails them with ``error.MulticastJoinError``;
- ``setTTL``/``getTTL`` (hops for IPv6), ``setLoopbackMode``/``getLoopbackMode`` (whether this
  host's own members get what it sends), ``setOutgoingInterface``/``getOutgoingInterface``;
- ``listenMultiple=True`` sets ``SO_REUSEADDR`` and ``SO_REUSEPORT``, so several ports (in
  this or other processes) share one group port.

For IPv4 an interface is the IP address of a local interface (``"127.0.0.1"``); for IPv6 it is
an interface name (``"lo"``) or index. On Linux a socket gets only the groups it joined itself
(``IP_MULTICAST_ALL`` off), not those joined by other sockets bound to the same port.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Any

from framework import error
from framework.address import isIPAddress, isIPv6Address
from framework.defer import Deferred, fail, succeed
from framework.interfaces import IMulticastTransport
from framework.udp import Port

__all__ = ["MulticastPort", "listenMulticast"]

# Linux values, missing from the socket module: receive only the groups joined on this socket.
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)
_IPV6_MULTICAST_ALL = getattr(socket, "IPV6_MULTICAST_ALL", 29)


def _is_group(address: str) -> bool:
    if isIPAddress(address):
        return 224 <= int(address.split(".")[0]) <= 239
    return isIPv6Address(address) and address.lower().startswith("ff")


class MulticastPort(Port, IMulticastTransport):
    """A UDP port with multicast group membership and options; the protocol's transport."""

    def __init__(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192,
                 reactor: Any = None, listenMultiple: bool = False) -> None:
        Port.__init__(self, port, protocol, interface, maxPacketSize, reactor)
        self.listenMultiple = listenMultiple

    def __repr__(self) -> str:
        return Port.__repr__(self).replace(" on UDP ", " on multicast UDP ", 1)

    def _configureSocket(self, sock: socket.socket) -> None:
        if self.listenMultiple:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sys.platform.startswith("linux"):
            if sock.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MULTICAST_ALL, 0)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)

    def _sock(self) -> socket.socket:
        if self.socket is None:
            raise error.NotListeningError(f"{self!r} is not listening")
        return self.socket

    def _v6(self) -> bool:
        return self._sock().family == socket.AF_INET6

    # -- options -----------------------------------------------------------------------------

    def getOutgoingInterface(self) -> str | int:
        """The interface multicast datagrams leave by: an IPv4 address, or an IPv6 index."""
        sock = self._sock()
        if self._v6():
            return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF)
        return socket.inet_ntoa(struct.pack("@i", sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF)))

    def setOutgoingInterface(self, addr: str | int) -> Deferred[int]:
        """Send multicast datagrams by the interface ``addr`` (see the module docstring); an
        IPv4 host name (``"localhost"``) is looked up first, as with Twisted."""
        try:
            if not self._v6() and self._is_name(addr):
                assert isinstance(addr, str)
                return self.reactor.resolve(addr).addCallback(self.setOutgoingInterface)
            sock = self._sock()
            if self._v6():
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self._index(addr))
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, self._ipv4(addr, "interface"))
        except (OSError, ValueError, error.NotListeningError) as e:
            return fail(e)
        return succeed(1)

    def getLoopbackMode(self) -> bool:
        """Whether datagrams sent to a group are also delivered to this host's members."""
        sock = self._sock()
        if self._v6():
            return bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP))
        return bool(sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP))

    def setLoopbackMode(self, mode: bool) -> None:
        sock = self._sock()
        if self._v6():
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, int(bool(mode)))
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, struct.pack("B", bool(mode)))

    def getTTL(self) -> int:
        """How many routers the datagrams sent to a group may cross (0: this host only)."""
        sock = self._sock()
        if self._v6():
            return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS)
        return sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL)

    def setTTL(self, ttl: int) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 255:
            raise ValueError(f"the multicast TTL is an integer 0-255, not {ttl!r}")
        sock = self._sock()
        if self._v6():
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("B", ttl))

    # -- membership --------------------------------------------------------------------------

    def joinGroup(self, addr: str, interface: str | int = "") -> Deferred[int]:
        """Receive the datagrams sent to the group ``addr`` (on ``interface``; "" lets the
        system choose). Fails with ``MulticastJoinError`` for a bad group or interface."""
        return self._membership(addr, interface, join=True)

    def leaveGroup(self, addr: str, interface: str | int = "") -> Deferred[int]:
        """Stop receiving the group ``addr`` (joined on the same ``interface``)."""
        return self._membership(addr, interface, join=False)

    def _membership(self, addr: str, interface: str | int, join: bool) -> Deferred[int]:
        if self.socket is not None and (self._is_name(addr) or (not self._v6() and self._is_name(interface))):
            return self._resolve_then(addr, interface, join)
        try:
            sock = self._sock()
            if not isinstance(addr, str) or not _is_group(addr):
                raise ValueError(f"{addr!r} is not a multicast group address (224.0.0.0/4 or ff00::/8)")
            if self._v6():
                if not isIPv6Address(addr):
                    raise ValueError(f"this port is IPv6: {addr!r} is an IPv4 group")
                option = socket.IPV6_JOIN_GROUP if join else socket.IPV6_LEAVE_GROUP
                mreq = socket.inet_pton(socket.AF_INET6, addr) + struct.pack("@I", self._index(interface))
                sock.setsockopt(socket.IPPROTO_IPV6, option, mreq)
            else:
                if not isIPAddress(addr):
                    raise ValueError(f"this port is IPv4: {addr!r} is an IPv6 group")
                option = socket.IP_ADD_MEMBERSHIP if join else socket.IP_DROP_MEMBERSHIP
                mreq = socket.inet_aton(addr) + self._ipv4(interface or "0.0.0.0", "interface")
                sock.setsockopt(socket.IPPROTO_IP, option, mreq)
        except (OSError, ValueError, error.NotListeningError) as e:
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            return fail(error.MulticastJoinError(addr, interface, detail))
        return succeed(1)

    @staticmethod
    def _is_name(value: Any) -> bool:
        """A host name to look up: a non-empty string that is no IP address literal."""
        return isinstance(value, str) and value != "" and not isIPAddress(value) and not isIPv6Address(value)

    def _resolve_then(self, addr: str, interface: str | int, join: bool) -> Deferred[int]:
        """Look up the group (and, for IPv4, the interface) names, as Twisted does, then join
        or leave; a failed lookup fails with ``MulticastJoinError`` naming it."""
        def lookup(name: Any, looked_up: bool) -> Deferred[Any]:
            return self.reactor.resolve(name) if looked_up else succeed(name)

        def failed(f: Any) -> Any:
            if f.trap(error.DNSLookupError, error.MulticastJoinError) is error.DNSLookupError:
                return fail(error.MulticastJoinError(addr, interface, f"cannot look up a name: {f.value}"))
            return fail(error.MulticastJoinError(addr, interface, f.value.args[-1]))

        v4_interface = not self._v6() and self._is_name(interface)
        d = lookup(addr, self._is_name(addr))
        d.addCallback(lambda group: lookup(interface, v4_interface).addCallback(
            lambda iface: self._membership(group, iface, join)))
        return d.addErrback(failed)

    @staticmethod
    def _ipv4(addr: Any, what: str) -> bytes:
        if not isinstance(addr, str) or not isIPAddress(addr):
            raise ValueError(f"an IPv4 multicast {what} is the IPv4 address of a local interface, not {addr!r}")
        return socket.inet_aton(addr)

    @staticmethod
    def _index(interface: str | int) -> int:
        if isinstance(interface, int) and not isinstance(interface, bool) and interface >= 0:
            return interface
        if interface == "":
            return 0
        if isinstance(interface, str) and not isIPAddress(interface) and not isIPv6Address(interface):
            try:
                return socket.if_nametoindex(interface)
            except OSError:
                raise ValueError(f"no network interface named {interface!r}") from None
        raise ValueError(f"an IPv6 multicast interface is an interface name or index, not {interface!r}")


def listenMulticast(reactor: Any, port: int, protocol: Any, interface: str = "",
                    maxPacketSize: int = 8192, listenMultiple: bool = False) -> MulticastPort:
    """Bind a multicast-capable UDP socket now and start ``protocol`` on it."""
    p = MulticastPort(port, protocol, interface, maxPacketSize, reactor, listenMultiple)
    p.startListening()
    return p
