"""framework.endpoints: string parsing, wiring to the reactor, Deferred results."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from framework import basic, endpoints, error, protocol
from framework.address import IPv4Address
from framework.defer import Deferred
from framework.failure import Failure
from framework.interfaces import IHalfCloseableProtocol
from framework.testing import MemoryReactor, StringTransport
from tests.util import run_until


def result_of(d: Deferred) -> Any:
    """The result of an already fired Deferred (a Failure if it failed)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has not fired"
    return box[0]


class Hello(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hello")


# --- servers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "description,expected",
    [
        ("tcp:8000", (8000, 50, "")),
        ("tcp:0:interface=127.0.0.1", (0, 50, "127.0.0.1")),
        ("tcp:port=8001:backlog=5", (8001, 5, "")),
        ("TCP:8002:interface=127.0.0.1:backlog=7", (8002, 7, "127.0.0.1")),
        ("tcp6:8003", (8003, 50, "::")),
        (r"tcp6:8004:interface=\:\:1", (8004, 50, "::1")),
    ],
)
def test_server_tcp_strings(description: str, expected: tuple[int, int, str]) -> None:
    reactor = MemoryReactor()
    factory = protocol.Factory.forProtocol(Hello)
    endpoint = endpoints.serverFromString(reactor, description)
    d = endpoint.listen(factory)
    port = result_of(d)
    assert reactor.tcpServers == [(expected[0], factory, expected[1], expected[2])]
    assert port.getHost().port == expected[0]


def test_server_tcp_endpoint_types() -> None:
    reactor = MemoryReactor()
    assert isinstance(endpoints.serverFromString(reactor, "tcp:1"), endpoints.TCP4ServerEndpoint)
    assert isinstance(endpoints.serverFromString(reactor, "tcp6:1"), endpoints.TCP6ServerEndpoint)
    assert isinstance(endpoints.serverFromString(reactor, "unix:/x"), endpoints.UNIXServerEndpoint)


@pytest.mark.parametrize(
    "description,expected",
    [
        ("unix:/tmp/app.sock", ("/tmp/app.sock", 50, 0o666, False)),
        ("unix:/tmp/app.sock:mode=600:backlog=9:lockfile=1", ("/tmp/app.sock", 9, 0o600, True)),
        ("unix:address=/tmp/b.sock", ("/tmp/b.sock", 50, 0o666, False)),
        (r"unix:/tmp/with\:colon.sock", ("/tmp/with:colon.sock", 50, 0o666, False)),
        (r"unix:/tmp/back\\slash", ("/tmp/back\\slash", 50, 0o666, False)),
        ("unix:@abstract-name", ("\0abstract-name", 50, 0o666, False)),
        ("unix:\0raw-abstract", ("\0raw-abstract", 50, 0o666, False)),
    ],
)
def test_server_unix_strings(description: str, expected: tuple[str, int, int, bool]) -> None:
    reactor = MemoryReactor()
    factory = protocol.Factory.forProtocol(Hello)
    result_of(endpoints.serverFromString(reactor, description).listen(factory))
    address, backlog, mode, want = expected
    assert reactor.unixServers == [(address, factory, backlog, mode, want)]


def test_listen_failure_arrives_as_a_failed_deferred() -> None:
    reactor = MemoryReactor()
    reactor.failListen.add(8080)
    d = endpoints.serverFromString(reactor, "tcp:8080:interface=127.0.0.1").listen(protocol.Factory())
    failure = result_of(d)
    assert isinstance(failure, Failure)
    assert failure.check(error.CannotListenError)


@pytest.mark.parametrize(
    "description,message",
    [
        ("", "must start with a type"),
        ("bogus:8000", "unknown server endpoint type 'bogus'"),
        ("ssl:443", "needs certKey= and privateKey="),
        ("sctp:443", "unknown server endpoint type 'sctp'"),
        ("tcp", "needs port"),
        ("tcp:http", "port must be an integer"),
        ("tcp:70000", "port must be between 0 and 65535"),
        ("tcp:-1", "between 0 and 65535"),
        ("tcp:80:extra", "unexpected extra field"),
        ("tcp:80:colour=red", "unknown option(s) colour"),
        ("tcp:80:port=81", "given both positionally"),
        ("tcp:80:backlog=0", "backlog must be between 1 and 65535"),
        ("tcp:80:interface=a:interface=b", "given twice"),
        ("tcp:80:=x", "empty option name"),
        ("tcp:80\\", "lone backslash"),
        ("unix:", "needs address"),
        ("unix:/x:mode=999", "mode must be an octal number"),
        ("unix:/x:lockfile=maybe", "lockfile must be 0 or 1"),
    ],
)
def test_malformed_server_strings_raise_value_error(description: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        endpoints.serverFromString(MemoryReactor(), description)
    assert message in str(info.value)
    assert repr(description) in str(info.value) or description == ""


def test_description_must_be_text() -> None:
    with pytest.raises(TypeError, match="must be str"):
        endpoints.serverFromString(MemoryReactor(), b"tcp:80")  # type: ignore[arg-type]


# --- clients ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "description,expected",
    [
        ("tcp:host=127.0.0.1:port=8000", ("127.0.0.1", 8000, 30, None)),
        ("tcp:127.0.0.1:8000", ("127.0.0.1", 8000, 30, None)),
        ("tcp:localhost:port=81", ("localhost", 81, 30, None)),
        ("tcp:host=localhost:82", ("localhost", 82, 30, None)),
        (
            "tcp:host=127.0.0.1:port=8000:timeout=2.5:bindAddress=127.0.0.1",
            ("127.0.0.1", 8000, 2.5, ("127.0.0.1", 0)),
        ),
        (r"tcp6:host=\:\:1:port=9", ("::1", 9, 30, None)),
    ],
)
def test_client_tcp_strings(description: str, expected: tuple[Any, ...]) -> None:
    reactor = MemoryReactor()
    endpoints.clientFromString(reactor, description).connect(protocol.Factory.forProtocol(Hello))
    (call,) = reactor.tcpClients
    host, port, _factory, timeout, bind = call
    assert (host, port, timeout, bind) == expected


@pytest.mark.parametrize(
    "description,expected",
    [
        ("unix:path=/tmp/s.sock", ("/tmp/s.sock", 30, False)),
        ("unix:/tmp/s.sock:timeout=3:checkPID=1", ("/tmp/s.sock", 3, True)),
        ("unix:path=/tmp/s.sock:lockfile=1:timeout=9", ("/tmp/s.sock", 9, True)),  # Twisted's name
        ("unix:path=@abstract", ("\0abstract", 30, False)),
    ],
)
def test_client_unix_strings(description: str, expected: tuple[Any, ...]) -> None:
    reactor = MemoryReactor()
    endpoints.clientFromString(reactor, description).connect(protocol.Factory.forProtocol(Hello))
    (call,) = reactor.unixClients
    address, _factory, timeout, check = call
    assert (address, timeout, check) == expected


@pytest.mark.parametrize(
    "description,message",
    [
        ("udp:host=127.0.0.1:port=1", "unknown client endpoint type 'udp'"),
        ("tcp:port=80", "needs host"),
        ("tcp:host=127.0.0.1", "needs port"),
        ("tcp:host=127.0.0.1:port=0", "between 1 and 65535"),
        ("tcp:host=127.0.0.1:port=80:timeout=soon", "timeout must be a number of seconds"),
        ("tcp:host=127.0.0.1:port=80:timeout=0", "timeout must be positive"),
        ("tcp:127.0.0.1:80:90", "unexpected extra field"),
        ("unix:", "needs path"),
        ("unix:/x:mode=600", "unknown option(s) mode"),
    ],
)
def test_malformed_client_strings_raise_value_error(description: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        endpoints.clientFromString(MemoryReactor(), description)
    assert message in str(info.value)


def connect_and_get_wrapper(reactor: MemoryReactor, factory: Any) -> tuple[Deferred, Any]:
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", 1234, timeout=5)
    d = endpoint.connect(factory)
    (call,) = reactor.tcpClients
    return d, call[2]


def test_connect_fires_with_the_users_protocol_after_connection_made() -> None:
    reactor = MemoryReactor()
    d, wrapper = connect_and_get_wrapper(reactor, protocol.Factory.forProtocol(Hello))
    assert not d.called
    proto = wrapper.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    assert isinstance(proto, Hello)
    assert not d.called
    transport = StringTransport()
    proto.makeConnection(transport)
    assert result_of(d) is proto
    assert transport.value() == b"hello"
    assert proto.connected and proto.transport is transport
    # The interception is gone: the instance uses the class's makeConnection again.
    assert "makeConnection" not in vars(proto)


def test_connect_keeps_interfaces_of_the_real_protocol() -> None:
    class HalfClose(protocol.Protocol, IHalfCloseableProtocol):
        pass

    reactor = MemoryReactor()
    d, wrapper = connect_and_get_wrapper(reactor, protocol.Factory.forProtocol(HalfClose))
    proto = wrapper.buildProtocol(None)
    assert isinstance(proto, IHalfCloseableProtocol)


def test_connect_failure_errbacks_with_the_reason() -> None:
    reactor = MemoryReactor()
    d, wrapper = connect_and_get_wrapper(reactor, protocol.Factory.forProtocol(Hello))
    wrapper.clientConnectionFailed(reactor.connectors[0], Failure(error.ConnectionRefusedError()))
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.check(error.ConnectionRefusedError)


def test_connect_build_protocol_error_or_none_errbacks() -> None:
    class Refusing(protocol.Factory):
        def buildProtocol(self, addr: Any) -> Any:
            return None

    reactor = MemoryReactor()
    d, wrapper = connect_and_get_wrapper(reactor, Refusing())
    assert wrapper.buildProtocol(None) is None
    failure = result_of(d)
    assert failure.check(error.ConnectError)
    assert "refused to build a protocol" in failure.getErrorMessage()

    class Broken(protocol.Factory):
        def buildProtocol(self, addr: Any) -> Any:
            raise RuntimeError("boom")

    reactor = MemoryReactor()
    d, wrapper = connect_and_get_wrapper(reactor, Broken())
    assert wrapper.buildProtocol(None) is None
    assert result_of(d).check(RuntimeError)


def test_connection_lost_before_made_errbacks() -> None:
    reactor = MemoryReactor()
    d, wrapper = connect_and_get_wrapper(reactor, protocol.Factory.forProtocol(Hello))
    wrapper.buildProtocol(None)
    wrapper.clientConnectionLost(reactor.connectors[0], Failure(error.ConnectionLost()))
    assert result_of(d).check(error.ConnectionLost)


def test_cancel_stops_connecting() -> None:
    reactor = MemoryReactor()
    d, wrapper = connect_and_get_wrapper(reactor, protocol.Factory.forProtocol(Hello))
    d.cancel()
    failure = result_of(d)
    assert failure.check(error.ConnectingCancelledError)
    assert reactor.connectors[0].stoppedConnecting
    assert failure.value.address == IPv4Address("TCP", "127.0.0.1", 1234)


def test_connect_forwards_factory_start_and_stop() -> None:
    calls: list[str] = []

    class F(protocol.ClientFactory):
        protocol = Hello

        def startFactory(self) -> None:
            calls.append("start")

        def stopFactory(self) -> None:
            calls.append("stop")

    reactor = MemoryReactor()
    _d, wrapper = connect_and_get_wrapper(reactor, F())
    wrapper.doStart()
    wrapper.doStop()
    assert calls == ["start", "stop"]


def test_connect_when_the_reactor_raises_gives_a_failed_deferred() -> None:
    class Exploding(MemoryReactor):
        def connectTCP(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError("no sockets today")

    d = endpoints.TCP4ClientEndpoint(Exploding(), "127.0.0.1", 1).connect(protocol.Factory())
    assert result_of(d).check(OSError)


def test_connect_protocol_uses_the_given_instance() -> None:
    reactor = MemoryReactor()
    endpoint = endpoints.clientFromString(reactor, "unix:/tmp/s.sock")
    mine = Hello()
    d = endpoints.connectProtocol(endpoint, mine)
    (call,) = reactor.unixClients
    wrapper = call[1]
    assert wrapper.buildProtocol(None) is mine
    mine.makeConnection(StringTransport())
    assert result_of(d) is mine


# --- real sockets -----------------------------------------------------------------------


class LineEcho(basic.LineReceiver):
    def lineReceived(self, line: bytes) -> None:
        self.sendLine(b"echo: " + line)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.factory.lost.callback(reason.type)


class EchoFactory(protocol.Factory):
    protocol = LineEcho

    def __init__(self) -> None:
        self.lost: Deferred[Any] = Deferred()


class LineClient(basic.LineReceiver):
    def __init__(self) -> None:
        self.done: Deferred = Deferred()
        self.lines: list[bytes] = []

    def connectionMade(self) -> None:
        self.sendLine(b"one")
        self.sendLine(b"two")

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        if len(self.lines) == 2:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.done.callback(self.lines)


def test_real_tcp_round_trip_through_string_endpoints(reactor: Any) -> None:
    server = endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1")
    factory = EchoFactory()
    port = run_until(reactor, server.listen(factory))
    try:
        number = port.getHost().port
        client = endpoints.clientFromString(reactor, f"tcp:host=127.0.0.1:port={number}:timeout=5")
        proto = run_until(reactor, endpoints.connectProtocol(client, LineClient()))
        assert isinstance(proto, LineClient) and proto.connected
        assert run_until(reactor, proto.done) == [b"echo: one", b"echo: two"]
        assert run_until(reactor, factory.lost) is error.ConnectionDone
    finally:
        run_until(reactor, port.stopListening())


def test_real_listen_on_a_busy_port_fails_the_deferred(reactor: Any) -> None:
    first = run_until(
        reactor,
        endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(protocol.Factory()),
    )
    try:
        busy = first.getHost().port
        d = endpoints.serverFromString(reactor, f"tcp:{busy}:interface=127.0.0.1").listen(protocol.Factory())
        with pytest.raises(error.CannotListenError, match=str(busy)):
            run_until(reactor, d)
    finally:
        run_until(reactor, first.stopListening())


def test_real_connection_refused_fails_the_deferred(reactor: Any) -> None:
    # Find a free port by listening and closing it again; nothing listens there afterwards.
    port = run_until(
        reactor,
        endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(protocol.Factory()),
    )
    number = port.getHost().port
    run_until(reactor, port.stopListening())
    client = endpoints.clientFromString(reactor, f"tcp:127.0.0.1:{number}")
    with pytest.raises(error.ConnectionRefusedError):
        run_until(reactor, client.connect(protocol.Factory.forProtocol(LineClient)))


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_real_unix_round_trip_through_string_endpoints(reactor: Any, tmp_path: Any, kind: str) -> None:
    if kind == "path":
        name = str(tmp_path / "echo.sock").replace(":", "\\:")
    else:
        if not sys.platform.startswith("linux"):
            pytest.skip("abstract UNIX socket addresses exist only on Linux")
        name = f"@reactor-framework-test-{os.getpid()}-{id(tmp_path)}"
    factory = EchoFactory()
    port = run_until(reactor, endpoints.serverFromString(reactor, f"unix:{name}:mode=600").listen(factory))
    try:
        client = endpoints.clientFromString(reactor, f"unix:path={name}:timeout=5")
        proto = run_until(reactor, endpoints.connectProtocol(client, LineClient()))
        assert run_until(reactor, proto.done) == [b"echo: one", b"echo: two"]
        assert run_until(reactor, factory.lost) is error.ConnectionDone
    finally:
        run_until(reactor, port.stopListening())


@pytest.mark.parametrize("description, key, address", [
    ("tcp:0:interface=::1", "interface", "::1"),
    ("tcp6:0:interface=::1", "interface", "::1"),
    ("tcp:host=::1:port=80", "host", "::1"),
    ("tcp:host=fe80::1%lo:port=80", "host", "fe80::1%lo"),
    ("tcp6:0:interface=\\:\\:1", "interface", "::1"),
])
def test_ipv6_literals_need_no_escaping(description: str, key: str, address: str) -> None:
    from framework.endpoints import split_description

    assert split_description(description)[1][key] == address


def test_adopted_stream_server_endpoint_listens_on_a_given_socket_once(reactor) -> None:
    import os
    import socket as _socket

    from framework import error as _error
    from framework.endpoints import AdoptedStreamServerEndpoint
    from framework.interfaces import IStreamServerEndpoint
    from framework.protocol import ClientCreator, Factory, Protocol
    from util import run_until, run_until_true

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    class Client(Protocol):
        def __init__(self) -> None:
            self.got = b""

        def dataReceived(self, data: bytes) -> None:
            self.got += data

    sock = _socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port_number = sock.getsockname()[1]
    fd = sock.detach()  # the endpoint closes it
    endpoint = AdoptedStreamServerEndpoint(reactor, fd, _socket.AF_INET)
    assert isinstance(endpoint, IStreamServerEndpoint)
    port = run_until(reactor, endpoint.listen(Factory.forProtocol(Echo)))
    assert port.getHost().port == port_number
    try:
        os.fstat(fd)
        still_open = True
    except OSError:
        still_open = False
    assert not still_open  # the reactor listens on its own copy
    with pytest.raises(_error.AlreadyListened):
        run_until(reactor, endpoint.listen(Factory.forProtocol(Echo)))
    client = run_until(reactor, ClientCreator(reactor, Client).connectTCP("127.0.0.1", port_number))
    client.transport.write(b"adopted")
    run_until_true(reactor, lambda: client.got == b"adopted")
    client.transport.loseConnection()
    run_until(reactor, port.stopListening())
    run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())


def test_raising_memory_reactor_fails_endpoints_with_its_exceptions() -> None:
    from framework import error as _error
    from framework.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, UNIXServerEndpoint
    from framework.interfaces import IStreamClientEndpoint
    from framework.protocol import Factory, Protocol
    from framework.testing import RaisingMemoryReactor

    busy = _error.CannotListenError("127.0.0.1", 80, OSError(98, "in use"))
    refused = _error.ConnectionRefusedError("no")
    reactor = RaisingMemoryReactor(listenException=busy, connectException=refused)
    failures: list = []
    TCP4ServerEndpoint(reactor, 80).listen(Factory.forProtocol(Protocol)).addErrback(failures.append)
    UNIXServerEndpoint(reactor, "/tmp/x.sock").listen(Factory.forProtocol(Protocol)).addErrback(failures.append)
    client = TCP4ClientEndpoint(reactor, "127.0.0.1", 80)
    assert isinstance(client, IStreamClientEndpoint)
    client.connect(Factory.forProtocol(Protocol)).addErrback(failures.append)
    assert [f.value for f in failures] == [busy, busy, refused]



def test_quote_string_argument_escapes_backslashes_and_colons() -> None:
    quoted = endpoints.quoteStringArgument("C:\\path:x")
    assert quoted == "C\\:\\\\path\\:x"
    assert endpoints.split_description(f"unix:{quoted}")[0] == ["unix", "C:\\path:x"]


def test_wrap_client_tls_is_importable_where_twisted_has_it() -> None:
    from framework import tls

    assert endpoints.wrapClientTLS is tls.wrapClientTLS
