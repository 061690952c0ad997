"""The expectation file: every ported Twisted test allowed to fail, one line each, with why.

Format of ``expectations.txt``: ``#`` starts a comment; every other line is
``<test id> <reason>``, the test id being trial's dotted name
(``twisted.test.test_defer.DeferredTests.test_x``). A reason starts with one of
:data:`CATEGORIES`:

- ``missing: <API>`` -- API (or behaviour of an existing API) that framework does not have yet;
- ``differs: <what> (docs/<file>.md)`` -- a deliberate difference, documented there;
- ``out of scope: <why>`` -- Twisted-only machinery that framework will not have;
- ``unexplained: <exception>`` -- written by ``--update`` for a new failure it cannot
  classify; a person replaces it with one of the above.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

EXPECTATIONS_FILE = Path(__file__).with_name("expectations.txt")
CATEGORIES = ("missing:", "differs:", "out of scope:", "unexplained:")

HEADER = """\
# Twisted tests that are allowed to fail once ported to framework, and why.
# Read by tests/twisted_conformance (see docs/testing.md, "Twisted conformance").
# A listed test that passes fails the run ("remove this line"); an unlisted failure fails it too.
# Regenerate with:  python -m tests.twisted_conformance --update   (keeps existing reasons)
# Reasons: "missing: <API>" (not built yet), "differs: <what> (docs/<file>)" (deliberate),
#          "out of scope: <why>", "unexplained: ..." (to be replaced by one of the others).
"""


def read_expectations(path: Path) -> dict[str, str]:
    expected: dict[str, str] = {}
    if not path.exists():
        return expected
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tid, _, reason = line.partition(" ")
        reason = reason.strip()
        if not reason.startswith(CATEGORIES):
            raise ValueError(f"{path}:{lineno}: the reason must start with one of {CATEGORIES}: {raw!r}")
        if tid in expected:
            raise ValueError(f"{path}:{lineno}: {tid} is listed twice")
        expected[tid] = reason
    return expected


def write_expectations(path: Path, expected: dict[str, str]) -> None:
    lines = [HEADER]
    module = None
    for tid in sorted(expected):
        mod = tid.split(".")[:-2]
        if mod != module:
            module = mod
            lines.append(f"\n# {'.'.join(mod)}\n")
        lines.append(f"{tid} {expected[tid]}\n")
    path.write_text("".join(lines), encoding="utf-8")


def classify(excinfo: Any) -> str:
    """A reason for a new failure, guessed from its exception (and the exceptions it chains)."""
    if excinfo is None:
        return "unexplained: no exception information"
    exc = excinfo.value
    seen = exc
    while seen is not None:  # a MissingAPI anywhere in the chain decides
        reason = _missing_reason(seen)
        if reason:
            return reason
        seen = seen.__cause__ or seen.__context__
    found = re.search(r"missing: (framework[\w.]*)", str(exc))
    if found:
        return _name_reason(found.group(1))
    if type(exc).__name__ == "NonLoopbackAddress":
        return "out of scope: uses a non-loopback address (refused by the runner)"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = re.sub(r"0x[0-9a-f]+", "0x...", message)[:120]
    return f"unexplained: {type(exc).__name__}: {message}"


def _name_reason(name: str) -> str:
    if any(part.startswith("_") for part in name.split(".")):
        return f"out of scope: tests Twisted's private {name.replace('framework.', '', 1)}"
    return f"missing: {name}"


def _missing_reason(exc: BaseException) -> str | None:
    from .porting import MissingAPI

    if isinstance(exc, MissingAPI):
        return _name_reason(str(exc).removeprefix("missing: "))
    if isinstance(exc, AttributeError):
        obj = getattr(exc, "obj", None)
        name = getattr(exc, "name", None)
        if obj is None or not name:
            return None
        if isinstance(obj, type(re)):
            if obj.__name__.startswith("framework"):
                return _name_reason(f"{obj.__name__}.{name}")
            return None
        cls = obj if isinstance(obj, type) else type(obj)
        for klass in cls.__mro__:  # the framework class a test's subclass builds on
            if klass.__module__.startswith("framework"):
                return _name_reason(f"{klass.__module__}.{klass.__qualname__}.{name}")
    return None
