"""The benchmark driver explains itself: every option of run_echo.py has help text."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_run_echo_option_has_help() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_echo.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    options = proc.stdout[proc.stdout.index("options:"):]
    entries = re.split(r"\n  (?=-)", options)[1:]
    assert len(entries) >= 12
    bare = [e.split()[0] for e in entries if len(e.split("  ")) < 2 or not e.split("  ", 1)[1].strip()]
    assert not bare, f"options without help text: {bare}"


def test_the_peers_venv_the_docs_create_is_ignored_by_git() -> None:
    # docs/benchmarks.md creates ./peers; read .gitignore (a checkout need not be a git repo).
    patterns = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert patterns & {"peers/", "/peers/", "peers", "/peers"}
