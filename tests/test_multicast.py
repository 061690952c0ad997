"""UDP multicast (``reactor.listenMulticast``) on the loopback interface, on every backend.

Datagrams are sent with TTL 0 by the interface 127.0.0.1: they never leave this host.
Receiving ports bind to the group address itself, so they get only that group's datagrams.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from framework import error
from framework.interfaces import IMulticastTransport, IReactorMulticast, IUDPTransport
from framework.multicast import MulticastPort
from framework.protocol import DatagramProtocol
from framework.testing import MemoryReactor
from test_tcp import HAS_IPV6
from framework.failure import Failure
from util import run_until, run_until_true

GROUP = "228.0.0.5"
LOCAL = "127.0.0.1"


class Collector(DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Any]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.datagrams.append((data, addr))


def _receiver(reactor: Any, port: int = 0, listenMultiple: bool = False, join: bool = True) -> tuple[Collector, Any]:
    proto = Collector()
    p = reactor.listenMulticast(port, proto, interface=GROUP, listenMultiple=listenMultiple)
    if join:
        assert run_until(reactor, p.joinGroup(GROUP, LOCAL)) == 1
    return proto, p


def _sender(reactor: Any) -> Any:
    p = reactor.listenMulticast(0, Collector(), interface=LOCAL)
    run_until(reactor, p.setOutgoingInterface(LOCAL))
    p.setTTL(0)
    p.setLoopbackMode(True)
    return p


def run_until_failed(reactor: Any, d: Any) -> Failure:
    """Run ``reactor`` until ``d`` fails; its Failure (a success fails the test)."""
    box: list[Any] = []
    d.addCallbacks(lambda r: pytest.fail(f"succeeded with {r!r}"), box.append)
    run_until_true(reactor, lambda: box)
    return box[0]


def _stop(reactor: Any, *ports: Any) -> None:
    for p in ports:
        run_until(reactor, p.stopListening())
    run_until_true(reactor, lambda: not reactor.getReaders())


def test_a_joined_port_receives_what_is_sent_to_the_group(reactor: Any) -> None:
    proto, recv = _receiver(reactor)
    assert isinstance(recv, MulticastPort) and proto.transport is recv
    send = _sender(reactor)
    send.write(b"hello group", (GROUP, recv.getHost().port))
    run_until_true(reactor, lambda: proto.datagrams)
    assert proto.datagrams == [(b"hello group", (LOCAL, send.getHost().port))]
    _stop(reactor, recv, send)


def test_ports_sharing_the_group_port_each_get_a_copy(reactor: Any) -> None:
    first, p1 = _receiver(reactor, listenMultiple=True)
    second, p2 = _receiver(reactor, port=p1.getHost().port, listenMultiple=True)
    assert p1.getHost().port == p2.getHost().port
    send = _sender(reactor)
    send.write(b"to both", (GROUP, p1.getHost().port))
    run_until_true(reactor, lambda: first.datagrams and second.datagrams)
    assert first.datagrams[0][0] == second.datagrams[0][0] == b"to both"
    _stop(reactor, p1, p2, send)


def test_only_members_receive_and_leaving_stops_delivery(reactor: Any) -> None:
    member, p1 = _receiver(reactor, listenMultiple=True)
    # Bound to the same group and port but not joined: on Linux it gets nothing (IP_MULTICAST_ALL
    # is off), though another socket of this host is a member.
    outsider, p2 = _receiver(reactor, port=p1.getHost().port, listenMultiple=True, join=False)
    leaver, p3 = _receiver(reactor, port=p1.getHost().port, listenMultiple=True)
    send = _sender(reactor)
    group_port = p1.getHost().port
    send.write(b"one", (GROUP, group_port))
    run_until_true(reactor, lambda: member.datagrams and leaver.datagrams)
    assert run_until(reactor, p3.leaveGroup(GROUP, LOCAL)) == 1
    send.write(b"two", (GROUP, group_port))
    # The marker: both ports join (again) and the same sender sends once more. A socket bound to
    # a group address can get no unicast, so the group itself carries the marker; datagrams from
    # one sender over loopback arrive in order, so once the marker is in, "two" was either
    # delivered before it or never.
    run_until_true(reactor, lambda: len(member.datagrams) == 2)
    assert run_until(reactor, p3.joinGroup(GROUP, LOCAL)) == 1
    assert run_until(reactor, p2.joinGroup(GROUP, LOCAL)) == 1
    send.write(b"marker", (GROUP, group_port))
    run_until_true(reactor, lambda: (leaver.datagrams[-1][0] == b"marker" and outsider.datagrams
                                     and len(member.datagrams) == 3))
    assert [d for d, _ in leaver.datagrams] == [b"one", b"marker"]
    assert [d for d, _ in outsider.datagrams] == [b"marker"]
    assert [d for d, _ in member.datagrams] == [b"one", b"two", b"marker"]
    _stop(reactor, p1, p2, p3, send)


def test_ports_provide_the_transport_interfaces(reactor: Any) -> None:
    assert isinstance(reactor, IReactorMulticast)
    p = reactor.listenMulticast(0, Collector(), interface=LOCAL)
    u = reactor.listenUDP(0, Collector(), interface=LOCAL)
    assert IMulticastTransport.providedBy(p) and IUDPTransport.providedBy(p)
    assert IUDPTransport.providedBy(u) and not IMulticastTransport.providedBy(u)
    _stop(reactor, p, u)


def test_options_round_trip_and_bad_values_are_clear_errors(reactor: Any) -> None:
    p = reactor.listenMulticast(0, Collector(), interface=LOCAL)
    p.setTTL(3)
    assert p.getTTL() == 3
    for bad in (256, -1, "1", True, 1.5):
        with pytest.raises(ValueError, match="TTL"):
            p.setTTL(bad)
    p.setLoopbackMode(False)
    assert p.getLoopbackMode() is False
    p.setLoopbackMode(True)
    assert p.getLoopbackMode() is True
    run_until(reactor, p.setOutgoingInterface(LOCAL))
    assert p.getOutgoingInterface() == LOCAL
    failure = []
    p.setOutgoingInterface(5).addErrback(failure.append)  # names are looked up; see below
    assert failure and failure[0].check(ValueError)
    _stop(reactor, p)


NAMES = {"here.test": LOCAL, "group.test": GROUP}


def _names(host: str, port: Any, *rest: Any) -> Any:
    """A resolver for two made-up names; no DNS query leaves this host."""
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", (NAMES[host], port or 0))]


@pytest.mark.parametrize(("group", "interface", "says"), [
    ("127.0.0.1", LOCAL, "not a multicast group"),
    ("here.test", LOCAL, "not a multicast group"),
    ("239.1.2.3", 7, "IPv4 address of a local interface"),
    ("ff02::1", LOCAL, "is an IPv6 group"),
    ("no-such-group.test", "", "cannot look up a name"),
    (GROUP, "no-such-host.test", "cannot look up a name"),
])
def test_bad_joins_fail_with_multicast_join_error(reactor: Any, group: str, interface: Any, says: str) -> None:
    reactor.set_name_resolver(_names)
    p = reactor.listenMulticast(0, Collector(), interface=LOCAL)
    failure = run_until_failed(reactor, p.joinGroup(group, interface))
    assert failure.check(error.MulticastJoinError)
    assert says in str(failure.value) and repr(group) in str(failure.value)
    _stop(reactor, p)


def test_host_names_are_looked_up_as_with_twisted(reactor: Any) -> None:
    reactor.set_name_resolver(_names)
    p = reactor.listenMulticast(0, Collector(), interface=GROUP)
    assert run_until(reactor, p.joinGroup("group.test", "here.test")) == 1
    assert run_until(reactor, p.leaveGroup(GROUP, LOCAL)) == 1  # it was joined, by the addresses
    assert run_until(reactor, p.setOutgoingInterface("here.test")) == 1
    assert p.getOutgoingInterface() == LOCAL
    assert run_until_failed(reactor, p.setOutgoingInterface("nowhere.test")).check(error.DNSLookupError)
    _stop(reactor, p)


def test_leaving_a_group_never_joined_fails(reactor: Any) -> None:
    p = reactor.listenMulticast(0, Collector(), interface=LOCAL)
    failures: list[Any] = []
    p.leaveGroup(GROUP, LOCAL).addErrback(failures.append)
    assert failures and failures[0].check(error.MulticastJoinError)
    _stop(reactor, p)


def test_options_before_listening_say_so(reactor: Any) -> None:
    p = MulticastPort(0, Collector(), reactor=reactor)
    for option in (lambda: p.setTTL(1), p.getTTL, lambda: p.setLoopbackMode(True), p.getOutgoingInterface):
        with pytest.raises(error.NotListeningError, match="not listening"):
            option()
    joining = run_until_failed(reactor, p.joinGroup(GROUP, LOCAL))
    assert joining.check(error.MulticastJoinError) and "not listening" in str(joining.value)
    assert run_until_failed(reactor, p.setOutgoingInterface(LOCAL)).check(error.NotListeningError)


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 on this machine")
def test_ipv6_groups_join_and_leave_on_an_interface_by_name(reactor: Any) -> None:
    # Delivery over lo is not possible for IPv6 here (lo has no multicast route), so this
    # checks membership and the options, not delivery.
    p = reactor.listenMulticast(0, Collector(), interface="::1")
    assert p.getHandle().family == socket.AF_INET6
    assert run_until(reactor, p.joinGroup("ff02::1:3", "lo")) == 1
    assert run_until(reactor, p.leaveGroup("ff02::1:3", "lo")) == 1
    p.setTTL(2)
    assert p.getTTL() == 2
    run_until(reactor, p.setOutgoingInterface("lo"))
    assert p.getOutgoingInterface() == socket.if_nametoindex("lo")
    failures: list[Any] = []
    p.joinGroup("228.0.0.5", "lo").addErrback(failures.append)
    p.joinGroup("ff02::1:3", "no-such-if0").addErrback(failures.append)
    assert [f.check(error.MulticastJoinError) for f in failures] == [error.MulticastJoinError] * 2
    assert "no network interface named 'no-such-if0'" in str(failures[1].value)
    _stop(reactor, p)


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 on this machine")
def test_ipv6_delivery_over_lo_works_or_fails_clearly(reactor: Any) -> None:
    # Where lo carries IPv6 multicast the datagram must arrive; where it does not (lo without
    # the MULTICAST flag, as on the machine this was written on) the kernel has no route for
    # the group and the write raises ENETUNREACH, which the caller sees unchanged.
    group = "ff05::1:3"
    proto = Collector()
    recv = reactor.listenMulticast(0, proto, interface=group)
    assert run_until(reactor, recv.joinGroup(group, "lo")) == 1
    send = reactor.listenMulticast(0, Collector(), interface="::1")
    run_until(reactor, send.setOutgoingInterface("lo"))
    send.setLoopbackMode(True)
    send.setTTL(0)
    try:
        send.write(b"over v6", (group, recv.getHost().port))
    except OSError as e:
        assert e.errno == errno.ENETUNREACH
    else:
        run_until_true(reactor, lambda: proto.datagrams)
        assert proto.datagrams[0][0] == b"over v6"
    _stop(reactor, recv, send)


def test_memory_reactor_records_listen_multicast() -> None:
    reactor = MemoryReactor()
    proto = Collector()
    reactor.listenMulticast(9999, proto, interface=GROUP, listenMultiple=True)
    assert reactor.multicastServers == [(9999, proto, GROUP, 8192, True)]
