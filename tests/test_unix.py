"""UNIX stream sockets (filesystem and Linux abstract addresses), on every backend."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import sys
import tempfile
import uuid
from typing import Any, Iterator

import pytest

from framework import error, unix
from framework.address import UNIXAddress
from test_tcp import (
    Echo,
    HalfCloser,
    OneFactory,
    Recorder,
    ServerFactory,
    wait_failed,
    wait_lost,
)
from util import run_until, run_until_true

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no UNIX sockets")

LINUX = sys.platform.startswith("linux")


@pytest.fixture
def sockdir() -> Iterator[str]:
    # Short, because a UNIX socket path is limited to about 100 bytes.
    path = tempfile.mkdtemp(prefix="rfu", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def unix_pair(reactor: Any, address: Any, server_protocol: Any = Recorder,
              client: Any = None) -> tuple[Any, Any, Any, Any]:
    sf = ServerFactory(server_protocol)
    port = reactor.listenUNIX(address, sf)
    cp = client if client is not None else Recorder()
    f = OneFactory(cp)
    reactor.connectUNIX(address, f, timeout=10)
    sp = run_until(reactor, sf.connected)
    run_until(reactor, cp.made)
    run_until(reactor, sp.made)
    return port, sp, cp, f


def test_filesystem_socket_echo_and_addresses(reactor: Any, sockdir: str) -> None:
    path = os.path.join(sockdir, "echo.sock")
    port, sp, cp, f = unix_pair(reactor, path, Echo)
    assert port.getHost() == UNIXAddress(path)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert cp.transport.getPeer() == UNIXAddress(path)
    assert sp.transport.getHost() == UNIXAddress(path)
    assert cp.transport.getHost() == UNIXAddress(None)
    assert f.events[0] == "started"
    payload = os.urandom(3 << 20)
    cp.transport.write(payload)
    run_until_true(reactor, lambda: cp.received == len(payload), timeout=30)
    assert cp.data == payload
    cp.transport.loseConnection()
    assert wait_lost(reactor, cp).check(error.ConnectionDone)
    assert wait_lost(reactor, sp).check(error.ConnectionDone)
    run_until(reactor, port.stopListening())
    assert not os.path.exists(path)  # the port removes the file it created


@pytest.mark.skipif(not LINUX, reason="abstract UNIX addresses are Linux-only")
@pytest.mark.parametrize("kind", [str, bytes])
def test_abstract_address(reactor: Any, kind: type) -> None:
    name = f"\0reactor-framework-test-{uuid.uuid4().hex}"
    address = name if kind is str else name.encode()
    port, sp, cp, f = unix_pair(reactor, address, Echo)
    assert port.getHost() == UNIXAddress(address)
    cp.transport.write(b"abstract")
    run_until_true(reactor, lambda: cp.data == b"abstract")
    cp.transport.abortConnection()
    assert wait_lost(reactor, cp).check(error.ConnectionAborted)
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())
    f2 = OneFactory()
    reactor.connectUNIX(address, f2, timeout=10)
    assert wait_failed(reactor, f2).check(error.ConnectionRefusedError)


def test_stale_socket_file_is_replaced(reactor: Any, sockdir: str) -> None:
    path = os.path.join(sockdir, "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # what a crashed server leaves behind: the file, with nobody listening
    assert os.path.exists(path)
    port, sp, cp, f = unix_pair(reactor, path)
    cp.transport.loseConnection()
    wait_lost(reactor, sp)
    wait_lost(reactor, cp)
    run_until(reactor, port.stopListening())


def test_live_listener_or_non_socket_path_cannot_be_taken(reactor: Any, sockdir: str) -> None:
    path = os.path.join(sockdir, "live.sock")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(1)
    try:
        with pytest.raises(error.CannotListenError, match="another process is listening"):
            reactor.listenUNIX(path, ServerFactory())
        assert os.path.exists(path)  # left alone
    finally:
        live.close()
    plain = os.path.join(sockdir, "plain.txt")
    with open(plain, "w") as fh:
        fh.write("not a socket")
    with pytest.raises(error.CannotListenError, match="not a socket") as info:
        reactor.listenUNIX(plain, ServerFactory())
    assert plain in str(info.value)
    assert info.value.socketError.errno == errno.ENOTSOCK  # not "address in use"
    assert "Errno 98" not in str(info.value)
    with open(plain) as fh:
        assert fh.read() == "not a socket"
    with pytest.raises(error.CannotListenError):
        reactor.listenUNIX(os.path.join(sockdir, "no", "such", "dir.sock"), ServerFactory())
    assert reactor.getReaders() == []


def test_mode_is_applied(reactor: Any, sockdir: str) -> None:
    path = os.path.join(sockdir, "mode.sock")
    port = reactor.listenUNIX(path, ServerFactory(), mode=0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    run_until(reactor, port.stopListening())


def test_connect_to_missing_path_fails_cleanly(reactor: Any, sockdir: str) -> None:
    f = OneFactory()
    c = reactor.connectUNIX(os.path.join(sockdir, "nobody.sock"), f, timeout=10)
    assert f.events == ["started"]
    reason = wait_failed(reactor, f)
    assert reason.check(error.ConnectError)
    assert "No such file" in reason.getErrorMessage()
    assert c.getDestination() == UNIXAddress(os.path.join(sockdir, "nobody.sock"))
    assert f.stopped == 1


def test_half_close_over_unix(reactor: Any, sockdir: str) -> None:
    class Answerer(HalfCloser):
        def readConnectionLost(self) -> None:
            HalfCloser.readConnectionLost(self)
            self.transport.write(b"answer to " + self.data)
            self.transport.loseConnection()

    client = HalfCloser()
    port, sp, cp, f = unix_pair(reactor, os.path.join(sockdir, "half.sock"), Answerer, client)
    cp.transport.write(b"question")
    cp.transport.loseWriteConnection()
    wait_lost(reactor, cp)
    assert cp.data == b"answer to question"
    assert "readLost" in sp.events and "writeLost" in cp.events
    wait_lost(reactor, sp)
    run_until(reactor, port.stopListening())


def test_want_pid_and_check_pid(reactor: Any, sockdir: str) -> None:
    path = os.path.join(sockdir, "pid.sock")
    port = reactor.listenUNIX(path, ServerFactory(), wantPID=True)
    with open(path + ".lock") as fh:
        assert int(fh.read()) == os.getpid()
    cp = Recorder()
    reactor.connectUNIX(path, OneFactory(cp), timeout=10, checkPID=True)
    run_until(reactor, cp.made)
    cp.transport.loseConnection()
    wait_lost(reactor, cp)
    run_until_true(reactor, lambda: all(p.lost.called for p in port.factory.built))
    run_until(reactor, port.stopListening())
    assert not os.path.exists(path + ".lock")
    f = OneFactory()
    reactor.connectUNIX(path, f, timeout=10, checkPID=True)
    assert wait_failed(reactor, f).check(error.BadFileError)


def test_bad_addresses_raise_value_error(reactor: Any) -> None:
    with pytest.raises(ValueError):
        unix.listenUNIX(reactor, "", ServerFactory())
    with pytest.raises(ValueError):
        unix.connectUNIX(reactor, 42, OneFactory())  # type: ignore[arg-type]


def test_cannot_listen_error_names_the_socket_path() -> None:
    from framework import error as _error

    text = str(_error.CannotListenError("", "/run/app/echo.sock", OSError(98, "Address already in use")))
    assert "'/run/app/echo.sock'" in text and "any:" not in text and "Address already in use" in text
