"""Child-process churn: thousands of short-lived children leave nothing behind."""

from __future__ import annotations

import gc
import os
import shutil
import time

import pytest

from framework.protocol import ProcessProtocol
from util import run_until_true

TRUE = shutil.which("true") or "/bin/true"
#: The loop stops at this many children or after TIME_LIMIT seconds, whichever comes first.
CHILDREN = 10_000
TIME_LIMIT = 60.0
IN_FLIGHT = 32


def _zombies() -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            count += fields[0] == "Z" and int(fields[1]) == os.getpid()
    return count


def test_ten_thousand_short_lived_children_leave_no_zombie_descriptor_or_timer(best_reactor) -> None:
    reactor = best_reactor
    gc.collect()  # descriptors of earlier tests' garbage close now, not during the count
    fds_before = set(os.listdir("/proc/self/fd"))
    state = {"started": 0, "ended": 0, "bad": 0}
    deadline = time.monotonic() + TIME_LIMIT

    class Child(ProcessProtocol):
        def processEnded(self, reason) -> None:
            state["ended"] += 1
            if reason.value.exitCode != 0:
                state["bad"] += 1
            if state["started"] < CHILDREN and time.monotonic() < deadline:
                start()

    def start() -> None:
        state["started"] += 1
        reactor.spawnProcess(Child(), TRUE, [TRUE], env={})

    for _ in range(IN_FLIGHT):
        start()
    run_until_true(reactor, lambda: state["ended"] == state["started"], timeout=TIME_LIMIT + 30)
    assert state["started"] >= 1000, state  # the loop really ran (bounded by time on a slow box)
    assert state["bad"] == 0
    assert _zombies() == 0
    gc.collect()
    assert set(os.listdir("/proc/self/fd")) <= fds_before
    assert reactor.getDelayedCalls() == []
    assert not reactor.getReaders() and not reactor.getWriters()
