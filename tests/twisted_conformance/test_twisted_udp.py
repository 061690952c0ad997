"""Twisted's `twisted.test.test_udp`, imports pointed at framework (see docs/testing.md)."""

from ._collect import collect

collect("twisted.test.test_udp", globals())
