"""The reactor made of owners: one slow-callback measurement for every handler kind, the old
import paths, and owners that never import the reactor."""

from __future__ import annotations

import ast
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from framework import eventloop, slowcalls, timers
from framework.eventloop import Reactor
from util import run_until_true

FRAMEWORK = Path(eventloop.__file__).parent
OWNERS = ("timers", "threadcalls", "descriptors", "sysevents", "signals", "slowcalls", "frontdoor",
          "threads", "task")


class Both:
    """Readable and writable at once: one doRead, one doWrite."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls: list[str] = []

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        self.sock.recv(100)
        self.calls.append("doRead")

    def doWrite(self) -> None:
        self.calls.append("doWrite")

    def connectionLost(self, reason: Any) -> None:
        pass


def test_one_measurement_wraps_every_handler_kind(reactor: Reactor, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds: list[str] = []
    real_run = slowcalls.SlowCallbacks.run

    def spy(self: Any, kind: str, subject: Any, func: Any, *args: Any, **kw: Any) -> Any:
        kinds.append(kind)
        return real_run(self, kind, subject, func, *args, **kw)

    monkeypatch.setattr(slowcalls.SlowCallbacks, "run", spy)
    reactor.set_slow_callback_threshold(10.0)
    a, b = socket.socketpair()
    handler = Both(a)
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    seen: list[str] = []
    try:
        reactor.addReader(handler)
        reactor.addWriter(handler)
        b.send(b"x")
        reactor.callLater(0, seen.append, "timer")
        threading.Thread(target=reactor.callFromThread, args=(seen.append, "thread")).start()
        reactor.add_signal_handler(signal.SIGUSR1, seen.append, "signal")
        os.kill(os.getpid(), signal.SIGUSR1)
        run_until_true(reactor, lambda: len(seen) == 3 and "doRead" in handler.calls
                       and "doWrite" in handler.calls)
    finally:
        reactor.remove_signal_handler(signal.SIGUSR1)
        signal.signal(signal.SIGUSR1, previous)
        reactor.removeReader(handler)
        reactor.removeWriter(handler)
        a.close()
        b.close()
    assert {"doRead", "doWrite", "delayed call", "call from thread"} <= set(kinds), kinds


def test_old_import_paths_still_work() -> None:
    assert eventloop.DelayedCall is timers.DelayedCall
    assert eventloop.MAX_WAIT == timers.MAX_WAIT == 86400.0
    from framework.task import Clock

    call = Clock().callLater(1, print)
    assert isinstance(call, eventloop.DelayedCall)


def _runtime_imports(node: ast.AST) -> set[str]:
    """Modules imported by ``node`` at run time (``if TYPE_CHECKING:`` blocks left out)."""
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        if isinstance(child, ast.ImportFrom) and child.module:
            found.add(child.module)
            found.update(f"{child.module}.{alias.name}" for alias in child.names)
        elif isinstance(child, ast.Import):
            found.update(alias.name for alias in child.names)
        found |= _runtime_imports(child)
    return found


@pytest.mark.parametrize("owner", OWNERS)
def test_owners_never_import_the_reactor(owner: str) -> None:
    imported = _runtime_imports(ast.parse((FRAMEWORK / f"{owner}.py").read_text()))
    assert "framework.eventloop" not in imported, imported


def test_reactor_class_stays_small() -> None:
    source = (FRAMEWORK / "eventloop.py").read_text()
    tree = ast.parse(source)
    [cls] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Reactor"]
    assert cls.end_lineno is not None and cls.end_lineno - cls.lineno < 350
