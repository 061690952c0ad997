"""The built wheel: the folder ``plugins/`` installs as ``reactor_framework_plugins``, never as a
top-level ``plugins`` package, so a user's own ``plugins`` package cannot shadow the built-ins.

The wheel is built from a copy of the sources, installed with ``--no-deps`` into a fresh venv (no
system site-packages) whose only other packages are the runtime dependencies of this project,
linked in from the test interpreter, and ``python -m framework --list`` runs there from a
directory that holds its own ``plugins`` package.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import select
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROTOCOLS = ("echo", "discard", "chargen", "daytime", "time", "qotd", "poetry", "chat", "exec")
REACTORS = ("select", "poll", "epoll", "selector", "asyncio")
MIDDLEWARE = ("contextvars", "slow-callbacks", "tracing")


def _can_build_offline() -> bool:
    """True when this interpreter's setuptools can build our wheel without an isolated env
    (``license = "MIT"`` in pyproject.toml needs setuptools >= 77)."""
    try:
        import setuptools
    except ImportError:
        return False
    major = int(setuptools.__version__.split(".")[0])
    return major >= 77


def _requirement_names(dist: importlib.metadata.Distribution) -> list[str]:
    names = []
    for req in dist.requires or ():
        if "extra" in req.partition(";")[2]:
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
        if match:
            names.append(match.group(0))
    return names


def _link_runtime_dependencies(into: Path) -> None:
    """Symlink the installed files of every (transitive) runtime dependency of reactor-framework
    into ``into``: the venv then sees those and nothing else of the test interpreter."""
    todo = _requirement_names(importlib.metadata.distribution("reactor-framework"))
    seen: set[str] = set()
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a dependency for another Python version
        todo.extend(_requirement_names(dist))
        for file in dist.files or ():
            top = file.parts[0]
            if top in ("..", "__pycache__") or (into / top).exists():
                continue
            source = Path(str(dist.locate_file(top)))
            if source.exists():
                (into / top).symlink_to(source)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy so the build leaves nothing (build/, *.egg-info) in the repository.
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("framework", "plugins"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work / "dist"), str(src)]
    if _can_build_offline():
        cmd[4:4] = ["--no-build-isolation", "--no-index"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    [built] = (work / "dist").glob("reactor_framework-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("venv")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", purelib, str(wheel)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    deps = work / "deps"
    deps.mkdir()
    _link_runtime_dependencies(deps)
    (Path(purelib) / "reactor_framework_test_deps.pth").write_text(f"{deps}\n")
    return python


def _isolated_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REACTOR_FRAMEWORK_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _user_project(tmp_path: Path) -> Path:
    """A directory like a user's project, with its own top-level ``plugins`` package."""
    project = tmp_path / "project"
    (project / "plugins" / "backends").mkdir(parents=True)
    (project / "plugins" / "__init__.py").write_text('"""The user\'s own plugins package."""\n')
    (project / "plugins" / "backends" / "__init__.py").write_text("")
    return project


def test_the_wheel_has_no_top_level_plugins_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert top_level == {"framework", "reactor_framework_plugins"}
    for sub in ("backends", "protocols", "middleware"):
        assert f"reactor_framework_plugins/{sub}/__init__.py" in names
    assert "reactor_framework_plugins/protocols/echo.py" in names
    values = re.findall(r"^\S+ = (\S+)$", entry_points, re.M)
    assert values and not [v for v in values if v.startswith("plugins.")], entry_points


def test_builtins_import_as_reactor_framework_plugins(venv_python: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(venv_python), "-c",
         "import reactor_framework_plugins.protocols.echo as m, importlib.util as u; "
         "print(m.__name__, u.find_spec('plugins') is None)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_isolated_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["reactor_framework_plugins.protocols.echo", "True"]


def test_list_works_next_to_a_users_own_plugins_package(venv_python: Path, tmp_path: Path) -> None:
    project = _user_project(tmp_path)
    result = subprocess.run(
        [str(venv_python), "-m", "framework", "--list"],
        cwd=project, capture_output=True, text=True, timeout=60, env=_isolated_env(),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "failed to load" not in out, out
    assert "No module named 'plugins" not in out + result.stderr, out
    assert "Traceback" not in result.stderr, result.stderr
    for name in (*PROTOCOLS, *REACTORS, *MIDDLEWARE):
        rows = re.findall(rf"^  {re.escape(name)}\s.*$", out, re.M)
        assert len(rows) == 1, (name, out)
        [row] = rows
        assert "[reactor-framework " in row, (name, out)
        assert "No module named" not in row, row
    for name in REACTORS:
        if name == "epoll" and not hasattr(select, "epoll"):
            continue
        [row] = re.findall(rf"^  {name}\s.*$", out, re.M)
        assert "(available" in row, row


def test_wheel_metadata_declares_only_what_is_needed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(zf.read(n).decode() for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    requires = re.findall(r"^Requires-Dist: (\S+)(.*)$", metadata, re.M)
    runtime = [name for name, rest in requires if "extra ==" not in rest]
    assert runtime and all(name.startswith("pluggy") for name in runtime), runtime
    assert "importlib-metadata" not in metadata.lower()  # the stdlib has it on 3.11+
    classifiers = re.findall(r"^Classifier: (.+)$", metadata, re.M)
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Typing :: Typed" in classifiers


def test_the_sdist_carries_docs_changelog_examples_and_tests(tmp_path: Path) -> None:
    if not _can_build_offline():
        pytest.skip("this interpreter's setuptools cannot build offline (needs >= 77)")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "bin", "*.egg-info", "build", ".venv")
    shutil.copytree(ROOT, src, ignore=ignore, symlinks=True)
    out = tmp_path / "dist"
    code = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    result = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    import tarfile

    with tarfile.open(out / result.stdout.strip().splitlines()[-1]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for expected in ("docs/index.md", "docs/processes.md", "CHANGELOG.md", "README.md", "LICENSE",
                     "examples/processes.py", "tests/conftest.py", "benchmarks/run_echo.py",
                     "framework/__init__.py", "plugins/protocols/echo.py"):
        assert expected in names, expected
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_plugin_guide_order_framework_first_then_the_plugin(
    wheel: Path, venv_python: Path, tmp_path: Path
) -> None:
    """docs/plugin-guide.md: with the framework installed first, ``pip install`` of the example
    plugin resolves its ``reactor-framework`` dependency from the environment (no index), and
    the plugin's protocol and middleware are listed."""
    plugin = tmp_path / "third_party_plugin"
    shutil.copytree(ROOT / "examples" / "third_party_plugin", plugin,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(plugin)]
    if _can_build_offline():
        cmd[4:4] = ["--no-build-isolation", "--no-index"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    [built] = (tmp_path / "dist").glob("reactor_rot13-*.whl")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv_python), "install", "--quiet", "--no-index", str(built)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=_isolated_env(),
    )
    assert result.returncode == 0, result.stderr
    listed = subprocess.run(
        [str(venv_python), "-m", "framework", "--list"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=_isolated_env(),
    )
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^  rot13\s.*\[reactor-rot13 1\.0\.0\]$", listed.stdout, re.M), listed.stdout
    assert re.search(r"^  callcount\s.*\[reactor-rot13 1\.0\.0\]$", listed.stdout, re.M), listed.stdout
