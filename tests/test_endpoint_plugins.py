"""Endpoints as the fourth plugin kind: the ``register_endpoints`` hook, the endpoint registry,
the built-in endpoint plugins (ssl/tls, systemd, haproxy), the public parsing helpers, and
``reactor-serve --list``. Fake distributions are installed for real (see test_plugins.py)."""

from __future__ import annotations

import ast
import pathlib
import re
import sys
from typing import Any

import pytest

from framework import endpoints, endpointstrings, error, hookimpl, plugins, tls
from framework.endpointstrings import DescriptionError
from framework.registries import CORE_ENDPOINT_PREFIXES, EndpointRegistry
from framework.testing import MemoryReactor
from serve_util import run_cli
from test_plugins import FakeSite, site  # noqa: F401  (the fixture)

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Recorder:
    """A fake endpoint recording how its parser was called."""

    def __init__(self, reactor: Any, *args: str, **kwargs: str) -> None:
        self.reactor, self.args, self.kwargs = reactor, args, kwargs


def endpoint_plugin(prefix: str) -> str:
    return f"""
        from framework import hookimpl

        def parse(reactor, /, *args, **kwargs):
            return (reactor, args, kwargs)

        @hookimpl
        def register_endpoints(registry):
            registry.add({prefix!r}, server=parse, description="fake {prefix}")
    """


@pytest.fixture
def fresh(site: FakeSite) -> FakeSite:  # noqa: F811
    return site


# --------------------------------------------------------------------------- the registry


def test_add_server_client_or_both() -> None:
    registry = EndpointRegistry()
    both = registry.add("both", server=Recorder, client=Recorder, description="d")
    only_server = registry.add("srv", server=Recorder)
    only_client = registry.add("cli", client=Recorder)
    assert (both.sides, only_server.sides, only_client.sides) == ("server, client", "server", "client")
    assert registry.names() == ["both", "cli", "srv"]
    assert both.description == "d" and both.provider == "(in code)"


@pytest.mark.parametrize("prefix", ["", "Tcp9", "my:prefix", "a=b", "9lives", " pad", None])
def test_a_bad_prefix_is_refused(prefix: Any) -> None:
    with pytest.raises(ValueError, match="endpoint prefix must be lower-case"):
        EndpointRegistry().add(prefix, server=Recorder)


def test_a_parser_must_be_callable_and_one_side_given() -> None:
    registry = EndpointRegistry()
    with pytest.raises(TypeError, match="server parser must be callable"):
        registry.add("x", server="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="give a server parser, a client parser, or both"):
        registry.add("x")
    assert "x" not in registry


@pytest.mark.parametrize("prefix", CORE_ENDPOINT_PREFIXES)
def test_a_core_prefix_cannot_be_taken_over(prefix: str) -> None:
    with pytest.raises(error.DuplicatePluginError) as info:
        EndpointRegistry().add(prefix, server=Recorder)
    assert f"endpoint prefix {prefix!r} is registered twice" in str(info.value)
    assert "framework.endpoints" in str(info.value) and "reactor-framework" in str(info.value)


def test_core_prefixes_are_the_ones_endpoints_parses() -> None:
    core = [e.name for e in endpoints.known_endpoints() if e.plugin == "framework.endpoints"]
    assert tuple(core) == CORE_ENDPOINT_PREFIXES


def test_two_distributions_adding_one_prefix_are_both_named(fresh: FakeSite) -> None:
    fresh.add("alpha-endpoints", {"ep1": "fake_ep_alpha"},
              {"fake_ep_alpha": endpoint_plugin("twin")}, version="1.0")
    fresh.add("beta-endpoints", {"ep2": "fake_ep_beta"},
              {"fake_ep_beta": endpoint_plugin("twin")}, version="2.0")
    assert plugins.endpoint_parsers().get("twin").distribution == "alpha-endpoints"
    [failure] = plugins.failures()
    assert isinstance(failure.error, error.DuplicatePluginError)
    message = str(failure.error)
    assert "endpoint prefix 'twin'" in message
    assert "alpha-endpoints 1.0" in message and "beta-endpoints 2.0" in message


def test_a_distribution_adding_a_builtin_prefix_is_refused_and_named(fresh: FakeSite) -> None:
    fresh.add("zz-tls", {"mytls": "fake_zz_tls"}, {"fake_zz_tls": endpoint_plugin("ssl")})
    assert plugins.endpoint_parsers().get("ssl").distribution == "reactor-framework"
    [failure] = plugins.failures()
    assert "reactor-framework" in str(failure.error) and "zz-tls" in str(failure.error)


def test_a_distribution_adding_a_core_prefix_is_refused_and_named(fresh: FakeSite) -> None:
    fresh.add("zz-tcp", {"mytcp": "fake_zz_tcp"}, {"fake_zz_tcp": endpoint_plugin("tcp")})
    assert "tcp" not in plugins.endpoint_parsers()
    [failure] = plugins.failures()
    assert "framework.endpoints" in str(failure.error) and "zz-tcp" in str(failure.error)
    assert isinstance(endpoints.serverFromString(None, "tcp:80"), endpoints.TCP4ServerEndpoint)


def test_a_distribution_prefix_is_used_by_server_from_string(fresh: FakeSite) -> None:
    fresh.add("fake-endpoints", {"fakeep": "fake_ep"}, {"fake_ep": endpoint_plugin("fakeep")})
    reactor = object()
    result = endpoints.serverFromString(reactor, r"FakeEp:a:b\:c:reactor=r:key=v=w")
    assert result == (reactor, ("a", "b:c"), {"reactor": "r", "key": "v=w"})
    entry = next(e for e in endpoints.known_endpoints() if e.name == "fakeep")
    assert (entry.provider, entry.plugin) == ("fake-endpoints 1.0", "fakeep")


def test_disabled_entry_point_is_named_in_the_unknown_prefix_error(
    fresh: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(plugins.DISABLE_ENV, "haproxy")
    with pytest.raises(ValueError, match=r"unknown server endpoint type 'haproxy'.*disabled by"):
        endpoints.serverFromString(None, "haproxy:tcp:80")


def test_in_code_plugin_and_unregister() -> None:
    class Plugin:
        @hookimpl
        def register_endpoints(self, registry: EndpointRegistry) -> None:
            registry.add("recorder", server=Recorder, client=Recorder)

    name = plugins.register(Plugin(), name="recorder-plugin")
    try:
        server = endpoints.serverFromString("R", "recorder:1:x=2")
        client = endpoints.clientFromString("R", "recorder:host")
        assert (server.reactor, server.args, server.kwargs) == ("R", ("1",), {"x": "2"})
        assert client.args == ("host",)
        with pytest.raises(error.PluginError, match="already registered"):
            plugins.register(Plugin(), name=name)
    finally:
        plugins.unregister(name)
    with pytest.raises(ValueError, match="unknown server endpoint type 'recorder'"):
        endpoints.serverFromString("R", "recorder:1")


# --------------------------------------------------------------------------- lookup errors


def test_unknown_prefix_lists_the_known_ones_per_side() -> None:
    with pytest.raises(ValueError) as info:
        endpoints.serverFromString(None, "tpc:80")
    text = str(info.value)
    assert "unknown server endpoint type 'tpc' in 'tpc:80'; did you mean 'tcp'?" in text
    known = re.search(r"known server types: ([^)]*)", text)
    assert known and set(known.group(1).split(", ")) >= {"tcp", "tcp6", "unix", "ssl", "systemd", "haproxy"}
    assert "tls" not in known.group(1).split(", ")  # client only
    with pytest.raises(ValueError, match="known client types: .*tls"):
        endpoints.clientFromString(None, "nope:1")


def test_a_prefix_without_that_side_says_so() -> None:
    with pytest.raises(ValueError, match="endpoint type 'tls' is client only, in 'tls:443'"):
        endpoints.serverFromString(None, "tls:443")
    with pytest.raises(ValueError, match="endpoint type 'systemd' is server only"):
        endpoints.clientFromString(None, "systemd:domain=INET:index=0")


def _with_parser(parser: Any, description: str, side: str = "server") -> Any:
    class Plugin:
        @hookimpl
        def register_endpoints(self, registry: EndpointRegistry) -> None:
            registry.add("probe", **{side: parser})

    name = plugins.register(Plugin(), name="probe-plugin")
    try:
        build = endpoints.serverFromString if side == "server" else endpoints.clientFromString
        return build(None, description)
    finally:
        plugins.unregister(name)


def test_a_parser_signature_is_checked_with_clear_errors() -> None:
    def parse(reactor: Any, port: str, *, interface: str = "") -> tuple[str, str]:
        return port, interface

    assert _with_parser(parse, "probe:80:interface=lo") == ("80", "lo")
    cases = {
        "probe:80:colour=red": "unknown option(s) colour (valid: port, interface)",
        "probe:80:81": "unexpected extra field(s) '81'",
        "probe": "needs port",
    }
    for description, reason in cases.items():
        with pytest.raises(DescriptionError) as info:
            _with_parser(parse, description)
        assert str(info.value) == f"server endpoint description {description!r}: {reason}"
        assert info.value.reason == reason and info.value.description == description


def test_parser_errors_are_named_after_the_description() -> None:
    def bad_value(reactor: Any, /, *args: str, **kwargs: str) -> Any:
        raise ValueError("no good")

    with pytest.raises(DescriptionError, match=r"^client endpoint description 'probe:1': no good$"):
        _with_parser(bad_value, "probe:1", "client")

    def specific(reactor: Any, /, *args: str, **kwargs: str) -> Any:
        raise tls.TLSSetupError("certificate trouble")

    with pytest.raises(tls.TLSSetupError, match="^certificate trouble$"):
        _with_parser(specific, "probe:1")


# --------------------------------------------------------------------------- built-in plugins


def test_builtin_endpoint_plugins_come_from_the_distribution_entry_points() -> None:
    registry = plugins.endpoint_parsers()
    assert {"ssl", "tls", "systemd", "haproxy"} <= set(registry.names())
    for entry in registry:
        if entry.name in ("ssl", "tls", "systemd", "haproxy"):
            assert entry.distribution == "reactor-framework"
            parser = entry.server or entry.client
            assert parser is not None
            assert parser.__module__.startswith("reactor_framework_plugins.endpoints.")


def test_builtin_prefixes_still_parse() -> None:
    systemd = endpoints.serverFromString(None, "systemd:domain=INET:index=2")
    assert (systemd.fileDescriptor, type(systemd).__name__) == (5, "AdoptedStreamServerEndpoint")
    proxied = endpoints.serverFromString(None, "haproxy:tcp6:0:interface=::1")
    assert repr(proxied).startswith("proxyEndpoint(") and "interface='::1'" in repr(proxied)
    client = endpoints.clientFromString(MemoryReactor(), "tls:example.org:443")
    assert isinstance(client, tls.SSL4ClientEndpoint)
    assert isinstance(endpoints.clientFromString(MemoryReactor(), "ssl:example.org:443"),
                      tls.SSL4ClientEndpoint)


def test_haproxy_errors_name_the_whole_description() -> None:
    with pytest.raises(ValueError) as info:
        endpoints.serverFromString(None, "haproxy:tcp:x")
    assert str(info.value) == ("server endpoint description 'haproxy:tcp:x': "
                               "port must be an integer, not 'x'")


def test_list_shows_endpoints_with_their_distribution() -> None:
    result = run_cli("--list")
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("Endpoints (--listen PREFIX:...):", 1)[1]
    for name, sides in [("tcp", "server, client"), ("tcp6", "server, client"),
                        ("unix", "server, client"), ("ssl", "server, client"), ("tls", "client"),
                        ("systemd", "server"), ("haproxy", "server")]:
        assert re.search(rf"^  {name}\s.*\({sides}\)\s+\[reactor-framework ", section, re.M), name


# --------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize("args, kwargs", [
    (["tcp", "80"], {"interface": "::1"}),
    (["unix", "/tmp/a:b=c\\d"], {}),
    ([], {"k:ey": "v=al\\ue", "x": ""}),
    (["", "a"], {}),
])
def test_join_description_is_split_description_inverted(args: list[str], kwargs: dict[str, str]) -> None:
    assert endpointstrings.split_description(endpointstrings.join_description(args, kwargs)) == (
        args, kwargs)


def test_helpers_raise_bare_reasons() -> None:
    with pytest.raises(DescriptionError, match="^port must be between 1 and 9, not 10$"):
        endpointstrings.parse_int("10", "port", 1, 9)
    with pytest.raises(DescriptionError, match="^mode must be an octal number, not '9'$"):
        endpointstrings.parse_int("9", "mode", base=8)
    with pytest.raises(DescriptionError, match="^timeout must be positive"):
        endpointstrings.parse_seconds("0", "timeout")
    with pytest.raises(DescriptionError, match="^flag must be 0 or 1"):
        endpointstrings.parse_bool("maybe", "flag")
    with pytest.raises(DescriptionError, match="^needs path$"):
        endpointstrings.require({"path": ""}, "path")
    assert endpointstrings.collect_options(["a"], {"y": "2"}, ("x",), ("x", "y")) == {"x": "a", "y": "2"}
    assert endpointstrings.unix_path("@name") == "\0name"
    assert endpoints.split_description is endpointstrings.split_description


# --------------------------------------------------------------------------- the contract


def test_every_hook_a_builtin_plugin_implements_is_declared() -> None:
    pm = plugins.plugin_manager()
    for plugin in pm.get_plugins():
        for caller in pm.get_hookcallers(plugin) or []:
            assert caller.has_spec(), (pm.get_name(plugin), caller.name)
    assert "reactor_installed" in {c.name for c in pm.get_hookcallers(
        sys.modules["reactor_framework_plugins.middleware.slow_callbacks"]) or []}


def test_reactor_installed_hook_reaches_enabled_slow_callbacks_only() -> None:
    from framework import middleware

    class FakeReactor:
        threshold: Any = "unset"

        def set_slow_callback_threshold(self, value: Any) -> None:
            self.threshold = value

    reactor = FakeReactor()
    plugins.notify_reactor_installed(reactor)
    assert reactor.threshold == "unset"
    middleware.enable("slow-callbacks")
    try:
        plugins.notify_reactor_installed(reactor)
        assert isinstance(reactor.threshold, float)
    finally:
        middleware.disable("slow-callbacks")
    assert reactor.threshold is None


MODULES = ["plugins.py", "registries.py", "options.py", "middleware.py", "chain.py",
           "hookspecs.py", "endpoints.py", "endpointstrings.py"]


@pytest.mark.parametrize("name", MODULES)
def test_no_function_level_imports_in_the_plugin_and_endpoint_modules(name: str) -> None:
    tree = ast.parse((ROOT / "framework" / name).read_text(encoding="utf-8"))
    inner = [
        node.lineno
        for func in ast.walk(tree) if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(func) if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert inner == []
