"""The serving runtime behind ``reactor-serve``: a typed configuration and the server.

``framework.cli`` parses the command line into a :class:`ServeConfig`; :func:`serve` runs one
process on it and ``framework.supervisor.run`` runs ``--workers`` processes on it. Code can do
the same without a command line::

    from framework.serving import ServeConfig, serve
    serve(ServeConfig("echo", port=0, idle_timeout=30))

The server (:class:`Server`) listens on every endpoint, tracks connections through a
:class:`ServeFactory` (a ``framework.policies.PolicyFactory``: limits and timeouts, counted
from accept, also under a PROXY header or a TLS handshake), and on SIGINT/SIGTERM stops
listening at once and lets open connections finish for up to ``grace`` seconds; a second
signal aborts them. Bad input raises :class:`UsageError` (exit status 2), a failure to serve
:class:`RuntimeFailure` (exit status 1).
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import framework
from framework import endpoints, error, middleware, plugins, systemd, tls
from framework.address import format_address, format_listener
from framework.policies import PolicyFactory, supports_message_timeout
from framework.proxyprotocol import ProxyProtocolFactory

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_GRACE",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_INTERFACE",
    "DEFAULT_PORT",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "RuntimeFailure",
    "ServeConfig",
    "ServeFactory",
    "Server",
    "SignalRouter",
    "UsageError",
    "build_factory",
    "check_tls",
    "enable_middleware",
    "explain_listen_failure",
    "install_reactor",
    "listen_endpoints",
    "serve",
    "tcp_description",
]

PROG = "reactor-serve"
DEFAULT_PORT = 8000
DEFAULT_INTERFACE = "127.0.0.1"
DEFAULT_GRACE = 10.0
#: Seconds a connection may take for its PROXY header and TLS handshake (``--handshake-timeout``).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_BACKLOG = socket.SOMAXCONN
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
#: The first words of the line printed once every listener is up (the supervisor reads it).
STARTUP_PREFIX = f"{PROG}: serving "

log = logging.getLogger("framework.cli")


class UsageError(Exception):
    """Bad input (command line or configuration): exit status 2."""


class RuntimeFailure(Exception):
    """The input was fine but serving failed (busy port, permission...): exit status 1."""


def explain_listen_failure(exc: BaseException) -> BaseException:
    """``exc`` as a :class:`RuntimeFailure` whose message ends in ``Hint: ...`` when the cause
    is a common one (a privileged port, an address in use); otherwise ``exc`` itself.

    One text for one process and for ``--workers``, which open their listeners in different
    places.
    """
    socket_error = getattr(exc, "socketError", None)
    code = socket_error.errno if isinstance(socket_error, OSError) else None
    port = getattr(exc, "port", None)
    if code in (errno.EACCES, errno.EPERM) and isinstance(port, int) and 0 < port < 1024:
        hint = "ports below 1024 need root or CAP_NET_BIND_SERVICE; try --port 8000, or --port 0 for any free port"
    elif code == errno.EADDRINUSE:
        hint = "another process is listening there; stop it, or choose another port (--port 0 picks a free one)"
    else:
        return exc
    failure = RuntimeFailure(f"{error.describe_error(exc)} Hint: {hint}.")
    failure.__cause__ = exc
    return failure


@dataclass
class ServeConfig:
    """Everything ``reactor-serve`` serves with; the command-line flags of the same names.

    ``port``/``interface`` add a TCP listener (default: the protocol's default port on
    127.0.0.1 when no ``listen`` description is given). ``workers`` is ``None`` for one
    process, ``0`` for one worker per CPU. ``argv`` is the command line the workers are run
    with (``--workers`` only).
    """

    protocol: str
    options: dict[str, str] = field(default_factory=dict)
    listen: list[str] = field(default_factory=list)
    port: int | None = None
    interface: str | None = None
    reactor: str | None = None
    middleware: list[str] = field(default_factory=list)
    grace: float = DEFAULT_GRACE
    idle_timeout: float | None = None
    message_timeout: float | None = None
    handshake_timeout: float | None = None
    max_connections: int | None = None
    max_connections_per_peer: int | None = None
    max_write_buffer: int | None = None
    max_write_buffer_total: int | None = None
    proxy_protocol: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    workers: int | None = None
    argv: list[str] | None = None

    def listen_descriptions(self, default_port: int | None = None) -> list[str]:
        """The endpoint descriptions to listen on: ``listen``, preceded by the TCP listener of
        ``port``/``interface`` when either is given or ``listen`` is empty."""
        descriptions = list(self.listen)
        if not descriptions or self.port is not None or self.interface is not None:
            port = self.port
            if port is None:
                port = default_port if default_port is not None else DEFAULT_PORT
            interface = DEFAULT_INTERFACE if self.interface is None else self.interface
            descriptions.insert(0, tcp_description(port, interface))
        return descriptions

    def effective_handshake_timeout(self) -> float:
        """``handshake_timeout`` (default 10 s), bounded by ``idle_timeout`` when shorter."""
        timeout = DEFAULT_HANDSHAKE_TIMEOUT if self.handshake_timeout is None else self.handshake_timeout
        if self.idle_timeout is not None:
            timeout = min(timeout, self.idle_timeout)
        return timeout


def tcp_description(port: int, interface: str) -> str:
    """The endpoint description of a TCP listener on ``interface``:``port``."""
    # A server should not leave a burst of clients in SYN retries: the kernel's maximum
    # backlog rather than listenTCP's (Twisted's) default of 50.
    if ":" in interface:
        return f"tcp6:{port}:interface={interface.replace(':', chr(92) + ':')}:backlog={DEFAULT_BACKLOG}"
    return f"tcp:{port}:interface={interface}:backlog={DEFAULT_BACKLOG}"


def check_tls(config: ServeConfig) -> Any:
    """The server TLS options of ``tls_cert``/``tls_key`` (``None`` without them); a bad
    certificate or key is a :class:`UsageError` here, before anything listens."""
    cert, key = config.tls_cert, config.tls_key
    if cert is None:
        if key is not None:
            raise UsageError("--tls-key needs --tls-cert")
        return None
    try:
        context = tls.serverContext(cert, key)
    except tls.TLSSetupError as e:
        raise UsageError(str(e)) from None
    # The policy times the handshake (``--handshake-timeout``) from accept: no second timer.
    return tls.TLSOptions(context, handshakeTimeout=None)


def install_reactor(name: str | None) -> Any:
    """Install reactor backend ``name`` (or the default), or reuse the installed one."""
    try:
        return framework.install_reactor(name)
    except error.ReactorAlreadyInstalledError:
        reactor = framework.installed_reactor()
        if name and reactor is not None and reactor.backend_name != name:
            raise RuntimeFailure(
                f"reactor {reactor.backend_name!r} is already installed in this process; cannot use {name!r}"
            ) from None
        return reactor


def enable_middleware(name: str, reactor: Any) -> None:
    """Enable Deferred middleware ``name`` (``serve`` then fires the plugins'
    ``reactor_installed`` hook once, so one that tunes the reactor learns which one)."""
    middleware.enable(name)


def listen_endpoints(reactor: Any, config: ServeConfig, default_port: int | None = None) -> list[Any]:
    """The server endpoints to listen on: the sockets passed through ``LISTEN_FDS`` (systemd,
    ``--workers``) if any, else those of ``config.listen_descriptions()``."""
    try:
        adopted = systemd.endpoints_from_environment(reactor)
    except ValueError as e:
        raise UsageError(f"socket activation: {error.describe_error(e)}") from None
    if adopted:
        log.debug("serving %d socket(s) passed through LISTEN_FDS", len(adopted))
        return list(adopted)
    return [_endpoint(reactor, d) for d in config.listen_descriptions(default_port)]


def _endpoint(reactor: Any, description: str) -> Any:
    try:
        return endpoints.serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError, error.PluginError) as e:
        raise UsageError(f"bad --listen endpoint {description!r}: {error.describe_error(e)}") from None


def build_factory(reactor: Any, config: ServeConfig, factory: Any, tls_options: Any = None) -> ServeFactory:
    """The :class:`ServeFactory` serving ``factory`` with the limits, timeouts and layers
    (PROXY header, TLS) of ``config``; the policy sits outermost, so it counts and times every
    connection from accept."""
    message_timeout = config.message_timeout
    if message_timeout is not None and not supports_message_timeout(factory):
        log.warning(
            "--message-timeout applies to framing (line or frame) protocols only; %r is not one: ignored",
            config.protocol,
        )
        message_timeout = None
    layers = _layers(config.proxy_protocol, tls_options)
    return ServeFactory(
        factory,
        reactor,
        idle_timeout=config.idle_timeout,
        message_timeout=message_timeout,
        max_connections=config.max_connections,
        max_connections_per_peer=config.max_connections_per_peer,
        max_write_buffer=config.max_write_buffer,
        max_write_buffer_total=config.max_write_buffer_total,
        layers=layers,
        handshake_timeout=config.effective_handshake_timeout() if layers is not None else None,
        peer_from_handoff=config.proxy_protocol,
    )


def _layers(proxy_protocol: bool, tls_options: Any) -> Callable[[Any], Any] | None:
    """What a connection passes before the application: a PROXY header, then TLS."""
    if not proxy_protocol and tls_options is None:
        return None

    def build(inner: Any) -> Any:
        if tls_options is not None:
            inner = tls.TLSMemoryBIOFactory(tls_options, False, inner)
        if proxy_protocol:
            inner = ProxyProtocolFactory(inner, timeout=None)  # timed by the policy
        return inner

    return build


def serve(config: ServeConfig, out: Any = None) -> int:
    """Serve ``config`` in this process until SIGINT/SIGTERM; returns the exit status."""
    tls_options = check_tls(config)  # a bad certificate/key fails here, before listening
    # The reactor first: no protocol plugin code may run before the backend is chosen.
    reactor = install_reactor(config.reactor)
    for name in config.middleware:
        enable_middleware(name, reactor)
    plugins.notify_reactor_installed(reactor)
    entry = plugins.protocols().get(config.protocol)
    factory = entry.make_factory(config.options)
    where = listen_endpoints(reactor, config, entry.default_port)
    if tls_options is not None:
        log.info("TLS on: certificate %s", config.tls_cert)
    wrapper = build_factory(reactor, config, factory, tls_options)
    return Server(reactor, wrapper, where, grace=config.grace, protocol_name=entry.name, out=out,
                  tls=tls_options is not None).run()


class ServeFactory(PolicyFactory):
    """The factory ``reactor-serve`` listens with: a :class:`framework.policies.PolicyFactory`
    (timeouts, connection limits) whose ``connections``, ``accepting``, ``on_empty`` and
    ``abort_all`` let :class:`Server` drain or abort on shutdown."""


# --- signals ------------------------------------------------------------------------------------


class SignalRouter:
    """Calls ``callback(signum)`` on the reactor's thread for each of ``signums`` received
    while installed: ``reactor-serve`` and the supervisor handle their signals through it, on
    the reactor's own ``add_signal_handler`` (one mechanism, the reactor's waker)."""

    def __init__(self, reactor: Any, signums: Sequence[int], callback: Callable[[int], None],
                 name: str = "reactor-serve signals") -> None:
        self.reactor = reactor
        self.signums = tuple(signums)
        self.callback = callback
        self.name = name
        self._added: list[int] = []

    def install(self) -> bool:
        """Install the handlers; ``False`` (nothing installed) off the main thread."""
        for signum in self.signums:
            try:
                self.reactor.add_signal_handler(signum, self.callback, signum)
            except RuntimeError:  # not the main thread: the caller handles signals
                break
            self._added.append(signum)
        return bool(self._added)

    def installed(self) -> list[int]:
        """The signals whose handlers are ours (a forked child resets them)."""
        return list(self._added)

    def close(self) -> None:
        """Give the signals back to the handlers they had before."""
        for signum in self._added:
            self.reactor.remove_signal_handler(signum)
        self._added.clear()


# --- the server ---------------------------------------------------------------------------------


class Server:
    """Listens on ``endpoints`` with ``factory``, runs the reactor, and handles the signals."""

    def __init__(
        self,
        reactor: Any,
        factory: ServeFactory,
        endpoints: Sequence[Any],
        *,
        grace: float = DEFAULT_GRACE,
        protocol_name: str = "",
        out: Any = None,
        tls: bool = False,
    ) -> None:
        self.reactor = reactor
        self.tls = tls
        self.factory = factory
        self.endpoints = list(endpoints)
        self.grace = grace
        self.protocol_name = protocol_name
        self.out = out if out is not None else sys.stdout
        self.ports: list[Any] = []
        self.status = EXIT_OK
        self.failure: BaseException | None = None
        self.stopping = False
        self.aborting = False
        self.listening = False
        self._grace_call: Any = None
        self._stop_scheduled = False
        self._signals = SignalRouter(reactor, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP), self._on_signal)

    def run(self) -> int:
        """Listen, serve until stopped, and return the exit status (raise on a startup failure)."""
        self._signals.install()
        try:
            self.reactor.callWhenRunning(self._start)
            self.reactor.run(installSignalHandlers=False)
        finally:
            self._signals.close()
        if self.failure is not None:
            raise self.failure
        return self.status

    # startup

    def _start(self) -> None:
        try:
            self._listen_all()
        except BaseException as e:
            self._startup_failed(e)

    def _listen_all(self) -> None:
        """Listen on every endpoint; report once all succeeded, or fail on the first error."""
        results: list[Any] = [None] * len(self.endpoints)
        pending = [len(self.endpoints)]

        def done(port: Any, index: int) -> None:
            results[index] = port
            pending[0] -= 1
            if self.failure is not None or self.stopping:
                port.stopListening()
            elif pending[0] == 0:
                self._listening(results)

        def failed(failure: Any) -> None:
            pending[0] -= 1
            if self.failure is None:
                self.ports = [p for p in results if p is not None]
                self._startup_failed(failure.value)

        for index, endpoint in enumerate(self.endpoints):
            if self.failure is not None:
                break
            d = endpoint.listen(self.factory)
            d.addCallback(done, index)
            d.addErrback(failed)

    def _startup_failed(self, exc: BaseException) -> None:
        self.failure = explain_listen_failure(exc)
        for port in self.ports:
            port.stopListening()
        self.ports = []
        self._stop_reactor()

    def _listening(self, ports: list[Any]) -> None:
        self.ports = list(ports)
        self.listening = True
        for port in self.ports:
            self.factory.add_port(port)
        addresses = []
        for port in self.ports:
            address = port.getHost()
            addresses.append(format_listener(address, self.tls))
            if getattr(address, "host", None) in ("0.0.0.0", "::", ""):
                log.warning(
                    "listening on all interfaces (%s): reachable from other machines", format_address(address)
                )
        print(
            f"{STARTUP_PREFIX}{self.protocol_name} on {', '.join(addresses)} "
            f"(reactor {self.reactor.backend_name})",
            file=self.out,
            flush=True,
        )
        systemd.notify("READY=1")  # systemd Type=notify; nothing without $NOTIFY_SOCKET

    # signals (handled on the reactor's thread)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.stopping:
            self.shutdown(name)
        elif not self.aborting:
            log.warning("%s again: aborting %d open connection(s)", name, len(self.factory.connections))
            self.abort()

    # shutdown

    def shutdown(self, why: str = "shutdown") -> None:
        """Stop listening now; stop the reactor once every connection closed or the grace ends."""
        if self.stopping:
            return
        self.stopping = True
        self.factory.accepting = False
        for port in self.ports:
            self.factory.remove_port(port)
            try:
                port.stopListening()
            except Exception:
                log.debug("stopListening failed", exc_info=True)
        open_count = len(self.factory.connections)
        if not open_count:
            log.info("%s: stopped listening; no open connections", why)
            self._stop_reactor()
            return
        log.info(
            "%s: stopped listening; waiting up to %g s for %d open connection(s) (signal again to abort)",
            why,
            self.grace,
            open_count,
        )
        self.factory.on_empty = self._stop_reactor
        self._grace_call = self.reactor.callLater(self.grace, self._grace_over)

    def _grace_over(self) -> None:
        self._grace_call = None
        if self.factory.connections:
            # Flush what is buffered; abort only the peers that do not read it within a second.
            log.warning(
                "grace period over: closing %d open connection(s); aborting those that do not read",
                len(self.factory.connections),
            )
            self.factory.close_all()
            self.reactor.callLater(1.0, self._flush_over)

    def _flush_over(self) -> None:
        if self.factory.connections and not self.aborting:
            self.abort()

    def abort(self) -> None:
        """Abort every open connection and stop the reactor."""
        self.aborting = True
        self.stopping = True
        self.factory.accepting = False
        self.factory.on_empty = self._stop_reactor
        self.factory.abort_all()
        if not self.factory.connections:
            self._stop_reactor()
        else:
            # connectionLost normally follows within an iteration; never hang on a stray one.
            self.reactor.callLater(1.0, self._stop_reactor)

    def _stop_reactor(self) -> None:
        if self._stop_scheduled:
            return
        self._stop_scheduled = True
        if self._grace_call is not None and self._grace_call.active():
            self._grace_call.cancel()
        self._grace_call = None
        try:
            self.reactor.stop()
        except error.ReactorNotRunning:
            pass
