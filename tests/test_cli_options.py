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
from serve_util import SERVE, env_with, run_cli


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


# --- options that take one value ----------------------------------------------------------------


@pytest.mark.parametrize("args, named", [
    (["--protocol", "echo", "--protocol", "chat"], "--protocol: given twice with different values ('echo', then 'chat')"),
    (["--protocol", "echo", "--port", "0", "--port", "1"], "--port: given twice with different values ('0', then '1')"),
    (["--protocol", "echo", "--port=0", "--port", "1"], "--port: given twice with different values ('0', then '1')"),
    (["--protocol", "echo", "--reactor", "poll", "--reactor", "select"], "--reactor: given twice"),
    (["--protocol", "echo", "--log-level", "info", "--log-level", "debug"], "--log-level: given twice"),
    (["--protocol", "echo", "--workers", "auto", "--workers", "2"], "('auto', then '2')"),
])
def test_a_single_valued_option_given_twice_is_a_usage_error(args: list[str], named: str) -> None:
    line = error_line(run_cli(*args, *NEVER_LISTENS, env=_env()))
    assert named in line


def test_the_same_value_twice_is_accepted() -> None:
    args = cli.build_parser().parse_args(
        ["--protocol", "echo", "--port", "7", "--port", "7", "--interface", "localhost",
         "--interface", "127.0.0.1", "--log-level", "INFO", "--log-level", "info"])
    assert (args.port, args.interface, args.log_level) == (7, "127.0.0.1", "info")


def test_repeatable_options_still_repeat() -> None:
    args = cli.build_parser().parse_args(
        ["--protocol", "echo", "--listen", "tcp:0", "--listen", "tcp:1", "--middleware", "a",
         "--middleware", "b", "--option", "x=1", "--option", "y=2"])
    assert args.listen == ["tcp:0", "tcp:1"] and args.middleware == ["a", "b"]
    assert args.option == ["x=1", "y=2"]


@pytest.mark.parametrize("text", ["0", "-1", "two"])
def test_workers_needs_a_count_of_one_or_more(text: str) -> None:
    with pytest.raises(cli.UsageError) as info:
        cli.build_parser().parse_args(["--protocol", "echo", "--workers", text])
    assert str(info.value) == (
        f"argument --workers: expected a worker count (1 or more) or 'auto', got {text!r}")


# --- what the environment chose -----------------------------------------------------------------


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["single", "workers"])
def test_an_unknown_backend_from_the_environment_names_the_variable(workers: list[str]) -> None:
    line = error_line(run_cli("--protocol", "echo", "--port", "0", *workers,
                              env=_env(REACTOR_FRAMEWORK_BACKEND="bogus")))
    assert "unknown reactor backend 'bogus'" in line
    assert "$REACTOR_FRAMEWORK_BACKEND" in line


def test_a_disabled_protocol_is_named_as_disabled() -> None:
    env = _env(REACTOR_FRAMEWORK_DISABLE_PLUGINS="chat,qotd")
    line = error_line(run_cli("--protocol", "chat", "--port", "0", env=env))
    assert "unknown protocol 'chat'" in line
    assert "the entry point 'chat' is disabled by $REACTOR_FRAMEWORK_DISABLE_PLUGINS" in line
    listed = run_cli("--list", env=env)
    assert listed.returncode == 0, listed
    assert "chat" not in listed.stdout and listed.stderr == ""  # left out, quietly


def test_an_unknown_protocol_that_is_not_disabled_says_nothing_of_it() -> None:
    line = error_line(run_cli("--protocol", "nosuch", "--port", "0",
                              env=_env(REACTOR_FRAMEWORK_DISABLE_PLUGINS="chat")))
    assert "unknown protocol 'nosuch'" in line and "disabled" not in line


def test_list_into_a_closed_pipe_exits_quietly() -> None:
    r, w = os.pipe()
    os.close(r)  # nobody will read: the first write fails with EPIPE
    try:
        proc = subprocess.run([*SERVE, "--list"], stdout=w, stderr=subprocess.PIPE, text=True,
                              timeout=60, env=_env(), stdin=subprocess.DEVNULL)
    finally:
        os.close(w)
    assert proc.returncode == 141, proc
    assert proc.stderr == ""
