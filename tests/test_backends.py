"""Conformance tests for the built-in reactor backends (Multiplexer implementations), against
real socketpairs and loopback TCP connections."""

from __future__ import annotations

import errno
import os
import resource
import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from framework import plugins
from framework.interfaces import Multiplexer

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
POLLERR = select.POLLERR
POLLHUP = select.POLLHUP
POLLNVAL = select.POLLNVAL

BACKENDS = ["epoll", "poll", "selector", "select"]
#: Backends that report error/hang-up bits (the others report them as readiness).
REPORTS_HUP = {"epoll", "poll"}


def _factory(name: str) -> type[Multiplexer]:
    entry = plugins.reactors().get(name)
    reason = entry.availability()
    if reason is not None:
        pytest.skip(f"{name} backend not available on this platform: {reason}")
    return entry.factory  # type: ignore[return-value]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def mux(backend: str) -> Iterator[Multiplexer]:
    m = _factory(backend)()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _masks(ready: list[tuple[int, int]]) -> dict[int, int]:
    """fd -> mask, checking no fd is reported twice."""
    fds = [fd for fd, _ in ready]
    assert len(fds) == len(set(fds)), f"fd reported twice: {ready}"
    return dict(ready)


def _wait(mux: Multiplexer, fd: int, bits: int) -> int:
    """Poll until ``fd`` shows one of ``bits`` (bounded), returning its mask."""
    for _ in range(50):
        mask = _masks(mux.poll(0.2)).get(fd, 0)
        if mask & bits:
            return mask
    raise AssertionError(f"fd {fd} never reported {bits:#x}")


def test_registered_with_priorities_and_distribution() -> None:
    registry = plugins.reactors()
    expected = {"epoll": 30, "poll": 20, "selector": 10, "select": 5}
    for name, priority in expected.items():
        entry = registry.get(name)
        assert entry.priority == priority
        assert isinstance(entry.factory, type) and issubclass(entry.factory, Multiplexer)
        assert entry.distribution == "reactor-framework"
        assert entry.plugin == name
        assert entry.description
    if hasattr(select, "epoll"):
        assert registry.best().name == "epoll"
    else:
        assert registry.get("epoll").availability() is not None


def test_idle_socket_not_reported(mux: Multiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    mux.register(a.fileno(), POLLIN)
    assert mux.poll(0) == []


def test_writable_only(mux: Multiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    mux.register(a.fileno(), POLLOUT)
    masks = _masks(mux.poll(0))
    assert masks.keys() == {a.fileno()}
    assert masks[a.fileno()] & POLLOUT
    assert not masks[a.fileno()] & POLLIN


def test_readable_and_writable_in_one_pair(
    mux: Multiplexer, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    mux.register(a.fileno(), POLLIN | POLLOUT)
    b.send(b"x")
    masks = _masks(mux.poll(1.0))
    assert masks[a.fileno()] & (POLLIN | POLLOUT) == POLLIN | POLLOUT
    assert a.recv(10) == b"x"
    masks = _masks(mux.poll(0))
    assert masks[a.fileno()] & (POLLIN | POLLOUT) == POLLOUT


def test_modify(mux: Multiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    fd = a.fileno()
    mux.register(fd, POLLIN | POLLOUT)
    b.send(b"data")
    mux.modify(fd, POLLIN)
    masks = _masks(mux.poll(1.0))
    assert masks[fd] & POLLIN and not masks[fd] & POLLOUT
    mux.modify(fd, POLLOUT)
    masks = _masks(mux.poll(0))
    assert masks[fd] & POLLOUT and not masks[fd] & POLLIN
    mux.modify(fd, POLLIN | POLLOUT)
    masks = _masks(mux.poll(0))
    assert masks[fd] & (POLLIN | POLLOUT) == POLLIN | POLLOUT


def test_unregister(mux: Multiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    mux.register(a.fileno(), POLLIN)
    mux.register(b.fileno(), POLLIN)
    b.send(b"x")
    a.send(b"y")
    assert set(_masks(mux.poll(1.0))) == {a.fileno(), b.fileno()}
    mux.unregister(a.fileno())
    assert set(_masks(mux.poll(0))) == {b.fileno()}
    mux.unregister(b.fileno())
    assert mux.poll(0) == []
    # Registering again after unregistering works.
    mux.register(a.fileno(), POLLIN)
    assert set(_masks(mux.poll(0))) == {a.fileno()}


def test_unregister_closed_fd_does_not_raise(backend: str, mux: Multiplexer) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    mux.register(fd, POLLIN)
    a.close()
    mux.unregister(fd)
    b.close()
    assert mux.poll(0) == []


def test_many_descriptors_only_ready_ones_reported(mux: Multiplexer) -> None:
    pairs = [socket.socketpair() for _ in range(40)]
    try:
        for a, _ in pairs:
            mux.register(a.fileno(), POLLIN)
        chosen = pairs[::3]
        for _, b in chosen:
            b.send(b"!")
        expected = {a.fileno() for a, _ in chosen}
        seen: dict[int, int] = {}
        for _ in range(20):  # one poll normally suffices; bounded retries for slow delivery
            seen.update(_masks(mux.poll(0.5)))
            if seen.keys() >= expected:
                break
        assert seen.keys() == expected
        assert all(mask & POLLIN for mask in seen.values())
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_timeout_zero_returns_at_once(mux: Multiplexer, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    mux.register(a.fileno(), POLLIN)
    for _ in range(100):
        assert mux.poll(0) == []
        assert mux.poll(0.0) == []
    assert mux.poll(-1.0) == []  # an overdue timer: do not wait (and never block forever)


@pytest.mark.parametrize("timeout", [0.0002, 0.0009, 0.01])
def test_small_timeouts_wait(
    mux: Multiplexer, pair: tuple[socket.socket, socket.socket], timeout: float
) -> None:
    # A sub-millisecond timeout is rounded up, never down to 0: the call really waits, so a
    # loop waiting for a timer does not spin. (A lower bound only: the OS may wait longer.)
    a, _ = pair
    mux.register(a.fileno(), POLLIN)
    start = time.monotonic()
    assert mux.poll(timeout) == []
    assert time.monotonic() - start >= timeout * 0.9


def test_none_timeout_returns_when_ready(
    mux: Multiplexer, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    mux.register(a.fileno(), POLLIN)
    b.send(b"x")
    assert _masks(mux.poll(None))[a.fileno()] & POLLIN


def test_peer_close_reported(
    backend: str, mux: Multiplexer, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    mux.register(a.fileno(), POLLIN)
    b.close()
    mask = _wait(mux, a.fileno(), POLLIN | POLLHUP)
    if backend in REPORTS_HUP:
        assert mask & POLLHUP
    assert a.recv(10) == b""


def test_reset_reported_as_error(backend: str, mux: Multiplexer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    try:
        client.setblocking(False)
        mux.register(client.fileno(), POLLIN)
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        mask = _wait(mux, client.fileno(), POLLIN | POLLERR | POLLHUP)
        if backend in REPORTS_HUP:
            assert mask & POLLERR and mask & POLLHUP
        with pytest.raises(ConnectionResetError):
            client.recv(10)
    finally:
        client.close()


def test_fd_closed_behind_the_back(backend: str, mux: Multiplexer) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    try:
        mux.register(fd, POLLIN)
        os.close(fd)  # behind the multiplexer's back (the socket object still thinks it owns it)
        if backend == "select":
            with pytest.raises(OSError) as info:
                mux.poll(0)
            assert info.value.errno == errno.EBADF
        elif backend == "poll":
            assert _masks(mux.poll(0))[fd] & POLLNVAL
        else:  # epoll drops closed descriptors by itself
            assert mux.poll(0) == []
        mux.unregister(fd)
        assert mux.poll(0) == []
    finally:
        a.detach()
        b.close()


def _high_fd(sock: socket.socket, target: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= target:
        if hard != resource.RLIM_INFINITY and hard <= target:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} too low for fd {target}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (target + 1, hard))
    return os.dup2(sock.fileno(), target)


def test_select_refuses_fd_at_or_above_fd_setsize(pair: tuple[socket.socket, socket.socket]) -> None:
    mux = _factory("select")()
    a, b = pair
    high = _high_fd(a, 1100)
    try:
        mux.register(b.fileno(), POLLIN)
        for fd in (1024, high):
            with pytest.raises(ValueError) as info:
                mux.register(fd, POLLIN)
            message = str(info.value)
            assert str(fd) in message and "1024" in message and "FD_SETSIZE" in message
        # The refused fd left no trace; the others are still served.
        a.send(b"x")
        assert _masks(mux.poll(1.0)) == {b.fileno(): POLLIN}
    finally:
        os.close(high)
        mux.close()


@pytest.mark.parametrize("name", ["epoll", "poll", "selector"])
def test_other_backends_accept_high_fds(name: str, pair: tuple[socket.socket, socket.socket]) -> None:
    mux = _factory(name)()
    a, b = pair
    high = _high_fd(a, 1100)
    try:
        mux.register(high, POLLIN)
        b.send(b"x")
        assert _masks(mux.poll(1.0))[high] & POLLIN
        mux.unregister(high)
    finally:
        os.close(high)
        mux.close()


def test_fileno(backend: str, mux: Multiplexer) -> None:
    if backend == "epoll" or (backend == "selector" and hasattr(select, "epoll")):
        assert mux.fileno() >= 0
    elif backend in ("poll", "select"):
        assert mux.fileno() == -1


def test_close_releases_descriptor(backend: str) -> None:
    mux = _factory(backend)()
    fd = mux.fileno()
    mux.close()
    if fd >= 0:
        with pytest.raises(OSError):
            os.fstat(fd)
