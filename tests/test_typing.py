"""The types help: mypy, run as a subprocess from this venv, accepts the reactor facets as
``Reactor``, ``MemoryReactor`` and ``Clock`` implement them (``tests/typecheck/check_facets.py``)
and reports seeded mistakes in code typed against them.

Both runs share one mypy cache (in a temporary directory) so the second one is quick. mypy runs
from the project root, where it finds ``framework`` and the ``[tool.mypy]`` settings.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ROOT / "tests" / "typecheck" / "check_facets.py"

# Each line ending in "# E: <code>" must be reported with that error code; no other line may be.
SEEDED = '''\
from framework.defer import Deferred, succeed
from framework.interfaces import IReactorFDSet, IReactorTCP, IReactorThreads, IReactorTime
from framework.protocol import Factory, Protocol
from framework.task import LoopingCall, deferLater
from framework.testing import MemoryReactor


def tick() -> None:
    pass


def shout(text: str) -> str:
    return text.upper()


def use(reactor: IReactorTime, tcp: IReactorTCP, threads: IReactorThreads, fds: IReactorFDSet) -> None:
    reactor.callLater("soon", tick)  # E: arg-type
    reactor.callLatr(1.0, tick)  # E: attr-defined
    tcp.listenTCP("8000", Factory.forProtocol(Protocol))  # E: arg-type
    tcp.connectTCP("localhost", 80, Factory.forProtocol(Protocol), timeout="30")  # E: arg-type
    threads.suggestThreadPoolSize("4")  # E: arg-type
    fds.addReader(42)  # E: arg-type
    tcp.listenUDP(53, None)  # E: attr-defined
    d: Deferred[int] = succeed(1)
    d.addCallback(shout)  # E: call-overload
    count: Deferred[int] = succeed("three")  # E: arg-type
    text: Deferred[str] = d.addCallback(str).addCallback(len)  # E: call-overload
    deferLater("reactor", 1.0)  # E: arg-type
    LoopingCall(tick).clock = "reactor"  # E: assignment
    fine: IReactorTime = MemoryReactor()
    fine.callLater(0.5, tick)


class Greeter(Protocol):
    def connectionMade(self) -> None:
        self.transport.write("hello\\r\\n")  # E: arg-type
        self.transport.write(b"hello\\r\\n")
        self.transport.loseConection()  # E: attr-defined
        self.transport.registerProducer(self.transport, True)
'''


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def run_mypy(cache: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-error-summary",
         "--show-error-codes", "--hide-error-context", str(target)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_reactor_memory_reactor_and_clock_satisfy_the_facets(mypy_cache: Path) -> None:
    result = run_mypy(mypy_cache, CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_reports_each_seeded_mistake(mypy_cache: Path, tmp_path: Path) -> None:
    user_file = tmp_path / "user_code.py"
    user_file.write_text(SEEDED)
    result = run_mypy(mypy_cache, user_file)
    assert result.returncode == 1, result.stdout + result.stderr
    expected = {
        number: line.rsplit("# E: ", 1)[1].strip()
        for number, line in enumerate(SEEDED.splitlines(), 1)
        if "# E: " in line
    }
    reported: dict[int, set[str]] = {}
    for line in result.stdout.splitlines():
        match = re.match(r".*user_code\.py:(\d+): error: .*\[([\w-]+)\]$", line)
        if match:
            reported.setdefault(int(match.group(1)), set()).add(match.group(2))
    assert set(reported) == set(expected), result.stdout
    for number, code in expected.items():
        assert code in reported[number], (number, result.stdout)
