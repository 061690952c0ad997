"""Fault suite, shutdown and processes: SIGTERM mid-transfer loses nothing (8), a reactor
used in a forked child raises and leaves the parent's registrations alone."""

from __future__ import annotations

import hashlib
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from framework import error
from util import run_until_true

pytestmark = pytest.mark.timeout(60)

SERVE = [sys.executable, "-m", "framework"]
MiB = 1024 * 1024


class Serve:
    """``reactor-serve`` in a child process, its stderr read on demand."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([*SERVE, *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.err = b""
        line = self.proc.stdout.readline().decode()
        m = re.search(r"serving \S+ on tcp:(\S+):(\d+)", line)
        assert m, (line, self.proc.stderr.read().decode(errors="replace") if not line else "")
        self.port = int(m.group(2))
        os.set_blocking(self.proc.stderr.fileno(), False)

    def wait_stderr(self, pattern: str, timeout: float = 15.0) -> None:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stderr, selectors.EVENT_READ)
            while not re.search(pattern, self.err.decode(errors="replace")):
                if time.monotonic() > deadline or not sel.select(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"{pattern!r} not on stderr: {self.err!r}")
                chunk = os.read(self.proc.stderr.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"{pattern!r} not on stderr before exit: {self.err!r}")
                self.err += chunk

    def finish(self, timeout: float = 15.0) -> int:
        assert self.proc.stderr is not None
        os.set_blocking(self.proc.stderr.fileno(), True)
        _, rest = self.proc.communicate(timeout=timeout)
        self.err += rest
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


class Transfer:
    """One client sending 1 MiB to echo and hashing what comes back."""

    def __init__(self, port: int, seed: int) -> None:
        self.payload = random.Random(seed).randbytes(MiB)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.sent = 0
        self.received = 0
        self.hash = hashlib.sha256()

    def step(self, ev: int, send_limit: int) -> None:
        if ev & selectors.EVENT_WRITE and self.sent < send_limit:
            try:
                self.sent += self.sock.send(self.payload[self.sent:min(send_limit, self.sent + 65536)])
            except BlockingIOError:
                pass
        if ev & selectors.EVENT_READ:
            try:
                data = self.sock.recv(262144)
            except BlockingIOError:
                return
            assert data, "the server closed a connection before its transfer finished"
            self.received += len(data)
            self.hash.update(data)


def _pump(transfers: list[Transfer], send_limit: int, done: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for t in transfers:
            sel.register(t.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, t)
        while not done():
            assert time.monotonic() < deadline, "transfers stalled"
            for key, ev in sel.select(1.0):
                t = key.data
                t.step(ev, send_limit)
                if t.sent >= send_limit and key.events & selectors.EVENT_WRITE:
                    sel.modify(t.sock, selectors.EVENT_READ, t)


@pytest.mark.timeout(60)
def test_8_sigterm_mid_transfer_delivers_every_byte_and_refuses_newcomers() -> None:
    serve = Serve("--protocol", "echo", "--port", "0", "--grace", "30")
    transfers: list[Transfer] = []
    try:
        transfers = [Transfer(serve.port, seed) for seed in range(50)]
        # Mid-transfer: a quarter sent by each, some of it already echoed.
        _pump(transfers, MiB // 4, lambda: all(t.received >= 65536 for t in transfers))
        serve.proc.send_signal(signal.SIGTERM)
        serve.wait_stderr(r"stopped listening; waiting up to 30 s for 50 open connection")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", serve.port), timeout=5).close()
        _pump(transfers, MiB, lambda: all(t.received >= MiB for t in transfers))
        for t in transfers:
            assert t.received == MiB
            assert t.hash.digest() == hashlib.sha256(t.payload).digest()
    finally:
        for t in transfers:
            t.sock.close()
        status = serve.finish()
        serve.close()
    assert status == 0, serve.err.decode(errors="replace")
    text = serve.err.decode(errors="replace")
    assert "grace period over" not in text and "Traceback" not in text


class PairReader:
    def __init__(self) -> None:
        self.local, self.remote = socket.socketpair()
        self.local.setblocking(False)
        self.got = b""

    def fileno(self) -> int:
        return self.local.fileno()

    def doRead(self) -> None:
        self.got += self.local.recv(100)

    def connectionLost(self, reason: Any) -> None:
        pass

    def close(self) -> None:
        self.local.close()
        self.remote.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
@pytest.mark.timeout(30)
def test_reactor_used_in_a_forked_child_raises_and_parent_is_untouched(reactor: Any) -> None:
    handler = PairReader()
    reactor.addReader(handler)
    other = PairReader()
    reactor.getThreadPool()  # the parent has a pool (no worker started yet)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once
        try:
            outcome = []
            for attempt in (lambda: reactor.run(installSignalHandlers=False),
                            lambda: reactor.iterate(0),
                            lambda: reactor.addReader(other),
                            # the parent's workers do not exist here: no silent queueing
                            lambda: reactor.callInThread(lambda: None)):
                try:
                    attempt()
                    outcome.append("no error")
                except error.ReactorForkedError as e:
                    outcome.append("forked" if "forked child" in str(e) else str(e))
            reactor.removeReader(handler)  # must not reach the parent's interest set
            reactor.close()
            os.write(w, ",".join(outcome).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        _, status = os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as f:
            report = f.read().decode()
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert report == "forked,forked,forked,forked", report
        # The parent's reactor still sees its descriptor.
        handler.remote.sendall(b"still mine")
        run_until_true(reactor, lambda: handler.got == b"still mine")
        assert reactor.getReaders() == [handler]
    finally:
        reactor.removeReader(handler)
        handler.close()
        other.close()


def test_cli_rejects_bad_policy_values() -> None:
    for args, needle in ((["--max-write-buffer", "0"], "max-write-buffer"),
                         (["--max-connections-per-peer", "x"], "max-connections-per-peer")):
        done = subprocess.run([*SERVE, "--protocol", "echo", *args], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr


@pytest.mark.timeout(60)
def test_8_grace_end_flushes_readers_and_aborts_only_non_readers() -> None:
    serve = Serve("--protocol", "echo", "--port", "0", "--grace", "0.3")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stalled.connect(("127.0.0.1", serve.port))
        stalled.setblocking(False)
        sent = 0
        with selectors.DefaultSelector() as sel:  # send until the echo backs up to us
            sel.register(stalled, selectors.EVENT_WRITE)
            while sel.select(1.0) and sent < 64 * MiB:
                try:
                    sent += stalled.send(b"s" * 65536)
                except BlockingIOError:
                    pass
        reader = socket.create_connection(("127.0.0.1", serve.port), timeout=10)
        reader.sendall(b"bye")
        assert reader.recv(3) == b"bye"
        serve.proc.send_signal(signal.SIGTERM)
        assert reader.recv(10) == b""  # closed gently at the end of the grace period
        reader.close()
        status = serve.finish()
    finally:
        stalled.close()
        serve.close()
    assert status == 0
    text = serve.err.decode(errors="replace")
    assert "grace period over: closing 2 open connection(s)" in text, text


TRIGGER_SCRIPT = """
import sys
import framework
from framework import cli
reactor = framework.install_reactor(None)
reactor.addSystemEventTrigger("before", "shutdown", lambda: print("TRIGGER", flush=True))
sys.exit(cli.main(["--protocol", "echo", "--port", "0", "--grace", "5"]))
"""


@pytest.mark.timeout(60)
def test_8_before_shutdown_triggers_run_once_even_with_a_second_signal() -> None:
    proc = subprocess.Popen([sys.executable, "-c", TRIGGER_SCRIPT], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(re.search(r"tcp:127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"hi")
        assert client.recv(2) == b"hi"
        proc.send_signal(signal.SIGTERM)  # waits for the open connection...
        assert proc.stderr is not None
        for _ in range(100):
            if "stopped listening" in proc.stderr.readline():
                break
        proc.send_signal(signal.SIGTERM)  # ...until the second signal aborts it: a reset
        with pytest.raises(ConnectionResetError):
            client.recv(10)
        client.close()
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.count("TRIGGER") == 1, (out, err)
