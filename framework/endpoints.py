"""Endpoints: where to listen or connect, as objects or as strings.

``serverFromString(reactor, "tcp:8000:interface=127.0.0.1")`` and
``clientFromString(reactor, "tcp:host=localhost:port=8000")`` parse Twisted's endpoint
syntax: fields are separated by ``:``, a field ``key=value`` is an option, and a backslash
makes the next character literal (``\\:`` for a colon, ``\\=`` for an equals sign, ``\\\\`` for a
backslash).

The core parses three prefixes itself. Server strings::

    tcp:PORT[:interface=ADDR][:backlog=N]          (also tcp:port=PORT)
    tcp6:PORT[:interface=ADDR][:backlog=N]         (interface defaults to ::)
    unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0|1]   (also unix:address=PATH)

Client strings::

    tcp:host=HOST:port=PORT[:timeout=SECONDS][:bindAddress=ADDR]   (also tcp:HOST:PORT)
    tcp6:host=HOST:port=PORT[...]
    unix:path=PATH[:timeout=SECONDS][:checkPID=0|1]               (also unix:PATH)

Every other prefix comes from an endpoint plugin (hook ``register_endpoints``, registry
``framework.plugins.endpoint_parsers()``); the built-in ones are ``ssl:``/``tls:`` (TLS, see
docs/tls.md), ``systemd:`` (an adopted socket) and ``haproxy:`` (PROXY protocol), in the
package ``reactor_framework_plugins.endpoints``. ``known_endpoints()`` lists them all. The syntax
and the helpers parsers share are in ``framework.endpointstrings``.

A UNIX path starting with ``@`` names a Linux abstract socket (``@name`` becomes ``"\\0name"``);
a path that really starts with ``@`` can be written ``./@name``.

``listen(factory)`` returns a Deferred firing with the listening port (or failing with, e.g.,
``CannotListenError``); ``connect(factory)`` returns a Deferred firing with the connected
protocol once its ``connectionMade`` has run (or failing with the connection error).
"""

from __future__ import annotations

import inspect
from typing import Any

from framework.version import __version__
from framework import error, plugins
from framework.defer import Deferred, fail, maybeDeferred
from framework.endpointstrings import (
    MAX_BACKLOG,
    DescriptionError,
    collect_options,
    parse_bool,
    parse_int,
    parse_seconds,
    require,
    split_description,
    unix_path,
)
from framework.options import close_match
from framework.protocol import Factory
from framework.registries import CORE_ENDPOINT_PREFIXES, EndpointEntry, EndpointParser
from framework.wrapping import ConnectingFactory as _WrappingFactory  # Twisted's private name for it

__all__ = [
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "UNIXClientEndpoint",
    "UNIXServerEndpoint",
    "clientFromString",
    "connectProtocol",
    "known_endpoints",
    "serverFromString",
    "split_description",
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


# --- string parsing: the core prefixes ------------------------------------------------------
#
# Parsers get the description's fields after the prefix, as strings (see
# framework.endpointstrings); ``reactor`` is positional-only so that an option may have any name.


def _server_tcp(cls: type[TCP4ServerEndpoint]) -> EndpointParser:
    def parse(reactor: Any, /, *args: str, **kwargs: str) -> TCP4ServerEndpoint:
        options = collect_options(args, kwargs, ("port",), ("port", "interface", "backlog"))
        port = parse_int(require(options, "port"), "port", 0, 65535)
        backlog = parse_int(options.get("backlog", "50"), "backlog", 1, MAX_BACKLOG)
        return cls(reactor, port, backlog, options.get("interface"))

    return parse


def _server_unix(reactor: Any, /, *args: str, **kwargs: str) -> UNIXServerEndpoint:
    options = collect_options(
        args, kwargs, ("address",), ("address", "mode", "backlog", "lockfile", "wantPID")
    )
    address = unix_path(require(options, "address"))
    mode = parse_int(options.get("mode", "666"), "mode", 0, 0o7777, base=8)
    backlog = parse_int(options.get("backlog", "50"), "backlog", 1, MAX_BACKLOG)
    want = options.get("lockfile", options.get("wantPID", "0"))
    return UNIXServerEndpoint(reactor, address, backlog, mode, parse_bool(want, "lockfile"))


def _client_tcp(cls: type[TCP4ClientEndpoint]) -> EndpointParser:
    def parse(reactor: Any, /, *args: str, **kwargs: str) -> TCP4ClientEndpoint:
        # tcp:HOST:PORT, tcp:HOST:port=PORT, tcp:host=HOST:PORT
        positional: tuple[str, ...] = ("port",) if "host" in kwargs else ("host", "port")
        options = collect_options(args, kwargs, positional, ("host", "port", "timeout", "bindAddress"))
        host = require(options, "host")
        port = parse_int(require(options, "port"), "port", 1, 65535)
        timeout = parse_seconds(options.get("timeout", "30"), "timeout")
        bind = options.get("bindAddress")
        bindAddress = (bind, 0) if bind else None
        return cls(reactor, host, port, timeout, bindAddress)

    return parse


def _client_unix(reactor: Any, /, *args: str, **kwargs: str) -> UNIXClientEndpoint:
    options = collect_options(args, kwargs, ("path",), ("path", "timeout", "checkPID"))
    path = unix_path(require(options, "path"))
    timeout = parse_seconds(options.get("timeout", "30"), "timeout")
    checkPID = parse_bool(options.get("checkPID", "0"), "checkPID")
    return UNIXClientEndpoint(reactor, path, timeout, checkPID)


def _core(name: str, server: EndpointParser, client: EndpointParser, description: str) -> EndpointEntry:
    return EndpointEntry(name=name, server=server, client=client, description=description,
                         plugin="framework.endpoints", distribution="reactor-framework",
                         version=__version__)


#: The prefixes the core parses itself (looked up before the plugins' endpoint registry).
_CORE: dict[str, EndpointEntry] = {
    entry.name: entry
    for entry in (
        _core("tcp", _server_tcp(TCP4ServerEndpoint), _client_tcp(TCP4ClientEndpoint),
              "TCP over IPv4: tcp:PORT[:interface=ADDR][:backlog=N] / tcp:HOST:PORT[:timeout=S]"),
        _core("tcp6", _server_tcp(TCP6ServerEndpoint), _client_tcp(TCP6ClientEndpoint),
              "TCP over IPv6: tcp6:PORT[:interface=ADDR] / tcp6:host=HOST:port=PORT"),
        _core("unix", _server_unix, _client_unix,
              "UNIX sockets: unix:PATH[:mode=OCTAL][:lockfile=0|1] / unix:PATH[:timeout=S]"),
    )
}
assert tuple(_CORE) == CORE_ENDPOINT_PREFIXES


def known_endpoints() -> list[EndpointEntry]:
    """Every endpoint prefix ``serverFromString``/``clientFromString`` understand, by name:
    the core ``tcp``, ``tcp6``, ``unix`` and those plugins registered (``register_endpoints``;
    ``framework.plugins.endpoint_parsers()`` holds these). Discovers plugins on first call."""
    entries = dict(_CORE)
    for entry in plugins.endpoint_parsers():
        entries.setdefault(entry.name, entry)
    return [entries[name] for name in sorted(entries)]


def _lookup(prefix: str, description: str, side: str) -> EndpointParser:
    name = prefix.lower()
    entry = _CORE.get(name)
    if entry is None:
        registry = plugins.endpoint_parsers()
        entry = registry.get(name) if name in registry else None
    parser = None if entry is None else getattr(entry, side)
    if parser is not None:
        return parser  # type: ignore[no-any-return]
    known = [e.name for e in known_endpoints() if getattr(e, side) is not None]
    if entry is not None:
        other = "client" if side == "server" else "server"
        text = f"endpoint type {prefix!r} is {other} only, in {description!r}"
    else:
        text = f"unknown {side} endpoint type {prefix!r} in {description!r}"
        match = close_match(prefix, known)
        if match:
            text += f"; did you mean {match!r}?"
    text += f" (known {side} types: {', '.join(known)})"
    if entry is None and name in plugins.disabled():
        text += f"; the entry point {name!r} is disabled by ${plugins.DISABLE_ENV}"
    raise DescriptionError(text, description=description, side=side, message=text)


def _bad_call(parser: EndpointParser, args: tuple[str, ...], kwargs: dict[str, str]) -> str | None:
    """Why ``parser(reactor, *args, **kwargs)`` cannot bind, in description terms, or None."""
    try:
        signature = inspect.signature(parser)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        params = list(signature.parameters.values())[1:]
        kinds = {p.kind for p in params}
        names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if inspect.Parameter.VAR_KEYWORD not in kinds:
            unknown = sorted(set(kwargs) - set(names))
            if unknown:
                return f"unknown option(s) {', '.join(unknown)} (valid: {', '.join(names) or 'none'})"
        if inspect.Parameter.VAR_POSITIONAL not in kinds:
            room = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
            if len(args) > room:
                return f"unexpected extra field(s) {':'.join(args[room:])!r}"
        missing = [p.name for p in params if p.default is p.empty
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)]
        bound = set(kwargs) | {p.name for p in params[:len(args)]}
        needed = [name for name in missing if name not in bound]
        if needed:
            return f"needs {', '.join(needed)}"
        return str(exc)
    return None


def _from_string(reactor: Any, description: str, side: str) -> Any:
    args, kwargs = split_description(description)
    prefix = args.pop(0) if args else ""
    if not prefix:
        known = [e.name for e in known_endpoints() if getattr(e, side) is not None]
        text = (f"{side} endpoint description {description!r} must start with a type "
                f"({', '.join(known)}), e.g. 'tcp:8000'")
        raise DescriptionError(text, description=description, side=side, message=text)
    parser = _lookup(prefix, description, side)
    reason = _bad_call(parser, tuple(args), kwargs)
    if reason is not None:
        raise DescriptionError(reason, description=description, side=side)
    try:
        return parser(reactor, *args, **kwargs)
    except DescriptionError as exc:
        named = exc.naming(description, side)
        if named is exc:
            raise
        raise named from None
    except ValueError as exc:
        if type(exc) is not ValueError:
            raise  # a specific error (TLSSetupError...) is left as the parser raised it
        raise DescriptionError(str(exc), description=description, side=side) from exc


def serverFromString(reactor: Any, description: str) -> Any:
    """Build a server endpoint from a description such as ``"tcp:8000:interface=127.0.0.1"``.

    The prefix is looked up among the core ones (``tcp``, ``tcp6``, ``unix``), then in the
    endpoint registry plugins fill (``ssl``, ``systemd``, ``haproxy`` are built-in plugins).
    Raises ``ValueError`` (``framework.endpointstrings.DescriptionError``) for an unknown type
    or a malformed description.
    """
    return _from_string(reactor, description, "server")


def clientFromString(reactor: Any, description: str) -> Any:
    """Build a client endpoint from a description such as ``"tcp:host=localhost:port=80"``.

    Raises ``ValueError`` (``framework.endpointstrings.DescriptionError``) for an unknown type
    or a malformed description.
    """
    return _from_string(reactor, description, "client")
