"""Shared test fixtures.

``reactor``: a fresh private ``Reactor`` per test, once for every available backend (test ids
are the backend names), closed afterwards. The test fails if it leaves readers, writers or
threads behind.

``serve``: ``serve(*args, env=None, startup=True)`` starts ``reactor-serve ARGS`` as a
``serve_util.Proc`` (waiting for its startup line unless ``startup`` is false); every process
started is killed after the test.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

import pytest

from framework.eventloop import Reactor
from serve_util import SERVE, Proc
from util import close_quietly


def _available_backends() -> list[str]:
    from framework import plugins

    return [entry.name for entry in plugins.reactors() if entry.availability() is None]


def _new_reactor(name: str) -> Reactor:
    from framework import plugins

    entry = plugins.reactors().get(name)
    return Reactor(entry.factory(), entry.name)


@pytest.fixture(params=_available_backends())
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    before = set(threading.enumerate())
    r = _new_reactor(request.param)
    try:
        yield r
    finally:
        problems = _close(r, before)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def _close(r: Reactor, threads_before: set[threading.Thread]) -> list[str]:
    problems = []
    if r._started:
        r.crash()
        problems.append("the reactor was left running")
    leftovers = r.removeAll()
    if leftovers:
        problems.append(f"left registered with the reactor: {leftovers!r}")
        for handler in leftovers:
            close_quietly(handler)
    r.close()
    alive = []
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(5.0)
        if thread.is_alive():
            alive.append(thread.name)
    if alive:
        problems.append(f"threads still running: {', '.join(sorted(alive))}")
    return problems


@pytest.fixture
def serve() -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None, startup: bool = True) -> Proc:
        p = Proc([*SERVE, *args], env=env, startup=startup)
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()
