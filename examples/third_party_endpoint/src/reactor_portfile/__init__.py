"""reactor-portfile: the endpoint prefix ``portfile:PATH`` for reactor-framework.

A server listens on a free TCP port and writes the port number to ``PATH``; a client reads it
from there. Only public API is used: the endpoint classes of ``framework.endpoints``, the
parsing helpers of ``framework.endpointstrings`` and the ``register_endpoints`` hook.
"""

from __future__ import annotations

import os
from typing import Any

from framework import hookimpl
from framework.defer import Deferred, fail
from framework.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from framework.endpointstrings import (
    MAX_BACKLOG,
    DescriptionError,
    collect_options,
    parse_int,
    parse_seconds,
    require,
)
from framework.registries import EndpointRegistry

__version__ = "1.0.0"


class PortFileServerEndpoint:
    """Listen on a free port of ``interface``; write the port to ``path`` once listening."""

    def __init__(self, reactor: Any, path: str, interface: str = "127.0.0.1", backlog: int = 50) -> None:
        self.path = path
        cls = TCP6ServerEndpoint if ":" in interface else TCP4ServerEndpoint
        self._endpoint = cls(reactor, 0, backlog, interface)

    def __repr__(self) -> str:
        return f"PortFileServerEndpoint(path={self.path!r})"

    def listen(self, factory: Any) -> Deferred[Any]:
        return self._endpoint.listen(factory).addCallback(self._write)

    def _write(self, port: Any) -> Any:
        # Write then rename: a reader never sees a half-written number.
        partial = f"{self.path}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="ascii") as f:
            f.write(f"{port.getHost().port}\n")
        os.replace(partial, self.path)
        return port


class PortFileClientEndpoint:
    """Connect to the port written in ``path`` (read at connect time)."""

    def __init__(self, reactor: Any, path: str, host: str = "127.0.0.1", timeout: float = 30) -> None:
        self._reactor = reactor
        self.path = path
        self._host = host
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"PortFileClientEndpoint(path={self.path!r})"

    def connect(self, factory: Any) -> Deferred[Any]:
        try:
            with open(self.path, encoding="ascii") as f:
                port = int(f.read().strip())
        except (OSError, ValueError):
            return fail()
        return TCP4ClientEndpoint(self._reactor, self._host, port, self._timeout).connect(factory)


# The parsers: ``portfile:/run/echo.port:backlog=100`` calls
# parse_server(reactor, "/run/echo.port", backlog="100"); every field is a string.


def parse_server(reactor: Any, /, *args: str, **kwargs: str) -> PortFileServerEndpoint:
    options = collect_options(args, kwargs, ("path",), ("path", "interface", "backlog"))
    path = require(options, "path")
    backlog = parse_int(options.get("backlog", "50"), "backlog", 1, MAX_BACKLOG)
    return PortFileServerEndpoint(reactor, path, options.get("interface", "127.0.0.1"), backlog)


def parse_client(reactor: Any, /, *args: str, **kwargs: str) -> PortFileClientEndpoint:
    options = collect_options(args, kwargs, ("path",), ("path", "host", "timeout"))
    path = require(options, "path")
    if os.path.isdir(path):
        raise DescriptionError(f"{path!r} is a directory, not a port file")
    timeout = parse_seconds(options.get("timeout", "30"), "timeout")
    return PortFileClientEndpoint(reactor, path, options.get("host", "127.0.0.1"), timeout)


@hookimpl
def register_endpoints(registry: EndpointRegistry) -> None:
    registry.add("portfile", server=parse_server, client=parse_client,
                 description="a free TCP port, written to a file: portfile:PATH")
