"""The shape of the code, checked with ``ast`` (docs/architecture.md is the map):

- module-level imports among ``framework`` and the built-in plugins form no cycle, and no cycle
  is held open by imports inside functions either (reaching the global reactor through the
  package ``framework`` excepted);
- an import inside a function is allowed only with a ``# reason:`` comment on its line or the
  line above (optional dependencies, lazy plugin loading, the lazily installed global reactor);
- the core never imports a built-in plugin by name;
- no module is over 800 lines, and ``Reactor`` stays under 350.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"framework": ROOT / "framework", "reactor_framework_plugins": ROOT / "plugins"}
MAX_MODULE_LINES = 800
MAX_REACTOR_LINES = 350

#: The layers of docs/architecture.md, bottom up: a module imports (at module level) only from
#: its own layer or lower ones. A new module must be given its layer here and in the doc.
LAYERS: dict[str, list[str]] = {
    "foundations": [
        "version", "error", "failure", "interfaces", "address", "main", "options", "hookspecs",
        "chain", "writing", "logger", "endpointstrings", "spawn", "tlscontext",
    ],
    "deferred": [
        "_defer_errors", "_defer_support", "_defer_core", "_defer_shortcuts", "_defer_coroutines",
        "_defer_combinators", "_defer_locks", "defer", "cooperator", "react",
    ],
    "protocols and plugins": [
        "protocol", "basic", "wire", "portforward", "wrapping", "policywrappers", "utils", "policies", "loopback", "proxyprotocol", "registries",
        "plugins", "middleware",
    ],
    "reactor owners": [
        "timers", "threadcalls", "descriptors", "signals", "slowcalls", "sysevents", "threads",
        "task",
    ],
    "transports": [
        "tlsprotocol", "tls", "ssl", "stream", "streamport", "tcp", "unix", "udp", "multicast", "process",
        "systemd",
    ],
    "endpoints": ["processendpoint", "endpoints"],
    "the reactor": ["frontdoor", "eventloop", "", "testing", "pytest_plugin"],
    "runtimes": ["serving", "supervisor", "cli", "__main__"],
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> tuple[list[ast.Import | ast.ImportFrom], list[ast.Import | ast.ImportFrom]]:
    """(module-level imports that run at import time, imports inside functions)."""
    top: list[ast.Import | ast.ImportFrom] = []
    inner: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (inner if in_function else top).append(child)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit(ast.Module(body=[sub], type_ignores=[]), in_function)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
            else:
                visit(child, in_function)

    visit(tree, False)
    return top, inner


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The project modules one import statement makes this module depend on."""
    names: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            if parts:
                names.add(".".join(parts))
        return names
    base = node.module or ""
    if node.level:
        package = module.split(".")
        is_package = MODULES[module].name == "__init__.py"
        anchor = package if is_package else package[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base]) if base else ".".join(anchor)
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in MODULES:
            names.add(sub)
        elif base in MODULES:
            names.add(base)
    return names


def _graph(with_functions: bool = False) -> dict[str, set[str]]:
    """Who imports whom. ``with_functions`` adds the imports inside functions, except those of
    the package ``framework`` itself: that is how code reaches the lazily installed global
    reactor, and installing it is the one sanctioned way up the layers."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        top, inner = _imports(ast.parse(path.read_text(), str(path)))
        edges: set[str] = set()
        for node in top:
            edges |= _targets(module, node)
        if with_functions:
            for node in inner:
                edges |= _targets(module, node) - {"framework"}
        graph[module] = edges - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_sees_imports_in_functions_and_skips_type_checking() -> None:
    tree = ast.parse(
        "import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import framework.tcp\n"
        "def f():\n    import framework.udp\nclass C:\n    import framework.unix\n"
    )
    top, inner = _imports(tree)
    assert [ast.unparse(n) for n in top] == ["import os", "from typing import TYPE_CHECKING",
                                             "import framework.unix"]
    assert [ast.unparse(n) for n in inner] == ["import framework.udp"]


def test_module_level_imports_form_no_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "module-level import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_cycle_is_held_open_by_imports_inside_functions() -> None:
    cycles = _cycles(_graph(with_functions=True))
    assert not cycles, "import cycles through imports inside functions: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def _explained(lines: list[str], index: int) -> bool:
    """A ``# reason:`` comment on the import's line, or on the line just above the block of
    import lines it belongs to."""
    if "# reason:" in lines[index]:
        return True
    index -= 1
    while index >= 0 and lines[index].lstrip().startswith(("import ", "from ")):
        index -= 1
    return index >= 0 and "# reason:" in lines[index]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_inside_functions_say_why(module: str) -> None:
    path = MODULES[module]
    lines = path.read_text().splitlines()
    _top, inner = _imports(ast.parse("\n".join(lines), str(path)))
    unexplained = [
        f"{path.relative_to(ROOT)}:{n.lineno}: {ast.unparse(n)}"
        for n in inner
        if not _explained(lines, n.lineno - 1)
    ]
    assert not unexplained, "imports inside functions need a '# reason:' comment:\n" + "\n".join(unexplained)


def _layer_of() -> dict[str, int]:
    found: dict[str, int] = {}
    for number, names in enumerate(LAYERS.values()):
        for name in names:
            found["framework" + (f".{name}" if name else "")] = number
    return found


def test_every_module_has_a_layer_and_imports_only_downwards() -> None:
    layer = _layer_of()
    plugins_layer = len(LAYERS)  # the built-in plugins sit on top of everything
    unplaced = sorted(m for m in MODULES if m.startswith("framework") and m not in layer)
    assert not unplaced, f"give these modules a layer in LAYERS and docs/architecture.md: {unplaced}"
    upward = []
    for module, targets in _graph().items():
        mine = layer.get(module, plugins_layer)
        for target in targets:
            if layer.get(target, plugins_layer) > mine:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports pointing up the layers: " + ", ".join(sorted(upward))


def test_the_architecture_doc_names_every_layer_and_module() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for title, names in LAYERS.items():
        assert title in doc, title
        for name in names:
            assert f"`{name or 'framework'}`" in doc, name


def test_the_core_never_imports_a_plugin() -> None:
    offenders = []
    for module, path in MODULES.items():
        if not module.startswith("framework"):
            continue
        top, inner = _imports(ast.parse(path.read_text(), str(path)))
        for node in top + inner:
            if any(t.startswith("reactor_framework_plugins") for t in _targets(module, node)):
                offenders.append(f"{module}:{node.lineno}")
    assert not offenders


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_the_size_limit(module: str) -> None:
    count = len(MODULES[module].read_text().splitlines())
    assert count <= MAX_MODULE_LINES, f"{module} has {count} lines: split it by concern"


def test_the_reactor_class_is_small() -> None:
    tree = ast.parse(MODULES["framework.eventloop"].read_text())
    (reactor,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Reactor"]
    size = (reactor.end_lineno or reactor.lineno) - reactor.lineno + 1
    assert size < MAX_REACTOR_LINES, f"Reactor is {size} lines: give a concern its own owner"
