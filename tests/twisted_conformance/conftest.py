"""Compare every ported Twisted test's outcome with ``expectations.txt``.

- a test that fails and is listed is reported as passed (an expected failure, counted in the
  summary);
- a test that fails and is not listed fails, with its own traceback;
- a test that passes and is listed fails with "remove this line from the expectation file".

With ``TWISTED_CONFORMANCE_UPDATE=1`` (what ``python -m tests.twisted_conformance --update``
sets) nothing is compared: every ported test is reported as passed and ``expectations.txt`` is
rewritten for the tests that ran (other lines are kept), keeping the reason of every line that is still needed and
classifying new failures automatically ("missing: <API>" when the failure is a name framework
does not have; "unexplained: ..." otherwise, for a person to replace with the real reason).
"""

from __future__ import annotations

import gc
import ipaddress
import os
import socket
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from .expectations import EXPECTATIONS_FILE, classify, read_expectations, write_expectations

HERE = Path(__file__).parent
UPDATE = os.environ.get("TWISTED_CONFORMANCE_UPDATE") == "1"

_expected = read_expectations(EXPECTATIONS_FILE)
# module -> Counter of "passed", "expected failure", "unexpected failure", "unexpected pass", "skipped"
_counts: dict[str, Counter[str]] = defaultdict(Counter)
_failures: dict[str, str] = {}  # update mode: test id -> reason
_modules_run: set[str] = set()
_ids_run: set[str] = set()
_skip_reasons: Counter[str] = Counter()


def twisted_id(item: pytest.Item) -> str | None:
    """``twisted.test.test_defer.DeferredTests.test_x`` for a ported test, else None."""
    cls = getattr(item, "cls", None)
    if cls is not None and getattr(getattr(item, "module", None), "TWISTED_MODULE", None):
        return f"{cls.__module__}.{cls.__name__}.{item.name}"
    return getattr(getattr(item, "function", None), "twisted_id", None)


def _module_of(tid: str) -> str:
    """The Twisted module of a test id (``pkg.test_mod.Class.test_x`` or ``pkg.test_mod.<import>``)."""
    parts = tid.split(".")
    for i, part in enumerate(parts):
        if part.startswith("test_"):
            return ".".join(parts[: i + 1])
    return tid


#: Ported tests not run at all, each with the reason: they leave the reactor unusable for
#: the tests after them, so an expectation line cannot cover them.
NOT_RUN = {
    "twisted.test.test_process.PosixProcessTests.test_errorInProcessEnded":
        "leaves a child running under the trial stand-in (to investigate; framework's own "
        "tests cover an error in processEnded)",
    "twisted.test.test_process.PosixProcessPTYTests.test_errorInProcessEnded":
        "leaves a child running under the trial stand-in (to investigate)",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Ported tests that Twisted itself skips here (``skipIf``: no pyOpenSSL...) are not run,
    nor those in ``NOT_RUN``.

    They are deselected and counted in the summary with their reason, instead of filling the
    ``-ra`` report with one SKIPPED line each.
    """
    keep, drop = [], []
    for item in items:
        tid = twisted_id(item)
        cls = getattr(item, "cls", None)
        method = getattr(cls, item.name, None) if tid and cls is not None else None
        skipped = tid and (getattr(cls, "__unittest_skip__", False) or getattr(method, "__unittest_skip__", False))
        if tid in NOT_RUN:
            _counts[_module_of(tid)]["skipped"] += 1
            _skip_reasons[f"not run: {NOT_RUN[tid]}"] += 1
            drop.append(item)
        elif skipped:
            why = getattr(method, "__unittest_skip_why__", None) or getattr(cls, "__unittest_skip_why__", "")
            _counts[_module_of(tid)]["skipped"] += 1
            _skip_reasons[why] += 1
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        items[:] = keep
        config.hook.pytest_deselected(items=drop)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> pytest.TestReport | None:
    """Judge a ported test's outcome against the expectation file (see the module docstring).

    This runs after pytest's unittest plugin has put the test's exception in ``call.excinfo``
    and instead of pytest's own report maker: an expected failure's traceback is never
    formatted (that would cost most of the run's time).
    """
    tid = twisted_id(item)
    if tid is None:
        return None
    module = _module_of(tid)
    _modules_run.add(module)
    if call.when == "call":
        _ids_run.add(tid)
    reason = _expected.get(tid)
    failed = call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception)
    if call.when == "call" and failed and (reason is not None or UPDATE):
        if UPDATE:  # recorded for the new expectation file, reported as passed
            _failures[tid] = reason if reason else classify(call.excinfo)
        _counts[module]["expected failure"] += 1
        return pytest.TestReport(item.nodeid, item.location, {}, "passed", None, "call",
                                 sections=[], duration=call.duration, start=call.start, stop=call.stop)
    rep = pytest.TestReport.from_item_and_call(item, call)
    if rep.when != "call":
        if rep.failed:  # a fixture of ours broke: always a real failure
            _counts[module]["unexpected failure"] += 1
        elif rep.skipped:
            _counts[module]["skipped"] += 1
        return rep
    if rep.skipped:
        _counts[module]["skipped"] += 1
        return rep
    if UPDATE:
        _counts[module]["passed"] += 1
        return rep
    if rep.failed:
        rep.sections.append(("twisted conformance", (
            f"{tid} failed and is not listed in {EXPECTATIONS_FILE.name}. If the failure is "
            f"intended or known, add the line:\n{tid} {classify(call.excinfo)}")))
        _counts[module]["unexpected failure"] += 1
    elif reason is not None:
        rep.outcome = "failed"
        rep.longrepr = (f"{tid} passed, but {EXPECTATIONS_FILE.name} lists it as failing "
                        f"({reason}): remove this line from the expectation file")
        _counts[module]["unexpected pass"] += 1
    else:
        _counts[module]["passed"] += 1
    return rep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    gc.unfreeze()  # trial.SynchronousTestCase.run froze the heap to keep its gc.collect() cheap
    if not UPDATE or not _modules_run:
        return
    # Lines of tests that did not run this time (another module, -k...) are kept as they are.
    kept = {tid: r for tid, r in _expected.items() if tid not in _ids_run}
    kept.update(_failures)
    write_expectations(EXPECTATIONS_FILE, kept)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not any(c[k] for c in _counts.values() for k in c if k != "skipped"):
        return  # nothing ran (e.g. --collect-only)
    tr = terminalreporter
    tr.section("Twisted conformance (tests passing once ported by changing imports)")
    total: Counter[str] = Counter()
    for module in sorted(_counts):
        c = _counts[module]
        total.update(c)
        tr.write_line(_line(module, c))
    tr.write_line(_line("total", total))
    for why, n in _skip_reasons.most_common():
        tr.write_line(f"skipped by Twisted's own skipIf ({n}): {why}")
    if UPDATE:
        tr.write_line(f"rewrote {EXPECTATIONS_FILE}")
        reasons = Counter(r for r in _failures.values())
        for reason, n in reasons.most_common():
            tr.write_line(f"  {n:4d}  {reason}")


def _line(name: str, c: Counter[str]) -> str:
    ran = c["passed"] + c["expected failure"] + c["unexpected failure"] + c["unexpected pass"]
    extra = ""
    if c["unexpected failure"] or c["unexpected pass"]:
        extra = f"; NOT AS EXPECTED: {c['unexpected failure']} new failures, {c['unexpected pass']} new passes"
    skipped = f", {c['skipped']} skipped" if c["skipped"] else ""
    passing = c["passed"] + c["unexpected pass"]
    pct = f" ({100 * passing / ran:.0f}%)" if ran else ""
    return f"{name:45s} {passing:4d} of {ran:4d} pass{pct}{skipped}{extra}"


# -- only loopback addresses --------------------------------------------------------------------

class NonLoopbackAddress(OSError):
    """A ported test tried to use an address other than 127.0.0.1 / ::1 (refused)."""


def _check_address(address: Any, *, bind: bool) -> None:
    if not isinstance(address, tuple) or not address:
        return  # AF_UNIX path or similar: local by nature
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host in ("localhost",):
        return
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        raise NonLoopbackAddress(f"refused: {host!r} is not a loopback address") from None
    if not ip.is_loopback:
        raise NonLoopbackAddress(f"refused: {host!r} is not a loopback address")


_real = {name: getattr(socket.socket, name) for name in ("bind", "connect", "connect_ex", "sendto")}


def _guarded(name: str) -> Any:
    real = _real[name]

    def method(self: socket.socket, *args: Any) -> Any:
        address = args[-1] if name == "sendto" else args[0]
        _check_address(address, bind=(name == "bind"))
        return real(self, *args)

    method.__name__ = name
    return method


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host not in (None, "localhost", b"localhost"):
        _check_address((host,), bind=False)
    return _real_getaddrinfo(host, *args, **kwargs)


_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ported tests may only bind, connect or send to 127.0.0.1 / ::1 (or a UNIX path)."""
    for name in _real:
        monkeypatch.setattr(socket.socket, name, _guarded(name))
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
