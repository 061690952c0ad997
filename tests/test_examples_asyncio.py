"""examples/asyncio_interop.py, run as a script: asyncio streams used from a Protocol, and a
coroutine awaiting Deferred-returning APIs, on the asyncio backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from framework import plugins

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "asyncio_interop.py"
NAMES = [name for name in ("asyncio", "uvloop") if plugins.reactors().get(name).availability() is None]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("backend", NAMES)
def test_lookups_go_through_both_styles(backend: str) -> None:
    proc = _run("--reactor", backend, "deferred", "Future", "banana")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "deferred: a result that is not there yet, with callbacks for when it is",
        "Future: asyncio's word for a deferred",
        "banana: no idea",
    ]
    assert "Traceback" not in proc.stderr
    assert "Unhandled" not in proc.stderr


def test_default_words() -> None:
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == ["reactor", "deferred", "future"]


def test_a_backend_without_asyncio_loop_is_refused_clearly() -> None:
    proc = _run("--reactor", "select")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "'select'" in proc.stderr
    assert "Traceback" not in proc.stderr
