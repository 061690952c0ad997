"""Hook specifications: the plugin author's reference.

A plugin is a module (or any object) with functions marked ``@framework.hookimpl`` whose names
are the hooks below. It is found through the ``reactor_framework`` entry-point group, or
registered in code with ``framework.plugins.register(obj)``.

Each hook is called exactly once per plugin, when the plugin is loaded, with the registry it
fills; a plugin implements only the hooks it needs. The hooks are *historic*: a plugin loaded
late still gets every call. If a hook raises, or adds a name another plugin already added, the
whole plugin is skipped (and reported), as if it had added nothing.

See ``docs/plugins.md`` for a walk-through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    # Typing only: the registries import framework.protocol, which ``import framework`` (that
    # imports this module for ``hookimpl``) must not pay for.
    from framework.registries import (
        EndpointRegistry,
        MiddlewareRegistry,
        ProtocolRegistry,
        ReactorRegistry,
    )

PROJECT_NAME = "reactor_framework"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: The names of the hooks below, for error messages about misspelt hook implementations.
HOOK_NAMES = (
    "register_protocols",
    "register_reactors",
    "register_deferred_middleware",
    "register_endpoints",
    "reactor_installed",
)


@hookspec(historic=True)
def register_protocols(registry: ProtocolRegistry) -> None:
    """Add protocols that ``reactor-serve --protocol NAME`` (and code) can serve.

    Call ``registry.add(name, maker, *, description="", default_port=None, options=())``
    once per protocol. ``maker`` is one of:

    - a callable ``maker(**options) -> factory`` (a function, or a ``Factory`` subclass whose
      ``__init__`` takes the options as keyword arguments);
    - a ``Protocol`` subclass: served with ``Factory.forProtocol(cls)``, takes no options;
    - a ready factory instance: served as is (shared), takes no options.

    ``options`` is a sequence of ``framework.plugins.Option(name, type=str, default=None,
    help="", required=False)``; ``reactor-serve --option KEY=VALUE`` values are converted with
    ``type`` (``str``, ``int``, ``float``, ``bool``, ``pathlib.Path`` or any callable raising
    ``ValueError``) before the maker is called. Options not given and without a default are
    not passed, so the maker's own defaults apply.
    """


@hookspec(historic=True)
def register_reactors(registry: ReactorRegistry) -> None:
    """Add reactor backends (event demultiplexers).

    Call ``registry.add(name, factory, *, description="", available=None, priority=0)``.
    ``factory`` is a ``framework.interfaces.Multiplexer`` subclass constructed with no
    arguments. ``available`` is ``None`` (always available), or a callable returning a true
    value when the backend can run here, a false value when it cannot, or a string saying
    why it cannot. With no backend named, the reactor uses the available backend with the
    highest ``priority`` (built-ins: epoll 30, poll 20, selector 10, select 5).
    """


@hookspec(historic=True)
def register_deferred_middleware(registry: MiddlewareRegistry) -> None:
    """Add Deferred middleware (opt-in: enabled by ``framework.middleware.enable(NAME)`` or
    ``reactor-serve --middleware NAME``).

    Call ``registry.add(name, middleware, *, description="")``. ``middleware`` is an object
    with ``wrap_callback(callback) -> callable``, called once for each callback and errback as
    it is added to a Deferred (the first enabled middleware is outermost). Optional methods:
    ``deferred_created(deferred)`` (called for each new Deferred), ``on_enable()``,
    ``on_disable()``. Middleware that also tunes the reactor (as ``slow-callbacks`` does)
    implements the :func:`reactor_installed` hook too.
    """


@hookspec(historic=True)
def register_endpoints(registry: EndpointRegistry) -> None:
    """Add endpoint-string prefixes that ``serverFromString``, ``clientFromString`` and
    ``reactor-serve --listen`` understand.

    Call ``registry.add(prefix, *, server=None, client=None, description="")`` with at least
    one parser. A parser is ``parser(reactor, *args, **kwargs) -> endpoint``: for
    ``"myprefix:a:b:key=value"`` it is called as ``parser(reactor, "a", "b", key="value")``,
    every field a string (backslash escapes already undone). It raises
    ``framework.endpointstrings.DescriptionError`` (or ``ValueError``) for a bad description;
    the helpers in ``framework.endpointstrings`` (``collect_options``, ``require``,
    ``parse_int``, ``parse_seconds``, ``parse_bool``...) do the usual checks with the core's
    wording. The prefixes ``tcp``, ``tcp6`` and ``unix`` belong to the core; a prefix another
    plugin registered is a ``DuplicatePluginError`` naming both distributions.
    """


@hookspec
def reactor_installed(reactor: Any) -> None:
    """The reactor ``reactor-serve`` serves on is installed (called once, after the
    ``--middleware`` it was given are enabled): a plugin may tune it, e.g. switch on the
    reactor's slow-callback detector when its middleware is enabled. Called through
    ``framework.plugins.notify_reactor_installed(reactor)``.
    """
