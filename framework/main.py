"""Sentinels a readiness handler's ``doRead``/``doWrite`` may return to be dropped, and the
slot holding the process's reactor (``installReactor``, Twisted's name).

``framework.install_reactor(name)`` and the first use of ``framework.reactor`` fill the slot
through ``installReactor``; code ported from Twisted may fill it with a reactor of its own.
"""

from typing import Any, Callable

from framework import error
from framework.failure import Failure

CONNECTION_DONE = Failure(error.ConnectionDone())
CONNECTION_LOST = Failure(error.ConnectionLost())

__all__ = ["CONNECTION_DONE", "CONNECTION_LOST", "global_reactor", "installReactor"]

#: The installed reactor (``None`` until one is) and where it was installed from.
_installed: Any = None
_installedBy: str | None = None
#: Installs the default reactor; set by the ``framework`` package when it is imported (always
#: before any of its modules), so the modules below it need no import of the package.
_installDefault: Callable[[], Any] | None = None


def global_reactor() -> Any:
    """The process's reactor, installing the default one on first use: what
    ``from framework import reactor`` gives, for code in the layers below the package."""
    if _installed is not None:
        return _installed
    assert _installDefault is not None, "the framework package sets it when imported"
    return _installDefault()


def check_not_installed() -> None:
    """``ReactorAlreadyInstalledError``, naming the installed reactor and where it came from,
    if one is installed."""
    if _installed is not None:
        name = getattr(_installed, "backend_name", type(_installed).__name__)
        raise error.ReactorAlreadyInstalledError(
            f"a reactor is already installed (backend {name!r}, installed by {_installedBy})")


def installReactor(reactor: Any, _by: str | None = None) -> None:
    """Make ``reactor`` the process's reactor, the one ``from framework import reactor`` gives;
    ``ReactorAlreadyInstalledError`` if one is installed already."""
    global _installed, _installedBy
    check_not_installed()
    _installed = reactor
    _installedBy = _by or "framework.main.installReactor"
