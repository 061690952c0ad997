"""The reactor's transport front door and name resolution, as a mixin of ``Reactor``.

``listenTCP``, ``connectTCP``, ``listenSSL``, ``connectSSL``, ``listenUNIX``, ``connectUNIX``,
``listenUDP``, ``listenMulticast``, ``adoptStreamPort`` and ``spawnProcess`` check that the reactor is usable and
hand over to the transport modules (``framework.tcp``, ``.tls``, ``.unix``, ``.udp``, ``.multicast``,
``.systemd``, ``.process``), which never import the reactor. ``resolve`` looks names up in the reactor's thread pool through the
replaceable ``getaddrinfo``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable

from framework import defer, error, multicast, process, systemd, tcp, tls, udp, unix
from framework.address import isIPAddress, isIPv6Address
from framework.threads import deferToThreadPool

if TYPE_CHECKING:
    from framework.defer import Deferred
    from framework.threads import ThreadPool

__all__ = ["FrontDoor"]


def _lookup(getaddrinfo: Callable[..., Any], name: str) -> str:
    try:
        infos = getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise error.DNSLookupError(f"address {name!r} not found: {e}") from e
    for family, _type, _proto, _canon, sockaddr in infos:
        if family == socket.AF_INET:
            return str(sockaddr[0])
    if not infos:
        raise error.DNSLookupError(f"address {name!r} not found")
    return str(infos[0][4][0])


class FrontDoor:
    """Transports and name resolution; ``Reactor`` provides ``_check_open``, ``getThreadPool``
    and sets ``_name_resolver``."""

    _name_resolver: Callable[..., Any]

    if TYPE_CHECKING:
        def _check_open(self) -> None: ...
        def getThreadPool(self) -> ThreadPool: ...

    # -- transports ---------------------------------------------------------------------------

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        self._check_open()
        return tcp.listenTCP(self, port, factory, backlog, interface)

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,
                   bindAddress: Any = None) -> Any:
        self._check_open()
        return tcp.connectTCP(self, host, port, factory, timeout, bindAddress)

    def listenSSL(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
                  interface: str = "") -> Any:
        self._check_open()
        return tls.listenSSL(self, port, factory, contextFactory, backlog, interface)

    def connectSSL(self, host: str, port: int, factory: Any, contextFactory: Any,
                   timeout: float = 30, bindAddress: Any = None) -> Any:
        self._check_open()
        return tls.connectSSL(self, host, port, factory, contextFactory, timeout, bindAddress)

    def listenUNIX(self, address: str | bytes, factory: Any, backlog: int = 50, mode: int = 0o666,
                   wantPID: bool = False) -> Any:
        self._check_open()
        return unix.listenUNIX(self, address, factory, backlog, mode, wantPID)

    def connectUNIX(self, address: str | bytes, factory: Any, timeout: float | None = 30,
                    checkPID: bool = False) -> Any:
        self._check_open()
        return unix.connectUNIX(self, address, factory, timeout, checkPID)

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> Any:
        self._check_open()
        return udp.listenUDP(self, port, protocol, interface, maxPacketSize)

    def listenMulticast(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192,
                        listenMultiple: bool = False) -> Any:
        """A UDP port that can join multicast groups (see ``framework.multicast``)."""
        self._check_open()
        return multicast.listenMulticast(self, port, protocol, interface, maxPacketSize, listenMultiple)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> Any:
        """Listen on an already listening stream socket (duplicated; close your own copy)."""
        self._check_open()
        return systemd.adoptStreamPort(self, fileDescriptor, addressFamily, factory)

    def spawnProcess(self, processProtocol: Any, executable: str | bytes, args: Any = (),
                     env: Any = None, path: str | None = None, uid: int | None = None,
                     gid: int | None = None, usePTY: bool = False, childFDs: Any = None) -> Any:
        """Start a child process talking to ``processProtocol`` (see ``framework.process``).
        ``args`` is the whole argv (program name first); ``env`` the child's whole environment
        (``None``/``{}``: empty, never inherited)."""
        self._check_open()
        return process.spawnProcess(self, processProtocol, executable, args, env, path, uid, gid,
                                    usePTY, childFDs)

    # -- names --------------------------------------------------------------------------------

    def resolve(self, name: str, timeout: Any = None) -> Deferred:
        """Look ``name`` up in a worker thread; a Deferred firing with its (IPv4, else IPv6)
        address, or failing with ``DNSLookupError``. Numeric addresses are answered at once."""
        if not isinstance(name, str) or not name:
            return defer.fail(error.DNSLookupError(f"not a host name: {name!r}"))
        if isIPAddress(name) or isIPv6Address(name):
            return defer.succeed(name)
        return deferToThreadPool(self, self.getThreadPool(), _lookup, self.getaddrinfo, name)  # type: ignore[arg-type]

    def set_name_resolver(self, getaddrinfo: Callable[..., Any] | None) -> Callable[..., Any]:
        """Replace the blocking lookup behind ``resolve`` and ``connectTCP`` to host names.

        ``getaddrinfo`` has ``socket.getaddrinfo``'s signature and is called in a worker
        thread; ``None`` restores the system resolver. Returns the previous one. Useful for a
        custom resolver, and for tests that must not send DNS queries.
        """
        previous, self._name_resolver = self._name_resolver, getaddrinfo or socket.getaddrinfo
        return previous

    def getaddrinfo(self, host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                    flags: int = 0) -> list[Any]:
        """The installed name resolver (``socket.getaddrinfo`` by default). Blocking: call it
        only from a worker thread."""
        return self._name_resolver(host, port, family, type, proto, flags)  # type: ignore[no-any-return]
