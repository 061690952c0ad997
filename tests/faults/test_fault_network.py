"""Fault suite, addresses (15): IPv6 loopback listen and connect; binding every interface
warns (tested without sending any traffic there)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest

from framework.address import IPv6Address
from framework.defer import Deferred
from framework.protocol import ClientFactory, Factory, Protocol
from util import run_until

pytestmark = pytest.mark.timeout(60)


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Once(Protocol):
    def connectionMade(self) -> None:
        self.peer = self.transport.getPeer()
        self.transport.write(b"six")

    def dataReceived(self, data: bytes) -> None:
        self.factory.done.callback((data, self.peer))
        self.transport.loseConnection()


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_15_ipv6_loopback_listen_and_connect(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="::1")
    host = port.getHost()
    assert isinstance(host, IPv6Address) and host.host == "::1"
    cf = ClientFactory.forProtocol(Once)
    cf.done = Deferred()
    reactor.connectTCP("::1", host.port, cf)
    data, peer = run_until(reactor, cf.done)
    assert data == b"six" and isinstance(peer, IPv6Address) and peer.port == host.port
    reactor.removeAll()
    run_until(reactor, port.stopListening())


@pytest.mark.timeout(60)
def test_15_binding_all_interfaces_logs_a_warning() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "framework", "--protocol", "echo", "--port", "0",
                             "--interface", "0.0.0.0"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.search(r"serving echo on tcp:0\.0\.0\.0:\d+", line), line
        proc.send_signal(signal.SIGTERM)  # no traffic is ever sent to 0.0.0.0
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0
    warnings = [l for l in err.splitlines() if "WARNING" in l and "all interfaces" in l]
    assert len(warnings) == 1, err
