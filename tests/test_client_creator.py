"""ClientCreator: connect and get the protocol instance, no factory needed (real sockets)."""

from __future__ import annotations

import os

import pytest

from framework import defer, error
from framework.protocol import ClientCreator, Factory, Protocol
from util import run_until, run_until_true


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Client(Protocol):
    def __init__(self, greeting: bytes, *, suffix: bytes = b"") -> None:
        self.greeting = greeting + suffix
        self.made = False
        self.reply: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.made = True

    def dataReceived(self, data: bytes) -> None:
        if not self.reply.called:
            self.reply.callback(data)


def _closed(reactor) -> None:
    """Run until every connection and port is gone from the reactor."""
    run_until_true(reactor, lambda: not reactor.getReaders() and not reactor.getWriters())


def _echo_port(reactor):
    return reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")


def test_connect_tcp_fires_with_the_connected_instance(reactor) -> None:
    port = _echo_port(reactor)
    try:
        d = ClientCreator(reactor, Client, b"hi", suffix=b"!").connectTCP("127.0.0.1", port.getHost().port)
        proto = run_until(reactor, d)
        assert isinstance(proto, Client) and proto.made
        proto.transport.write(proto.greeting)
        assert run_until(reactor, proto.reply) == b"hi!"
        proto.transport.loseConnection()
    finally:
        run_until(reactor, port.stopListening())
        _closed(reactor)


def test_refused_connection_fails_the_deferred(reactor) -> None:
    port = _echo_port(reactor)
    number = port.getHost().port
    run_until(reactor, port.stopListening())
    d = ClientCreator(reactor, Client, b"x").connectTCP("127.0.0.1", number)
    with pytest.raises(error.ConnectionRefusedError):
        run_until(reactor, d)


def test_cancel_stops_the_attempt(reactor) -> None:
    port = _echo_port(reactor)
    try:
        d = ClientCreator(reactor, Client, b"x").connectTCP("127.0.0.1", port.getHost().port)
        d.cancel()
        with pytest.raises(defer.CancelledError):
            run_until(reactor, d)
    finally:
        run_until(reactor, port.stopListening())
        _closed(reactor)


def test_connect_unix(reactor, tmp_path) -> None:
    path = str(tmp_path / "echo.sock")
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo))
    try:
        proto = run_until(reactor, ClientCreator(reactor, Client, b"unix").connectUNIX(path))
        proto.transport.write(proto.greeting)
        assert run_until(reactor, proto.reply) == b"unix"
        proto.transport.loseConnection()
    finally:
        run_until(reactor, port.stopListening())
        _closed(reactor)
    assert not os.path.exists(path)


def test_not_callable_protocol_class_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="protocolClass must be callable, not str"):
        ClientCreator(None, "Client")
