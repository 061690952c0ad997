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
import logging
import os
import signal
import sys
import traceback
from typing import Any, Callable, Iterable, NoReturn, Sequence

import framework
from framework import endpoints, error, plugins, supervisor
from framework.address import isIPAddress, isIPv6Address
from framework.logger import JSONFormatter
from framework.serving import (
    DEFAULT_GRACE,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_INTERFACE,
    DEFAULT_PORT,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_USAGE,
    PROG,
    RuntimeFailure,
    ServeConfig,
    ServeFactory,
    Server,
    UsageError,
    serve,
)

__all__ = ["RuntimeFailure", "ServeFactory", "Server", "UsageError", "build_parser", "config_from_args", "main"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")

log = logging.getLogger("framework.cli")


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
        "--log-format",
        type=str.lower,
        choices=LOG_FORMATS,
        default="text",
        metavar="FORMAT",
        help="text (default) or json: one JSON object per log record, for log collectors",
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
        "--handshake-timeout",
        type=_number(float, "seconds", 0, True, MAX_SECONDS),
        metavar="SECONDS",
        help=f"with --proxy-protocol or --tls-cert: close a connection whose PROXY header or TLS handshake "
        f"is not complete this long after accept (default {DEFAULT_HANDSHAKE_TIMEOUT:g}, at most --idle-timeout)",
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
        "--max-write-buffer-total",
        type=_number(int, "a byte count", 1, False),
        metavar="BYTES",
        help="budget for the unsent data of all connections: over it, abort those that do not read",
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
        _configure_logging(args.log_level, args.log_format)
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


def _configure_logging(level: str, fmt: str = "text") -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_reactor_serve", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        worker = os.environ.get("REACTOR_SERVE_WORKER")  # set by the --workers supervisor
        if fmt == "json":
            handler.setFormatter(JSONFormatter(worker=int(worker) if worker else None))
        else:
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
    if args.help_options:
        entry = plugins.protocols().get(args.protocol)
        return _report(lambda out: _print_options(entry, out))
    config = config_from_args(args)
    if config.workers is not None:
        return supervisor.run(config)
    return serve(config)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """The :class:`framework.serving.ServeConfig` of parsed ``reactor-serve`` arguments."""
    options = _parse_options(args.option)
    if args.reactor is not None and not args.reactor.strip():  # not silently the default
        names = ", ".join(plugins.reactors().names()) or "none"
        raise UsageError(f"--reactor needs a backend name, not {args.reactor!r} (available: {names})")
    return ServeConfig(
        protocol=args.protocol,
        options=options,
        listen=list(args.listen),
        port=args.port,
        interface=args.interface,
        reactor=args.reactor,
        middleware=list(args.middleware),
        grace=args.grace,
        idle_timeout=args.idle_timeout,
        message_timeout=args.message_timeout,
        handshake_timeout=args.handshake_timeout,
        max_connections=args.max_connections,
        max_connections_per_peer=args.max_connections_per_peer,
        max_write_buffer=args.max_write_buffer,
        max_write_buffer_total=args.max_write_buffer_total,
        proxy_protocol=args.proxy_protocol,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        workers=args.workers,
        argv=list(getattr(args, "argv", None) or []) or None,
    )


# --- pieces of _run ----------------------------------------------------------------------------


def _parse_options(items: Iterable[str]) -> dict[str, str]:
    """``--option KEY=VALUE`` items as a dict; one option given twice is a usage error, also
    under two spellings (``max-line`` and ``max_line`` are the same option)."""
    option_key = plugins.option_key
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


# --- --list and --help-options -----------------------------------------------------------------


def _origin(entry: Any) -> str:
    provider = getattr(entry, "provider", None)
    if isinstance(provider, str):
        return provider
    dist = getattr(entry, "distribution", None) or "in code"
    version = getattr(entry, "version", None)
    return f"{dist} {version}" if version else str(dist)


def _print_list(out: Any) -> None:
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
