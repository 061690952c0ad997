"""Twisted's `twisted.test.test_loopback`, imports pointed at framework (see docs/testing.md)."""

from ._collect import collect

collect("twisted.test.test_loopback", globals())
