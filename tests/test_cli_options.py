"""``reactor-serve``: a protocol option given twice, and how ``--list`` reports failed plugins.

Real subprocesses (``python -m framework``); every case here exits at once, so
``serve_util.run_cli`` (run to completion, with a timeout) is enough.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Sequence

import pytest

from framework import cli
from serve_util import env_with, run_cli


def _env(**extra: str) -> dict[str, str]:
    """This environment without any ``REACTOR_FRAMEWORK_*`` setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_FRAMEWORK_")}
    env.update(extra)
    return env


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``reactor-serve: error:`` line of a usage error (status 2, nothing on stdout)."""
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reactor-serve: error: "), result.stderr
    return lines[0]


# --- one option given twice ---------------------------------------------------------------------


TWICE: list[tuple[Sequence[str], Sequence[str]]] = [
    # same spelling: refused (as it always was)
    (["max-line=10", "max-line=20"], ["--option max-line given twice"]),
    (["max_line=10", "max_line=20"], ["--option max_line given twice"]),
    # two spellings of one option: refused too, naming both
    (["max-line=10", "max_line=20"], ["--option max_line given twice", "as max-line and max_line"]),
    (["max_line=10", "max-line=20"], ["--option max-line given twice", "as max_line and max-line"]),
    # the same value twice does not make it acceptable
    (["max-line=10", "max_line=10"], ["--option max_line given twice", "as max-line and max_line"]),
]


# Checked only after the options: should the duplicate slip through, the run still ends at
# once (with another error, so the test fails) instead of serving until the timeout.
NEVER_LISTENS = ("--listen", "never:1")


@pytest.mark.parametrize(("options", "mentions"), TWICE, ids=[" ".join(o) for o, _ in TWICE])
def test_an_option_given_twice_is_a_usage_error(options: Sequence[str], mentions: Sequence[str]) -> None:
    args = ["--protocol", "chat", "--port", "0", *NEVER_LISTENS]
    for option in options:
        args += ["--option", option]
    line = error_line(run_cli(*args, env=_env()))
    for text in mentions:
        assert text in line
    assert "Traceback" not in line


def test_an_option_given_twice_is_refused_before_any_worker_starts() -> None:
    line = error_line(run_cli("--protocol", "chat", "--port", "0", "--workers", "2", *NEVER_LISTENS,
                              "--option", "max-line=10", "--option", "max_line=20", env=_env()))
    assert "as max-line and max_line" in line


def test_parse_options_keeps_the_spelling_and_accepts_distinct_options() -> None:
    """The accepted case still works: one spelling each, handed on as given (the registry maps
    ``max-line`` to ``max_line``)."""
    assert cli._parse_options(["max-line=10", "delay=0.5", "chunk=a=b"]) == {
        "max-line": "10", "delay": "0.5", "chunk": "a=b",
    }
    with pytest.raises(cli.UsageError, match="as max-line and max_line"):
        cli._parse_options(["max-line=1", "max_line=2"])


# --- --list: a failed plugin's error with its type ----------------------------------------------


BROKEN_MODULES = {
    "broken_missing": "import reactor_framework_tests_no_such_module\n",
    "broken_hook": """
        from framework import hookimpl

        @hookimpl
        def register_protocols(registry):
            raise ValueError("refused on purpose\\nsecond line")
    """,
    "broken_silent": "raise RuntimeError()\n",
}


@pytest.fixture
def broken_site(tmp_path: Path) -> dict[str, str]:
    """An environment with one installed distribution whose three plugins all fail."""
    site = tmp_path / "site"
    info = site / "reactor_broken_fixture-0.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: reactor-broken-fixture\nVersion: 0.2\n")
    (info / "entry_points.txt").write_text(
        "[reactor_framework]\n" + "".join(f"{m.replace('_', '-')} = {m}\n" for m in BROKEN_MODULES)
    )
    for module, source in BROKEN_MODULES.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return _env(PYTHONPATH=env_with(site)["PYTHONPATH"])


def test_list_shows_each_failure_with_its_exception_type(broken_site: dict[str, str]) -> None:
    result = run_cli("--list", env=broken_site)
    assert result.returncode == 0, result.stderr
    head, sep, failures = result.stdout.partition("Plugins that failed to load:\n")
    assert sep, result.stdout
    assert re.search(r"^  echo\s.*\[reactor-framework ", head, re.M)  # the rest still listed
    origin = "[reactor-broken-fixture 0.2]"
    assert failures.splitlines() == [
        f"  broken-hook  {origin}: ValueError: refused on purpose second line",
        f"  broken-missing  {origin}: ModuleNotFoundError: No module named "
        "'reactor_framework_tests_no_such_module'",
        f"  broken-silent  {origin}: RuntimeError",
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1", "127.0.0.1"),
    ("::1", "::1"),
    ("fe80::1%lo", "fe80::1%lo"),  # a scoped IPv6 literal, as endpoint strings take it
    ("localhost", "127.0.0.1"),
])
def test_interface_takes_ip_literals(text: str, expected: str) -> None:
    """Parsing only: nothing is bound."""
    args = cli.build_parser().parse_args(["--protocol", "echo", "--interface", text])
    assert args.interface == expected


@pytest.mark.parametrize("text", ["example.com", "127.0.0.1%lo", "1.2.3", ""])
def test_interface_refuses_anything_but_an_ip_literal(text: str) -> None:
    with pytest.raises(cli.UsageError, match="expected an IPv4 or IPv6 address"):
        cli.build_parser().parse_args(["--protocol", "echo", "--interface", text])
