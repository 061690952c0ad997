"""Endpoint plugin ``ssl:`` (server and client) and ``tls:`` (client): TLS over TCP.

Server: ``ssl:PORT:privateKey=KEY.pem[:certKey=CERT.pem][:interface=ADDR][:backlog=N]
[:caCerts=CA.pem][:handshakeTimeout=SECONDS]`` (a PEM holding both may be given once).

Client: ``tls:host=HOST:port=PORT[:timeout=SECONDS][:bindAddress=ADDR][:trustRoots=CA.pem]
[:hostname=NAME][:certificate=CERT.pem][:privateKey=KEY.pem]`` (also ``tls:HOST:PORT``; ``ssl:``
is the same). See docs/tls.md.
"""

from __future__ import annotations

from typing import Any

from framework import hookimpl
from framework.endpointstrings import (
    MAX_BACKLOG,
    DescriptionError,
    collect_options,
    parse_int,
    parse_seconds,
    require,
)
from framework.registries import EndpointRegistry
from framework.tls import (
    HANDSHAKE_TIMEOUT,
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    TLSOptions,
    clientContext,
    serverContext,
)

__all__ = ["parse_client", "parse_server", "register_endpoints"]


def parse_server(reactor: Any, /, *args: str, **kwargs: str) -> SSL4ServerEndpoint:
    """``ssl:PORT:privateKey=KEY[:certKey=CERT][:interface=..][:backlog=..][:caCerts=..]
    [:handshakeTimeout=..]``."""
    options = collect_options(args, kwargs, ("port",),
                              ("port", "interface", "backlog", "privateKey", "certKey", "caCerts",
                               "handshakeTimeout"))
    port = parse_int(require(options, "port"), "port", 0, 65535)
    backlog = parse_int(options.get("backlog", "50"), "backlog", 1, MAX_BACKLOG)
    if not options.get("privateKey") and not options.get("certKey"):
        raise DescriptionError("needs certKey= and privateKey=")
    cert = options.get("certKey") or options["privateKey"]
    key = options.get("privateKey") or cert
    ctx = serverContext(cert, key, caFile=options.get("caCerts"))
    timeout = HANDSHAKE_TIMEOUT
    if "handshakeTimeout" in options:
        timeout = parse_seconds(options["handshakeTimeout"], "handshakeTimeout")
    return SSL4ServerEndpoint(reactor, port, TLSOptions(ctx, handshakeTimeout=timeout), backlog,
                              options.get("interface", ""))


def parse_client(reactor: Any, /, *args: str, **kwargs: str) -> SSL4ClientEndpoint:
    """``tls:host=HOST:port=PORT[:timeout=..][:bindAddress=..][:trustRoots=CA][:hostname=..]
    [:certificate=..][:privateKey=..]``."""
    positional: tuple[str, ...] = ("port",) if "host" in kwargs else ("host", "port")
    options = collect_options(args, kwargs, positional,
                              ("host", "port", "timeout", "bindAddress", "trustRoots", "hostname",
                               "certificate", "privateKey"))
    host = require(options, "host")
    port = parse_int(require(options, "port"), "port", 1, 65535)
    timeout = parse_seconds(options.get("timeout", "30"), "timeout")
    bind = options.get("bindAddress")
    ctx = clientContext(options.get("trustRoots") or None,
                        certFile=options.get("certificate") or None,
                        keyFile=options.get("privateKey") or None)
    tlsOptions = TLSOptions(ctx, hostname=options.get("hostname") or host)
    return SSL4ClientEndpoint(reactor, host, port, tlsOptions, timeout, (bind, 0) if bind else None)


@hookimpl
def register_endpoints(registry: EndpointRegistry) -> None:
    registry.add("ssl", server=parse_server, client=parse_client,
                 description="TLS over TCP: ssl:PORT:privateKey=KEY.pem / ssl:HOST:PORT")
    registry.add("tls", client=parse_client,
                 description="TLS client over TCP: tls:HOST:PORT[:trustRoots=CA.pem]")
