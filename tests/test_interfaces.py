"""framework.interfaces: the inheritable interfaces stay classes users subclass; the reactor
facets are typing.Protocols that the real reactor satisfies (mypy checks the signatures, see
tests/test_typing.py; here the run-time view)."""

from __future__ import annotations

from typing import Protocol

import pytest

from framework import interfaces
from framework.failure import Failure
from framework.interfaces import IReadDescriptor, IReadWriteDescriptor

FACETS = [
    interfaces.IReactorTime,
    interfaces.IReactorCore,
    interfaces.IReactorTCP,
    interfaces.IReactorUNIX,
    interfaces.IReactorUDP,
    interfaces.IReactorMulticast,
    interfaces.IReactorThreads,
    interfaces.IReactorFDSet,
]


def test_users_still_inherit_the_descriptor_interfaces() -> None:
    class MySocket(IReadDescriptor):
        def fileno(self) -> int:
            return 7

        def doRead(self) -> None:
            return None

        def connectionLost(self, reason: Failure) -> None:
            pass

    sock = MySocket()
    assert isinstance(sock, IReadDescriptor)
    assert sock.logPrefix() == "MySocket"
    assert isinstance(sock, interfaces.ReadDescriptor)  # the structural form agrees
    assert not isinstance(sock, interfaces.WriteDescriptor)
    with pytest.raises(NotImplementedError):
        IReadWriteDescriptor().doWrite()


def test_the_facets_are_protocols_not_bases() -> None:
    for facet in FACETS:
        assert Protocol in facet.__mro__, facet
        assert getattr(facet, "_is_protocol", False), facet
    assert not getattr(IReadDescriptor, "_is_protocol", False)


def test_an_object_with_the_methods_is_a_read_descriptor() -> None:
    class Plain:
        def fileno(self) -> int:
            return 3

        def doRead(self) -> None:
            pass

        def connectionLost(self, reason: Failure) -> None:
            pass

    assert isinstance(Plain(), interfaces.ReadDescriptor)
    assert not isinstance(object(), interfaces.ReadDescriptor)


def test_the_real_reactor_provides_every_facet() -> None:
    from framework.eventloop import Reactor
    from reactor_framework_plugins.backends.pollbackend import PollMultiplexer

    reactor = Reactor(PollMultiplexer(), "poll")
    try:
        for facet in FACETS:
            assert isinstance(reactor, facet), facet
        call = reactor.callLater(10, lambda: None)
        assert isinstance(call, interfaces.IDelayedCall)
        call.cancel()
    finally:
        reactor.close()
