"""The pytest plugin's real-reactor support, run as a user's test suite would run it: a test
file in a temporary folder, pytest in a subprocess, outcomes read from ``-rA`` lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

USER_TESTS = '''
import socket

import pytest

import framework
from framework import defer, task
from framework.defer import Deferred, inlineCallbacks
from framework.protocol import ClientFactory, Factory, Protocol


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Collect(Protocol):
    def __init__(self):
        self.received = Deferred()

    def connectionMade(self):
        self.transport.write(b"ping")

    def dataReceived(self, data):
        self.transport.loseConnection()
        self.received.callback(data)


def _echo_round_trip(reactor):
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    client = Collect()
    factory = ClientFactory.forProtocol(lambda: client)
    reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    client.received.addBoth(lambda r: port.stopListening().addCallback(lambda _: r))
    return client.received


def test_returns_a_deferred(reactor):
    assert reactor is framework.reactor
    return _echo_round_trip(reactor).addCallback(lambda data: assert_equal(data, b"ping"))


def assert_equal(a, b):
    assert a == b


async def test_async_def(reactor):
    data = await _echo_round_trip(reactor)
    assert data == b"ping"
    assert await task.deferLater(reactor, 0.01, lambda: 7) == 7


@inlineCallbacks
def test_inline_callbacks(reactor):
    value = yield task.deferLater(reactor, 0.01, lambda: "later")
    assert value == "later"


async def test_async_failure_is_reported(reactor):
    await task.deferLater(reactor, 0, lambda: None)
    assert 1 == 2, "the assertion inside the coroutine"


def test_errback_is_reported(reactor):
    return task.deferLater(reactor, 0, lambda: 1 / 0)


@pytest.mark.reactor_timeout(0.3)
def test_never_fires(reactor):
    return Deferred()


@pytest.mark.reactor_backend("select")
def test_private_backend(reactor):
    assert reactor is not framework.installed_reactor()
    assert reactor.backend_name == "select"
    return _echo_round_trip(reactor)


def test_global_reactor_again_after_the_private_one(reactor):
    assert reactor.backend_name == "poll"
    return task.deferLater(reactor, 0, lambda: None)


def test_stopped_from_inside(reactor):
    d = Deferred()
    reactor.callLater(0, reactor.stop)
    return d


def test_plain_test_untouched():
    assert framework.installed_reactor().running is False
'''


def _run_user_suite(tmp_path: Path, source: str, *options: str) -> tuple[dict[str, str], str]:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("REACTOR_FRAMEWORK_BACKEND", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", *options, "test_user.py"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    outcomes = {
        m.group(2): m.group(1)
        for m in re.finditer(r"^(PASSED|FAILED|ERROR|SKIPPED) test_user\.py::(\w+)", out.stdout, re.M)
    }
    return outcomes, out.stdout + out.stderr


def test_deferred_async_and_inline_callbacks_tests_run_on_the_reactor(tmp_path: Path) -> None:
    outcomes, output = _run_user_suite(tmp_path, USER_TESTS, "--reactor-backend", "poll")
    assert outcomes == {
        "test_returns_a_deferred": "PASSED",
        "test_async_def": "PASSED",
        "test_inline_callbacks": "PASSED",
        "test_async_failure_is_reported": "FAILED",
        "test_errback_is_reported": "FAILED",
        "test_never_fires": "FAILED",
        "test_private_backend": "PASSED",
        "test_global_reactor_again_after_the_private_one": "PASSED",
        "test_stopped_from_inside": "FAILED",
        "test_plain_test_untouched": "PASSED",
    }, output
    assert "the assertion inside the coroutine" in output
    assert "ZeroDivisionError" in output
    assert "the Deferred the test returned did not finish within 0.3 s (reactor_timeout)" in output
    assert "the reactor stopped before the Deferred the test returned finished" in output
    assert "Unhandled error" not in output and "Traceback" not in output


def test_a_bad_backend_mark_is_a_clear_error(tmp_path: Path) -> None:
    outcomes, output = _run_user_suite(tmp_path, '''
        import pytest

        @pytest.mark.reactor_backend("no-such-backend")
        def test_x(reactor):
            pass
    ''')
    assert outcomes == {"test_x": "ERROR"}, output
    assert "no-such-backend" in output


def test_importing_the_plugin_installs_no_reactor_and_loads_no_plugin() -> None:
    code = textwrap.dedent(
        """
        import sys
        import framework, framework.pytest_plugin
        assert framework.installed_reactor() is None, "a reactor was installed"
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] == "reactor_framework_plugins")
        assert not loaded, loaded
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
