"""The pytest plugin ``reactor_framework`` (entry point ``pytest11``), loaded by pytest only.

Fixtures: ``string_transport``, ``memory_reactor``, ``clock`` (fakes from
``framework.testing``) and ``reactor`` (a real reactor). A test that returns a ``Deferred``,
is ``async def``, or is decorated with ``inlineCallbacks`` runs the reactor until its result
fires, within ``reactor_timeout`` seconds, as pytest-twisted and pytest-asyncio users expect.

Which reactor: the process-global ``framework.reactor`` (installed on first use, backend from
``--reactor-backend``, else ``$REACTOR_FRAMEWORK_BACKEND``, else the best available), so code
under test that does ``from framework import reactor`` meets the same one. A test marked
``@pytest.mark.reactor_backend("poll")`` gets a fresh private reactor of that backend instead,
closed after the test. Loading the plugin installs no reactor and loads no plugin.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Iterator

import pytest

from framework.defer import Deferred, ensureDeferred
from framework.error import ReactorNotRunning
from framework.failure import Failure
from framework.task import Clock
from framework.testing import MemoryReactor, StringTransport

__all__ = ["DEFAULT_TIMEOUT", "clock", "memory_reactor", "reactor", "string_transport"]

#: Seconds a test's Deferred may take to fire, unless ``reactor_timeout`` (ini) or
#: ``@pytest.mark.reactor_timeout(seconds)`` says otherwise.
DEFAULT_TIMEOUT = 60.0

_BACKEND_MARK = "reactor_backend"
_TIMEOUT_MARK = "reactor_timeout"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reactor_framework", "reactor-framework")
    group.addoption(
        "--reactor-backend", metavar="NAME", default=None,
        help="backend of the global reactor the 'reactor' fixture installs (default: "
             "$REACTOR_FRAMEWORK_BACKEND, else the best available)",
    )
    parser.addini(
        "reactor_timeout", default=str(DEFAULT_TIMEOUT),
        help=f"seconds a test's Deferred or coroutine may take to finish (default {DEFAULT_TIMEOUT:g})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{_BACKEND_MARK}(name): run this test on a fresh private reactor of backend NAME",
    )
    config.addinivalue_line(
        "markers", f"{_TIMEOUT_MARK}(seconds): how long this test's Deferred or coroutine may take",
    )


@pytest.fixture
def string_transport() -> StringTransport:
    """A fresh ``StringTransport``."""
    return StringTransport()


@pytest.fixture
def memory_reactor() -> MemoryReactor:
    """A fresh ``MemoryReactor`` (also a ``Clock``)."""
    return MemoryReactor()


@pytest.fixture
def clock() -> Clock:
    """A fresh deterministic ``Clock``."""
    return Clock()


@pytest.fixture
def reactor(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The global reactor, or a private one of the backend a ``reactor_backend`` mark names."""
    mark = request.node.get_closest_marker(_BACKEND_MARK)
    if mark is None:
        yield _global_reactor(request.config)
        return
    if len(mark.args) != 1 or not isinstance(mark.args[0], str):
        raise pytest.UsageError(f"@pytest.mark.{_BACKEND_MARK} takes one backend name, e.g. \"poll\"")
    private = _private_reactor(mark.args[0])
    try:
        yield private
    finally:
        if private.running:
            private.crash()
        private.removeAll()
        private.close()


def _global_reactor(config: pytest.Config) -> Any:
    # reason: installing the global reactor loads backend plugins, only when a test asks for it
    import framework

    installed = framework.installed_reactor()
    if installed is not None:
        return installed
    return framework.install_reactor(config.getoption("reactor_backend"))


def _private_reactor(name: str) -> Any:
    # reason: lazy plugin loading: the backend registry is read only when a test asks for it
    from framework import error, plugins
    from framework.eventloop import Reactor

    try:
        entry = plugins.reactors().get(name)
    except error.UnknownPluginError as e:
        raise pytest.UsageError(f"@pytest.mark.{_BACKEND_MARK}: {e}") from None
    reason = entry.availability()
    if reason is not None:
        pytest.skip(f"reactor backend {name!r} is not available here: {reason}")
    return Reactor(entry.factory(), entry.name)


def _timeout(item: pytest.Function) -> float:
    mark = item.get_closest_marker(_TIMEOUT_MARK)
    raw = mark.args[0] if mark is not None and mark.args else item.config.getini("reactor_timeout")
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"reactor_timeout must be a number of seconds, not {raw!r}") from None
    if not 0 < seconds <= 86400:
        raise pytest.UsageError(f"reactor_timeout must be more than 0 and at most 86400, not {raw!r}")
    return seconds


def _wait_for(reactor: Any, result: Deferred[Any], seconds: float, what: str) -> Any:
    """Run ``reactor`` until ``result`` fires; its value, or its failure raised."""
    outcome: list[Any] = []
    expired: list[bool] = []

    def stop() -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:  # stopped already, or stopping
            pass

    def done(value: Any) -> None:
        outcome.append(value)
        stop()

    def expire() -> None:
        expired.append(True)
        result.cancel()  # lets the code under test clean up; the CancelledError is dropped below
        stop()

    result.addBoth(done)
    if not outcome:
        timer = reactor.callLater(seconds, expire)
        reactor.run()
        if timer.active():
            timer.cancel()
        if expired:
            pytest.fail(f"{what} did not finish within {seconds:g} s (reactor_timeout)", pytrace=False)
        if not outcome:
            pytest.fail(f"the reactor stopped before {what} finished", pytrace=False)
    value = outcome[0]
    if isinstance(value, Failure):
        value.raiseException()
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[None]:
    """Run a Deferred-returning or ``async def`` test until its result fires."""
    original = pyfuncitem.obj
    if pyfuncitem.get_closest_marker("asyncio") is not None:  # pytest-asyncio's test, not ours
        yield
        return
    coroutine = inspect.iscoroutinefunction(original)

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> None:
        result = original(*args, **kwargs)
        if coroutine:
            result = ensureDeferred(result)
        if not isinstance(result, Deferred):
            if result is not None and inspect.isawaitable(result):
                pytest.fail("the test returned an awaitable the reactor cannot run; "
                            "make it 'async def' or return a Deferred", pytrace=False)
            return
        chosen = pyfuncitem.funcargs.get("reactor")
        if chosen is None or not hasattr(chosen, "run"):
            chosen = _global_reactor(pyfuncitem.config)
        what = "the test's coroutine" if coroutine else "the Deferred the test returned"
        _wait_for(chosen, result, _timeout(pyfuncitem), what)

    pyfuncitem.obj = run
    try:
        yield
    finally:
        pyfuncitem.obj = original
