"""Twisted's `twisted.protocols.test.test_basic`, imports pointed at framework (see docs/testing.md)."""

from ._collect import collect

collect("twisted.protocols.test.test_basic", globals())
