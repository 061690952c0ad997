"""Chat join/leave notices are coalesced: one write per client per batch (issue 17, item 4).

Unit tests drive ``ChatFactory`` on a ``Clock`` (``Room.turn`` lets one batch go out); the
end-to-end tests run ``reactor-serve --protocol chat`` on loopback.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from typing import Any, Callable

from framework.address import IPv4Address
from framework.task import Clock
from framework.stream import HIGH_WATER
from framework.testing import StringTransport
from reactor_framework_plugins.protocols import chat
from serve_util import Proc


class CountingTransport(StringTransport):
    """Counts ``write`` calls; ``buffered`` is what ``get_write_buffer_size`` reports."""

    def __init__(self, buffered: int = 0) -> None:
        super().__init__()
        self.writes = 0
        self.buffered = buffered

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered


class Room:
    def __init__(self) -> None:
        self.clock = Clock()
        self.factory = chat.ChatFactory(reactor=self.clock)

    def join(self, buffered: int = 0) -> tuple[Any, CountingTransport]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        t = CountingTransport(buffered)
        proto.makeConnection(t)
        return proto, t

    def turn(self) -> None:
        """Let one batch of notices go out."""
        self.clock.advance(chat.MAX_NOTICE_DELAY)


def take(t: CountingTransport) -> list[str]:
    out = [line for line in t.value().decode().split("\r\n") if line]
    t.clear()
    t.writes = 0
    return out


def test_joins_in_one_turn_reach_each_client_in_one_write_and_not_the_newcomer_itself() -> None:
    room = Room()
    old = [room.join() for _ in range(3)]
    room.turn()
    for _, t in old:
        take(t)
    new = [room.join() for _ in range(3)]  # guest4, guest5, guest6 in the same turn
    for _, t in old:
        assert t.writes == 0  # nothing sent before the turn ends
    room.turn()
    for _, t in old:
        assert t.writes == 1
        assert take(t) == ["* guest4, guest5, guest6 joined"]
    # A newcomer hears of those who came after it, never of itself (after its welcome write).
    assert [t.writes for _, t in new] == [2, 2, 1]
    assert [take(t)[1:] for _, t in new] == [["* guest5, guest6 joined"], ["* guest6 joined"], []]
    room.turn()
    assert all(take(t) == [] for _, t in old + new)


def test_a_crowd_is_counted_not_listed_and_leaves_are_batched_too() -> None:
    room = Room()
    a, ta = room.join()
    take(ta)
    crowd = [room.join() for _ in range(chat.NOTICE_NAMES + 5)]
    room.turn()
    assert ta.writes == 1 and take(ta) == [f"* {chat.NOTICE_NAMES + 5} users joined"]
    for p, _ in crowd:
        p.connectionLost(None)
    assert ta.writes == 0
    room.turn()
    assert ta.writes == 1 and take(ta) == [f"* {chat.NOTICE_NAMES + 5} users left"]


def test_joining_and_leaving_in_the_same_turn_is_not_announced() -> None:
    room = Room()
    a, ta = room.join()
    room.turn()
    take(ta)
    b, tb = room.join()
    b.connectionLost(None)
    room.turn()
    assert take(ta) == [] and ta.writes == 0
    # Someone already announced does get a leave notice, alongside others of that turn.
    c, tc = room.join()
    room.turn()
    assert take(ta) == ["* guest3 joined"]
    d, td = room.join()
    c.connectionLost(None)
    room.turn()
    assert take(ta) == ["* guest4 joined", "* guest3 left"]


def test_pending_notices_go_out_before_a_message_so_the_order_is_kept() -> None:
    room = Room()
    a, ta = room.join()
    room.turn()
    take(ta)
    b, tb = room.join()
    b.dataReceived(b"hello\r\n")  # same turn as the join
    assert take(ta) == ["* guest2 joined", "<guest2> hello"]
    b.dataReceived(b"/nick bob\r\n")
    c, tc = room.join()
    c.connectionLost(None)
    b.connectionLost(None)
    b2, _ = room.join()
    b2.dataReceived(b"/who\r\n")
    room.turn()
    # Within one turn: the arrivals' line, then the departures'.
    assert take(ta) == ["* guest2 is now bob", "* guest4 joined", "* bob left"]


def test_a_client_over_the_high_water_mark_misses_notices_but_not_messages() -> None:
    room = Room()
    slow, ts = room.join(buffered=HIGH_WATER + 1)
    room.turn()
    take(ts)
    b, tb = room.join()
    room.turn()
    assert take(ts) == []
    b.dataReceived(b"still here\r\n")
    assert take(ts) == ["<guest2> still here"]


# --- end to end: reactor-serve on loopback ------------------------------------------------------


def _read_until(sock: socket.socket, done: Callable[[bytes], bool], timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    while not done(data):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; got {data[-500:]!r}")
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed; got {data[-500:]!r}")
        data += chunk
    return data


def test_reactor_serve_chat_announces_others_but_not_yourself(serve: Any) -> None:
    s = serve("--protocol", "chat", "--port", "0")
    port = s.tcp_port()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as a:
        _read_until(a, lambda d: b"welcome" in d and d.endswith(b"\n"))
        others = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        try:
            b = others[0]
            got = _read_until(a, lambda d: all(f"guest{i}".encode() in d for i in (2, 3, 4)))
            assert b"joined" in got
            b.sendall(b"/who\r\nhi\r\n")
            seen = _read_until(b, lambda d: b"* here:" in d and d.endswith(b"\n"))
            assert b"guest2 joined" not in seen and b", guest2" not in seen.split(b"* here:")[0]
            assert _read_until(a, lambda d: b"<guest2> hi\r\n" in d)
        finally:
            for o in others:
                o.close()


def test_a_newcomer_is_welcomed_while_a_thousand_others_join(serve: Any) -> None:
    # The cost of the crowd is measured by benchmarks/bench_chat.py (CPU and latency, 2,000 and
    # 10,000 clients); here only the behaviour: the server stays responsive and welcomes.
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft < want:  # reactor-serve inherits the limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))
    try:
        s: Proc = serve("--protocol", "chat", "--port", "0")
        port = s.tcp_port()
        crowd: list[socket.socket] = []
        try:
            for _ in range(n):
                c = socket.socket()
                crowd.append(c)
                c.setblocking(False)
                try:
                    c.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
            with socket.create_connection(("127.0.0.1", port), timeout=30) as fresh:
                welcome = _read_until(fresh, lambda d: b"welcome" in d and d.endswith(b"\n"))
                assert welcome.startswith(b"* welcome, you are guest")
        finally:
            for c in crowd:
                c.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_batch_waits_in_proportion_to_the_room_up_to_a_cap() -> None:
    room = Room()
    clients = [room.join() for _ in range(500)]
    room.turn()
    for _, t in clients:
        take(t)
    room.join()  # one more: its notice waits 501 * NOTICE_DELAY_PER_CLIENT
    expected = 501 * chat.NOTICE_DELAY_PER_CLIENT
    room.clock.advance(expected * 0.9)
    assert take(clients[0][1]) == []
    room.clock.advance(expected * 0.2)
    assert take(clients[0][1]) == ["* guest501 joined"]
    factory = room.factory
    assert min(chat.MAX_NOTICE_DELAY, 10**6 * chat.NOTICE_DELAY_PER_CLIENT) == chat.MAX_NOTICE_DELAY
    assert factory._flush_call is None
