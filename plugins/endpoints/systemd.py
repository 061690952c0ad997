"""Endpoint plugin ``systemd:`` (server): a listening socket systemd (or ``reactor-serve
--workers``) passed down, ``systemd:domain=INET|INET6|UNIX:index=N`` for descriptor 3 + N."""

from __future__ import annotations

import socket
from typing import Any

from framework import hookimpl
from framework.endpointstrings import DescriptionError, collect_options, parse_int, require
from framework.registries import EndpointRegistry
from framework.systemd import LISTEN_FDS_START, AdoptedStreamServerEndpoint

__all__ = ["parse_server", "register_endpoints"]

_FAMILIES = {"INET": socket.AF_INET, "INET6": socket.AF_INET6, "UNIX": socket.AF_UNIX}


def parse_server(reactor: Any, /, *args: str, **kwargs: str) -> AdoptedStreamServerEndpoint:
    options = collect_options(args, kwargs, (), ("domain", "index"))
    domain = require(options, "domain")
    if domain.upper() not in _FAMILIES:
        raise DescriptionError(f"domain must be INET, INET6 or UNIX, not {domain!r}")
    index = parse_int(require(options, "index"), "index", 0)
    return AdoptedStreamServerEndpoint(reactor, LISTEN_FDS_START + index, _FAMILIES[domain.upper()])


@hookimpl
def register_endpoints(registry: EndpointRegistry) -> None:
    registry.add("systemd", server=parse_server,
                 description="an adopted listening socket: systemd:domain=INET:index=0")
