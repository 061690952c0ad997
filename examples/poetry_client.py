#!/usr/bin/env python3
"""A poetry client (the Twisted tutorial's example 2): downloads a poem from each server given,
all at once, and prints each poem as it completes.

    python examples/poetry_client.py [HOST:]PORT [[HOST:]PORT ...]

HOST defaults to 127.0.0.1. Exits with status 1 if any download failed, e.g. because nothing
listens on a port (the reason is printed on standard error).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from framework.failure import Failure
from framework.protocol import ClientFactory, Protocol


class PoetryProtocol(Protocol):
    """Collects the poem; the server closing the connection marks its end."""

    def connectionMade(self) -> None:
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure) -> None:
        self.factory.poemReceived(b"".join(self.chunks))


class PoetryClientFactory(ClientFactory):
    protocol = PoetryProtocol

    def __init__(self, address: str, done: Callable[[str, bytes | None, str | None], None]) -> None:
        self.address = address
        self.done = done

    def poemReceived(self, poem: bytes) -> None:
        self.done(self.address, poem, None)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.done(self.address, None, reason.getErrorMessage())


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port or HOST:PORT: {text!r}") from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {text!r}")
    return host, number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download poems from slow poetry servers.")
    parser.add_argument("addresses", nargs="+", type=parse_address, metavar="[HOST:]PORT")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for a connection")
    args = parser.parse_args(argv)

    from framework import reactor

    pending = len(args.addresses)
    failures: list[str] = []

    def done(address: str, poem: bytes | None, problem: str | None) -> None:
        nonlocal pending
        if poem is not None:
            print(f"Poem from {address} ({len(poem)} bytes):", file=sys.stderr)
            sys.stdout.write(poem.decode("utf-8", "replace"))
            sys.stdout.flush()
        else:
            failures.append(address)
            print(f"Failed to connect to {address}: {problem}", file=sys.stderr)
        pending -= 1
        if not pending:
            reactor.stop()

    for host, port in args.addresses:
        address = f"{host}:{port}"
        reactor.connectTCP(host, port, PoetryClientFactory(address, done), timeout=args.timeout)
    reactor.run()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
