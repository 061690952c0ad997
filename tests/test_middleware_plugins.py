"""The built-in Deferred middleware plugins: contextvars, slow-callbacks, tracing."""

from __future__ import annotations

import contextvars
import gc
import logging
import re
import threading
import time
from typing import Any, Iterator

import pytest

from framework import middleware, plugins
from framework.defer import Deferred
from reactor_framework_plugins.middleware.contextvars_mw import ContextVarsMiddleware
from reactor_framework_plugins.middleware.slow_callbacks import SlowCallbacksMiddleware, describe
from reactor_framework_plugins.middleware.tracing import TracingMiddleware

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@pytest.fixture
def enabled() -> Iterator[Any]:
    """Enable middleware by name for one test; everything is disabled afterwards."""
    names: list[str] = []

    def enable(name: str) -> None:
        middleware.enable(name)
        names.append(name)

    yield enable
    for name in reversed(names):
        if name in middleware.enabled():
            middleware.disable(name)
    assert middleware._active == [] and middleware._created == []


def test_builtins_are_registered_through_entry_points() -> None:
    registry = plugins.middlewares()
    for name, kind in (
        ("contextvars", ContextVarsMiddleware),
        ("slow-callbacks", SlowCallbacksMiddleware),
        ("tracing", TracingMiddleware),
    ):
        entry = registry.get(name)
        assert isinstance(entry.middleware, kind)
        assert entry.distribution == "reactor-framework" and entry.description


# --- contextvars --------------------------------------------------------------------------------


def test_contextvars_callbacks_see_the_context_they_were_added_in(enabled: Any) -> None:
    enabled("contextvars")
    seen: list[str] = []
    d: Deferred[Any] = Deferred()
    token = request_id.set("req-1")
    d.addCallback(lambda r: seen.append(request_id.get()))
    request_id.reset(token)
    token = request_id.set("req-2")
    d.addCallback(lambda r: seen.append(request_id.get()))
    request_id.reset(token)
    d.callback(None)  # fired in a context where request_id is unset
    assert seen == ["req-1", "req-2"]
    assert request_id.get() == "-"


def test_contextvars_survive_a_thread_hand_off(enabled: Any) -> None:
    enabled("contextvars")
    seen: list[tuple[str, str]] = []
    d: Deferred[Any] = Deferred()
    token = request_id.set("req-42")
    d.addCallback(lambda r: seen.append((threading.current_thread().name, request_id.get())))
    d.addErrback(lambda f: seen.append(("errback", request_id.get())))
    request_id.reset(token)
    worker = threading.Thread(target=d.callback, args=(None,), name="worker")
    worker.start()
    worker.join(10)
    assert seen == [("worker", "req-42")]


def test_contextvars_errbacks_too(enabled: Any) -> None:
    enabled("contextvars")
    seen: list[str] = []
    d: Deferred[Any] = Deferred()
    token = request_id.set("req-err")
    d.addErrback(lambda f: seen.append(request_id.get()))
    request_id.reset(token)
    d.errback(ValueError("boom"))
    assert seen == ["req-err"]


def test_without_middleware_callbacks_see_the_firing_context() -> None:
    assert middleware._active == []
    seen: list[str] = []
    d: Deferred[Any] = Deferred()
    token = request_id.set("added")
    d.addCallback(lambda r: seen.append(request_id.get()))
    request_id.reset(token)
    d.callback(None)
    assert seen == ["-"]


# --- slow-callbacks -----------------------------------------------------------------------------


def blocking_callback(result: Any) -> Any:
    time.sleep(0.05)  # the blocking behaviour under test, not synchronisation
    return result


def test_slow_callback_is_named_with_its_duration(caplog: pytest.LogCaptureFixture) -> None:
    mw = SlowCallbacksMiddleware(threshold=0.01)
    wrapped = mw.wrap_callback(blocking_callback)
    with caplog.at_level(logging.WARNING, logger="framework.slow"):
        assert wrapped(7) == 7
    [record] = [r for r in caplog.records if r.name == "framework.slow"]
    assert record.levelno == logging.WARNING
    assert "blocking_callback" in record.getMessage()
    assert re.search(r"for 0\.\d\d\d s", record.getMessage())


def test_fast_callbacks_are_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    mw = SlowCallbacksMiddleware()  # default 0.1 s
    assert mw.threshold == 0.1
    with caplog.at_level(logging.WARNING, logger="framework.slow"):
        assert mw.wrap_callback(lambda r: r + 1)(1) == 2
    assert [r for r in caplog.records if r.name == "framework.slow"] == []


def test_slow_callbacks_through_a_deferred(enabled: Any, caplog: pytest.LogCaptureFixture) -> None:
    entry = plugins.middlewares().get("slow-callbacks")
    old = entry.middleware.threshold
    entry.middleware.threshold = 0.01
    try:
        enabled("slow-callbacks")
        d: Deferred[Any] = Deferred()
        d.addCallback(blocking_callback)
        with caplog.at_level(logging.WARNING, logger="framework.slow"):
            d.callback("x")
    finally:
        entry.middleware.threshold = old
    assert any("blocking_callback" in r.getMessage() for r in caplog.records if r.name == "framework.slow")


def test_slow_callbacks_switch_on_the_reactor_detector(reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    from tests.util import run_until

    mw = SlowCallbacksMiddleware(threshold=0.01)
    mw.reactor_installed(reactor)
    try:
        d: Deferred[Any] = Deferred()

        def slow_timer() -> None:
            time.sleep(0.05)  # blocks the reactor: the thing to detect
            d.callback(None)

        reactor.callLater(0, slow_timer)
        with caplog.at_level(logging.WARNING, logger="framework.eventloop"):
            run_until(reactor, d)
    finally:
        mw.on_disable()
    assert any("slow_timer" in r.getMessage() for r in caplog.records if r.name == "framework.eventloop")


def test_describe_names_the_function_and_place() -> None:
    text = describe(blocking_callback)
    assert "blocking_callback" in text and "test_middleware_plugins.py" in text
    assert "blocking_callback" in describe(ContextVarsMiddleware().wrap_callback(blocking_callback))


# --- tracing ------------------------------------------------------------------------------------


def make_a_deferred() -> Deferred[Any]:
    return Deferred()


def test_tracing_records_the_creation_site(enabled: Any) -> None:
    enabled("tracing")
    d = make_a_deferred()
    assert d._creator is not None
    assert "make_a_deferred" in d._creator and "test_middleware_plugins.py" in d._creator
    assert "defer.py" not in d._creator.splitlines()[-2]  # the machinery's own frames are left out


def test_without_tracing_nothing_is_recorded() -> None:
    assert middleware._created == []
    assert make_a_deferred()._creator is None


def test_unhandled_error_report_says_where_the_deferred_was_made(
    enabled: Any, caplog: pytest.LogCaptureFixture
) -> None:
    enabled("tracing")
    with caplog.at_level(logging.ERROR):
        d = make_a_deferred()
        d.errback(ValueError("nobody handled me"))
        del d
        gc.collect()
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "Unhandled error in Deferred" in text
    assert "Deferred created at:" in text
    assert "make_a_deferred" in text



def test_enabling_slow_callbacks_names_a_blocking_timer_of_the_global_reactor() -> None:
    """In a subprocess (the global reactor must not be installed in the test process)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import logging, time
        import framework
        from framework import middleware
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
        reactor = framework.install_reactor()
        middleware.enable("slow-callbacks")

        def blocks_the_reactor():
            time.sleep(0.3)  # longer than the 0.1 s default threshold
            reactor.stop()

        reactor.callLater(0, blocks_the_reactor)
        reactor.run(installSignalHandlers=False)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.search(r"WARNING framework\.eventloop .*blocks_the_reactor", result.stderr), result.stderr
