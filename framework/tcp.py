"""TCP: the TCP transport, listening ports and outgoing connectors.

The transport is ``framework.stream.Connection`` (the write path, flow control, half-close,
abort and error reporting every stream transport shares) plus the TCP socket options; ports and
connectors are ``framework.streamport``'s bases plus TCP's addresses, name resolution and
options. Semantics follow ``twisted.internet.tcp``; see ``docs/transports.md``.

``Connection``, ``HIGH_WATER``, ``LOW_WATER``, ``MAX_WRITE_BUFFER``, ``READ_SIZE``,
``ACCEPT_BATCH``, ``ACCEPT_BACKOFF`` and ``BaseConnector`` are re-exported from the modules that
own them, for code that imports them from here. The tunables among them stay tunable here:
``tcp.MAX_WRITE_BUFFER = ...`` (as ``docs/reliability.md`` shows) sets
``framework.stream.MAX_WRITE_BUFFER``, which the transports read.
"""

from __future__ import annotations

import logging
import operator
import os
import socket
import sys
import types
from typing import Any

from framework import error, stream, streamport
from framework.address import IPv4Address, IPv6Address, from_sockaddr, isIPAddress, isIPv6Address
from framework.interfaces import ITCPTransport
from framework.stream import HIGH_WATER, LOW_WATER, MAX_WRITE_BUFFER, READ_SIZE, Connection
from framework.streamport import (
    ACCEPT_BACKOFF,
    ACCEPT_BATCH,
    BaseConnector,
    ConnectAttempt,
    StreamPort,
)

__all__ = [
    "ACCEPT_BACKOFF",
    "ACCEPT_BATCH",
    "HIGH_WATER",
    "LOW_WATER",
    "MAX_WRITE_BUFFER",
    "READ_SIZE",
    "BaseConnector",
    "Client",
    "Connection",
    "Connector",
    "Port",
    "Server",
    "TCPConnection",
    "connectTCP",
    "listenTCP",
]

# Setting a re-exported tunable on this module sets it where it is read (see the docstring).
_TUNABLES = {"HIGH_WATER": stream, "LOW_WATER": stream, "MAX_WRITE_BUFFER": stream,
             "READ_SIZE": stream, "ACCEPT_BATCH": streamport, "ACCEPT_BACKOFF": streamport}


class _TCPModule(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        owner = _TUNABLES.get(name)
        if owner is not None:
            setattr(owner, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _TCPModule

#: The address helper under its old name (``framework.address.from_sockaddr``).
_address = from_sockaddr
#: The connection-attempt class under its old name.
_ConnectAttempt = ConnectAttempt

log = logging.getLogger("framework.tcp")


class TCPConnection(Connection, ITCPTransport):
    """A TCP connection: adds the TCP socket options."""

    __slots__ = ()

    _log = log

    def getTcpNoDelay(self) -> bool:
        return bool(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(bool(enabled)))

    def getTcpKeepAlive(self) -> bool:
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(bool(enabled)))


class Server(TCPConnection):
    """A connection accepted by a listening ``Port``."""

    __slots__ = ("server",)

    def __init__(self, sock: socket.socket, protocol: Any, peer: Any, server: Port,
                 sessionno: int, reactor: Any) -> None:
        TCPConnection.__init__(self, sock, protocol, peer, reactor, None, sessionno)
        self.server = server


class Client(TCPConnection):
    """An outgoing connection made by a ``Connector``."""

    __slots__ = ()


# -- listening ----------------------------------------------------------------------------


class Port(StreamPort):
    """A listening TCP socket (``listenTCP``'s result)."""

    transport = Server
    addressKind = "TCP"
    _log = log

    def _family(self) -> int:
        iface = self.interface
        return socket.AF_INET6 if iface and isIPv6Address(iface) else socket.AF_INET

    def _bindAddress(self) -> Any:
        return (self.interface, self.port)

    def createInternetSocket(self) -> socket.socket:
        family = self._family()
        sock = socket.socket(family, socket.SOCK_STREAM)
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return sock

    def _describeBound(self, sock: socket.socket) -> Any:
        return sock.getsockname()[1]

    def _configure(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def listenTCP(reactor: Any, port: int, factory: Any, backlog: int = 50,
              interface: str = "") -> Port:
    """Listen for TCP connections on ``interface:port`` (port 0: any free port) now.

    Raises ``CannotListenError`` if the address cannot be bound.
    """
    p = Port(port, factory, backlog, interface, reactor)
    p.startListening()
    return p


# -- connecting ---------------------------------------------------------------------------


class Connector(BaseConnector):
    """A TCP connector (``connectTCP``'s result)."""

    transportClass = Client
    _log = log

    def __init__(self, host: str, port: int, factory: Any, timeout: float | None,
                 bindAddress: tuple[str, int] | None, reactor: Any) -> None:
        if isinstance(port, str):
            try:
                port = socket.getservbyname(port, "tcp")
            except OSError as e:
                raise error.ServiceNameUnknownError(string=f"{port} ({e})") from e
        if isinstance(host, bytes):
            host = host.decode("ascii")
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a host name or IP address (str), not {host!r}")
        port = _portNumber(port, 1)
        if bindAddress is not None:
            if not (isinstance(bindAddress, tuple) and len(bindAddress) in (2, 4)
                    and isinstance(bindAddress[0], (str, bytes))):
                raise TypeError(f"bindAddress must be a (host, port) tuple or None, not {bindAddress!r}")
            _portNumber(bindAddress[1], 0)
        self.host = host
        self.port = port
        self.bindAddress = bindAddress
        BaseConnector.__init__(self, factory, timeout, reactor)

    def getDestination(self) -> Any:
        if isIPv6Address(self.host):
            return IPv6Address("TCP", self.host, self.port)
        return IPv4Address("TCP", self.host, self.port)

    def _begin(self, attempt: ConnectAttempt) -> None:
        host, port = self.host, self.port
        if isIPAddress(host):
            attempt.connectTo(socket.AF_INET, (host, port))
            return
        if isIPv6Address(host):
            try:
                info = socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_STREAM, 0,
                                          socket.AI_NUMERICHOST)
            except OSError as e:
                attempt.failSoon(error.DNSLookupError(f"bad IPv6 address {host!r}: {e}"))
                return
            attempt.connectTo(socket.AF_INET6, info[0][4])
            return
        reactor = self.reactor

        def lookup() -> None:  # in a worker thread
            try:
                infos = reactor.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except Exception as e:
                reactor.callFromThread(resolved, None, e)
            else:
                reactor.callFromThread(resolved, infos, None)

        def resolved(infos: Any, exc: BaseException | None) -> None:
            if attempt.done:
                return
            if exc is not None or not infos:
                attempt.fail(error.DNSLookupError(f"address {host!r} not found: {exc}"))
                return
            addresses = [(info[0], info[4]) for info in infos]
            attempt.candidates = addresses[1:]
            attempt.connectTo(*addresses[0])

        reactor.callInThread(lookup)

    def _prepareSocket(self, sock: socket.socket) -> None:
        if self.bindAddress is not None:
            sock.bind(self.bindAddress)

    def _configure(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _peerAddress(self, sock: socket.socket) -> Any:
        return from_sockaddr(sock.family, sock.getpeername(), "TCP")


def _portNumber(port: Any, lowest: int) -> int:
    """``port`` as an int (anything with ``__index__``: an IntEnum, a numpy integer) in
    ``lowest``-65535; TypeError or ValueError naming it otherwise."""
    try:
        number = operator.index(port)
    except TypeError:
        raise TypeError(f"port must be an integer, not {port!r}") from None
    if not lowest <= number <= 65535:
        raise ValueError(f"port must be an integer {lowest}-65535, not {port!r}")
    return number


def connectTCP(reactor: Any, host: str, port: int, factory: Any, timeout: float | None = 30,
               bindAddress: tuple[str, int] | None = None) -> Connector:
    """Connect ``factory`` to ``host:port``; returns the ``Connector`` at once.

    Network failures never raise here: they reach ``factory.clientConnectionFailed``.
    """
    c = Connector(host, port, factory, timeout, bindAddress, reactor)
    c.connect()
    return c
