"""Plugin discovery and registries, with fake distributions installed for real: a
``*.dist-info`` folder (METADATA + entry_points.txt) and the plugin module in a temporary
directory on ``sys.path``; discovery itself is never patched."""

from __future__ import annotations

import importlib
import json
import logging
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import framework
from framework import error, hookimpl, plugins, protocol
from framework.plugins import Option, ProtocolRegistry, ReactorRegistry
from reactor_framework_plugins.backends.pollbackend import PollMultiplexer

ENV_VARS = (plugins.DISABLE_ENV, plugins.STRICT_ENV, "REACTOR_FRAMEWORK_BACKEND")


class FakeSite:
    """A directory on ``sys.path`` holding fake installed distributions."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def add(
        self,
        dist: str,
        entry_points: dict[str, str],
        modules: dict[str, str],
        version: str = "1.0",
    ) -> None:
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = [f"{name} = {target}" for name, target in entry_points.items()]
        (info / "entry_points.txt").write_text(
            "[reactor_framework]\n" + "\n".join(lines) + "\n", encoding="utf-8"
        )
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            self.modules.append(module)
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "site"
    root.mkdir()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    plugins.reset()
    fake = FakeSite(root)
    try:
        yield fake
    finally:
        sys.path.remove(str(root))
        for module in fake.modules:
            sys.modules.pop(module, None)
        sys.modules.pop("order_log", None)
        importlib.invalidate_caches()
        plugins.reset()


def protocol_plugin(name: str) -> str:
    return f"""
        from framework import hookimpl
        from framework.protocol import Factory, Protocol

        class P(Protocol):
            pass

        @hookimpl
        def register_protocols(registry):
            registry.add({name!r}, P, description="fake {name}")
    """


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_FRAMEWORK_")}


def _run(code: str, env: dict[str, str] | None = None) -> Any:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_clean_env(), **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- real entry points


def test_import_framework_loads_no_plugin() -> None:
    out = _run(
        """
        import json, sys
        import framework
        after_framework = sorted(m for m in sys.modules if m.partition(".")[0] == "reactor_framework_plugins")
        import framework.plugins
        after_plugins_module = sorted(m for m in sys.modules if m.startswith("reactor_framework_plugins."))
        framework.plugins.reactors()
        after_call = sorted(m for m in sys.modules if m.startswith("reactor_framework_plugins."))
        meta = "importlib_metadata" in sys.modules  # the backport: never needed on 3.11+
        print(json.dumps([after_framework, meta, after_plugins_module, after_call]))
        """
    )
    after_framework, meta, after_plugins_module, after_call = out
    assert after_framework == []
    assert meta is False
    assert after_plugins_module == []
    assert "reactor_framework_plugins.backends.epollbackend" in after_call
    assert "reactor_framework_plugins.backends.selectbackend" in after_call


def test_builtin_backends_come_from_the_installed_distribution() -> None:
    out = _run(
        """
        import json
        from framework import plugins
        print(json.dumps({e.name: [e.plugin, e.distribution, e.version, e.priority]
                          for e in plugins.reactors()}))
        """
    )
    for name, priority in {"epoll": 30, "poll": 20, "selector": 10, "select": 5}.items():
        assert out[name] == [name, "reactor-framework", framework.__version__, priority]


def test_disable_env_in_a_fresh_process() -> None:
    out = _run(
        """
        import json, sys
        from framework import plugins
        best = plugins.reactors().best().name
        print(json.dumps([plugins.reactors().names(), best, plugins.disabled(),
                          "reactor_framework_plugins.backends.epollbackend" in sys.modules]))
        """,
        env={plugins.DISABLE_ENV: "epoll, select"},
    )
    names, best, disabled, imported = out
    assert "epoll" not in names and "select" not in names
    assert best == "poll"
    assert sorted(disabled) == ["epoll", "select"]
    assert imported is False


# --------------------------------------------------------------------------- fake distributions


def test_fake_distribution_is_discovered_lazily(site: FakeSite) -> None:
    site.add("fake-shout", {"shout": "fake_shout"}, {"fake_shout": protocol_plugin("shout")},
             version="2.5.1")
    assert "fake_shout" not in sys.modules  # nothing loaded before first use
    entry = plugins.protocols().get("shout")
    assert "fake_shout" in sys.modules
    assert (entry.plugin, entry.distribution, entry.version) == ("shout", "fake-shout", "2.5.1")
    assert entry.provider == "fake-shout 2.5.1"
    assert entry.description == "fake shout"
    assert plugins.failures() == []
    assert "echo" in plugins.protocols()  # the built-ins are still there


def test_broken_import_is_logged_and_skipped(site: FakeSite, caplog: pytest.LogCaptureFixture) -> None:
    site.add("fake-broken", {"broken": "fake_broken"},
             {"fake_broken": "import no_such_module_for_reactor_framework_tests\n"}, version="0.3")
    site.add("fake-fine", {"fine": "fake_fine"}, {"fake_fine": protocol_plugin("fine")})
    with caplog.at_level(logging.WARNING, logger="framework.plugins"):
        registry = plugins.protocols()
    assert "fine" in registry
    [failure] = plugins.failures()
    assert (failure.plugin, failure.distribution, failure.version) == ("broken", "fake-broken", "0.3")
    assert isinstance(failure.error, ModuleNotFoundError)
    assert failure.reason == (
        "ModuleNotFoundError: No module named 'no_such_module_for_reactor_framework_tests'"
    )
    assert str(failure) == f"plugin 'broken' from fake-broken 0.3: {failure.reason}"
    [record] = [r for r in caplog.records if r.name == "framework.plugins"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "'broken'" in message and "fake-broken" in message
    assert "no_such_module_for_reactor_framework_tests" in message
    # Built-ins keep working.
    assert plugins.reactors().best().name in plugins.reactors()
    assert plugins.protocols().get("echo").distribution == "reactor-framework"


def test_failing_hook_rolls_back_the_whole_plugin(
    site: FakeSite, caplog: pytest.LogCaptureFixture
) -> None:
    source = """
        from framework import hookimpl
        from framework.protocol import Protocol

        @hookimpl
        def register_protocols(registry):
            registry.add("half", Protocol)
            raise RuntimeError("boom in register")

        @hookimpl
        def register_reactors(registry):
            registry.add("halfreactor", object)
    """
    site.add("fake-half", {"half": "fake_half"}, {"fake_half": source})
    with caplog.at_level(logging.WARNING, logger="framework.plugins"):
        assert "half" not in plugins.protocols()
    assert "halfreactor" not in plugins.reactors()
    [failure] = plugins.failures()
    assert failure.plugin == "half" and isinstance(failure.error, RuntimeError)
    assert "boom in register" in caplog.text
    assert plugins.plugin_manager().get_plugin("half") is None


def test_strict_mode_makes_failures_fatal(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("fake-broken", {"broken": "fake_broken"}, {"fake_broken": "raise ValueError('bad plugin')\n"})
    monkeypatch.setenv(plugins.STRICT_ENV, "1")
    with pytest.raises(error.PluginError) as info:
        plugins.protocols()
    message = str(info.value)
    assert "'broken'" in message and "fake-broken" in message and "bad plugin" in message
    with pytest.raises(error.PluginError):  # still fatal on the next call: nothing half-loaded
        plugins.reactors()
    monkeypatch.delenv(plugins.STRICT_ENV)
    assert "echo" in plugins.protocols()
    assert [f.plugin for f in plugins.failures()] == ["broken"]


def test_duplicate_name_names_both_distributions(
    site: FakeSite, caplog: pytest.LogCaptureFixture
) -> None:
    site.add("alpha-plugins", {"dup1": "fake_dup_alpha"},
             {"fake_dup_alpha": protocol_plugin("twin")}, version="1.0")
    site.add("beta-plugins", {"dup2": "fake_dup_beta"},
             {"fake_dup_beta": protocol_plugin("twin")}, version="2.0")
    with caplog.at_level(logging.WARNING, logger="framework.plugins"):
        entry = plugins.protocols().get("twin")
    assert entry.distribution == "alpha-plugins"  # first in load order wins
    [failure] = plugins.failures()
    assert failure.plugin == "dup2" and failure.distribution == "beta-plugins"
    assert isinstance(failure.error, error.DuplicatePluginError)
    message = str(failure.error)
    assert "'twin'" in message and "alpha-plugins 1.0" in message and "beta-plugins 2.0" in message
    assert "alpha-plugins" in caplog.text and "beta-plugins" in caplog.text


def test_duplicate_of_a_builtin_keeps_the_builtin(site: FakeSite) -> None:
    site.add("zz-echo", {"myecho": "fake_zz_echo"}, {"fake_zz_echo": protocol_plugin("echo")})
    assert plugins.protocols().get("echo").distribution == "reactor-framework"
    [failure] = plugins.failures()
    assert "reactor-framework" in str(failure.error) and "zz-echo" in str(failure.error)


def test_duplicate_is_fatal_in_strict_mode(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("alpha-plugins", {"dup1": "fake_dup_alpha"}, {"fake_dup_alpha": protocol_plugin("twin")})
    site.add("beta-plugins", {"dup2": "fake_dup_beta"}, {"fake_dup_beta": protocol_plugin("twin")})
    monkeypatch.setenv(plugins.STRICT_ENV, "yes")
    with pytest.raises(error.DuplicatePluginError) as info:
        plugins.protocols()
    assert "alpha-plugins" in str(info.value) and "beta-plugins" in str(info.value)


def test_disable_env_skips_entry_points(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("fake-shout", {"shout": "fake_shout"}, {"fake_shout": protocol_plugin("shout")})
    monkeypatch.setenv(plugins.DISABLE_ENV, " shout ,discard")
    registry = plugins.protocols()
    assert "shout" not in registry and "discard" not in registry and "echo" in registry
    assert "fake_shout" not in sys.modules
    assert sorted(plugins.disabled()) == ["discard", "shout"]
    assert plugins.failures() == []


def test_load_order_is_sorted_by_distribution_then_entry_point(site: FakeSite) -> None:
    recorder = """
        import order_log
        order_log.seen.append(__name__)
        from framework import hookimpl

        @hookimpl
        def register_protocols(registry):
            order_log.seen.append("hook:" + __name__)
    """
    (site.root / "order_log.py").write_text("seen = []\n", encoding="utf-8")
    # Created in an order unlike the expected one, so directory order cannot explain a pass.
    site.add("Bravo_Dist", {"zeta": "ord_bz", "alpha": "ord_ba"},
             {"ord_bz": recorder, "ord_ba": recorder})
    site.add("alpha-dist", {"mid": "ord_am"}, {"ord_am": recorder})
    site.add("charlie", {"a": "ord_ca"}, {"ord_ca": recorder})
    plugins.protocols()
    seen = sys.modules["order_log"].seen
    assert seen == [
        "ord_am", "hook:ord_am",
        "ord_ba", "hook:ord_ba",
        "ord_bz", "hook:ord_bz",
        "ord_ca", "hook:ord_ca",
    ]


def test_misspelt_hook_is_a_failure(site: FakeSite) -> None:
    source = """
        from framework import hookimpl

        @hookimpl
        def register_protocol(registry):
            registry.add("never", object)
    """
    site.add("fake-typo", {"typo": "fake_typo"}, {"fake_typo": source})
    site.add("fake-nohooks", {"nohooks": "fake_nohooks"}, {"fake_nohooks": "X = 1\n"})
    assert "never" not in plugins.protocols()
    failures = {f.plugin: str(f.error) for f in plugins.failures()}
    assert "did you mean 'register_protocols'" in failures["typo"]
    assert "hookimpl" in failures["nohooks"]


def test_bad_hook_signature_is_a_failure(site: FakeSite) -> None:
    source = """
        from framework import hookimpl

        @hookimpl
        def register_reactors(registry, extra):
            pass
    """
    site.add("fake-sig", {"sig": "fake_sig"}, {"fake_sig": source})
    plugins.reactors()
    [failure] = plugins.failures()
    assert failure.plugin == "sig" and "extra" in str(failure.error)


def test_reset_rediscovers(site: FakeSite) -> None:
    assert "late" not in plugins.protocols()
    site.add("fake-late", {"late": "fake_late"}, {"fake_late": protocol_plugin("late")})
    assert "late" not in plugins.protocols()  # discovery happens once
    plugins.reset()
    assert "late" in plugins.protocols()


def test_concurrent_first_use_sees_complete_registries(site: FakeSite) -> None:
    results: list[tuple[int, int]] = []
    start = threading.Barrier(6)

    def use() -> None:
        start.wait(timeout=10)
        results.append((id(plugins.reactors()), len(plugins.reactors())))

    threads = [threading.Thread(target=use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 6
    assert len(set(results)) == 1
    assert results[0][1] >= 4


# --------------------------------------------------------------------------- in-code plugins


class _InCode:
    def __init__(self, **reactors: dict[str, Any]) -> None:
        self.reactors = reactors

    @hookimpl
    def register_reactors(self, registry: ReactorRegistry) -> None:
        for name, kwargs in self.reactors.items():
            registry.add(name, object, **kwargs)


def test_register_in_code(site: FakeSite) -> None:
    name = plugins.register(_InCode(mine={"priority": -1}), name="my-plugin")
    entry = plugins.reactors().get("mine")
    assert (entry.plugin, entry.distribution, entry.version) == ("my-plugin", None, None)
    assert entry.provider == plugins.IN_CODE
    plugins.unregister(name)
    assert "mine" not in plugins.reactors()


def test_register_in_code_duplicate_raises_and_leaves_nothing(site: FakeSite) -> None:
    plugin = _InCode(extra1={}, epoll={})
    with pytest.raises(error.DuplicatePluginError) as info:
        plugins.register(plugin)
    assert "reactor-framework" in str(info.value) and plugins.IN_CODE in str(info.value)
    assert "extra1" not in plugins.reactors()
    assert not plugins.plugin_manager().is_registered(plugin)
    assert plugins.reactors().get("epoll").distribution == "reactor-framework"


def test_best_honours_availability_and_priority(site: FakeSite) -> None:
    builtin_best = plugins.reactors().best()
    plugins.register(_InCode(
        fastest={"priority": 1000, "available": lambda: False},
        faster={"priority": 999, "available": lambda: "needs a quantum computer"},
        broken={"priority": 998, "available": lambda: 1 / 0},
    ))
    registry = plugins.reactors()
    assert registry.best() is builtin_best
    assert registry.get("fastest").availability() == "not available on this system"
    assert registry.get("faster").availability() == "needs a quantum computer"
    assert "ZeroDivisionError" in (registry.get("broken").availability() or "")
    plugins.register(_InCode(good={"priority": 500, "available": lambda: True}))
    assert registry.best().name == "good"


def test_best_with_nothing_available() -> None:
    registry = ReactorRegistry()
    with pytest.raises(error.ReactorUnavailableError):
        registry.best()
    registry.add("only", object, available=lambda: "not here")
    with pytest.raises(error.ReactorUnavailableError) as info:
        registry.best()
    assert "not here" in str(info.value)


@pytest.mark.parametrize(
    ("registry", "kind", "typo", "expected"),
    [
        (plugins.protocols, "protocol", "ecoh", "echo"),
        (plugins.reactors, "reactor backend", "epol", "epoll"),
        (plugins.middlewares, "middleware", "tracin", "tracing"),
    ],
)
def test_unknown_name_suggests_a_close_match(
    site: FakeSite, registry: Any, kind: str, typo: str, expected: str
) -> None:
    reg = registry()
    with pytest.raises(error.UnknownPluginError) as info:
        reg.get(typo)
    message = str(info.value)
    assert message.startswith(f"unknown {kind} {typo!r}")
    assert f"did you mean {expected!r}?" in message
    assert ", ".join(reg.names()) in message
    assert isinstance(info.value, LookupError)
    with pytest.raises(error.UnknownPluginError) as info:
        reg.get("zzzzzzzz")
    assert "did you mean" not in str(info.value)


def test_registry_queries(site: FakeSite) -> None:
    registry = plugins.reactors()
    names = registry.names()
    assert names == sorted(names)
    assert [e.name for e in registry] == names
    assert len(registry) == len(names)
    assert "poll" in registry and "nope" not in registry
    assert registry["poll"] is registry.get("poll")


# --------------------------------------------------------------------------- options


class _Factory:
    def __init__(self, **options: Any) -> None:
        self.options = options


def _entry(maker: Any, *options: Option) -> Any:
    registry = ProtocolRegistry()
    return registry.add("demo", maker, options=options)


def test_option_types() -> None:
    entry = _entry(
        _Factory,
        Option("count", int, default=3),
        Option("ratio", float),
        Option("loud", bool),
        Option("path", pathlib.Path),
        Option("name", str, required=True),
        Option("mode", lambda s: {"a": 1, "b": 2}[s] if s in ("a", "b") else int("x" + s)),
    )
    factory = entry.make_factory(
        {"ratio": "0.5", "loud": "Yes", "path": "~/poems.txt", "name": " x ", "mode": "b"}
    )
    assert factory.options == {
        "count": 3,
        "ratio": 0.5,
        "loud": True,
        "path": pathlib.Path("~/poems.txt").expanduser(),
        "name": " x ",
        "mode": 2,
    }
    for text, value in [("true", True), ("0", False), ("OFF", False), ("1", True), ("no", False)]:
        assert entry.make_factory({"name": "n", "loud": text}).options["loud"] is value
    assert entry.make_factory({"name": "n", "count": "12"}).options["count"] == 12


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({"name": "n", "count": "ten"}, ["'ten'", "'count'", "'demo'", "integer"]),
        ({"name": "n", "ratio": "fast"}, ["'fast'", "'ratio'", "number"]),
        ({"name": "n", "loud": "maybe"}, ["'maybe'", "'loud'", "true/false"]),
        ({"name": "n", "path": ""}, ["'path'", "empty"]),
        ({"name": "n", "mode": "c"}, ["'c'", "'mode'"]),
        ({"name": "n", "cuont": "1"}, ["no option 'cuont'", "did you mean 'count'", "options: count"]),
        ({}, ["requires option name"]),
    ],
)
def test_option_errors(raw: dict[str, str], fragments: list[str]) -> None:
    entry = _entry(
        _Factory,
        Option("count", int, default=3),
        Option("ratio", float),
        Option("loud", bool),
        Option("path", pathlib.Path),
        Option("name", str, required=True),
        Option("mode", lambda s: {"a": 1, "b": 2}[s] if s in ("a", "b") else int("x" + s)),
    )
    with pytest.raises(error.PluginOptionError) as info:
        entry.make_factory(raw)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, error.PluginError)


def test_option_dashes_and_defaults_not_passed_when_none() -> None:
    entry = _entry(_Factory, Option("max_lines", int), Option("greeting", str))
    assert entry.make_factory({"max-lines": "5"}).options == {"max_lines": 5}
    assert entry.make_factory({}).options == {}


@pytest.mark.parametrize(
    ("raw", "spellings"),
    [
        ({"max-lines": "1", "max_lines": "2"}, ["'max-lines'", "'max_lines'"]),
        ({"max_lines": "1", "max-lines": "2"}, ["'max_lines'", "'max-lines'"]),
        # another option in between, and the same value under both spellings: still refused
        ({"max-lines": "1", "greeting": "hi", "max_lines": "1"}, ["'max-lines'", "'max_lines'"]),
    ],
)
def test_one_option_under_two_spellings_is_an_error(raw: dict[str, str], spellings: list[str]) -> None:
    """No spelling silently overrides the other, even with the same value."""
    made: list[dict[str, Any]] = []
    entry = _entry(lambda **kw: made.append(kw), Option("max_lines", int), Option("greeting", str))
    with pytest.raises(error.PluginOptionError) as info:
        entry.make_factory(raw)
    message = str(info.value)
    assert "\n" not in message
    assert "option 'max_lines' of protocol 'demo' given twice" in message
    for spelling in spellings:
        assert spelling in message
    assert made == []  # the maker never ran


def test_option_key_treats_dashes_as_underscores() -> None:
    assert plugins.option_key("max-line") == plugins.option_key("max_line") == "max_line"
    assert plugins.option_key("a-b_c-d") == "a_b_c_d"
    assert plugins.option_key("plain") == "plain"


def test_maker_kinds() -> None:
    from framework.protocol import Factory, Protocol

    class P(Protocol):
        pass

    class F(Factory):
        protocol = P

        def __init__(self, size: int = 1) -> None:
            self.size = size

    ready = Factory.forProtocol(P)

    from_protocol = _entry(P).make_factory({})
    assert isinstance(from_protocol, Factory) and from_protocol.protocol is P
    assert _entry(ready).make_factory({}) is ready
    assert _entry(F, Option("size", int)).make_factory({"size": "7"}).size == 7
    assert _entry(lambda **kw: ("made", kw), Option("x", int)).make_factory({"x": "1"}) == (
        "made", {"x": 1},
    )
    for maker in (P, ready):
        with pytest.raises(error.PluginOptionError) as info:
            _entry(maker).make_factory({"x": "1"})
        assert "takes no options" in str(info.value)


def test_maker_value_and_os_errors_become_option_errors(tmp_path: pathlib.Path) -> None:
    def maker(path: pathlib.Path) -> Any:
        return path.read_text()

    entry = _entry(maker, Option("path", pathlib.Path, required=True))
    with pytest.raises(error.PluginOptionError) as info:
        entry.make_factory({"path": str(tmp_path / "missing.txt")})
    assert "'demo'" in str(info.value) and "missing.txt" in str(info.value)


def test_add_validates_its_arguments() -> None:
    registry = ProtocolRegistry()
    with pytest.raises(ValueError):
        registry.add("", _Factory)
    with pytest.raises(TypeError):
        registry.add("x", None)
    with pytest.raises(ValueError):
        registry.add("x", _Factory, default_port=70000)
    with pytest.raises(ValueError):
        registry.add("x", _Factory, options=[Option("a"), Option("a")])
    with pytest.raises(ValueError):
        Option("not an identifier")
    with pytest.raises(TypeError):
        plugins.MiddlewareRegistry().add("m", object())
    with pytest.raises(TypeError, match="priority"):
        ReactorRegistry().add("r", _DuckPoll, priority="high")  # type: ignore[arg-type]
    assert len(registry) == 0


# DESIGN.md's backend to the letter: those five methods (the poll backend's own), no
# Multiplexer base class, no fileno().
_DuckPoll = type("_DuckPoll", (), {
    name: vars(PollMultiplexer)[name]
    for name in ("__init__", "register", "modify", "unregister", "poll", "close")
})


def test_a_duck_typed_backend_without_fileno_runs_a_reactor() -> None:
    from framework.eventloop import Reactor

    registry = ReactorRegistry()
    entry = registry.add("duck", _DuckPoll)
    r = Reactor(entry.factory(), entry.name)
    try:
        seen: list[int] = []
        r.callLater(0, seen.append, 1)
        r.callLater(0, r.stop)
        r.run(installSignalHandlers=False)
        assert seen == [1]
    finally:
        r.close()


# --------------------------------------------------------------------------- failure reasons


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ModuleNotFoundError("No module named 'x'"), "ModuleNotFoundError: No module named 'x'"),
        (ValueError("first line\n  second line\n"), "ValueError: first line second line"),
        (RuntimeError(), "RuntimeError"),
        (SystemExit(3), "SystemExit: 3"),
        (error.PluginError("implements no hook"), "PluginError: implements no hook"),
        (_Unprintable(), "_Unprintable: (unprintable exception)"),
    ],
)
def test_failure_reason_is_one_line_with_the_type(exc: BaseException, reason: str) -> None:
    failure = plugins.PluginFailure("p", "dist", "1.0", exc)
    assert failure.reason == reason
    assert str(failure) == f"plugin 'p' from dist 1.0: {reason}"


def test_a_broken_best_backend_is_named_on_first_use_of_the_global_reactor() -> None:
    script = textwrap.dedent("""
        from framework import hookimpl, plugins

        class NotAMux:
            pass

        class Plugin:
            @hookimpl
            def register_reactors(self, registry):
                registry.add("broken", NotAMux, priority=1000)

        plugins.register(Plugin(), name="broken-backend")
        from framework import reactor
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_FRAMEWORK_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: installing the reactor failed: AttributeError:"), done.stderr
    assert "NotAMux" in last and "cannot import name" not in done.stderr


def test_a_protocol_subclass_cannot_be_registered_with_options() -> None:
    class Shout(protocol.Protocol):
        pass

    with pytest.raises(ValueError, match="a Protocol subclass cannot take options"):
        ProtocolRegistry().add("shout", Shout, options=[Option("a")])


def test_a_declared_option_the_maker_does_not_take_is_a_plugin_option_error() -> None:
    class ShoutFactory(protocol.Factory):
        def __init__(self) -> None:
            pass

    entry = ProtocolRegistry().add("shout", ShoutFactory, options=[Option("nope", default="x")])
    with pytest.raises(error.PluginOptionError, match="its maker does not take a declared option"):
        entry.make_factory({})
