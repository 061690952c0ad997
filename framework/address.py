"""Address objects returned by transports' ``getPeer``/``getHost`` and ports' ``getHost``.

Immutable and hashable, so they can key dictionaries (e.g. per-peer state in a UDP server).
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from typing import Literal

from framework.interfaces import IAddress

__all__ = [
    "HostnameAddress", "IPv4Address", "IPv6Address", "ProcessAddress", "UNIXAddress",
    "isIPAddress", "isIPv6Address", "host_port", "format_address", "from_sockaddr",
]

_Kind = Literal["TCP", "UDP"]


def _check_kind(kind: str) -> None:
    if kind not in ("TCP", "UDP"):
        raise ValueError(f"address type must be 'TCP' or 'UDP', not {kind!r}")


def isIPv6Address(host: str) -> bool:
    """Whether ``host`` is an IPv6 literal (a ``%scope`` suffix allowed); never a name lookup.

    Twisted's ``abstract.isIPv6Address``."""
    try:
        socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except (OSError, ValueError):
        return False
    return True


def isIPAddress(host: str) -> bool:
    """Whether ``host`` is a dotted-quad IPv4 literal; never a name lookup.

    Twisted's ``abstract.isIPAddress``."""
    try:
        socket.inet_pton(socket.AF_INET, host)
    except (OSError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class IPv4Address(IAddress):
    """An IPv4 socket address: ``type`` is ``'TCP'`` or ``'UDP'``."""

    type: _Kind
    host: str
    port: int

    def __post_init__(self) -> None:
        _check_kind(self.type)


@dataclass(frozen=True, slots=True)
class IPv6Address(IAddress):
    """An IPv6 socket address, with the flow label and scope id of ``sockaddr_in6``."""

    type: _Kind
    host: str
    port: int
    flowInfo: int = 0
    scopeID: int | str = 0

    def __post_init__(self) -> None:
        _check_kind(self.type)


@dataclass(frozen=True, slots=True)
class UNIXAddress(IAddress):
    """A UNIX socket address: a filesystem path, a Linux abstract name (leading NUL byte),
    or ``None`` for an unbound (e.g. client-side) socket."""

    name: str | bytes | None


@dataclass(frozen=True, slots=True)
class HostnameAddress(IAddress):
    """A host name and port, not yet resolved (what a ``HostnameEndpoint`` connects to)."""

    hostname: bytes
    port: int


class ProcessAddress(IAddress):
    """``getHost()``/``getPeer()`` of a process transport: a process has no socket address."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ProcessAddress()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessAddress)

    def __hash__(self) -> int:
        return hash(ProcessAddress)


#: Twisted's (private) name for it.
_ProcessAddress = ProcessAddress


def host_port(host: str, port: int | str) -> str:
    """``127.0.0.1:80`` or ``[::1]:80``: the one ``host:port`` spelling used in messages."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_address(address: object) -> str:
    """``tcp:127.0.0.1:8007``, ``udp:[::1]:53`` or ``unix:/path``: an address as an endpoint-like
    string, for banners and log lines (abstract UNIX names show their NUL as ``@``)."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if isinstance(host, str) and port is not None:
        kind = str(getattr(address, "type", "TCP")).lower()
        return f"{kind}:{host_port(host, port)}"
    name = getattr(address, "name", None)
    if name is not None:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "backslashreplace")
        return "unix:" + name.replace("\0", "@")
    return str(address)


def format_listener(address: object, tls: bool = False) -> str:
    """``format_address`` for a listening port; ``tls`` shows a TCP listener serving TLS as
    ``tls:127.0.0.1:8443`` (the startup line of ``reactor-serve --tls-cert``)."""
    text = format_address(address)
    return "tls:" + text[4:] if tls and text.startswith("tcp:") else text


_intern = sys.intern
_AF_UNIX = getattr(socket, "AF_UNIX", None)


def from_sockaddr(family: int, sockaddr: object, kind: str = "TCP") -> IPv4Address | IPv6Address | UNIXAddress:
    """The address object for the socket address ``sockaddr`` of ``family`` (as ``accept``,
    ``getpeername``, ``getsockname`` or ``recvfrom`` give it); ``kind`` is ``"TCP"`` or ``"UDP"``
    for IP families. ``ValueError`` for another family."""
    # Host strings are interned: thousands of connections from one peer share one string.
    if family == socket.AF_INET:
        return IPv4Address(kind, _intern(sockaddr[0]), sockaddr[1])  # type: ignore[arg-type,index]
    if family == socket.AF_INET6:
        return IPv6Address(kind, _intern(sockaddr[0]), sockaddr[1], sockaddr[2], sockaddr[3])  # type: ignore[arg-type,index]
    if family == _AF_UNIX:
        return UNIXAddress(sockaddr or None)  # type: ignore[arg-type]
    raise ValueError(f"unsupported address family {family!r}")
