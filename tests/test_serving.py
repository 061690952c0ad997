"""The serving runtime (``framework.serving``) and policies that wrap, never patch.

- the typed configuration (``ServeConfig``) and what both runtimes read from it;
- ``PolicyFactory`` wraps every protocol, ``__slots__`` ones included: the connection limit
  and the idle timeout hold for them (real sockets on 127.0.0.1);
- with no timeout the transport calls the protocol directly (no per-message cost);
- the layering of the modules: the supervisor never imports the CLI, and the serving
  modules keep no function-level import without a reason.
"""

from __future__ import annotations

import ast
import socket
from pathlib import Path
from typing import Any

import pytest

from framework import serving, supervisor
from framework.policies import PolicyFactory, PolicyProtocol
from framework.protocol import Factory, Protocol
from framework.serving import ServeConfig, UsageError
from util import run_until, run_until_true

pytestmark = pytest.mark.timeout(60)

FRAMEWORK = Path(__file__).resolve().parent.parent / "framework"


# --- the configuration -------------------------------------------------------------------------


def test_listen_descriptions_default_to_the_protocols_port_on_loopback() -> None:
    assert ServeConfig("echo").listen_descriptions(7) == [serving.tcp_description(7, "127.0.0.1")]
    assert ServeConfig("echo").listen_descriptions() == [serving.tcp_description(8000, "127.0.0.1")]
    config = ServeConfig("echo", listen=["unix:/tmp/x.sock"])
    assert config.listen_descriptions(7) == ["unix:/tmp/x.sock"]
    config = ServeConfig("echo", listen=["unix:/tmp/x.sock"], port=0, interface="::1")
    assert config.listen_descriptions(7) == [serving.tcp_description(0, "::1"), "unix:/tmp/x.sock"]


def test_the_handshake_timeout_is_bounded_by_a_shorter_idle_timeout() -> None:
    assert ServeConfig("echo").effective_handshake_timeout() == serving.DEFAULT_HANDSHAKE_TIMEOUT
    assert ServeConfig("echo", handshake_timeout=30).effective_handshake_timeout() == 30
    assert ServeConfig("echo", handshake_timeout=30, idle_timeout=2).effective_handshake_timeout() == 2
    assert ServeConfig("echo", idle_timeout=60).effective_handshake_timeout() == serving.DEFAULT_HANDSHAKE_TIMEOUT


def test_cli_arguments_become_a_config() -> None:
    from framework import cli

    args = cli.build_parser().parse_args([
        "--protocol", "echo", "--port", "0", "--option", "a=b", "--idle-timeout", "5",
        "--handshake-timeout", "3", "--max-connections", "9", "--proxy-protocol", "--listen", "unix:/tmp/s",
    ])
    config = cli.config_from_args(args)
    assert config == ServeConfig(
        "echo", options={"a": "b"}, listen=["unix:/tmp/s"], port=0, idle_timeout=5.0,
        handshake_timeout=3.0, max_connections=9, proxy_protocol=True,
    )


@pytest.mark.parametrize("text", ["0", "-1", "nan", "1e99"])
def test_a_bad_handshake_timeout_is_a_usage_error(text: str) -> None:
    from framework import cli

    with pytest.raises(UsageError, match="handshake-timeout"):
        cli.build_parser().parse_args(["--protocol", "echo", "--handshake-timeout", text])


def test_the_supervisor_reads_listen_descriptions_without_listening() -> None:
    spec = supervisor._listen_spec
    assert spec(None, "tcp:0:interface=127.0.0.1:backlog=7") == ("tcp", 0, 7, "127.0.0.1")
    assert spec(None, "tcp:port=8001") == ("tcp", 8001, 50, "")
    assert spec(None, "tcp6:8002") == ("tcp", 8002, 50, "::")
    assert spec(None, "unix:/tmp/a.sock:mode=600") == ("unix", "/tmp/a.sock", 50, 0o600)
    assert spec(None, "unix:address=@abstract") == ("unix", "\0abstract", 50, 0o666)
    with pytest.raises(UsageError, match="bad --listen endpoint"):
        spec(None, "tcp:notaport")
    with pytest.raises(UsageError, match="cannot share the wrapped listener"):
        spec(None, "haproxy:tcp:8000")


# --- policies wrap, never patch -----------------------------------------------------------------


class SlotsEcho:
    """A protocol with ``__slots__`` and no ``__dict__``: nothing can be patched onto it."""

    __slots__ = ("transport", "factory", "lost")

    def __init__(self) -> None:
        self.transport: Any = None
        self.lost = False

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


class Client:
    """A raw client socket watched by the reactor: notes what it reads and when it is closed."""

    def __init__(self, reactor: Any, port: int) -> None:
        self.reactor = reactor
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.received = b""
        self.closed = False
        reactor.addReader(self)

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.received += data
            return
        self.closed = True
        self.reactor.removeReader(self)

    def connectionLost(self, reason: Any) -> None:
        self.closed = True

    def logPrefix(self) -> str:
        return "test client"

    def close(self) -> None:
        if not self.closed:
            self.reactor.removeReader(self)
        self.sock.close()


def test_a_slots_protocol_is_limited_and_timed_out(reactor: Any) -> None:
    with pytest.raises(AttributeError):
        SlotsEcho().__dict__  # noqa: B018 - the point of the test
    policy = PolicyFactory(Factory.forProtocol(SlotsEcho), reactor, max_connections=2, idle_timeout=0.5)
    port = reactor.listenTCP(0, policy, interface="127.0.0.1")
    number = port.getHost().port
    clients = [Client(reactor, number) for _ in range(3)]
    try:
        run_until_true(reactor, lambda: len(policy.connections) == 2)
        for c in clients:
            c.sock.send(b"hi")
        run_until_true(reactor, lambda: sum(c.received == b"hi" for c in clients) == 2)
        # The limit holds: the third waits in the backlog, unanswered, while two are open.
        assert len(policy.connections) == 2
        assert sorted(c.received for c in clients) == [b"", b"hi", b"hi"]
        apps = [conn.wrappedProtocol for conn in policy.connections.values()]
        assert all(isinstance(app, SlotsEcho) for app in apps)
        # The idle timeout holds: the two silent ones are closed, then the third is accepted,
        # echoes, and is closed in turn.
        run_until_true(reactor, lambda: sum(c.closed for c in clients) >= 2, timeout=10)
        assert all(app.lost for app in apps)
        waiting = [c for c in clients if not c.closed]
        assert len(waiting) == 1
        run_until_true(reactor, lambda: waiting[0].received == b"hi")
        run_until_true(reactor, lambda: waiting[0].closed, timeout=10)
        run_until_true(reactor, lambda: not policy.connections)
        assert policy.per_peer == {}
    finally:
        for c in clients:
            c.close()
        run_until(reactor, port.stopListening())


def test_without_timeouts_the_transport_calls_the_protocol_directly(reactor: Any) -> None:
    built: list[Any] = []

    class Echo(Protocol):
        def connectionMade(self) -> None:
            built.append(self)

        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    policy = PolicyFactory(Factory.forProtocol(Echo), reactor, max_connections=10, max_connections_per_peer=5)
    port = reactor.listenTCP(0, policy, interface="127.0.0.1")
    client = Client(reactor, port.getHost().port)
    try:
        run_until_true(reactor, lambda: len(built) == 1)
        app = built[0]
        wrapper = app.transport.protocol
        assert isinstance(wrapper, PolicyProtocol) and wrapper.wrappedProtocol is app
        assert type(wrapper).__name__ == "Echo"  # the transport's log lines name the user's class
        assert app.transport is wrapper.transport  # the protocol sees the transport itself
        # No timeouts: the data path is the protocol's own bound method, nothing in between.
        assert wrapper.dataReceived.__self__ is app
        client.sock.send(b"direct")
        run_until_true(reactor, lambda: client.received == b"direct")
        client.close()
        run_until_true(reactor, lambda: not policy.connections)
    finally:
        client.close()
        run_until(reactor, port.stopListening())


# --- layering -----------------------------------------------------------------------------------


def _imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """(modules imported at module level, [(line, text) of imports inside functions])."""
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    top: set[str] = set()
    inner: list[tuple[int, str]] = []

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        return [base] + [f"{base}.{a.name}" for a in node.names]

    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            top.update(names(node))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    inner.append((sub.lineno, lines[sub.lineno - 1]))
    return top, inner


@pytest.mark.parametrize("name", ["cli", "supervisor", "serving", "policies"])
def test_no_function_level_import_without_a_reason(name: str) -> None:
    _top, inner = _imports(FRAMEWORK / f"{name}.py")
    unexplained = [(line, text) for line, text in inner if "# reason:" not in text]
    assert not unexplained, unexplained


def test_the_layers_point_downward() -> None:
    top = {name: _imports(FRAMEWORK / f"{name}.py")[0] for name in ("supervisor", "serving", "policies")}
    assert not any(m.startswith("framework.cli") for m in top["supervisor"])
    for name in ("serving", "policies"):
        assert not any(m.startswith(("framework.cli", "framework.supervisor")) for m in top[name]), name
    assert "framework.serving" not in top["policies"]
