"""The public address helpers: literal checks (never a lookup) and the one host:port spelling."""

import pytest

from framework.address import (
    IPv4Address, IPv6Address, UNIXAddress, format_address, host_port, isIPAddress, isIPv6Address,
)


@pytest.mark.parametrize("text, v4, v6", [
    ("127.0.0.1", True, False),
    ("::1", False, True),
    ("fe80::1%lo", False, True),
    ("localhost", False, False),
    ("1.2.3", False, False),
    ("", False, False),
])
def test_literal_checks(text, v4, v6):
    assert isIPAddress(text) is v4
    assert isIPv6Address(text) is v6


def test_host_port_brackets_ipv6_only():
    assert host_port("127.0.0.1", 80) == "127.0.0.1:80"
    assert host_port("::1", 80) == "[::1]:80"


def test_format_address_kinds():
    assert format_address(IPv4Address("TCP", "127.0.0.1", 8007)) == "tcp:127.0.0.1:8007"
    assert format_address(IPv6Address("UDP", "::1", 53)) == "udp:[::1]:53"
    assert format_address(UNIXAddress("/tmp/s")) == "unix:/tmp/s"
    assert format_address(UNIXAddress(b"\0abstract")) == "unix:@abstract"
    assert format_address(UNIXAddress(None)) == "UNIXAddress(name=None)"
