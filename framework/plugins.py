"""Plugin discovery and loading, and the public functions over the registries.

Plugins are found through the ``reactor_framework`` entry-point group the first time a
registry is asked for (never at ``import framework``), loaded one entry point at a time in a
fixed order (distribution name, then entry-point name), and registered with pluggy; their
``register_*`` hooks fill the registries. A plugin that fails to import or register is logged,
recorded in :func:`failures` and skipped, unless ``REACTOR_FRAMEWORK_STRICT_PLUGINS=1``.

The registries and their entries live in ``framework.registries``, option conversion in
``framework.options``; both are re-exported here (``from framework.plugins import Option``).
Registries are plain dictionaries underneath: looking a name up never calls pluggy.

Module-level imports: ``framework.error``, ``framework.hookspecs``, ``framework.options``,
``framework.registries`` and ``framework.chain`` (``reset`` deactivates all middleware);
never a transport, never ``framework.middleware`` or ``framework.endpoints`` (they import this).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import pluggy

from framework import chain, error, hookspecs
from framework.options import IN_CODE, TRUE_WORDS, Option, close_match, describe_source, option_key
from framework.registries import (
    DISABLE_ENV,
    EndpointEntry,
    EndpointParser,
    EndpointRegistry,
    MiddlewareEntry,
    MiddlewareRegistry,
    PluginContext,
    ProtocolEntry,
    ProtocolRegistry,
    ReactorEntry,
    ReactorRegistry,
    Registry,
)

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "IN_CODE",
    "STRICT_ENV",
    "EndpointEntry",
    "EndpointParser",
    "EndpointRegistry",
    "MiddlewareEntry",
    "MiddlewareRegistry",
    "Option",
    "PluginFailure",
    "ProtocolEntry",
    "ProtocolRegistry",
    "ReactorEntry",
    "ReactorRegistry",
    "disabled",
    "endpoint_parsers",
    "failures",
    "middlewares",
    "notify_reactor_installed",
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
STRICT_ENV = "REACTOR_FRAMEWORK_STRICT_PLUGINS"


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
        return describe_source(self.distribution, self.version)

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
    __slots__ = ("pm", "protocols", "reactors", "middlewares", "endpoints", "failures",
                 "disabled", "owned", "ready")

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.disabled: list[str] = []
        self.protocols = ProtocolRegistry(self.disabled)
        self.reactors = ReactorRegistry(self.disabled)
        self.middlewares = MiddlewareRegistry(self.disabled)
        self.endpoints = EndpointRegistry(self.disabled)
        #: pluggy plugin name -> the (registry, name) pairs it added
        self.owned: dict[str, list[tuple[Registry[Any], str]]] = {}
        self.ready = False
        hook = self.pm.hook
        # Historic calls: every plugin registered from now on gets its hooks called once,
        # at registration, with these registries.
        hook.register_protocols.call_historic(kwargs={"registry": self.protocols})
        hook.register_reactors.call_historic(kwargs={"registry": self.reactors})
        hook.register_deferred_middleware.call_historic(kwargs={"registry": self.middlewares})
        hook.register_endpoints.call_historic(kwargs={"registry": self.endpoints})

    @property
    def registries(self) -> tuple[Registry[Any], ...]:
        return (self.protocols, self.reactors, self.middlewares, self.endpoints)


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
    return os.environ.get(STRICT_ENV, "").strip().lower() in TRUE_WORDS


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
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist, version = _dist_of(ep)
        found.append((_normalize(dist or ""), ep.name, ep.value, ep, dist, version))
    found.sort(key=lambda item: item[:3])
    for _key, name, value, ep, dist, version in found:
        if name in disabled:
            log.debug("plugin %r from %s disabled by %s", name, describe_source(dist, version),
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
        log.debug("loaded plugin %r (%s) from %s", name, value, describe_source(dist, version))


def _failed(
    state: _State,
    plugin: str,
    dist: str | None,
    version: str | None,
    exc: BaseException,
    strict: bool,
    stage: str,
) -> None:
    source = describe_source(dist, version)
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
    ctx = PluginContext(plugin, dist, version)
    for registry in state.registries:
        registry.context = ctx
    try:
        pm.register(obj, name=pm_name)
        _check_hooks(pm, obj, plugin)
    except BaseException:
        for registry, name in ctx.added:
            registry.remove(name)
        if pm.is_registered(obj):
            pm.unregister(obj)
        raise
    finally:
        for registry in state.registries:
            registry.context = None
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
            match = close_match(caller.name, hookspecs.HOOK_NAMES)
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


def endpoint_parsers() -> EndpointRegistry:
    """The endpoint-string prefix registry (discovers plugins on first call): the prefixes
    plugins added with ``register_endpoints``. The core ``tcp``, ``tcp6`` and ``unix`` are
    parsed by ``framework.endpoints`` itself and are not in it (see
    ``framework.endpoints.known_endpoints()`` for all of them)."""
    return _get().endpoints


def notify_reactor_installed(reactor: Any) -> None:
    """Call every plugin's ``reactor_installed(reactor)`` hook (``reactor-serve`` does it once
    the reactor it serves on is installed and the middleware is enabled)."""
    _get().pm.hook.reactor_installed(reactor=reactor)


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
            registry.remove(entry_name)


def reset() -> None:
    """Forget every plugin, entry and failure, and disable all middleware (for tests); the
    next registry call discovers the entry points again."""
    global _state
    with _lock:
        _state = None
    chain.deactivate_all()
