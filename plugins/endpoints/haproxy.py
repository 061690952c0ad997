"""Endpoint plugin ``haproxy:`` (server): ``haproxy:ENDPOINT`` listens on ``ENDPOINT`` (any server
description, e.g. ``haproxy:tcp:8000``) and expects every connection to start with a PROXY
protocol header (v1 or v2), as behind HAProxy or a cloud load balancer."""

from __future__ import annotations

from typing import Any

from framework import hookimpl
from framework.endpoints import serverFromString
from framework.endpointstrings import DescriptionError, join_description
from framework.proxyprotocol import proxyEndpoint
from framework.registries import EndpointRegistry

__all__ = ["parse_server", "register_endpoints"]


def parse_server(reactor: Any, /, *args: str, **kwargs: str) -> Any:
    if not args:
        raise DescriptionError("needs an endpoint to wrap, e.g. 'haproxy:tcp:8000'")
    try:
        wrapped = serverFromString(reactor, join_description(args, kwargs))
    except DescriptionError as exc:
        raise DescriptionError(exc.reason) from None  # named after the whole haproxy: description
    return proxyEndpoint(wrapped)


@hookimpl
def register_endpoints(registry: EndpointRegistry) -> None:
    registry.add("haproxy", server=parse_server,
                 description="PROXY protocol in front of any server endpoint: haproxy:tcp:8000")
