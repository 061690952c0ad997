"""The plugin manager and the three registries (protocols, reactor backends, middleware).

Plugins are found through the ``reactor_framework`` entry-point group the first time a
registry is asked for (never at ``import framework``), loaded one entry point at a time in a
fixed order (distribution name, then entry-point name), and registered with pluggy; their
``register_*`` hooks fill the registries. A plugin that fails to import or register is logged,
recorded in :func:`failures` and skipped, unless ``REACTOR_FRAMEWORK_STRICT_PLUGINS=1``.

Registries are plain dictionaries underneath: looking a name up never calls pluggy.
"""

from __future__ import annotations

import difflib
import logging
import os
import pathlib
import re
import threading
from importlib import metadata as importlib_metadata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import pluggy

from framework import error, hookspecs

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "IN_CODE",
    "STRICT_ENV",
    "MiddlewareEntry",
    "MiddlewareRegistry",
    "Option",
    "PluginFailure",
    "ProtocolEntry",
    "ProtocolRegistry",
    "ReactorEntry",
    "ReactorRegistry",
    "disabled",
    "failures",
    "middlewares",
    "option_key",
    "plugin_manager",
    "protocols",
    "reactors",
    "register",
    "reset",
    "unregister",
]

log = logging.getLogger("framework.plugins")

ENTRY_POINT_GROUP = "reactor_framework"
DISABLE_ENV = "REACTOR_FRAMEWORK_DISABLE_PLUGINS"
STRICT_ENV = "REACTOR_FRAMEWORK_STRICT_PLUGINS"
#: What listings show as the distribution of a plugin registered in code.
IN_CODE = "(in code)"

_TRUE = frozenset({"1", "true", "yes", "y", "on", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "off", "f"})


def _describe_source(distribution: str | None, version: str | None) -> str:
    if distribution is None:
        return IN_CODE
    return f"{distribution} {version}" if version else distribution


def _close_match(name: str, names: Sequence[str]) -> str | None:
    if not isinstance(name, str):
        return None
    lowered = {n.lower(): n for n in names}
    if name.lower() in lowered:
        return lowered[name.lower()]
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[matches[0]] if matches else None


# --------------------------------------------------------------------------- options


def option_key(name: str) -> str:
    """The option a user-given name means: dashes and underscores are the same
    (``max-line`` is ``max_line``)."""
    return name.replace("-", "_")


@dataclass(frozen=True, slots=True)
class Option:
    """One option a protocol accepts (``reactor-serve --option NAME=VALUE``).

    ``type`` converts the text: ``str``, ``int``, ``float``, ``bool`` (true/false, yes/no,
    on/off, 1/0), a ``pathlib.Path`` class (not checked for existence: that is the
    protocol's job), or any callable that raises ``ValueError`` on bad text.
    """

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    required: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"option name must be a Python identifier, not {self.name!r}")
        if not callable(self.type):
            raise TypeError(f"option {self.name!r}: type must be callable, not {self.type!r}")

    @property
    def type_name(self) -> str:
        """A short name of the expected type, for help text."""
        kind = self.type
        if isinstance(kind, type) and issubclass(kind, pathlib.PurePath):
            return "path"
        return getattr(kind, "__name__", repr(kind))

    def parse(self, raw: Any) -> Any:
        """Convert ``raw`` (normally text) to the option's type; ``ValueError`` with a short
        reason when it does not fit."""
        kind = self.type
        if not isinstance(raw, str):
            if isinstance(kind, type) and isinstance(raw, kind) and not (
                kind is int and isinstance(raw, bool)
            ):
                return raw  # already converted (options given in code)
            raw = str(raw)
        if kind is str:
            return raw
        text = raw.strip()
        if kind is bool:
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected a boolean (true/false, yes/no, on/off, 1/0)")
        if kind is int:
            try:
                return int(text)
            except ValueError:
                raise ValueError("expected an integer") from None
        if kind is float:
            try:
                return float(text)
            except ValueError:
                raise ValueError("expected a number") from None
        if isinstance(kind, type) and issubclass(kind, pathlib.PurePath):
            if not text:
                raise ValueError("expected a file path, got an empty string")
            if "\0" in text:
                raise ValueError("a file path cannot contain a NUL character")
            path: Any = kind(text)
            return path.expanduser() if isinstance(path, pathlib.Path) else path
        convert: Callable[[str], Any] = self.type
        try:
            return convert(raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc) or f"not a valid {self.type_name}") from None

    def describe(self) -> str:
        """One line for listings: ``name (type[, required][, default X]): help``."""
        bits = [self.type_name]
        if self.required:
            bits.append("required")
        elif self.default is not None:
            bits.append(f"default {self.default!r}")
        text = f"{self.name} ({', '.join(bits)})"
        return f"{text}: {self.help}" if self.help else text


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
        return _describe_source(self.distribution, self.version)


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
        match = _close_match(option_key(str(key)), names)
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
        from framework import protocol  # lazy: the registry must not import the core eagerly

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


# --------------------------------------------------------------------------- registries


class _Context:
    """Which plugin is registering right now, and what it added (for rollback)."""

    __slots__ = ("plugin", "distribution", "version", "added")

    def __init__(self, plugin: str | None, distribution: str | None, version: str | None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.version = version
        self.added: list[tuple[_Registry[Any], str]] = []


_E = TypeVar("_E", bound=_Entry)


class _Registry(Generic[_E]):
    kind: ClassVar[str] = "plugin"

    __slots__ = ("_entries", "_context")

    def __init__(self) -> None:
        self._entries: dict[str, _E] = {}
        self._context: _Context | None = None

    def _origin(self) -> dict[str, Any]:
        ctx = self._context
        if ctx is None:
            return {"plugin": None, "distribution": None, "version": None}
        return {"plugin": ctx.plugin, "distribution": ctx.distribution, "version": ctx.version}

    def _check_name(self, name: object) -> None:
        if not isinstance(name, str) or not name or name != name.strip() or "," in name:
            raise ValueError(f"{self.kind} name must be a non-empty string without commas or "
                             f"surrounding spaces, not {name!r}")

    def _add(self, entry: _E) -> _E:
        first = self._entries.get(entry.name)
        if first is not None:
            exc = error.DuplicatePluginError(
                f"{self.kind} {entry.name!r} is registered twice: first by plugin "
                f"{first.plugin!r} from {first.provider}, again by plugin {entry.plugin!r} "
                f"from {entry.provider}"
            )
            exc.name = entry.name  # type: ignore[attr-defined]
            exc.first = first  # type: ignore[attr-defined]
            exc.second = entry  # type: ignore[attr-defined]
            raise exc
        self._entries[entry.name] = entry
        if self._context is not None:
            self._context.added.append((self, entry.name))
        return entry

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
        match = _close_match(name, names) if isinstance(name, str) else None
        if match:
            text += f"; did you mean {match!r}?"
        text += f" (available: {', '.join(names) if names else 'none'})"
        state = _state
        if state is not None and name in state.disabled and self in (
            state.protocols, state.reactors, state.middlewares
        ):
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


class ProtocolRegistry(_Registry[ProtocolEntry]):
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
        if opts and isinstance(maker, type):
            from framework import protocol

            if issubclass(maker, protocol.Protocol):
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


class ReactorRegistry(_Registry[ReactorEntry]):
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


class MiddlewareRegistry(_Registry[MiddlewareEntry]):
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


# --------------------------------------------------------------------------- failures


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plugin that could not be loaded or registered, and was skipped."""

    plugin: str
    distribution: str | None
    version: str | None
    error: BaseException

    @property
    def provider(self) -> str:
        return _describe_source(self.distribution, self.version)

    @property
    def reason(self) -> str:
        """The error on one line with its type: ``"ModuleNotFoundError: No module named 'x'"``
        (the type alone when the exception has no message)."""
        kind = type(self.error).__name__
        try:
            text = " ".join(line.strip() for line in str(self.error).splitlines()).strip()
        except Exception:  # a plugin's exception with a broken __str__
            text = "(unprintable exception)"
        return f"{kind}: {text}" if text else kind

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} from {self.provider}: {self.reason}"


# --------------------------------------------------------------------------- manager


class _State:
    __slots__ = ("pm", "protocols", "reactors", "middlewares", "failures", "disabled",
                 "owned", "ready")

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.protocols = ProtocolRegistry()
        self.reactors = ReactorRegistry()
        self.middlewares = MiddlewareRegistry()
        self.failures: list[PluginFailure] = []
        self.disabled: list[str] = []
        #: pluggy plugin name -> the (registry, name) pairs it added
        self.owned: dict[str, list[tuple[_Registry[Any], str]]] = {}
        self.ready = False
        hook = self.pm.hook
        # Historic calls: every plugin registered from now on gets its hooks called once,
        # at registration, with these registries.
        hook.register_protocols.call_historic(kwargs={"registry": self.protocols})
        hook.register_reactors.call_historic(kwargs={"registry": self.reactors})
        hook.register_deferred_middleware.call_historic(kwargs={"registry": self.middlewares})

    @property
    def registries(self) -> tuple[_Registry[Any], ...]:
        return (self.protocols, self.reactors, self.middlewares)


_lock = threading.RLock()
_state: _State | None = None


def _get() -> _State:
    state = _state
    if state is not None and state.ready:
        return state
    return _load()


def _load() -> _State:
    global _state
    with _lock:
        state = _state
        if state is None:
            state = _state = _State()  # visible before discovery: a plugin may look things up
            try:
                _discover(state)
            except BaseException:
                _state = None  # strict mode: fail again on the next call, do not half-work
                raise
            state.ready = True
        return state


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in _TRUE


def _disabled_names() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_of(ep: Any) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    try:
        name = dist.name
    except Exception:
        name = None
    try:
        version = dist.version
    except Exception:
        version = None
    return name or getattr(dist, "_normalized_name", None) or "(unknown distribution)", version


def _discover(state: _State) -> None:
    strict = _strict()
    disabled = _disabled_names()
    found = []
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist, version = _dist_of(ep)
        found.append((_normalize(dist or ""), ep.name, ep.value, ep, dist, version))
    found.sort(key=lambda item: item[:3])
    for _key, name, value, ep, dist, version in found:
        if name in disabled:
            log.debug("plugin %r from %s disabled by %s", name, _describe_source(dist, version),
                     DISABLE_ENV)
            state.disabled.append(name)
            continue
        try:
            obj = ep.load()
        except (Exception, SystemExit) as exc:
            _failed(state, name, dist, version, exc, strict, "import")
            continue
        pm_name = name if not state.pm.has_plugin(name) else f"{dist}:{name}"
        try:
            _register(state, obj, pm_name, name, dist, version)
        except (Exception, SystemExit) as exc:
            _failed(state, name, dist, version, exc, strict, "register")
            continue
        log.debug("loaded plugin %r (%s) from %s", name, value, _describe_source(dist, version))


def _failed(
    state: _State,
    plugin: str,
    dist: str | None,
    version: str | None,
    exc: BaseException,
    strict: bool,
    stage: str,
) -> None:
    source = _describe_source(dist, version)
    if strict:
        if isinstance(exc, error.DuplicatePluginError):
            raise exc
        raise error.PluginError(
            f"plugin {plugin!r} from {source} failed to {stage}: {type(exc).__name__}: {exc} "
            f"(fatal because {STRICT_ENV} is set)"
        ) from exc
    log.warning(
        "plugin %r from %s failed to %s and was skipped: %s: %s",
        plugin, source, stage, type(exc).__name__, "; ".join(str(exc).splitlines()),
    )
    log.debug("traceback of plugin %r failure", plugin, exc_info=exc)
    state.failures.append(PluginFailure(plugin, dist, version, exc))


def _register(
    state: _State,
    obj: Any,
    pm_name: str,
    plugin: str,
    dist: str | None,
    version: str | None,
) -> None:
    """Register ``obj`` with pluggy (which calls its hooks); on any error leave no trace."""
    pm = state.pm
    if obj is None:
        raise error.PluginError("the entry point resolved to None")
    if pm.is_registered(obj):
        other = pm.get_name(obj)
        raise error.PluginError(f"the same plugin object is already registered as {other!r}")
    ctx = _Context(plugin, dist, version)
    for registry in state.registries:
        registry._context = ctx
    try:
        pm.register(obj, name=pm_name)
        _check_hooks(pm, obj, plugin)
    except BaseException:
        for registry, name in ctx.added:
            registry._entries.pop(name, None)
        if pm.is_registered(obj):
            pm.unregister(obj)
        raise
    finally:
        for registry in state.registries:
            registry._context = None
    state.owned[pm_name] = ctx.added


def _check_hooks(pm: pluggy.PluginManager, obj: Any, plugin: str) -> None:
    callers = pm.get_hookcallers(obj) or []
    if not callers:
        raise error.PluginError(
            f"plugin {plugin!r} implements no hook: mark its functions with "
            f"@framework.hookimpl ({', '.join(hookspecs.HOOK_NAMES)})"
        )
    for caller in callers:
        if caller.has_spec():
            continue
        if any(impl.plugin is obj and not impl.optionalhook for impl in caller.get_hookimpls()):
            text = f"plugin {plugin!r} implements unknown hook {caller.name!r}"
            match = _close_match(caller.name, hookspecs.HOOK_NAMES)
            if match:
                text += f"; did you mean {match!r}?"
            raise error.PluginError(text)


# --------------------------------------------------------------------------- public API


def protocols() -> ProtocolRegistry:
    """The protocol registry (discovers plugins on first call)."""
    return _get().protocols


def reactors() -> ReactorRegistry:
    """The reactor backend registry (discovers plugins on first call)."""
    return _get().reactors


def middlewares() -> MiddlewareRegistry:
    """The Deferred middleware registry (discovers plugins on first call)."""
    return _get().middlewares


def failures() -> list[PluginFailure]:
    """The plugins that failed to import or register and were skipped, in load order."""
    return list(_get().failures)


def disabled() -> list[str]:
    """The entry points skipped because of ``REACTOR_FRAMEWORK_DISABLE_PLUGINS``."""
    return list(_get().disabled)


def plugin_manager() -> pluggy.PluginManager:
    """The pluggy ``PluginManager`` (discovers plugins on first call)."""
    return _get().pm


def register(obj: Any, name: str | None = None) -> str:
    """Register an in-code plugin (a module or object with ``@hookimpl`` functions): its
    hooks run at once. Returns the plugin's name.

    Unlike an entry point, a failure here is raised to the caller (``DuplicatePluginError``,
    ``PluginError``, or whatever the hook raised) and nothing stays registered.
    """
    state = _get()
    with _lock:
        pm = state.pm
        plugin = name or pm.get_canonical_name(obj)
        if pm.has_plugin(plugin):
            raise error.PluginError(f"a plugin named {plugin!r} is already registered")
        try:
            _register(state, obj, plugin, plugin, None, None)
        except pluggy.PluginValidationError as exc:
            raise error.PluginError(f"plugin {plugin!r} is invalid: {exc}") from exc
    return plugin


def unregister(plugin: Any) -> None:
    """Remove a plugin (by name or object) and every registry entry it added."""
    state = _get()
    with _lock:
        pm = state.pm
        obj = pm.get_plugin(plugin) if isinstance(plugin, str) else plugin
        name = pm.get_name(obj) if obj is not None else None
        if obj is None or name is None:
            raise error.UnknownPluginError(f"no plugin {plugin!r} is registered")
        pm.unregister(obj)
        for registry, entry_name in state.owned.pop(name, []):
            registry._entries.pop(entry_name, None)


def reset() -> None:
    """Forget every plugin, entry and failure, and disable all middleware (for tests); the
    next registry call discovers the entry points again."""
    global _state
    with _lock:
        _state = None
    from framework import middleware

    middleware._disable_all()
