"""framework.middleware: enabling, disabling and ordering Deferred middleware."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from framework import error, hookimpl, middleware, plugins
from framework.defer import Deferred


class Recorder:
    """A middleware that logs around each callback it wraps."""

    def __init__(self, name: str, log: list[str], with_hooks: bool = False) -> None:
        self.name = name
        self.log = log
        self.wrapped = 0
        if with_hooks:
            self.deferred_created = self._created  # only some middleware have the hook

    def wrap_callback(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        self.wrapped += 1
        name, log = self.name, self.log

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            log.append(f"{name}>")
            try:
                return callback(*args, **kwargs)
            finally:
                log.append(f"<{name}")

        return wrapper

    def _created(self, d: Any) -> None:
        self.log.append(f"created:{self.name}")

    def on_enable(self) -> None:
        self.log.append(f"enable:{self.name}")

    def on_disable(self) -> None:
        self.log.append(f"disable:{self.name}")


class Refusing:
    def wrap_callback(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        return callback

    def on_enable(self) -> None:
        raise RuntimeError("cannot enable here")


class _TestMiddlewarePlugin:
    def __init__(self, log: list[str]) -> None:
        self.mw = {
            "outer": Recorder("outer", log),
            "inner": Recorder("inner", log, with_hooks=True),
            "third": Recorder("third", log),
        }

    @hookimpl
    def register_deferred_middleware(self, registry: plugins.MiddlewareRegistry) -> None:
        for name, mw in self.mw.items():
            registry.add(name, mw, description=f"test middleware {name}")
        registry.add("refusing", Refusing())


@pytest.fixture
def log() -> Iterator[list[str]]:
    plugins.reset()
    entries: list[str] = []
    plugins.register(_TestMiddlewarePlugin(entries), name="test-middleware")
    try:
        yield entries
    finally:
        plugins.reset()
        assert middleware.enabled() == []
        assert middleware._active == [] and middleware._created == []


def test_nothing_enabled_by_default(log: list[str]) -> None:
    assert middleware.enabled() == []
    assert middleware._active == []


def test_enable_disable_and_order(log: list[str]) -> None:
    active, created = middleware._active, middleware._created
    middleware.enable("outer")
    middleware.enable("inner")
    middleware.enable("third")
    assert middleware.enabled() == ["outer", "inner", "third"]
    assert len(middleware._active) == 3
    assert len(middleware._created) == 1  # only "inner" has deferred_created
    middleware.disable("inner")
    assert middleware.enabled() == ["outer", "third"]
    assert middleware._created == []
    middleware.enable("inner")  # re-enabled: now last (innermost)
    assert middleware.enabled() == ["outer", "third", "inner"]
    # Mutated in place: framework.defer holds references to these very lists.
    assert middleware._active is active and middleware._created is created
    assert log == ["enable:outer", "enable:inner", "enable:third", "disable:inner", "enable:inner"]


def test_enable_twice_is_a_no_op(log: list[str]) -> None:
    middleware.enable("outer")
    middleware.enable("outer")
    assert middleware.enabled() == ["outer"]
    assert len(middleware._active) == 1
    assert log == ["enable:outer"]


def test_disable_not_enabled_is_a_no_op(log: list[str]) -> None:
    middleware.disable("outer")
    assert log == []


def test_first_enabled_is_outermost(log: list[str]) -> None:
    middleware.enable("outer")
    middleware.enable("inner")
    log.clear()
    wrapped = middleware.wrap(lambda x: log.append(f"cb:{x}"))
    wrapped(1)
    assert log == ["outer>", "inner>", "cb:1", "<inner", "<outer"]


def test_wrapping_through_a_deferred(log: list[str]) -> None:
    middleware.enable("outer")
    middleware.enable("inner")
    log.clear()
    d: Deferred[Any] = Deferred()
    assert log == ["created:inner"]

    def cb(x: int) -> int:
        log.append(f"cb:{x}")
        return x + 1

    d.addCallback(cb)
    d.callback(41)
    assert d.result == 42
    assert log == ["created:inner", "outer>", "inner>", "cb:41", "<inner", "<outer"]
    middleware.disable("outer")
    middleware.disable("inner")
    log.clear()
    d2: Deferred[Any] = Deferred()
    d2.addCallback(lambda x: log.append(f"cb:{x}"))
    d2.callback(1)
    assert log == ["cb:1"]


def test_failing_on_enable_leaves_it_disabled(log: list[str]) -> None:
    with pytest.raises(RuntimeError, match="cannot enable here"):
        middleware.enable("refusing")
    assert middleware.enabled() == []
    assert middleware._active == []


@pytest.mark.parametrize("action", [middleware.enable, middleware.disable])
def test_unknown_name(log: list[str], action: Callable[[str], None]) -> None:
    with pytest.raises(error.UnknownPluginError) as info:
        action("outr")
    message = str(info.value)
    assert "unknown middleware 'outr'" in message
    assert "did you mean 'outer'?" in message
    assert "inner" in message  # the available names are listed
    assert middleware.enabled() == []


def test_reset_disables_everything(log: list[str]) -> None:
    middleware.enable("outer")
    middleware.enable("inner")
    plugins.reset()
    assert middleware.enabled() == []
    assert middleware._active == [] and middleware._created == []
    assert log[-2:] == ["disable:inner", "disable:outer"]
