"""Type-checked by ``tests/test_typing.py`` (mypy must report nothing here); never run.

Each assignment below says "this object satisfies that facet". ``Reactor`` and
``MemoryReactor`` must satisfy every facet, ``Clock`` ``IReactorTime``; the framework's own
signatures take the facets; ``Deferred``'s chain methods carry types.
"""

from __future__ import annotations

from typing import Any, assert_type

from framework.defer import Deferred, execute, gatherResults, inlineCallbacks, maybeDeferred, succeed
from framework.eventloop import DelayedCall, Reactor
from framework.failure import Failure
from framework.interfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorFDSet,
    IReactorMulticast,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
    IReactorUDP,
    IReactorUNIX,
    IStreamTransport,
    IThreadPool,
    ReadDescriptor,
    WriteDescriptor,
)
from framework.protocol import ClientFactory, DatagramProtocol, Factory, Protocol, ReconnectingClientFactory
from framework.task import Clock, LoopingCall, deferLater
from framework.tcp import TCPConnection
from framework.testing import FakeThreadPool, MemoryReactor, StringTransport
from framework.tlsprotocol import TLSMemoryBIOProtocol
from framework.unix import Server as UNIXServer
from framework.threads import ThreadPool


def the_reactor_has_every_facet(reactor: Reactor) -> None:
    time: IReactorTime = reactor
    core: IReactorCore = reactor
    tcp: IReactorTCP = reactor
    unix: IReactorUNIX = reactor
    udp: IReactorUDP = reactor
    threads: IReactorThreads = reactor
    fdset: IReactorFDSet = reactor
    multicast: IReactorMulticast = reactor
    call: IDelayedCall = reactor.callLater(1.0, print)
    pool: IThreadPool = reactor.getThreadPool()
    del time, core, tcp, unix, udp, threads, fdset, multicast, call, pool


def the_memory_reactor_has_every_facet(reactor: MemoryReactor) -> None:
    time: IReactorTime = reactor
    core: IReactorCore = reactor
    tcp: IReactorTCP = reactor
    unix: IReactorUNIX = reactor
    udp: IReactorUDP = reactor
    threads: IReactorThreads = reactor
    fdset: IReactorFDSet = reactor
    multicast: IReactorMulticast = reactor
    del time, core, tcp, unix, udp, threads, fdset, multicast


def the_clock_is_a_clock(clock: Clock) -> None:
    time: IReactorTime = clock
    del time


def the_parts_fit(delayed: DelayedCall, pool: ThreadPool, fake_pool: FakeThreadPool) -> None:
    call: IDelayedCall = delayed
    real: IThreadPool = pool
    fake: IThreadPool = fake_pool
    del call, real, fake


class Watcher:
    """Has the methods addReader/addWriter need, inheriting nothing: that is enough."""

    def fileno(self) -> int:
        return 3

    def doRead(self) -> None:
        pass

    def doWrite(self) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


def code_typed_against_facets(fdset: IReactorFDSet, tcp: IReactorTCP, udp: IReactorUDP,
                              time: IReactorTime) -> None:
    watcher = Watcher()
    fdset.addReader(watcher)
    fdset.addWriter(watcher)
    readers: ReadDescriptor = watcher
    writers: WriteDescriptor = watcher
    port = tcp.listenTCP(8000, Factory.forProtocol(Protocol), interface="127.0.0.1")
    port.stopListening()
    tcp.connectTCP("127.0.0.1", 8000, ClientFactory.forProtocol(Protocol), timeout=5)
    udp.listenUDP(0, DatagramProtocol())
    call = time.callLater(2.5, print, "later", sep=" ")
    if call.active():
        call.reset(1.0)
        call.cancel()
    del readers, writers


def framework_signatures_take_facets(memory: MemoryReactor, clock: Clock) -> None:
    loop = LoopingCall(print, "tick")
    loop.clock = clock
    loop.clock = memory
    factory = ReconnectingClientFactory()
    factory.clock = clock
    later: Deferred[Any] = deferLater(memory, 1.0)
    waiting: Deferred[int] = Deferred()
    waiting.addTimeout(5.0, clock)
    del later


def deferred_chains_carry_types() -> None:
    d: Deferred[int] = succeed(1)
    assert_type(d.addCallback(str), Deferred[str])
    assert_type(succeed(2).addCallback(lambda n: n * 1.5), Deferred[float])
    assert_type(succeed(3).addCallback(lambda n, k: n + k, 4), Deferred[int])

    def later(n: int) -> Deferred[bytes]:
        return succeed(b"x" * n)

    assert_type(succeed(5).addCallback(later), Deferred[bytes])

    def recover(failure: Failure) -> str:
        return failure.getErrorMessage()

    assert_type(succeed(6).addErrback(recover), Deferred[int | str])

    def both(result: int | Failure) -> bool:
        return not isinstance(result, Failure)

    assert_type(succeed(7).addBoth(both), Deferred[bool])
    assert_type(maybeDeferred(len, "abc"), Deferred[int])
    assert_type(maybeDeferred(later, 3), Deferred[bytes])
    assert_type(execute(len, "abc"), Deferred[int])
    assert_type(gatherResults([succeed(1), succeed(2)]), Deferred[list[int]])
    chained: Deferred[None] = succeed(8).chainDeferred(Deferred[int]())
    del chained


@inlineCallbacks
def generator_function(n: int) -> Any:
    value = yield succeed(n)
    return value


def inline_callbacks_keep_parameters() -> None:
    generator_function(3)


def the_stream_transports_are_stream_transports(tcp: TCPConnection, unix: UNIXServer,
                                               tls: TLSMemoryBIOProtocol, fake: StringTransport) -> None:
    transports: list[IStreamTransport] = [tcp, unix, tls, fake]
    protocol = Protocol()
    protocol.transport = tcp
    del transports, protocol
