"""Load one of Twisted's test modules with its imports pointed at ``framework``.

``port("twisted.test.test_defer")`` reads the test module's source from the *installed* Twisted
package (nothing of Twisted is copied into this repository), rewrites every
``from twisted... import ...`` statement at the syntax-tree level and executes the result as a
fresh module. Line numbers are kept, so tracebacks point at the right line of Twisted's file.

The rewrite is what a user porting Twisted code does: ``twisted.internet.X`` becomes
``framework.X``, ``twisted.python.failure`` becomes ``framework.failure``,
``twisted.protocols.basic`` becomes ``framework.basic``, ``twisted.internet.testing`` /
``twisted.test.proto_helpers`` become ``framework.testing``, and ``twisted.trial.unittest``
becomes this runner's own small shim (:mod:`.trial`). Everything else (``zope.interface``,
``twisted.python.compat``, ``twisted.python.log``, ...) stays Twisted's: framework has no
equivalent and the tests only use it as a utility.

A name that a mapped framework module does not have does not stop the import: it is bound to a
:class:`Missing` placeholder, and the first test that *uses* it fails with
:class:`MissingAPI` naming it ("missing: framework.defer.setDebugging"). That is how the
expectation file tells "API not built yet" apart from a behaviour difference.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from typing import Any

# Whole modules: a Twisted module -> the framework module that replaces it.
MODULE_MAP: dict[str, str] = {
    "twisted.internet.defer": "framework.defer",
    "twisted.internet.task": "framework.task",
    "twisted.internet.protocol": "framework.protocol",
    "twisted.internet.error": "framework.error",
    "twisted.internet.interfaces": "framework.interfaces",
    "twisted.internet.address": "framework.address",
    "twisted.internet.main": "framework.main",
    "twisted.internet.endpoints": "framework.endpoints",
    "twisted.internet.tcp": "framework.tcp",
    "twisted.internet.udp": "framework.udp",
    "twisted.internet.unix": "framework.unix",
    "twisted.internet.threads": "framework.threads",
    "twisted.internet.testing": "framework.testing",
    "twisted.test.proto_helpers": "framework.testing",
    "twisted.python.failure": "framework.failure",
    "twisted.protocols.basic": "framework.basic",
    "twisted.protocols.policies": "framework.policies",
    "twisted.protocols.tls": "framework.tls",
    # Twisted modules whose concept framework does not have: every use is "missing".
    "twisted.protocols.loopback": "framework.loopback",
    "twisted.protocols.portforward": "framework.portforward",
    "twisted.protocols.wire": "framework.wire",
    "twisted.internet.abstract": "framework.address",  # isIPAddress / isIPv6Address live there
}
MODULE_MAP["twisted.trial.unittest"] = f"{__package__}.trial"
MODULE_MAP["zope.interface"] = f"{__package__}.zope_compat"
MODULE_MAP["zope.interface.verify"] = f"{__package__}.zope_compat"



class _LazyReactor:
    """``from twisted.internet import reactor`` in a ported module: framework's global reactor,
    installed on first use (importing, i.e. collecting, the tests installs nothing)."""

    def __getattr__(self, name: str) -> Any:
        import framework

        if framework.installed_reactor() is None:
            from framework.eventloop import Reactor

            if callable(getattr(Reactor, name, None)):
                # A method looked up, not called (``IReactorUNIX(reactor, None)`` at class
                # definition checks them): installing waits for the call.
                return lambda *args, **kwargs: getattr(framework.reactor, name)(*args, **kwargs)
        return getattr(framework.reactor, name)

    def __setattr__(self, name: str, value: Any) -> None:
        import framework

        setattr(framework.reactor, name, value)

    def __repr__(self) -> str:
        return "<framework.reactor, installed on first use>"


LAZY_REACTOR = _LazyReactor()


class MissingAPI(AttributeError):
    """A Twisted name that framework does not provide (yet) was used."""


class _MissingBase:
    """What a class deriving from a missing name derives from: it cannot be instantiated."""

    _missing_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise MissingAPI(f"missing: {cls._missing_name}")


_importing = 0  # > 0 while a ported module's top level runs


class Missing:
    """Placeholder bound to a name framework lacks; any use raises :class:`MissingAPI`.

    While the ported module's top level runs, calling it or reading an attribute gives another
    placeholder instead (so ``CONSTANT = endpoints.quoteStringArgument(...)`` does not stop the
    whole module from importing); from then on any use raises.
    """

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise MissingAPI(f"missing: {object.__getattribute__(self, '_name')}")

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        if _importing:
            return Missing(object.__getattribute__(self, "_name"))
        self._fail()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _importing:
            return self
        self._fail()

    __iter__ = _fail
    __instancecheck__ = _fail
    __subclasscheck__ = _fail
    __getitem__ = _fail

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        name = object.__getattribute__(self, "_name")
        return (type(f"Missing_{name.rsplit('.', 1)[-1]}", (_MissingBase,), {"_missing_name": name}),)

    def __repr__(self) -> str:
        return f"<missing {object.__getattribute__(self, '_name')}>"


class _ModuleProxy(types.ModuleType):
    """A framework module as the ported test sees it: absent names are :class:`Missing`.

    Setting or deleting an attribute (``self.patch(task, ...)``) acts on the real module.
    """

    def __init__(self, real: types.ModuleType) -> None:
        super().__init__(real.__name__, real.__doc__)
        object.__setattr__(self, "_real", real)

    def __getattr__(self, name: str) -> Any:
        real = object.__getattribute__(self, "_real")
        if hasattr(real, name):
            return getattr(real, name)
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Missing(f"{real.__name__}.{name}")

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_real"), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(object.__getattribute__(self, "_real"), name)

    def __dir__(self) -> list[str]:
        return dir(object.__getattribute__(self, "_real"))

    def __repr__(self) -> str:
        return f"<ported view of {object.__getattribute__(self, '_real')!r}>"


_proxies: dict[str, _ModuleProxy] = {}


def _module_or_missing(name: str) -> Any:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        return Missing(name)
    if not name.startswith("framework"):
        return module  # the trial shim
    if name not in _proxies:
        _proxies[name] = _ModuleProxy(module)
    return _proxies[name]


def _resolve(target: str, name: str) -> Any:
    """``from <target> import <name>`` where target is a framework module (maybe absent)."""
    module = _module_or_missing(target)
    if isinstance(module, Missing):
        return Missing(f"{target}.{name}")
    if hasattr(module, name):
        return getattr(module, name)
    return _module_or_missing(f"{target}.{name}") if hasattr(module, "__path__") else Missing(f"{target}.{name}")


def port_from(module: str, names: tuple[str, ...]) -> tuple[Any, ...]:
    """The objects ``from <module> import <names>`` gives once ported."""
    out = []
    for name in names:
        full = f"{module}.{name}"
        if full == "twisted.internet.reactor":
            out.append(LAZY_REACTOR)
        elif full in MODULE_MAP:
            out.append(_module_or_missing(MODULE_MAP[full]))
        elif module in MODULE_MAP:
            out.append(_resolve(MODULE_MAP[module], name))
        else:  # stays Twisted's
            mod = importlib.import_module(module)
            if hasattr(mod, name):
                out.append(getattr(mod, name))
            else:
                out.append(importlib.import_module(full))
    return tuple(out)


def port_import(module: str) -> Any:
    """``import <module> as x`` once ported."""
    if module in MODULE_MAP:
        return _module_or_missing(MODULE_MAP[module])
    return importlib.import_module(module)


class _Rewriter(ast.NodeTransformer):
    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        if node.level or not node.module or not (
            node.module == "twisted" or node.module.startswith("twisted.") or node.module in MODULE_MAP
        ):
            return node
        if any(alias.name == "*" for alias in node.names):
            return node
        targets = [ast.Name(id=alias.asname or alias.name, ctx=ast.Store()) for alias in node.names]
        call = ast.Call(
            func=ast.Name(id="__port_from__", ctx=ast.Load()),
            args=[ast.Constant(node.module), ast.Tuple([ast.Constant(a.name) for a in node.names], ast.Load())],
            keywords=[],
        )
        new = ast.Assign(targets=[ast.Tuple(targets, ast.Store())], value=call)
        return ast.copy_location(new, node)

    def visit_Import(self, node: ast.Import) -> ast.AST:
        # Only `import twisted.x.y as z` is rewritten; a bare `import twisted.x` binds the
        # package `twisted` and keeps Twisted's modules.
        if not any(a.asname and a.name in MODULE_MAP for a in node.names):
            return node
        stmts: list[ast.stmt] = []
        for alias in node.names:
            if alias.asname and alias.name in MODULE_MAP:
                value = ast.Call(func=ast.Name(id="__port_import__", ctx=ast.Load()),
                                 args=[ast.Constant(alias.name)], keywords=[])
                stmts.append(ast.copy_location(
                    ast.Assign(targets=[ast.Name(id=alias.asname, ctx=ast.Store())], value=value), node))
            else:
                stmts.append(ast.copy_location(ast.Import(names=[alias]), node))
        return stmts  # type: ignore[return-value]


def source_path(twisted_module: str) -> str:
    spec = importlib.util.find_spec(twisted_module)
    if spec is None or spec.origin is None:
        raise ImportError(f"{twisted_module} is not installed (pip install -e '.[test]')")
    return spec.origin


def port(twisted_module: str) -> types.ModuleType:
    """Execute Twisted's ``twisted_module`` with its imports rewritten; cached in sys.modules.

    The module keeps its Twisted name (so test ids read ``twisted.test.test_defer.X.test_y``);
    it is registered in ``sys.modules`` under that name, replacing Twisted's own copy of the
    *test* module only.
    """
    existing = sys.modules.get(twisted_module)
    if existing is not None and getattr(existing, "__ported__", False):
        return existing
    path = source_path(twisted_module)
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    tree = ast.fix_missing_locations(_Rewriter().visit(tree))
    code = compile(tree, path, "exec", dont_inherit=True)
    module = types.ModuleType(twisted_module)
    module.__file__ = path
    module.__package__ = twisted_module.rpartition(".")[0]
    module.__dict__.update(__port_from__=port_from, __port_import__=port_import, __ported__=True)
    sys.modules[twisted_module] = module
    global _importing
    _importing += 1
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[twisted_module]
        raise
    finally:
        _importing -= 1
    return module


def test_classes(module: types.ModuleType) -> dict[str, type]:
    """The ``unittest.TestCase`` subclasses defined in ``module`` (what trial would run)."""
    import unittest

    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj.__module__ == module.__name__
    }
