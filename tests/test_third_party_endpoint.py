"""A third-party endpoint plugin, for real: ``pip install`` examples/third_party_endpoint
(``reactor-portfile``) into a temporary target, then serve and connect through its
``portfile:`` prefix with that target on ``PYTHONPATH``, over real sockets on 127.0.0.1."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from serve_util import TIMEOUT, connect, env_with, recv_exactly, run_cli
from test_third_party import _can_build_offline

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE = EXAMPLES / "third_party_endpoint"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("third_party_endpoint")
    copy = work / "third_party_endpoint"  # build from a copy: the build leaves nothing behind
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(copy)]
    if _can_build_offline():
        cmd[4:4] = ["--no-build-isolation", "--no-index"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert any(p.name.startswith("reactor_portfile-1.0.0") for p in target.glob("*.dist-info"))
    return target


def test_list_shows_the_endpoint_and_its_distribution(site: Path) -> None:
    result = run_cli("--list", env=env_with(site))
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("Endpoints (--listen PREFIX:...):", 1)[1]
    assert re.search(r"^  portfile\s.*\(server, client\)\s+\[reactor-portfile 1\.0\.0\]$", section, re.M)
    assert "Plugins that failed to load" not in result.stdout


def test_reactor_serve_listens_on_the_plugin_endpoint(site: Path, serve: Any, tmp_path: Path) -> None:
    port_file = tmp_path / "echo.port"
    s = serve("--protocol", "echo", "--listen", f"portfile:{port_file}", env=env_with(site))
    port = int(port_file.read_text())  # written once listening, before the startup line
    assert s.tcp_port() == port
    with connect(port) as c:
        c.sendall(b"through a plugin endpoint")
        assert recv_exactly(c, 25) == b"through a plugin endpoint"
    s.signal(signal.SIGTERM)
    assert s.finish() == 0


def test_client_from_string_connects_through_the_plugin(site: Path, serve: Any, tmp_path: Path) -> None:
    port_file = tmp_path / "echo.port"
    s = serve("--protocol", "echo", "--listen", f"portfile:{port_file}", env=env_with(site))
    script = textwrap.dedent(f"""
        from framework import endpoints, protocol
        from framework.eventloop import Reactor
        from framework import plugins

        entry = plugins.reactors().best()
        reactor = Reactor(entry.factory(), entry.name)
        got = []

        class Client(protocol.Protocol):
            def connectionMade(self):
                self.transport.write(b"ping")

            def dataReceived(self, data):
                got.append(data)
                if b"".join(got) == b"ping":
                    self.transport.loseConnection()

            def connectionLost(self, reason):
                reactor.stop()

        endpoint = endpoints.clientFromString(reactor, {f"portfile:{port_file}:timeout=5"!r})
        d = endpoints.connectProtocol(endpoint, Client())
        d.addErrback(lambda f: (print("failed", f.getErrorMessage()), reactor.stop()))
        reactor.callLater({TIMEOUT}, reactor.stop)
        reactor.run()
        print(type(endpoint).__name__, b"".join(got).decode())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, env=env_with(site), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PortFileClientEndpoint", "ping"], result.stdout + result.stderr
    s.signal(signal.SIGTERM)
    assert s.finish() == 0


def test_plugin_description_errors_are_usage_errors(site: Path) -> None:
    result = run_cli("--protocol", "echo", "--listen", "portfile:/tmp/x:backlog=lots", env=env_with(site))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()[-1:]
    assert line.startswith("reactor-serve: error:")
    assert "'portfile:/tmp/x:backlog=lots'" in line and "backlog must be an integer" in line
    assert "Traceback" not in result.stderr


def test_the_example_own_tests_pass_once_installed(site: Path) -> None:
    tests = EXAMPLE / "tests"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests), str(tests)],
        capture_output=True, text=True, timeout=120, cwd=str(tests), stdin=subprocess.DEVNULL,
        env=env_with(site, PYTHONDONTWRITEBYTECODE="1"),  # leave no __pycache__ in the repository
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_plugin_guide_shows_the_example_files_verbatim() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "plugin-guide.md").read_text()
    blocks = re.findall(r"^\*\*File `examples/third_party_endpoint/([^`]+)`:\*\*\n\n```\w*\n(.*?)^```$",
                        guide, re.M | re.S)
    assert {path for path, _ in blocks} == {"pyproject.toml", "src/reactor_portfile/__init__.py"}
    for path, code in blocks:
        assert code == (EXAMPLE / path).read_text(), path
