"""Fixtures of the fault suite."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from faults.helpers import new_reactor
from util import close_quietly


@pytest.fixture
def best_reactor() -> Iterator[Any]:
    """A private reactor on the best backend; fails the test if anything is left registered."""
    r = new_reactor()
    try:
        yield r
    finally:
        leftovers = r.removeAll()
        for handler in leftovers:
            close_quietly(handler)
        if r._started:
            r.crash()
        r.close()
    assert not leftovers, f"left registered with the reactor: {leftovers!r}"
