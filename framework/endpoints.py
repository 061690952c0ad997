"""Endpoints: where to listen or connect, as objects or as strings.

``serverFromString(reactor, "tcp:8000:interface=127.0.0.1")`` and
``clientFromString(reactor, "tcp:host=localhost:port=8000")`` parse Twisted's endpoint
syntax: fields are separated by ``:``, a field ``key=value`` is an option, and a backslash
makes the next character literal (``\\:`` for a colon, ``\\=`` for an equals sign, ``\\\\`` for a
backslash).

Server strings::

    tcp:PORT[:interface=ADDR][:backlog=N]          (also tcp:port=PORT)
    tcp6:PORT[:interface=ADDR][:backlog=N]         (interface defaults to ::)
    unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0|1]   (also unix:address=PATH)
    ssl:PORT:certKey=CERT.pem:privateKey=KEY.pem[:interface=ADDR][:backlog=N][:caCerts=CA]
                                                   (TLS; see framework.tls and docs/tls.md)

Client strings::

    tcp:host=HOST:port=PORT[:timeout=SECONDS][:bindAddress=ADDR]   (also tcp:HOST:PORT)
    tcp6:host=HOST:port=PORT[...]
    unix:path=PATH[:timeout=SECONDS][:checkPID=0|1]               (also unix:PATH)
    tls:host=HOST:port=PORT[:trustRoots=CA.pem][:hostname=NAME][:timeout=..]  (also ssl:)

A UNIX path starting with ``@`` names a Linux abstract socket (``@name`` becomes ``"\\0name"``);
a path that really starts with ``@`` can be written ``./@name``.

``listen(factory)`` returns a Deferred firing with the listening port (or failing with, e.g.,
``CannotListenError``); ``connect(factory)`` returns a Deferred firing with the connected
protocol once its ``connectionMade`` has run (or failing with the connection error).
"""

from __future__ import annotations

import socket

from typing import Any, Callable

from framework import error
from framework.address import isIPv6Address
from framework.defer import Deferred, fail, maybeDeferred
from framework.protocol import Factory
from framework.wrapping import WrappingFactory as _WrappingFactory

__all__ = [
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "UNIXClientEndpoint",
    "UNIXServerEndpoint",
    "clientFromString",
    "connectProtocol",
    "serverFromString",
]


# --- server endpoints -------------------------------------------------------------------


class TCP4ServerEndpoint:
    """Listen on a TCP port over IPv4 (``interface`` "" means all interfaces)."""

    _interface_default = ""

    def __init__(
        self, reactor: Any, port: int, backlog: int = 50, interface: str | None = None
    ) -> None:
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = self._interface_default if interface is None else interface

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(port={self._port}, interface={self._interface!r})"

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        """Start listening; the Deferred fires with the port or fails with the error."""
        return maybeDeferred(
            self._reactor.listenTCP,
            self._port,
            protocolFactory,
            backlog=self._backlog,
            interface=self._interface,
        )


class TCP6ServerEndpoint(TCP4ServerEndpoint):
    """Listen on a TCP port over IPv6 (``interface`` defaults to ``::``)."""

    _interface_default = "::"


class UNIXServerEndpoint:
    """Listen on a UNIX socket (a path, or ``"\\0name"`` for a Linux abstract address)."""

    def __init__(
        self, reactor: Any, address: str, backlog: int = 50, mode: int = 0o666, wantPID: bool = False
    ) -> None:
        self._reactor = reactor
        self._address = address
        self._backlog = backlog
        self._mode = mode
        self._wantPID = wantPID

    def __repr__(self) -> str:
        return f"UNIXServerEndpoint(address={self._address!r})"

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        return maybeDeferred(
            self._reactor.listenUNIX,
            self._address,
            protocolFactory,
            backlog=self._backlog,
            mode=self._mode,
            wantPID=self._wantPID,
        )


# --- client endpoints -------------------------------------------------------------------


class TCP4ClientEndpoint:
    """Connect over TCP (the reactor resolves host names off its thread)."""

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._timeout = timeout
        self._bindAddress = bindAddress

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(host={self._host!r}, port={self._port})"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Connect; the Deferred fires with the connected protocol or fails with the reason.
        Cancelling it stops the attempt (``ConnectingCancelledError``)."""
        try:
            wf = _WrappingFactory(protocolFactory)
            self._reactor.connectTCP(
                self._host, self._port, wf, timeout=self._timeout, bindAddress=self._bindAddress
            )
        except BaseException:
            return fail()
        return wf._onConnection


class TCP6ClientEndpoint(TCP4ClientEndpoint):
    """Connect over TCP to an IPv6 address."""


class UNIXClientEndpoint:
    """Connect to a UNIX socket."""

    def __init__(self, reactor: Any, path: str, timeout: float = 30, checkPID: bool = False) -> None:
        self._reactor = reactor
        self._path = path
        self._timeout = timeout
        self._checkPID = checkPID

    def __repr__(self) -> str:
        return f"UNIXClientEndpoint(path={self._path!r})"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        try:
            wf = _WrappingFactory(protocolFactory)
            self._reactor.connectUNIX(self._path, wf, timeout=self._timeout, checkPID=self._checkPID)
        except BaseException:
            return fail()
        return wf._onConnection


def connectProtocol(endpoint: Any, protocol: Any) -> Deferred[Any]:
    """Connect ``endpoint`` to the given protocol instance; fires with that protocol."""

    class OneShotFactory(Factory):
        noisy = False

        def buildProtocol(self, addr: Any) -> Any:
            return protocol

    return endpoint.connect(OneShotFactory())  # type: ignore[no-any-return]


# --- string parsing ---------------------------------------------------------------------


def _escape_ipv6_values(description: str) -> str:
    """Let ``interface=::1`` and ``host=::1`` through unescaped, as users write them.

    Twisted requires ``interface=\\:\\:1``; here the longest run of following fields that
    completes an IPv6 literal is taken into the value. Escaped values are left alone.
    """
    fields: list[str] = []
    current: list[str] = []
    chars = iter(description)
    for ch in chars:
        if ch == "\\":
            current.append(ch)
            current.append(next(chars, ""))
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    out: list[str] = []
    i = 0
    while i < len(fields):
        field = fields[i]
        key, sep, value = field.partition("=")
        if sep and key in ("interface", "host") and "\\" not in value:
            for j in range(len(fields) - 1, i, -1):
                tail = fields[i + 1:j + 1]
                candidate = ":".join([value, *tail])
                if all("=" not in t and "\\" not in t for t in tail) and isIPv6Address(candidate):
                    field = f"{key}={candidate.replace(':', chr(92) + ':')}"
                    i = j
                    break
        out.append(field)
        i += 1
    return ":".join(out)


def split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """Split an endpoint description into positional fields and ``key=value`` options.

    ``"tcp:8000:interface=::1"`` gives ``(["tcp", "8000"], {"interface": "::1"})``; a backslash
    escapes the next character. Raises ``ValueError`` on a malformed description."""
    if not isinstance(description, str):
        raise TypeError(f"endpoint description must be str, not {type(description).__name__}")
    description = _escape_ipv6_values(description)
    args: list[str] = []
    kwargs: dict[str, str] = {}
    current: list[str] = []
    key: str | None = None
    chars = iter(description)

    def finish() -> None:
        value = "".join(current)
        current.clear()
        if key is None:
            args.append(value)
        else:
            if not key:
                raise ValueError(f"empty option name in endpoint description {description!r}")
            if key in kwargs:
                raise ValueError(f"option {key!r} given twice in endpoint description {description!r}")
            kwargs[key] = value

    for ch in chars:
        if ch == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError(f"endpoint description {description!r} ends with a lone backslash")
            current.append(escaped)
        elif ch == ":":
            finish()
            key = None
        elif ch == "=" and key is None:
            key = "".join(current)
            current.clear()
        else:
            current.append(ch)
    finish()
    return args, kwargs


#: The largest ``backlog=`` an endpoint string accepts: ``listen(2)`` takes a C int and the kernel
#: caps it anyway (Linux at ``net.core.somaxconn``), so a larger number is a mistake.
MAX_BACKLOG = 65535


def _int(value: str, what: str, description: str, low: int = 0, high: int | None = None, base: int = 10) -> int:
    try:
        number = int(value, base)
    except ValueError:
        kind = "an octal number" if base == 8 else "an integer"
        raise ValueError(f"{what} must be {kind}, not {value!r}, in {description!r}") from None
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{what} must be {bounds}, not {number}, in {description!r}")
    return number


def _seconds(value: str, what: str, description: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number of seconds, not {value!r}, in {description!r}") from None
    if not number > 0:
        raise ValueError(f"{what} must be positive, not {value!r}, in {description!r}")
    return number


def _bool(value: str, what: str, description: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{what} must be 0 or 1, not {value!r}, in {description!r}")


def _unix_path(path: str) -> str:
    if path.startswith("@"):
        return "\0" + path[1:]
    return path


def _take(
    description: str,
    args: list[str],
    kwargs: dict[str, str],
    positional: tuple[str, ...],
    allowed: tuple[str, ...],
) -> dict[str, str]:
    """Merge positional fields into named options and reject unknown or duplicate ones."""
    if len(args) > len(positional):
        extra = ":".join(args[len(positional):])
        raise ValueError(f"unexpected extra field(s) {extra!r} in endpoint description {description!r}")
    options = dict(kwargs)
    for name, value in zip(positional, args):
        if name in options:
            raise ValueError(f"{name} given both positionally and as {name}= in {description!r}")
        options[name] = value
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} in endpoint description {description!r} "
            f"(valid: {', '.join(allowed)})"
        )
    return options


def _require(options: dict[str, str], name: str, description: str) -> str:
    if name not in options or options[name] == "":
        raise ValueError(f"endpoint description {description!r} needs {name}")
    return options[name]


def _server_tcp(cls: type[TCP4ServerEndpoint]) -> Callable[[Any, str, list[str], dict[str, str]], Any]:
    def build(reactor: Any, description: str, args: list[str], kwargs: dict[str, str]) -> Any:
        options = _take(description, args, kwargs, ("port",), ("port", "interface", "backlog"))
        port = _int(_require(options, "port", description), "port", description, 0, 65535)
        backlog = _int(options.get("backlog", "50"), "backlog", description, 1, MAX_BACKLOG)
        return cls(reactor, port, backlog, options.get("interface"))

    return build


def _server_unix(reactor: Any, description: str, args: list[str], kwargs: dict[str, str]) -> Any:
    options = _take(
        description, args, kwargs, ("address",), ("address", "mode", "backlog", "lockfile", "wantPID")
    )
    address = _unix_path(_require(options, "address", description))
    mode = _int(options.get("mode", "666"), "mode", description, 0, 0o7777, base=8)
    backlog = _int(options.get("backlog", "50"), "backlog", description, 1, MAX_BACKLOG)
    want = options.get("lockfile", options.get("wantPID", "0"))
    return UNIXServerEndpoint(reactor, address, backlog, mode, _bool(want, "lockfile", description))


_SERVERS: dict[str, Callable[[Any, str, list[str], dict[str, str]], Any]] = {
    "tcp": _server_tcp(TCP4ServerEndpoint),
    "tcp6": _server_tcp(TCP6ServerEndpoint),
    "unix": _server_unix,
}


def _client_tcp(cls: type[TCP4ClientEndpoint]) -> Callable[[Any, str, list[str], dict[str, str]], Any]:
    def build(reactor: Any, description: str, args: list[str], kwargs: dict[str, str]) -> Any:
        # tcp:HOST:PORT, tcp:HOST:port=PORT, tcp:host=HOST:PORT
        positional: tuple[str, ...] = ("port",) if "host" in kwargs else ("host", "port")
        options = _take(description, args, kwargs, positional, ("host", "port", "timeout", "bindAddress"))
        host = _require(options, "host", description)
        port = _int(_require(options, "port", description), "port", description, 1, 65535)
        timeout = _seconds(options.get("timeout", "30"), "timeout", description)
        bind = options.get("bindAddress")
        bindAddress = (bind, 0) if bind else None
        return cls(reactor, host, port, timeout, bindAddress)

    return build


def _client_unix(reactor: Any, description: str, args: list[str], kwargs: dict[str, str]) -> Any:
    options = _take(description, args, kwargs, ("path",), ("path", "timeout", "checkPID"))
    path = _unix_path(_require(options, "path", description))
    timeout = _seconds(options.get("timeout", "30"), "timeout", description)
    checkPID = _bool(options.get("checkPID", "0"), "checkPID", description)
    return UNIXClientEndpoint(reactor, path, timeout, checkPID)


_CLIENTS: dict[str, Callable[[Any, str, list[str], dict[str, str]], Any]] = {
    "tcp": _client_tcp(TCP4ClientEndpoint),
    "tcp6": _client_tcp(TCP6ClientEndpoint),
    "unix": _client_unix,
}


def _from_string(
    reactor: Any, description: str, table: dict[str, Callable[[Any, str, list[str], dict[str, str]], Any]], side: str
) -> Any:
    args, kwargs = split_description(description)
    kind = args.pop(0) if args else ""
    if not kind:
        raise ValueError(
            f"{side} endpoint description {description!r} must start with a type "
            f"({', '.join(sorted(table))}), e.g. 'tcp:8000'"
        )
    build = table.get(kind.lower())
    if build is None:
        raise ValueError(
            f"unknown {side} endpoint type {kind!r} in {description!r} "
            f"(known: {', '.join(sorted(table))})"
        )
    return build(reactor, description, args, kwargs)


def serverFromString(reactor: Any, description: str) -> Any:
    """Build a server endpoint from a description such as ``"tcp:8000:interface=127.0.0.1"``.

    Raises ``ValueError`` for an unknown type or a malformed description.
    """
    return _from_string(reactor, description, _SERVERS, "server")


def clientFromString(reactor: Any, description: str) -> Any:
    """Build a client endpoint from a description such as ``"tcp:host=localhost:port=80"``.

    Raises ``ValueError`` for an unknown type or a malformed description.
    """
    return _from_string(reactor, description, _CLIENTS, "client")


# --- deployment: PROXY protocol and adopted (systemd) sockets ------------------------------


def _server_haproxy(reactor: Any, description: str, args: list[str], kwargs: dict[str, str]) -> Any:
    """``haproxy:tcp:8000``: the wrapped listener's connections start with a PROXY header."""
    from framework.proxyprotocol import proxyEndpoint

    rest = description.split(":", 1)[1] if ":" in description else ""
    if not rest:
        raise ValueError(f"endpoint description {description!r} needs an endpoint to wrap, e.g. 'haproxy:tcp:8000'")
    return proxyEndpoint(serverFromString(reactor, rest))


def _server_systemd(reactor: Any, description: str, args: list[str], kwargs: dict[str, str]) -> Any:
    """``systemd:domain=INET:index=0``: the socket systemd passed as descriptor 3 + index."""
    import socket

    from framework.systemd import LISTEN_FDS_START, AdoptedStreamServerEndpoint

    options = _take(description, args, kwargs, (), ("domain", "index"))
    families = {"INET": socket.AF_INET, "INET6": socket.AF_INET6, "UNIX": socket.AF_UNIX}
    domain = _require(options, "domain", description)
    if domain.upper() not in families:
        raise ValueError(f"domain must be INET, INET6 or UNIX, not {domain!r}, in {description!r}")
    index = _int(_require(options, "index", description), "index", description, 0)
    return AdoptedStreamServerEndpoint(reactor, LISTEN_FDS_START + index, families[domain.upper()])


_SERVERS["haproxy"] = _server_haproxy
_SERVERS["systemd"] = _server_systemd


# --- TLS (framework.tls, imported only when a TLS endpoint is used) -------------------------


def _server_ssl(reactor: Any, description: str, args: list[str], kwargs: dict[str, str]) -> Any:
    from framework import tls

    return tls._serverFromString(reactor, description, args, kwargs)


def _client_tls(reactor: Any, description: str, args: list[str], kwargs: dict[str, str]) -> Any:
    from framework import tls

    return tls._clientFromString(reactor, description, args, kwargs)


_SERVERS["ssl"] = _server_ssl
_CLIENTS["tls"] = _client_tls
_CLIENTS["ssl"] = _client_tls
