"""The four plugin registries and their entries: protocols, reactor backends, Deferred
middleware and endpoint-string prefixes.

A registry is a plain dictionary underneath: looking a name up never calls pluggy. The
registries are filled by the ``register_*`` hooks (see ``framework.hookspecs``); which plugin
is registering right now (for listings and for "registered twice" errors naming both
distributions) is set by the loader in ``framework.plugins`` through :class:`PluginContext`.

Imports ``framework.error``, ``framework.options`` and ``framework.protocol``; never the
loader, never a transport. Every public name here is also importable from ``framework.plugins``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from framework.version import __version__
from framework import error, protocol
from framework.options import Option, close_match, describe_source, option_key

__all__ = [
    "CORE_ENDPOINT_PREFIXES",
    "DISABLE_ENV",
    "EndpointEntry",
    "EndpointParser",
    "EndpointRegistry",
    "MiddlewareEntry",
    "MiddlewareRegistry",
    "PluginContext",
    "ProtocolEntry",
    "ProtocolRegistry",
    "ReactorEntry",
    "ReactorRegistry",
    "Registry",
]

DISABLE_ENV = "REACTOR_FRAMEWORK_DISABLE_PLUGINS"

#: The endpoint prefixes ``framework.endpoints`` itself parses; no plugin may register them.
CORE_ENDPOINT_PREFIXES = ("tcp", "tcp6", "unix")

#: An endpoint-string parser: ``parser(reactor, *args, **kwargs) -> endpoint``, called with the
#: description's positional and ``key=value`` fields (after the prefix) as strings.
EndpointParser = Callable[..., Any]


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    name: str
    description: str = ""
    #: The entry-point name of the plugin that added this entry (or its in-code name).
    plugin: str | None = None
    #: The providing distribution's name and version; ``None`` for plugins registered in code.
    distribution: str | None = None
    version: str | None = None

    @property
    def provider(self) -> str:
        """``"<distribution> <version>"``, or ``"(in code)"``, for listings."""
        return describe_source(self.distribution, self.version)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolEntry(_Entry):
    """A protocol a server can serve, and how to build its factory."""

    maker: Any
    default_port: int | None = None
    options: tuple[Option, ...] = ()

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        raise KeyError(name)

    def parse_options(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and convert ``raw`` (``{"name": "text"}``; dashes in names allowed) into
        the keyword arguments for the maker. Raises ``PluginOptionError`` (one line), also
        when one option is given under two spellings (``max-line`` and ``max_line``)."""
        known = {option.name: option for option in self.options}
        values: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for key, text in raw.items():
            option = known.get(option_key(key)) if isinstance(key, str) else None
            if option is None:
                raise error.PluginOptionError(self._unknown_option(key))
            first = spelled.setdefault(option.name, key)
            if first != key:
                raise error.PluginOptionError(
                    f"option {option.name!r} of protocol {self.name!r} given twice "
                    f"(as {first!r} and {key!r})"
                )
            try:
                values[option.name] = option.parse(text)
            except ValueError as exc:
                raise error.PluginOptionError(
                    f"bad value {text!r} for option {option.name!r} of protocol "
                    f"{self.name!r}: {exc}"
                ) from None
        missing = [o.name for o in self.options if o.required and o.name not in values]
        if missing:
            raise error.PluginOptionError(
                f"protocol {self.name!r} requires option{'s' if len(missing) > 1 else ''} "
                + ", ".join(missing)
                + " (--option NAME=VALUE)"
            )
        for option in self.options:
            if option.name not in values and option.default is not None:
                values[option.name] = option.default
        return values

    def _unknown_option(self, key: object) -> str:
        if not self.options:
            return f"protocol {self.name!r} takes no options (got {key!r})"
        names = [o.name for o in self.options]
        text = f"protocol {self.name!r} has no option {key!r}"
        match = close_match(option_key(str(key)), names)
        if match:
            text += f"; did you mean {match!r}?"
        return f"{text} (options: {', '.join(names)})"

    def make_factory(self, raw: Mapping[str, Any] | None = None) -> Any:
        """Validate ``raw`` options and build the protocol factory.

        Raises ``framework.error.PluginOptionError`` for an unknown option, a bad value, a
        missing required option, or a ``ValueError``/``OSError`` from the maker itself (e.g.
        a file option naming a file that does not exist).
        """
        kwargs = self.parse_options(raw or {})
        maker = self.maker
        if isinstance(maker, type) and issubclass(maker, protocol.Protocol):
            if kwargs:
                raise error.PluginOptionError(self._unknown_option(next(iter(kwargs))))
            return protocol.Factory.forProtocol(maker)
        if not isinstance(maker, type) and hasattr(maker, "buildProtocol"):
            if kwargs:
                raise error.PluginOptionError(self._unknown_option(next(iter(kwargs))))
            return maker
        try:
            return maker(**kwargs)
        except error.PluginOptionError:
            raise
        except (ValueError, OSError) as exc:
            raise error.PluginOptionError(f"protocol {self.name!r}: {exc}") from exc
        except TypeError as exc:
            if "unexpected keyword argument" not in str(exc):
                raise
            # A declared option the maker does not take: the plugin's mistake, said plainly.
            raise error.PluginOptionError(
                f"protocol {self.name!r}: its maker does not take a declared option ({exc})") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactorEntry(_Entry):
    """A reactor backend: ``factory()`` builds its ``Multiplexer``."""

    factory: Callable[[], Any]
    priority: int = 0
    available: Any = None

    def availability(self) -> str | None:
        """``None`` if the backend can run here, else the reason it cannot."""
        check = self.available
        if check is None:
            return None
        try:
            result = check() if callable(check) else check
        except Exception as exc:
            return f"its availability check failed: {type(exc).__name__}: {exc}"
        if isinstance(result, str) and result:
            return result
        if result:
            return None
        return "not available on this system"

    def is_available(self) -> bool:
        return self.availability() is None


@dataclass(frozen=True, slots=True, kw_only=True)
class MiddlewareEntry(_Entry):
    """A Deferred middleware (an object with ``wrap_callback``)."""

    middleware: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointEntry(_Entry):
    """An endpoint-string prefix (``name``) and its server and/or client parser.

    A parser is called as ``parser(reactor, *args, **kwargs)`` with the fields that follow the
    prefix, as strings, and returns the endpoint; ``None`` means the prefix has no such side.
    """

    server: EndpointParser | None = None
    client: EndpointParser | None = None

    @property
    def sides(self) -> str:
        """``"server, client"``, ``"server"`` or ``"client"``, for listings."""
        return ", ".join(side for side, parser in (("server", self.server), ("client", self.client))
                         if parser is not None)


# --------------------------------------------------------------------------- registries


class PluginContext:
    """Which plugin is registering right now, and what it added (for rollback). Set on every
    registry's ``context`` by the loader for the time of one plugin's registration."""

    __slots__ = ("plugin", "distribution", "version", "added")

    def __init__(self, plugin: str | None, distribution: str | None, version: str | None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.version = version
        self.added: list[tuple[Registry[Any], str]] = []


_E = TypeVar("_E", bound=_Entry)


class Registry(Generic[_E]):
    """The shared behaviour of the registries: lookups with clear errors, iteration in name
    order, and "registered twice" errors naming both plugins and their distributions."""

    kind: ClassVar[str] = "plugin"

    __slots__ = ("_entries", "context", "_disabled")

    def __init__(self, disabled: Sequence[str] | None = None) -> None:
        self._entries: dict[str, _E] = {}
        #: The plugin registering right now (set by ``framework.plugins``), else ``None``.
        self.context: PluginContext | None = None
        # The entry points disabled by $REACTOR_FRAMEWORK_DISABLE_PLUGINS, for error messages
        # (the loader's own list, filled while it discovers).
        self._disabled: Sequence[str] = disabled if disabled is not None else ()

    def _origin(self) -> dict[str, Any]:
        ctx = self.context
        if ctx is None:
            return {"plugin": None, "distribution": None, "version": None}
        return {"plugin": ctx.plugin, "distribution": ctx.distribution, "version": ctx.version}

    def _check_name(self, name: object) -> None:
        if not isinstance(name, str) or not name or name != name.strip() or "," in name:
            raise ValueError(f"{self.kind} name must be a non-empty string without commas or "
                             f"surrounding spaces, not {name!r}")

    def _duplicate(self, first: _Entry, entry: _Entry) -> error.DuplicatePluginError:
        exc = error.DuplicatePluginError(
            f"{self.kind} {entry.name!r} is registered twice: first by plugin "
            f"{first.plugin!r} from {first.provider}, again by plugin {entry.plugin!r} "
            f"from {entry.provider}"
        )
        exc.name = entry.name  # type: ignore[attr-defined]
        exc.first = first  # type: ignore[attr-defined]
        exc.second = entry  # type: ignore[attr-defined]
        return exc

    def _add(self, entry: _E) -> _E:
        first = self._entries.get(entry.name)
        if first is not None:
            raise self._duplicate(first, entry)
        self._entries[entry.name] = entry
        if self.context is not None:
            self.context.added.append((self, entry.name))
        return entry

    def remove(self, name: str) -> None:
        """Forget ``name`` (nothing happens if it is not registered)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> _E:
        """The entry called ``name``; ``UnknownPluginError`` (with the available names and a
        close match) if there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self._unknown(name) from None

    __getitem__ = get

    def _unknown(self, name: object) -> error.UnknownPluginError:
        names = self.names()
        text = f"unknown {self.kind} {name!r}"
        match = close_match(name, names) if isinstance(name, str) else None
        if match:
            text += f"; did you mean {match!r}?"
        text += f" (available: {', '.join(names) if names else 'none'})"
        if name in self._disabled:
            text += f"; the entry point {name!r} is disabled by ${DISABLE_ENV}"
        exc = error.UnknownPluginError(text)
        exc.name = name  # type: ignore[attr-defined]
        exc.available = names  # type: ignore[attr-defined]
        exc.suggestion = match  # type: ignore[attr-defined]
        return exc

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __iter__(self) -> Iterator[_E]:
        entries = self._entries
        return iter([entries[name] for name in sorted(entries)])

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.names()}>"


class ProtocolRegistry(Registry[ProtocolEntry]):
    """Protocols by name, filled by ``register_protocols`` hooks."""

    kind = "protocol"
    __slots__ = ()

    def add(
        self,
        name: str,
        maker: Any,
        *,
        description: str = "",
        default_port: int | None = None,
        options: Sequence[Option] = (),
    ) -> ProtocolEntry:
        self._check_name(name)
        if maker is None or not (callable(maker) or hasattr(maker, "buildProtocol")):
            raise TypeError(
                f"protocol {name!r}: maker must be a callable, a Factory or Protocol subclass, "
                f"or a factory instance, not {maker!r}"
            )
        if default_port is not None and (
            isinstance(default_port, bool)
            or not isinstance(default_port, int)
            or not 0 <= default_port <= 65535
        ):
            raise ValueError(f"protocol {name!r}: default_port must be 0..65535, not {default_port!r}")
        opts = tuple(options)
        seen: set[str] = set()
        for option in opts:
            if not isinstance(option, Option):
                raise TypeError(f"protocol {name!r}: options must be Option objects, not {option!r}")
            if option.name in seen:
                raise ValueError(f"protocol {name!r}: option {option.name!r} declared twice")
            seen.add(option.name)
        if opts and not isinstance(maker, type) and hasattr(maker, "buildProtocol"):
            raise ValueError(f"protocol {name!r}: a ready factory instance cannot take options")
        if opts and isinstance(maker, type) and issubclass(maker, protocol.Protocol):
            raise ValueError(f"protocol {name!r}: a Protocol subclass cannot take options; "
                             "register a Factory class or a function that takes them")
        entry = ProtocolEntry(
            name=name,
            maker=maker,
            description=description,
            default_port=default_port,
            options=opts,
            **self._origin(),
        )
        return self._add(entry)


class ReactorRegistry(Registry[ReactorEntry]):
    """Reactor backends by name, filled by ``register_reactors`` hooks."""

    kind = "reactor backend"
    __slots__ = ()

    def add(
        self,
        name: str,
        factory: Callable[[], Any],
        *,
        description: str = "",
        available: Any = None,
        priority: int = 0,
    ) -> ReactorEntry:
        self._check_name(name)
        if not callable(factory):
            raise TypeError(f"reactor backend {name!r}: factory must be a Multiplexer class, not {factory!r}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"reactor backend {name!r}: priority must be an int, not {priority!r}")
        entry = ReactorEntry(
            name=name,
            factory=factory,
            description=description,
            available=available,
            priority=priority,
            **self._origin(),
        )
        return self._add(entry)

    def best(self) -> ReactorEntry:
        """The available backend with the highest priority (ties: first by name)."""
        best: ReactorEntry | None = None
        reasons = []
        for entry in self:
            reason = entry.availability()
            if reason is not None:
                reasons.append(f"{entry.name}: {reason}")
            elif best is None or entry.priority > best.priority:
                best = entry
        if best is None:
            raise error.ReactorUnavailableError(
                "no reactor backend is available"
                + (f" ({'; '.join(reasons)})" if reasons else " (none is registered)")
            )
        return best


class MiddlewareRegistry(Registry[MiddlewareEntry]):
    """Deferred middleware by name, filled by ``register_deferred_middleware`` hooks."""

    kind = "middleware"
    __slots__ = ()

    def add(self, name: str, middleware: Any, *, description: str = "") -> MiddlewareEntry:
        self._check_name(name)
        if not callable(getattr(middleware, "wrap_callback", None)):
            raise TypeError(
                f"middleware {name!r}: {middleware!r} has no wrap_callback(callback) method"
            )
        entry = MiddlewareEntry(
            name=name, middleware=middleware, description=description, **self._origin()
        )
        return self._add(entry)


_PREFIX = re.compile(r"[a-z][a-z0-9_.+-]*")


class EndpointRegistry(Registry[EndpointEntry]):
    """Endpoint-string prefixes by name, filled by ``register_endpoints`` hooks.

    ``serverFromString``/``clientFromString`` (and ``reactor-serve --listen``) look a
    description's prefix up here after the core ones (:data:`CORE_ENDPOINT_PREFIXES`, parsed
    by ``framework.endpoints`` itself, which no plugin may take over).
    """

    kind = "endpoint prefix"
    __slots__ = ()

    def _check_name(self, name: object) -> None:
        if not isinstance(name, str) or not _PREFIX.fullmatch(name):
            raise ValueError(
                f"endpoint prefix must be lower-case letters, digits and '_.+-', starting with a "
                f"letter (it is matched case-insensitively), not {name!r}"
            )

    def add(
        self,
        prefix: str,
        *,
        server: EndpointParser | None = None,
        client: EndpointParser | None = None,
        description: str = "",
    ) -> EndpointEntry:
        """Add ``prefix`` with its server and/or client parser (at least one)."""
        self._check_name(prefix)
        for side, parser in (("server", server), ("client", client)):
            if parser is not None and not callable(parser):
                raise TypeError(f"endpoint prefix {prefix!r}: the {side} parser must be callable, "
                                f"not {parser!r}")
        if server is None and client is None:
            raise TypeError(f"endpoint prefix {prefix!r}: give a server parser, a client parser, "
                            "or both")
        entry = EndpointEntry(
            name=prefix, server=server, client=client, description=description, **self._origin()
        )
        if prefix in CORE_ENDPOINT_PREFIXES:
            core = EndpointEntry(name=prefix, plugin="framework.endpoints",
                                 distribution="reactor-framework", version=__version__)
            raise self._duplicate(core, entry)
        return self._add(entry)
