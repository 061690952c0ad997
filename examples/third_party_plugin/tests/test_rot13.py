"""Unit tests of the rot13 plugin: no sockets, no reactor, just an in-memory transport."""

import logging

import pytest

from framework import plugins
from framework.error import PluginOptionError
from framework.testing import StringTransport

from reactor_rot13 import CallCount, Rot13Factory


def connect(factory):
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_rot13_replies_line_by_line():
    protocol, transport = connect(Rot13Factory())
    protocol.dataReceived(b"Hello\nWor")
    assert transport.value() == b"Uryyb\n"
    protocol.dataReceived(b"ld\n")
    assert transport.value() == b"Uryyb\nJbeyq\n"


def test_upper_option():
    protocol, transport = connect(Rot13Factory(upper=True))
    protocol.dataReceived(b"abc\n")
    assert transport.value() == b"NOP\n"


def test_registered_through_the_entry_point():
    entry = plugins.protocols().get("rot13")
    assert entry.distribution == "reactor-rot13"
    assert entry.make_factory({"upper": "yes"}).upper is True
    with pytest.raises(PluginOptionError, match="upper"):
        entry.make_factory({"upper": "maybe"})


def test_callcount_counts_and_logs_the_callbacks_run(caplog):
    counter = CallCount()
    wrapped = counter.wrap_callback(len)
    with caplog.at_level(logging.INFO, logger="reactor_rot13"):
        assert wrapped("abc") == 3
    assert counter.count == 1
    assert "callcount: 1 Deferred callbacks run so far" in caplog.text
