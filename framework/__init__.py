"""reactor-framework: a Twisted-style, event-driven networking engine built as a plugin framework.

``from framework import reactor`` gives the process's reactor, installing the best available
backend on first use; ``install_reactor(name)`` picks one explicitly before that.
Importing this package installs nothing and loads no plugin.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from framework import error, main
from framework.hookspecs import hookimpl
from framework.version import __version__

if TYPE_CHECKING:
    from framework.eventloop import Reactor

__all__ = ["__version__", "hookimpl", "install_reactor", "installed_reactor", "reactor"]

BACKEND_ENV = "REACTOR_FRAMEWORK_BACKEND"


def _caller(depth: int) -> str:
    """``file:line`` of the user code ``depth`` frames up, skipping the import machinery
    (``from framework import reactor`` reaches ``__getattr__`` through importlib)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return "unknown"
    while frame.f_back is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def install_reactor(name: str | None = None) -> Reactor:
    """Install the reactor with backend ``name`` (default: ``$REACTOR_FRAMEWORK_BACKEND``,
    else the highest-priority available backend) and return it.

    Raises ``framework.error.ReactorAlreadyInstalledError`` once a reactor is installed,
    ``UnknownPluginError`` for a name no plugin registered, and ``ReactorUnavailableError``
    for a backend that cannot run on this system.
    """
    return _install(name, _caller(2))


def _install(name: str | None, by: str) -> Reactor:
    main.check_not_installed()
    # reason: lazy install: `import framework` must not import the reactor and its transports
    from framework.eventloop import Reactor

    entry = _backend_entry(name)
    reason = entry.availability()
    if reason is not None:
        raise error.ReactorUnavailableError(f"reactor backend {entry.name!r} is not available: {reason}")
    reactor = Reactor(entry.factory(), entry.name)
    main.installReactor(reactor, by)
    return reactor


def _backend_entry(name: str | None) -> Any:
    """The registry entry of backend ``name``, else of ``$REACTOR_FRAMEWORK_BACKEND``, else the
    best available one; an unknown name from the environment says where it came from."""
    from framework import plugins  # reason: lazy plugin loading, only when a reactor is installed

    registry = plugins.reactors()
    if name:
        return registry.get(name)
    name = os.environ.get(BACKEND_ENV) or None
    if name is None:
        return registry.best()
    try:
        return registry.get(name)
    except error.UnknownPluginError as e:
        e.args = (f"{e.args[0]}; it is named by ${BACKEND_ENV}",)
        raise


def installed_reactor() -> Reactor | None:
    """The installed reactor, or ``None`` if none has been installed yet (installs nothing)."""
    return main._installed  # type: ignore[no-any-return]


def __getattr__(attr: str) -> Any:
    if attr == "reactor":
        installed = main._installed
        if installed is not None:
            return installed
        try:
            return _install(None, f"first use of framework.reactor at {_caller(2)}")
        except AttributeError as e:
            # Raised from here, an AttributeError would read as "cannot import name 'reactor'"
            # and hide the broken backend behind it.
            raise RuntimeError(f"installing the reactor failed: {type(e).__name__}: {e}") from e
    raise AttributeError(f"module 'framework' has no attribute {attr!r}")


def _user_caller() -> str:
    """``file:line`` of the nearest caller outside this package (who used the global reactor)."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(here + os.sep):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


main._installDefault = lambda: _install(None, f"first use of the global reactor at {_user_caller()}")
