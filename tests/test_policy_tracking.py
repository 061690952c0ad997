"""PolicyFactory's connection tracking: the protocol's own connectionLost always runs, then
the connection is forgotten, whether connectionLost comes from the class or the instance."""

from __future__ import annotations

from typing import Any

from framework.address import IPv4Address
from framework.error import ConnectionDone
from framework.failure import Failure
from framework.policies import PolicyFactory
from framework.protocol import Factory, Protocol
from framework.task import Clock


class Recorder(Protocol):
    def __init__(self) -> None:
        self.lost: list[Any] = []

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.append(reason)


def _policy(factory: Any) -> PolicyFactory:
    return PolicyFactory(factory, Clock())


def test_class_connection_lost_runs_then_connection_forgotten() -> None:
    policy = _policy(Factory.forProtocol(Recorder))
    emptied: list[bool] = []
    policy.on_empty = lambda: emptied.append(True)
    proto = policy.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert len(policy.connections) == 1 and policy.per_peer == {"127.0.0.1": 1}
    reason = Failure(ConnectionDone())
    proto.connectionLost(reason)
    assert proto.lost == [reason]
    assert policy.connections == {} and policy.per_peer == {} and emptied == [True]


def test_instance_connection_lost_is_kept() -> None:
    seen: list[Any] = []

    class Builder(Factory):
        protocol = Recorder

        def buildProtocol(self, addr: Any) -> Any:
            p = super().buildProtocol(addr)
            p.connectionLost = lambda reason=None: seen.append(("instance", reason))
            return p

    policy = _policy(Builder())
    proto = policy.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
    proto.connectionLost()
    assert seen == [("instance", None)] and proto.lost == []
    assert policy.connections == {}


def test_failing_connection_lost_still_forgets() -> None:
    class Broken(Protocol):
        def connectionLost(self, reason: Any = None) -> None:
            raise RuntimeError("boom")

    policy = _policy(Factory.forProtocol(Broken))
    proto = policy.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40002))
    try:
        proto.connectionLost(Failure(ConnectionDone()))
    except RuntimeError as e:
        assert str(e) == "boom"
    else:
        raise AssertionError("the protocol's exception must propagate")
    assert policy.connections == {}
