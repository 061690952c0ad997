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
    unix:path=PATH[:timeout=SECONDS][:lockfile=0|1]               (also unix:PATH; checkPID= too)

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
import os
import socket
from itertools import zip_longest
from typing import Any, Callable

from framework.version import __version__
from framework import error, plugins
from framework.address import HostnameAddress, isIPAddress, isIPv6Address
from framework.defer import Deferred, fail, maybeDeferred, succeed
from framework.failure import Failure
from framework.endpointstrings import (
    MAX_BACKLOG,
    DescriptionError,
    collect_options,
    parse_bool,
    parse_int,
    parse_seconds,
    quoteStringArgument,
    require,
    split_description,
    unix_path,
)
from framework.options import close_match
from framework.processendpoint import ProcessEndpoint, StandardErrorBehavior
from framework.protocol import ClientFactory, Factory
from framework.threads import deferToThreadPool
from framework.tls import wrapClientTLS
from framework.registries import CORE_ENDPOINT_PREFIXES, EndpointEntry, EndpointParser
from framework.wrapping import ConnectingFactory as _WrappingFactory  # Twisted's private name for it

__all__ = [
    "AdoptedStreamServerEndpoint",
    "HostnameEndpoint",
    "ProcessEndpoint",
    "StandardErrorBehavior",
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "UNIXClientEndpoint",
    "UNIXServerEndpoint",
    "clientFromString",
    "connectProtocol",
    "known_endpoints",
    "quoteStringArgument",
    "serverFromString",
    "split_description",
    "wrapClientTLS",
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



class AdoptedStreamServerEndpoint:
    """Listen on a stream socket someone else opened and bound (a file descriptor): the
    reactor adopts a copy and this descriptor is closed. Usable once."""

    #: The syscalls, replaceable in tests.
    _close = staticmethod(os.close)
    _setNonBlocking = staticmethod(lambda fd: os.set_blocking(fd, False))

    def __init__(self, reactor: Any, fileno: int, addressFamily: int) -> None:
        self.reactor = reactor
        self.fileno = fileno
        self.addressFamily = addressFamily
        self._used = False

    def __repr__(self) -> str:
        return f"AdoptedStreamServerEndpoint(fileno={self.fileno})"

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        """Adopt the descriptor; a second ``listen`` fails with ``AlreadyListened``."""
        if self._used:
            return fail(error.AlreadyListened(f"{self!r} was already used: its descriptor is closed"))
        self._used = True
        try:
            self._setNonBlocking(self.fileno)
            port = self.reactor.adoptStreamPort(self.fileno, self.addressFamily, protocolFactory)
            self._close(self.fileno)
        except BaseException:
            return fail()
        return succeed(port)

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


def _getaddrinfo(reactor: Any) -> Callable[..., Any]:
    """The reactor's name resolver (``reactor.set_name_resolver``), else the system's."""
    return getattr(reactor, "getaddrinfo", socket.getaddrinfo)  # type: ignore[no-any-return]


def _in_thread(reactor: Any, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """``f(*args)`` in the reactor's thread pool: name lookups block."""
    return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)


class TCP6ClientEndpoint(TCP4ClientEndpoint):
    """Connect over TCP to an IPv6 address: a host name is looked up for IPv6 addresses only
    (``getaddrinfo`` with ``AF_INET6``, in the reactor's thread pool) and the first is used."""

    def _nameResolution(self, host: str) -> Deferred[Any]:
        return _in_thread(self._reactor, _getaddrinfo(self._reactor), host, 0, socket.AF_INET6,
                          socket.SOCK_STREAM)

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Look the name up (unless it is an IPv6 literal), then connect to its first IPv6
        address; cancelling stops either step (``ConnectingCancelledError``)."""
        if isIPv6Address(self._host):
            return TCP4ClientEndpoint.connect(self, protocolFactory)
        attempt: list[Deferred[Any]] = []

        def cancel(d: Deferred[Any]) -> None:
            if attempt:
                attempt[0].cancel()  # its ConnectingCancelledError reaches d
            else:
                d.errback(error.ConnectingCancelledError(HostnameAddress(self._host.encode("idna"), self._port)))

        result: Deferred[Any] = Deferred(cancel)

        def resolved(infos: list[Any]) -> None:
            if result.called:
                return
            addresses = [info[4][0] for info in infos if info[0] == socket.AF_INET6]
            if not addresses:
                result.errback(error.DNSLookupError(f"{self._host}: no IPv6 address"))
                return
            wf = _WrappingFactory(protocolFactory)
            try:
                self._reactor.connectTCP(addresses[0], self._port, wf, timeout=self._timeout,
                                         bindAddress=self._bindAddress)
            except BaseException:
                result.errback(Failure())
                return
            attempt.append(wf._onConnection)
            wf._onConnection.chainDeferred(result)

        def failed(failure: Failure) -> None:
            if not result.called:
                if not failure.check(error.DNSLookupError):
                    failure = Failure(error.DNSLookupError(f"{self._host}: {failure.getErrorMessage()}"))
                result.errback(failure)

        self._nameResolution(self._host).addCallbacks(resolved, failed)
        return result


#: Seconds between the starts of two connection attempts: RFC 8305's recommended 250 ms (the
#: issue that asked for Happy Eyeballs says so; Twisted's default is 0.3).
ATTEMPT_DELAY = 0.25


def _idna(host: str | bytes) -> tuple[str, bytes, Exception | None]:
    """The host as text (Unicode, for people) and as IDNA bytes (for the resolver); an
    encoding error is kept for ``connect`` to report."""
    try:
        if isinstance(host, bytes):
            return host.decode("idna"), host, None
        if isIPAddress(host) or isIPv6Address(host):
            return host, host.encode("ascii"), None
        encoded = host.encode("idna")  # normalized on the way (nameprep)
        return encoded.decode("idna"), encoded, None
    except (UnicodeError, ValueError) as e:
        text = host if isinstance(host, str) else host.decode("ascii", "backslashreplace")
        return text, text.encode("utf-8", "backslashreplace"), ValueError(f"bad host name {ascii(host)}: {e}")


def _binding(bindAddress: Any) -> tuple[str, int] | None:
    """``bindAddress`` as ``(host, port)``: a bare host (text or bytes) binds any port."""
    if bindAddress is None:
        return None
    if isinstance(bindAddress, (str, bytes)):
        bindAddress = (bindAddress, 0)
    try:
        host, port = bindAddress
    except (TypeError, ValueError):
        raise ValueError(f"bindAddress is a host or a (host, port) pair, not {bindAddress!r}") from None
    return (host.decode("ascii") if isinstance(host, bytes) else host, port)


def _addresses(getaddrinfo: Callable[..., Any], host: str, port: int) -> list[str]:
    """The addresses of ``host`` (blocking: runs in a worker thread), ordered for Happy
    Eyeballs: IPv6 first, then alternating families, each in the resolver's order."""
    try:
        infos = getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise error.DNSLookupError(f"{host}: {e}") from None
    v6: list[str] = []
    v4: list[str] = []
    for family, _, _, _, sockaddr in infos:
        found = v6 if family == socket.AF_INET6 else v4 if family == socket.AF_INET else None
        if found is not None and sockaddr[0] not in found:
            found.append(sockaddr[0])
    ordered: list[str] = []
    for pair in zip_longest(v6, v4):
        ordered.extend(a for a in pair if a is not None)
    if not ordered:
        raise error.DNSLookupError(f"{host}: no IPv4 or IPv6 address")
    return ordered


class HostnameEndpoint:
    """Connect to a host name over TCP the way RFC 8305 ("Happy Eyeballs") says: resolve it
    (in the reactor's thread pool), try its addresses IPv6 first, alternating families,
    starting one attempt every ``attemptDelay`` seconds (0.25) or at once when the previous
    one failed; the first connection made wins and the other attempts are cancelled.

    ``connect`` fails with the last attempt's error if all fail, with ``DNSLookupError`` if
    the name does not resolve; cancelling it stops the lookup's use and every attempt.
    """

    def __init__(self, reactor: Any, host: str | bytes, port: int, timeout: float = 30,
                 bindAddress: Any = None, attemptDelay: float | None = None) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port is an integer 0-65535, not {port!r}")
        if attemptDelay is not None and (
            isinstance(attemptDelay, bool) or not isinstance(attemptDelay, (int, float))
            or not 0 <= attemptDelay < float("inf")
        ):
            raise ValueError(f"attemptDelay is a number of seconds >= 0, not {attemptDelay!r}")
        self._reactor = reactor
        self._hostText, self._hostBytes, self._badHost = _idna(host)
        self._port = port
        self._timeout = timeout
        self._bindAddress = _binding(bindAddress)
        self._attemptDelay = ATTEMPT_DELAY if attemptDelay is None else attemptDelay

    def __repr__(self) -> str:
        host = self._hostBytes.decode("ascii", "backslashreplace")  # punycode, as Twisted shows it
        return f"<HostnameEndpoint {f'[{host}]' if ':' in host else host}:{self._port}>"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Race the attempts; the Deferred fires with the winner's connected protocol."""
        if self._badHost is not None:
            return fail(self._badHost)
        return _Race(self, protocolFactory).start()


class _OneWinner(ClientFactory):
    """Builds the user's protocol for the first attempt that connects, and refuses the rest."""

    def __init__(self, race: _Race) -> None:
        self._race = race

    def buildProtocol(self, addr: Any) -> Any:
        if self._race.claimed:
            return None
        self._race.claimed = True
        return self._race.factory.buildProtocol(addr)


class _Race:
    """One ``HostnameEndpoint.connect``: the lookup, the staggered attempts, the outcome."""

    def __init__(self, endpoint: HostnameEndpoint, factory: Any) -> None:
        self.endpoint = endpoint
        self.reactor = endpoint._reactor
        self.factory = factory
        self.result: Deferred[Any] = Deferred(self._cancel)
        self.pending: list[str] = []
        self.attempts: list[Deferred[Any]] = []
        self.timer: Any = None
        self.claimed = False
        self.done = False
        self.lastFailure: Failure | None = None

    def start(self) -> Deferred[Any]:
        host = self.endpoint._hostBytes.decode("ascii")
        if isIPAddress(host) or isIPv6Address(host):
            self._resolved([host])
        else:
            lookup = _in_thread(self.reactor, _addresses, _getaddrinfo(self.reactor), host,
                                self.endpoint._port)
            lookup.addCallbacks(self._resolved, self._finish_failed)
        return self.result

    def _resolved(self, addresses: list[str]) -> None:
        if self.done:
            return
        self.pending = list(addresses)
        self._next()

    def _next(self) -> None:
        self.timer = None
        if self.done or not self.pending:
            return
        address = self.pending.pop(0)
        attempt = _WrappingFactory(_OneWinner(self))
        e = self.endpoint
        try:
            self.reactor.connectTCP(address, e._port, attempt, timeout=e._timeout, bindAddress=e._bindAddress)
        except Exception:
            self._lost(Failure(), None)
            return
        d = attempt.whenConnected()
        self.attempts.append(d)
        d.addCallbacks(self._won, self._lost, errbackArgs=(d,))
        if self.pending and not self.done:
            self.timer = self.reactor.callLater(e._attemptDelay, self._next)

    def _won(self, protocol: Any) -> None:
        self.done = True
        self._stop_trying()
        self.result.callback(protocol)

    def _lost(self, failure: Failure, attempt: Deferred[Any] | None) -> None:
        if attempt in self.attempts:
            self.attempts.remove(attempt)
        if self.done:
            return
        self.lastFailure = failure
        if self.pending:
            if self.timer is not None:
                self.timer.cancel()
            self._next()  # a failure starts the next attempt at once
        elif not self.attempts:
            self._finish_failed(failure)

    def _finish_failed(self, failure: Failure) -> None:
        if not self.done:
            self.done = True
            self._stop_trying()
            self.result.errback(failure)

    def _stop_trying(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.pending = []
        attempts, self.attempts = self.attempts, []
        for d in attempts:
            d.cancel()

    def _cancel(self, d: Deferred[Any]) -> None:
        self.done = True
        self._stop_trying()
        e = self.endpoint
        d.errback(error.ConnectingCancelledError(HostnameAddress(e._hostBytes, e._port)))


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
    options = collect_options(args, kwargs, ("path",), ("path", "timeout", "checkPID", "lockfile"))
    path = unix_path(require(options, "path"))
    timeout = parse_seconds(options.get("timeout", "30"), "timeout")
    # lockfile= is Twisted's spelling (as for the server side); checkPID= the argument's name.
    checkPID = parse_bool(options.get("lockfile", options.get("checkPID", "0")), "lockfile")
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
