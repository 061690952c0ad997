"""``reactor-serve``: serve any registered protocol from the command line.

    reactor-serve --protocol echo                 # 127.0.0.1 on the protocol's default port
    reactor-serve --protocol chat --port 0        # any free port; the startup line says which
    reactor-serve --list                          # protocols, reactors, middleware, failures

The reactor backend is installed while the options are handled, before any protocol plugin
code runs. Bad input is one line on stderr and exit status 2 (usage) or 1 (runtime: port in
use, permission denied, unavailable backend); a traceback only with ``--log-level debug``.
SIGINT/SIGTERM stop listening at once and let open connections finish for up to ``--grace``
seconds; a second signal aborts them at once. Either way the exit status is 0.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
import traceback
from collections import deque
from typing import Any, Callable, Iterable, NoReturn, Sequence

import framework
from framework import error
from framework.address import format_address, isIPAddress, isIPv6Address
from framework.policies import PolicyFactory, supports_message_timeout

__all__ = ["ServeFactory", "Server", "main"]

PROG = "reactor-serve"
DEFAULT_PORT = 8000
DEFAULT_INTERFACE = "127.0.0.1"
DEFAULT_GRACE = 10.0
DEFAULT_BACKLOG = socket.SOMAXCONN
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("framework.cli")


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


class RuntimeFailure(Exception):
    """The input was fine but serving failed (busy port, permission...): exit status 1."""


class _Once(argparse.Action):
    """Store the value of an option that takes one. Two different values are a usage error,
    not a silent override (``--port 80 --port 81``); the same value twice is harmless."""

    raw = ""  # the text given, before ``type`` converted it (set by _Parser)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given = namespace.__dict__.setdefault("_given", {})
        first_raw, first = given.setdefault(self.dest, (self.raw, values))
        if first != values:
            raise argparse.ArgumentError(
                self, f"given twice with different values ({first_raw!r}, then {self.raw!r}); give it once")
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        once = "action" not in kwargs and bool(args) and str(args[0]).startswith("-")
        if once:
            kwargs["action"] = _Once
        action = super().add_argument(*args, **kwargs)
        if once:
            convert = action.type

            def keep_text(text: str) -> Any:
                action.raw = text  # type: ignore[attr-defined]
                return convert(text) if callable(convert) else text

            keep_text.__name__ = getattr(convert, "__name__", "value")  # argparse's error wording
            action.type = keep_text
        return action

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


#: The longest duration a flag takes: a year. Longer is a typo, not a deployment.
MAX_SECONDS = 365 * 86400


def _number(
    kind: Callable[[str], Any], what: str, minimum: float, strict: bool, maximum: float | None = None,
) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or value < minimum or (
            strict and value == minimum
        ):
            bound = f"> {minimum}" if strict else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"expected {what} <= {maximum} (a year), got {text!r}")
        return value

    convert.__name__ = what
    return convert


def _interface(text: str) -> str:
    """An IP address to bind: a literal (no name lookups while parsing options)."""
    if text == "localhost":
        return "127.0.0.1"
    if isIPAddress(text) or isIPv6Address(text):
        return text
    raise argparse.ArgumentTypeError(
        f"expected an IPv4 or IPv6 address such as 127.0.0.1, ::1 or 0.0.0.0, got {text!r}")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return value


def _workers(text: str) -> int:
    if text == "auto":
        return 0  # resolved to the CPU count by the supervisor
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a worker count (1 or more) or 'auto', got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``reactor-serve`` (errors raise :class:`UsageError`)."""
    p = _Parser(
        prog=PROG,
        description="Serve a registered protocol plugin over TCP or UNIX sockets.",
        epilog="Ctrl-C or SIGTERM stops gracefully; a second signal aborts open connections.",
        allow_abbrev=False,
    )
    p.add_argument("--protocol", metavar="NAME", help="the protocol to serve (see --list)")
    p.add_argument(
        "--port",
        type=_port,
        metavar="N",
        help="TCP port (default: the protocol's default port, else 8000; 0 picks a free port)",
    )
    p.add_argument(
        "--interface",
        type=_interface,
        metavar="ADDR",
        help=f"address to bind (default {DEFAULT_INTERFACE}; 0.0.0.0 or :: opens it to the network)",
    )
    p.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="endpoint string, repeatable: tcp:8000:interface=::1, unix:/tmp/echo.sock",
    )
    p.add_argument("--reactor", metavar="NAME", help="reactor backend (default: the best available)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="protocol option, repeatable (see --protocol NAME --help-options)",
    )
    p.add_argument(
        "--middleware", action="append", default=[], metavar="NAME", help="enable Deferred middleware, repeatable"
    )
    p.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default="info",
        metavar="LEVEL",
        help="debug, info (default), warning, error or critical",
    )
    p.add_argument(
        "--grace",
        type=_number(float, "seconds", 0, False, MAX_SECONDS),
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, how long open connections may finish (default 10)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_number(float, "seconds", 0, True, MAX_SECONDS),
        metavar="SECONDS",
        help="close a connection after this long without receiving data",
    )
    p.add_argument(
        "--message-timeout",
        type=_number(float, "seconds", 0, True, MAX_SECONDS),
        metavar="SECONDS",
        help="framing protocols: close a connection whose line or frame stays incomplete this long",
    )
    p.add_argument(
        "--max-connections",
        type=_number(int, "a connection count", 1, False),
        metavar="N",
        help="accept at most N connections at once; others wait until one closes",
    )
    p.add_argument(
        "--max-connections-per-peer",
        type=_number(int, "a connection count", 1, False),
        metavar="N",
        help="refuse a connection from a host that already has N open",
    )
    p.add_argument(
        "--max-write-buffer",
        type=_number(int, "a byte count", 1, False),
        metavar="BYTES",
        help="abort a connection whose unsent data exceeds BYTES (default 16 MiB)",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        metavar="N|auto",
        help="run N worker processes sharing the port (SO_REUSEPORT, Linux); auto: one per CPU",
    )
    p.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="every connection starts with a PROXY v1/v2 header (from HAProxy or a cloud balancer)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this PEM certificate (chain)")
    p.add_argument(
        "--tls-key", metavar="FILE", help="the PEM private key of --tls-cert (default: in the --tls-cert file)"
    )
    p.add_argument("--list", action="store_true", help="list protocols, reactors, middleware and failed plugins")
    p.add_argument("--help-options", action="store_true", help="with --protocol: list the protocol's options")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


# --- entry point -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``reactor-serve`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    debug = False
    try:
        try:
            args = build_parser().parse_args(argv)
            args.argv = list(sys.argv[1:] if argv is None else argv)
        except SystemExit as e:  # --help
            return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
        debug = args.log_level == "debug"
        _configure_logging(args.log_level)
        return _run(args)
    except UsageError as e:
        return _fail(e, EXIT_USAGE, debug)
    except RuntimeFailure as e:
        return _fail(e, EXIT_RUNTIME, debug)
    except (error.UnknownPluginError, error.PluginOptionError) as e:
        return _fail(e, EXIT_USAGE, debug)
    except (error.ReactorUnavailableError, error.CannotListenError, error.PluginError, OSError) as e:
        return _fail(e, EXIT_RUNTIME, debug)
    except KeyboardInterrupt:  # before the signal handlers are in place
        return _fail("interrupted", 128 + signal.SIGINT, debug)
    except Exception as e:
        return _fail(error.describe_error(e, with_type=True), EXIT_RUNTIME, debug)


def _fail(message: object, status: int, debug: bool) -> int:
    if debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    if isinstance(message, BaseException):
        message = error.describe_error(message)
    text = " ".join(str(message).split("\n")).strip() or "failed"
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)
    return status


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_reactor_serve", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        worker = os.environ.get("REACTOR_SERVE_WORKER")  # set by the --workers supervisor
        where = f" [worker {worker} pid {os.getpid()}]" if worker else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s{where} %(name)s: %(message)s"))
        handler._reactor_serve = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())


def _report(show: Callable[[Any], None]) -> int:
    """Print a listing (``--list``, ``--help-options``, ``--version``) to stdout. A reader that
    went away (``reactor-serve --list | head -1``) ends it quietly, as it would end ``ls``."""
    try:
        show(sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the failed flush again at exit: point stdout at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    if args.version:
        return _report(lambda out: print(f"{PROG} (reactor-framework) {framework.__version__}", file=out))
    if args.list:
        return _report(_print_list)
    if not args.protocol:
        raise UsageError("--protocol NAME is required (reactor-serve --list shows the protocols)")
    from framework import plugins

    if args.help_options:
        entry = plugins.protocols().get(args.protocol)
        return _report(lambda out: _print_options(entry, out))
    raw_options = _parse_options(args.option)
    if args.reactor is not None and not args.reactor.strip():  # not silently the default
        names = ", ".join(plugins.reactors().names()) or "none"
        raise UsageError(f"--reactor needs a backend name, not {args.reactor!r} (available: {names})")
    tls_options = _tls_options(args)  # a bad certificate/key fails here, before listening
    if args.workers is not None:
        from framework import supervisor

        return supervisor.run(args, raw_options)

    # The reactor first: no protocol plugin code may run before the backend is chosen.
    reactor = _install_reactor(args.reactor)
    for name in args.middleware:
        _enable_middleware(name, reactor)
    entry = plugins.protocols().get(args.protocol)
    factory = entry.make_factory(raw_options)

    descriptions = list(args.listen)
    if not descriptions or args.port is not None or args.interface is not None:
        port = args.port
        if port is None:
            port = entry.default_port if entry.default_port is not None else DEFAULT_PORT
        interface = DEFAULT_INTERFACE if args.interface is None else args.interface
        descriptions.insert(0, _tcp_description(port, interface))
    endpoints = _adopted_endpoints(reactor) or [_endpoint(reactor, d) for d in descriptions]
    if args.proxy_protocol:
        from framework.proxyprotocol import proxyEndpoint

        endpoints = [proxyEndpoint(e) for e in endpoints]
    if tls_options is not None:
        from framework.tls import wrapServerTLS

        endpoints = [wrapServerTLS(tls_options, e) for e in endpoints]
    message_timeout = args.message_timeout
    if message_timeout is not None and not supports_message_timeout(factory):
        log.warning(
            "--message-timeout applies to framing (line or frame) protocols only; %r is not one: ignored",
            args.protocol,
        )
        message_timeout = None
    wrapper = ServeFactory(
        factory,
        reactor,
        idle_timeout=args.idle_timeout,
        message_timeout=message_timeout,
        max_connections=args.max_connections,
        max_connections_per_peer=args.max_connections_per_peer,
        max_write_buffer=args.max_write_buffer,
    )
    server = Server(reactor, wrapper, endpoints, grace=args.grace, protocol_name=entry.name)
    return server.run()


# --- pieces of _run ----------------------------------------------------------------------------


def _tls_options(args: argparse.Namespace) -> Any:
    """The server TLS context of ``--tls-cert``/``--tls-key``, or ``None`` without them."""
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if cert is None:
        if key is not None:
            raise UsageError("--tls-key needs --tls-cert")
        return None
    from framework import tls

    try:
        context = tls.serverContext(cert, key)
    except tls.TLSSetupError as e:
        raise UsageError(str(e)) from None
    log.info("TLS on: certificate %s", cert)
    return tls.TLSOptions(context)



def _install_reactor(name: str | None) -> Any:
    try:
        return framework.install_reactor(name)
    except error.ReactorAlreadyInstalledError:
        reactor = framework.installed_reactor()
        if name and reactor is not None and reactor.backend_name != name:
            raise RuntimeFailure(
                f"reactor {reactor.backend_name!r} is already installed in this process; cannot use {name!r}"
            ) from None
        return reactor


def _enable_middleware(name: str, reactor: Any) -> None:
    from framework import middleware, plugins

    middleware.enable(name)
    # Middleware that also tunes the reactor (slow-callbacks) learns which one is in use.
    hook = getattr(plugins.middlewares().get(name).middleware, "reactor_installed", None)
    if callable(hook):
        hook(reactor)


def _parse_options(items: Iterable[str]) -> dict[str, str]:
    """``--option KEY=VALUE`` items as a dict; one option given twice is a usage error, also
    under two spellings (``max-line`` and ``max_line`` are the same option)."""
    from framework.plugins import option_key

    options: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"bad --option {item!r}: expected KEY=VALUE")
        first = spelled.setdefault(option_key(key), key)
        if key in options:
            raise UsageError(f"--option {key} given twice")
        if first != key:
            raise UsageError(f"--option {key} given twice, as {first} and {key} (the same option)")
        options[key] = value
    return options


def _tcp_description(port: int, interface: str) -> str:
    # A server should not leave a burst of clients in SYN retries: the kernel's maximum
    # backlog rather than listenTCP's (Twisted's) default of 50.
    if ":" in interface:
        return f"tcp6:{port}:interface={interface.replace(':', chr(92) + ':')}:backlog={DEFAULT_BACKLOG}"
    return f"tcp:{port}:interface={interface}:backlog={DEFAULT_BACKLOG}"


def _endpoint(reactor: Any, description: str) -> Any:
    from framework import endpoints

    try:
        return endpoints.serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError, error.PluginError) as e:
        raise UsageError(f"bad --listen endpoint {description!r}: {error.describe_error(e)}") from None


def _adopted_endpoints(reactor: Any) -> list[Any]:
    """Endpoints for the sockets passed through ``LISTEN_FDS`` (systemd, ``--workers``)."""
    from framework import systemd

    try:
        adopted = systemd.endpoints_from_environment(reactor)
    except ValueError as e:
        raise UsageError(f"socket activation: {error.describe_error(e)}") from None
    if adopted:
        log.debug("serving %d socket(s) passed through LISTEN_FDS", len(adopted))
    return adopted


# --- --list and --help-options -----------------------------------------------------------------


def _origin(entry: Any) -> str:
    provider = getattr(entry, "provider", None)
    if isinstance(provider, str):
        return provider
    dist = getattr(entry, "distribution", None) or "in code"
    version = getattr(entry, "version", None)
    return f"{dist} {version}" if version else str(dist)


def _print_list(out: Any) -> None:
    from framework import endpoints, plugins

    protocols = plugins.protocols()
    reactors = plugins.reactors()
    middlewares = plugins.middlewares()
    prefixes = endpoints.known_endpoints()  # the core tcp/tcp6/unix and the plugins' ones
    failures = plugins.failures()
    width = max([len(e.name) for reg in (protocols, reactors, middlewares, prefixes) for e in reg]
                + [8])

    def row(name: str, text: str, origin: str) -> str:
        return f"  {name:<{width}}  {text}  [{origin}]"

    print("Protocols (--protocol NAME):", file=out)
    for p in sorted(protocols, key=lambda e: e.name):
        port = f" (default port {p.default_port})" if p.default_port is not None else ""
        print(row(p.name, (p.description or "-") + port, _origin(p)), file=out)
    best = None
    try:
        best = reactors.best().name
    except Exception:
        pass
    print("Reactors (--reactor NAME):", file=out)
    for r in sorted(reactors, key=lambda e: e.name):
        reason = r.availability()
        state = "available" if reason is None else f"unavailable: {reason}"
        if r.name == best:
            state += ", default"
        print(row(r.name, f"{r.description or '-'} ({state})", _origin(r)), file=out)
    print("Middleware (--middleware NAME):", file=out)
    for m in sorted(middlewares, key=lambda e: e.name):
        print(row(m.name, m.description or "-", _origin(m)), file=out)
    print("Endpoints (--listen PREFIX:...):", file=out)
    for e in prefixes:
        print(row(e.name, f"{e.description or '-'} ({e.sides})", _origin(e)), file=out)
    if failures:
        print("Plugins that failed to load:", file=out)
        for f in failures:
            origin = _origin(f)
            print(f"  {f.plugin}  [{origin}]: {f.reason}", file=out)


def _print_options(entry: Any, out: Any) -> None:
    options = list(getattr(entry, "options", ()))
    if not options:
        print(f"Protocol {entry.name!r} takes no options.", file=out)
        return
    print(f"Options of protocol {entry.name!r} (--option KEY=VALUE):", file=out)
    rows = []
    for o in options:
        kind = str(getattr(o, "type_name", None) or getattr(o.type, "__name__", o.type))
        extra = " (required)" if o.required else ("" if o.default is None else f" (default: {o.default})")
        rows.append((f"{o.name}={kind.upper()}", f"{o.help}{extra}"))
    width = max(len(key) for key, _ in rows)
    for key, text in rows:
        print(f"  {key:<{width}}  {text}", file=out)


# --- the serving machinery ---------------------------------------------------------------------


class ServeFactory(PolicyFactory):
    """The factory ``reactor-serve`` listens with: a :class:`framework.policies.PolicyFactory`
    (timeouts, connection limits) whose ``connections``, ``accepting``, ``on_empty`` and
    ``abort_all`` let :class:`Server` drain or abort on shutdown."""


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
    ) -> None:
        self.reactor = reactor
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
        self._grace_call: Any = None
        self._stop_scheduled = False
        self._signals: deque[int] = deque()
        self._waker: SignalWaker | None = None
        self._old_handlers: dict[int, Any] = {}

    def run(self) -> int:
        self._install_signals()
        try:
            self.reactor.callWhenRunning(self._start)
            self.reactor.run(installSignalHandlers=False)
        finally:
            self._restore_signals()
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
        socket_error = getattr(exc, "socketError", None)
        if isinstance(socket_error, OSError) and socket_error.errno in (errno.EACCES, errno.EPERM):
            exc = RuntimeFailure(f"{exc} (ports below 1024 need privileges: try --port 8000 or --port 0)")
        self.failure = exc
        for port in self.ports:
            port.stopListening()
        self.ports = []
        self._stop_reactor()

    def _listening(self, ports: list[Any]) -> None:
        self.ports = list(ports)
        self.factory.ports = self.ports
        addresses = []
        for port in self.ports:
            address = port.getHost()
            addresses.append(format_address(address))
            if getattr(address, "host", None) in ("0.0.0.0", "::", ""):
                log.warning(
                    "listening on all interfaces (%s): reachable from other machines", format_address(address)
                )
        print(
            f"{PROG}: serving {self.protocol_name} on {', '.join(addresses)} "
            f"(reactor {self.reactor.backend_name})",
            file=self.out,
            flush=True,
        )
        from framework import systemd

        systemd.notify("READY=1")  # systemd Type=notify; nothing without $NOTIFY_SOCKET
        if self._signals:
            self._handle_signals()

    # signals: the handler only queues the number and wakes the reactor through a pipe

    def _install_signals(self) -> None:
        self._waker = SignalWaker(self._handle_signals)
        self.reactor.addReader(self._waker)
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: the caller handles signals
                break

    def _restore_signals(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()
        if self._waker is not None:
            try:
                self.reactor.removeReader(self._waker)
            except Exception:
                pass
            self._waker.close()
            self._waker = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)
        if self._waker is not None:
            self._waker.wake()

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
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


class SignalWaker:
    """A self-pipe the reactor reads: a signal handler queues its signal and calls ``wake()``
    so the loop wakes at once; the reactor then calls ``handle()`` on its own thread.
    Shared by ``reactor-serve`` and the ``--workers`` supervisor."""

    def __init__(self, handle: Callable[[], None], name: str = "reactor-serve signals") -> None:
        self.handle = handle
        self.name = name
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)

    def fileno(self) -> int:
        return self.r

    def wake(self) -> None:
        try:
            os.write(self.w, b"\0")
        except OSError:  # the pipe is full: a wake-up is already pending
            pass

    def doRead(self) -> None:
        try:
            while os.read(self.r, 512):
                pass
        except OSError:
            pass
        self.handle()

    def connectionLost(self, reason: Any) -> None:
        pass

    def logPrefix(self) -> str:
        return self.name

    def close(self) -> None:
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass
