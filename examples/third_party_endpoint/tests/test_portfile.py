"""Unit tests of the portfile endpoint plugin: parsing only, on a MemoryReactor."""

import pytest

from framework import endpoints
from framework.testing import MemoryReactor

from reactor_portfile import PortFileClientEndpoint, PortFileServerEndpoint


def test_server_description():
    endpoint = endpoints.serverFromString(MemoryReactor(), "portfile:/tmp/x.port:backlog=10")
    assert isinstance(endpoint, PortFileServerEndpoint) and endpoint.path == "/tmp/x.port"


def test_client_description():
    endpoint = endpoints.clientFromString(MemoryReactor(), "portfile:path=/tmp/x.port:timeout=2")
    assert isinstance(endpoint, PortFileClientEndpoint)


def test_bad_description_names_it():
    with pytest.raises(ValueError, match="'portfile:/tmp/x:backlog=none'.*backlog must be an integer"):
        endpoints.serverFromString(MemoryReactor(), "portfile:/tmp/x:backlog=none")
