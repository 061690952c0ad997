"""``zope.interface`` as the ported tests see it: framework's interfaces are plain classes.

Twisted declares interfaces with ``zope.interface`` (``@implementer(IProtocol)``,
``verifyObject(IProtocol, p)``); framework's interfaces are ordinary classes that an
implementation *inherits* (docs/protocols.md, DESIGN "Public API contract"). The mechanical port
of ``@implementer(I)`` is to inherit ``I``, so for the ported test modules:

- ``implementer(*interfaces)``: zope interfaces are declared as usual; framework interface
  classes are added as bases (the decorated class is replaced by a subclass of the same name
  that also inherits them);
- ``verifyObject(I, obj)`` / ``verifyClass(I, cls)`` with a framework interface: ``obj`` /
  ``cls`` must be an instance / subclass of ``I``, and define every public method of ``I``.

Everything else is zope.interface itself.
"""

from __future__ import annotations

from typing import Any

import zope.interface as _zi
import zope.interface.verify as _zv
from zope.interface import *  # noqa: F401,F403  (the rest of zope.interface, unchanged)
from zope.interface import Interface, implementedBy, provider  # noqa: F401
from zope.interface.exceptions import DoesNotImplement


def _is_zope(iface: Any) -> bool:
    return isinstance(iface, _zi.interface.InterfaceClass)


def implementer(*interfaces: Any) -> Any:
    zope_ifaces = [i for i in interfaces if _is_zope(i)]
    classes = [i for i in interfaces if isinstance(i, type)]

    def decorate(cls: Any) -> Any:
        if zope_ifaces:
            cls = _zi.implementer(*zope_ifaces)(cls)
        missing = [i for i in classes if not (isinstance(cls, type) and issubclass(cls, i))]
        if missing and isinstance(cls, type):
            new = type(cls)(cls.__name__, (cls, *missing), {"__module__": cls.__module__,
                                                            "__qualname__": cls.__qualname__})
            return new
        return cls

    return decorate


def _check(iface: Any, candidate: Any, is_class: bool) -> bool:
    from . import porting

    if porting._importing and not isinstance(iface, type):
        return False  # a module-level check against a missing interface: fails in the tests instead
    try:
        return _check_now(iface, candidate, is_class)
    except DoesNotImplement:
        if porting._importing:
            return False  # at module level (e.g. a class implementing a missing interface)
        raise


def _check_now(iface: Any, candidate: Any, is_class: bool) -> bool:
    ok = issubclass(candidate, iface) if is_class else isinstance(candidate, iface)
    if not ok:
        raise DoesNotImplement(iface, candidate)
    for name in dir(iface):
        if not name.startswith("_") and callable(getattr(iface, name, None)) and not hasattr(candidate, name):
            raise DoesNotImplement(iface, candidate)
    return True


def verifyObject(iface: Any, candidate: Any, tentative: bool = False) -> bool:
    if _is_zope(iface):
        return _zv.verifyObject(iface, candidate, tentative)
    return _check(iface, candidate, is_class=False)


def verifyClass(iface: Any, candidate: Any, tentative: bool = False) -> bool:
    if _is_zope(iface):
        return _zv.verifyClass(iface, candidate, tentative)
    return _check(iface, candidate, is_class=True)
