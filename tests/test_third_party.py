"""A third-party plugin, for real: ``pip install`` the example packages into a temporary target,
then use them through ``reactor-serve`` with that target on ``PYTHONPATH``."""

from __future__ import annotations

import importlib.util
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from serve_util import connect, env_with, recv_exactly, recv_line, run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _can_build_offline() -> bool:
    """True when this interpreter's setuptools can build a wheel by itself (no isolated env)."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin and the broken one, installed with pip into a fresh target directory."""
    work = tmp_path_factory.mktemp("third_party")
    sources = []
    for name in ("third_party_plugin", "broken_plugin"):
        # Build from copies so the build leaves nothing in the repository.
        copy = work / name
        shutil.copytree(EXAMPLES / name, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        sources.append(str(copy))
    target = work / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *sources]
    if _can_build_offline():
        cmd[4:4] = ["--no-build-isolation", "--no-index"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert any(p.name.startswith("reactor_rot13-1.0.0") for p in target.glob("*.dist-info"))
    return target


def test_list_shows_the_plugin_its_distribution_and_the_failures(site: Path) -> None:
    result = run_cli("--list", env=env_with(site))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^  rot13\s.*ROT13.*\[reactor-rot13 1\.0\.0\]$", out, re.M), out
    assert re.search(r"^  callcount\s.*\[reactor-rot13 1\.0\.0\]$", out, re.M), out
    # the built-ins are all still there
    for name in ("echo", "chat", "contextvars"):
        assert re.search(rf"^  {name}\s.*\[reactor-framework ", out, re.M), name
    # the broken package is reported, with its distribution and error, and skipped
    failures = out.split("Plugins that failed to load:", 1)[1]
    assert re.search(r"broken-import.*reactor-broken-example 0\.0\.1.*reactor_framework_no_such_package", failures)
    assert re.search(r"broken-register.*reactor-broken-example 0\.0\.1.*broken on purpose", failures)
    assert "Traceback" not in result.stderr


def test_serve_the_third_party_protocol_with_its_middleware(site: Path, serve: Any) -> None:
    s = serve(
        "--protocol", "rot13", "--port", "0", "--option", "upper=yes", "--middleware", "callcount",
        env=env_with(site),
    )
    with connect(s.tcp_port()) as c:
        c.sendall(b"Hello, plugin\n")
        assert recv_line(c) == b"URYYB, CYHTVA\n"
        c.sendall(b"again\n")
        assert recv_line(c) == b"NTNVA\n"
    # the middleware visibly acts: one log line per callback run (sendLine, once per line)
    s.wait_stderr(r"INFO reactor_rot13: callcount: 2 Deferred callbacks run so far")
    s.signal(signal.SIGTERM)
    assert s.finish() == 0


def test_third_party_option_errors_are_clear(site: Path) -> None:
    result = run_cli("--protocol", "rot13", "--option", "upper=maybe", env=env_with(site))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()[-1:]
    assert line.startswith("reactor-serve: error:") and "upper" in line
    assert "Traceback" not in result.stderr


def test_builtins_keep_working_next_to_a_broken_plugin(site: Path, serve: Any) -> None:
    s = serve("--protocol", "echo", "--port", "0", env=env_with(site))
    with connect(s.tcp_port()) as c:
        c.sendall(b"still here")
        assert recv_exactly(c, 10) == b"still here"
    s.signal(signal.SIGINT)
    assert s.finish() == 0


def test_disabled_plugins_are_not_loaded(site: Path) -> None:
    env = env_with(site, REACTOR_FRAMEWORK_DISABLE_PLUGINS="broken-import,broken-register,rot13")
    result = run_cli("--list", env=env)
    assert result.returncode == 0, result.stderr
    assert "Plugins that failed to load" not in result.stdout
    assert "rot13" not in result.stdout
    assert re.search(r"^  echo\s", result.stdout, re.M)


def test_the_plugin_guide_shows_the_example_files_verbatim() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "plugin-guide.md").read_text()
    blocks = re.findall(r"^\*\*`([^`]+)`\*\*\n\n```\w*\n(.*?)^```$", guide, re.M | re.S)
    assert {path for path, _ in blocks} == {"pyproject.toml", "src/reactor_rot13/__init__.py", "tests/test_rot13.py"}
    for path, code in blocks:
        assert code == (EXAMPLES / "third_party_plugin" / path).read_text(), path
    [readme] = re.findall(r"^\*\*`README\.md`\*\*.*?\n\n````markdown\n(.*?)^````$", guide, re.M | re.S)
    assert readme == (EXAMPLES / "third_party_plugin" / "README.md").read_text()


def test_the_example_plugin_own_tests_pass_once_installed(site: Path) -> None:
    tests = EXAMPLES / "third_party_plugin" / "tests"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests), str(tests)],
        capture_output=True, text=True, timeout=120, cwd=str(tests), stdin=subprocess.DEVNULL,
        env=env_with(site, PYTHONDONTWRITEBYTECODE="1"),  # leave no __pycache__ in the repository
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
