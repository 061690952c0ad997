"""Twisted's `twisted.internet.test.test_endpoints`, imports pointed at framework (see docs/testing.md)."""

from ._collect import collect

collect("twisted.internet.test.test_endpoints", globals())
