#!/usr/bin/env python3
"""A slow poetry server (the Twisted tutorial's): sends a poem a few bytes at a time, with a
pause between the pieces, then closes the connection.

    python examples/slow_poetry_server.py [--port N] [--iface HOST] [--num-bytes N]
                                          [--delay SECONDS] [POETRY_FILE]

``--port 0`` (the default) picks a free port; the port in use is printed on the first line of
standard output, e.g. ``Serving poetry.txt on 127.0.0.1 port 40213.``. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from framework import error
from framework.protocol import ServerFactory, Protocol

DEFAULT_POEM = b"""\
Dust of Snow, and the Loop

The way a crow
Shook down on me
The dust of snow
From a hemlock tree

Has given my heart
A change of mood
And saved some part
Of a day I had rued.
"""


class PoetryProtocol(Protocol):
    """Writes the factory's poem ``num_bytes`` at a time, ``delay`` seconds apart."""

    def connectionMade(self) -> None:
        self.offset = 0
        self.call: Any = None
        self.sendNext()

    def sendNext(self) -> None:
        factory = self.factory
        poem = factory.poem
        if self.offset >= len(poem):
            self.call = None
            self.transport.loseConnection()
            return
        chunk = poem[self.offset: self.offset + factory.num_bytes]
        self.offset += len(chunk)
        self.transport.write(chunk)
        self.call = factory.reactor.callLater(factory.delay, self.sendNext)

    def connectionLost(self, reason: Any) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()  # the client hung up early
        self.call = None


class PoetryFactory(ServerFactory):
    protocol = PoetryProtocol

    def __init__(self, reactor: Any, poem: bytes, num_bytes: int, delay: float) -> None:
        self.reactor = reactor
        self.poem = poem
        self.num_bytes = num_bytes
        self.delay = delay


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a poem, slowly.")
    parser.add_argument("poetry_file", nargs="?", help="the poem to serve (default: a built-in one)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--iface", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--num-bytes", type=int, default=10, help="bytes per write")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds between writes")
    args = parser.parse_args(argv)
    if args.num_bytes <= 0:
        parser.error("--num-bytes must be positive")
    if args.delay < 0:
        parser.error("--delay must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.poetry_file:
        try:
            with open(args.poetry_file, "rb") as f:
                poem = f.read()
        except OSError as e:
            print(f"cannot read {args.poetry_file!r}: {e.strerror or e}", file=sys.stderr)
            return 2
    else:
        poem = DEFAULT_POEM

    from framework import reactor

    factory = PoetryFactory(reactor, poem, args.num_bytes, args.delay)
    try:
        port = reactor.listenTCP(args.port, factory, interface=args.iface)
    except error.CannotListenError as e:
        print(str(e), file=sys.stderr)
        return 1
    name = args.poetry_file or "the built-in poem"
    print(f"Serving {name} on {args.iface} port {port.getHost().port}.", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
