"""Adopting listening sockets made by someone else: systemd socket activation, a supervisor.

``adoptStreamPort(reactor, fd, family, factory)`` turns an already listening stream socket
(TCP over IPv4/IPv6, or UNIX) into a listening port, as ``reactor.adoptStreamPort`` does in
Twisted: the descriptor is duplicated, so the caller may close its own copy.

``listen_fds()`` reads the systemd protocol (``LISTEN_PID``, ``LISTEN_FDS``, optional
``LISTEN_FDNAMES``; descriptors start at 3) and ``AdoptedStreamServerEndpoint`` listens on one
such descriptor, so ``reactor-serve`` serves sockets that systemd (or ``reactor-serve
--workers``) opened: the socket outlives restarts of the process, and connections made while
the process (re)starts wait in the kernel's backlog instead of being refused.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, MutableMapping

from framework import error, tcp, unix
from framework.defer import maybeDeferred
from framework.streamport import StreamPort

__all__ = [
    "AdoptedStreamServerEndpoint",
    "LISTEN_FDS_START",
    "adoptStreamPort",
    "listen_fds",
    "notify",
]

#: The first descriptor passed by systemd socket activation.
LISTEN_FDS_START = 3

_FAMILIES: dict[int, str] = {socket.AF_INET: "AF_INET", socket.AF_INET6: "AF_INET6", socket.AF_UNIX: "AF_UNIX"}


def _check_listening(sock: socket.socket, fileDescriptor: int, addressFamily: int) -> None:
    """Raise ``ValueError`` unless ``sock`` is a listening stream socket of ``addressFamily``."""
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"descriptor {fileDescriptor} is not a stream socket (type {sock.type!r})")
    if int(sock.family) != addressFamily:
        raise ValueError(
            f"descriptor {fileDescriptor} is an {_FAMILIES.get(int(sock.family), sock.family)} socket, "
            f"not {_FAMILIES.get(addressFamily, addressFamily)}"
        )
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise ValueError(f"descriptor {fileDescriptor} is a socket that is not listening")


def _dup_socket(fileDescriptor: int, addressFamily: int) -> socket.socket:
    if addressFamily not in _FAMILIES:
        raise ValueError(
            f"cannot adopt a stream socket of address family {addressFamily!r}: "
            "AF_INET, AF_INET6 or AF_UNIX only"
        )
    try:
        fd = os.dup(fileDescriptor)
    except OSError as e:
        raise ValueError(f"cannot adopt descriptor {fileDescriptor}: {e.strerror}") from e
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        os.close(fd)
        raise ValueError(f"descriptor {fileDescriptor} is not a socket: {e.strerror}") from e
    try:
        _check_listening(sock, fileDescriptor, addressFamily)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class AdoptedTCPPort(tcp.Port):
    """A TCP listening port on a socket someone else bound and put in listening state."""

    def __init__(self, sock: socket.socket, factory: Any, reactor: Any) -> None:
        host, port = sock.getsockname()[:2]
        tcp.Port.__init__(self, port, factory, 0, host, reactor)
        self._adopted: socket.socket | None = sock

    def startListening(self) -> None:
        sock, self._adopted = self._adopted, None
        if sock is None:
            raise error.AlreadyListened(f"{self!r} has already listened; an adopted socket is used once")
        self._listening(sock)


class AdoptedUNIXPort(unix.Port):
    """A UNIX listening port on an adopted socket (the socket file is never unlinked)."""

    def __init__(self, sock: socket.socket, factory: Any, reactor: Any) -> None:
        name = sock.getsockname()
        unix.Port.__init__(self, name or b"\0", factory, 0, 0o666, reactor)
        self._adopted: socket.socket | None = sock

    def startListening(self) -> None:
        sock, self._adopted = self._adopted, None
        if sock is None:
            raise error.AlreadyListened(f"{self!r} has already listened; an adopted socket is used once")
        self._listening(sock)


def adoptStreamPort(reactor: Any, fileDescriptor: int, addressFamily: int, factory: Any) -> StreamPort:
    """Listen with ``factory`` on the already listening stream socket ``fileDescriptor``.

    The descriptor is duplicated; the caller keeps (and should close) its own. Raises
    ``ValueError`` if it is not a listening stream socket of ``addressFamily``.
    """
    sock = _dup_socket(fileDescriptor, addressFamily)
    port: StreamPort
    try:
        if addressFamily == socket.AF_UNIX:
            port = AdoptedUNIXPort(sock, factory, reactor)
        else:
            port = AdoptedTCPPort(sock, factory, reactor)
        port.startListening()
    except BaseException:
        sock.close()
        raise
    return port


def _descriptor_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` limit: no process can hold more passed descriptors."""
    import resource  # reason: optional platform module (POSIX only), needed only here

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = hard if hard != resource.RLIM_INFINITY else 1 << 20  # Linux's default nr_open
    return int(soft)


def listen_fds(
    environ: MutableMapping[str, str] | None = None, *, unset_environment: bool = True
) -> list[tuple[int, str]]:
    """The descriptors passed by systemd socket activation, as ``(fd, name)`` pairs.

    Empty unless ``LISTEN_PID`` is this process and ``LISTEN_FDS`` is a count. With
    ``unset_environment`` (default) the variables are removed so child processes do not
    mistake them for their own. Raises ``ValueError`` on malformed values, and when
    ``LISTEN_FDS`` exceeds the process's descriptor limit (soft ``RLIMIT_NOFILE``).
    """
    env = os.environ if environ is None else environ
    pid_text = env.get("LISTEN_PID")
    count_text = env.get("LISTEN_FDS")
    if pid_text is None or count_text is None:
        return []
    names_text = env.get("LISTEN_FDNAMES")
    if unset_environment:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(key, None)
    try:
        pid = int(pid_text)
    except ValueError:
        raise ValueError(f"LISTEN_PID={pid_text!r} is not a process id") from None
    if pid != os.getpid():
        return []  # meant for another process (our parent)
    try:
        count = int(count_text)
    except ValueError:
        raise ValueError(f"LISTEN_FDS={count_text!r} is not a descriptor count") from None
    if count < 0:
        raise ValueError(f"LISTEN_FDS={count_text!r} is negative")
    limit = _descriptor_limit()
    if count > limit:
        raise ValueError(
            f"LISTEN_FDS={count_text!r} is more descriptors than this process may open "
            f"(RLIMIT_NOFILE soft limit {limit})"
        )
    names = names_text.split(":") if names_text else []
    return [
        (LISTEN_FDS_START + i, names[i] if i < len(names) else "unknown") for i in range(count)
    ]


class AdoptedStreamServerEndpoint:
    """A server endpoint on an already listening socket (like Twisted's endpoint of that name)."""

    def __init__(self, reactor: Any, fileDescriptor: int, addressFamily: int, *, closeOriginal: bool = False) -> None:
        self.reactor = reactor
        self.fileDescriptor = fileDescriptor
        self.addressFamily = addressFamily
        #: Close ``fileDescriptor`` once adopted, so that stopping the port really closes the
        #: socket in this process (for descriptors passed by systemd or a supervisor).
        self.closeOriginal = closeOriginal

    def __repr__(self) -> str:
        return f"AdoptedStreamServerEndpoint(fd={self.fileDescriptor})"

    def listen(self, protocolFactory: Any) -> Any:
        return maybeDeferred(self._adopt, protocolFactory)

    def _adopt(self, protocolFactory: Any) -> Any:
        adopt = getattr(self.reactor, "adoptStreamPort", None)
        if adopt is None:
            port = adoptStreamPort(self.reactor, self.fileDescriptor, self.addressFamily, protocolFactory)
        else:
            port = adopt(self.fileDescriptor, self.addressFamily, protocolFactory)
        if self.closeOriginal:
            os.close(self.fileDescriptor)
        return port


def socket_family(fileDescriptor: int) -> int:
    """The address family of the socket ``fileDescriptor`` (``ValueError`` if not a socket)."""
    try:
        sock = socket.socket(fileno=os.dup(fileDescriptor))
    except OSError as e:
        raise ValueError(f"descriptor {fileDescriptor} is not a socket: {e.strerror}") from e
    try:
        return int(sock.family)
    finally:
        sock.close()


def endpoints_from_environment(reactor: Any, environ: MutableMapping[str, str] | None = None) -> list[Any]:
    """Endpoints for every socket passed through ``LISTEN_FDS`` (empty when none)."""
    result = []
    for fd, _name in listen_fds(environ):
        result.append(AdoptedStreamServerEndpoint(reactor, fd, socket_family(fd), closeOriginal=True))
    return result



def notify(state: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd's ``$NOTIFY_SOCKET`` (``Type=notify``).

    Returns whether it was sent; without ``$NOTIFY_SOCKET`` it does nothing. Never raises: a
    failure to notify is logged, since serving matters more.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as e:
        logging.getLogger("framework.systemd").warning("cannot notify systemd (%s): %s", address, e)
        return False
    return True
