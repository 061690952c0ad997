"""Twisted's `twisted.test.test_policies`, imports pointed at framework (see docs/testing.md)."""

from ._collect import collect

collect("twisted.test.test_policies", globals())
