"""asyncio and reactor-framework in one program, one thread, one loop (the ``asyncio`` backend).

Three parts talk to each other, all on 127.0.0.1:

* a *dictionary service* written with plain asyncio streams (``asyncio.start_server``): it
  answers each word with a definition line;
* our *lookup server*, a ``LineReceiver`` Protocol: for each line it receives (from
  ``dataReceived``), it asks the dictionary service with ``asyncio.open_connection`` (an
  asyncio-only API) in an asyncio task, and writes the answer back when the task's Deferred
  (``Deferred.fromFuture``) fires;
* an asyncio *coroutine* ``main()`` that drives the demo by awaiting Deferred-returning APIs of
  the framework: ``connectProtocol`` to reach the lookup server, a client protocol's Deferred
  per answer, ``deferLater`` and ``Port.stopListening``.

    python examples/asyncio_interop.py [--reactor asyncio|uvloop] [WORD ...]

Prints one ``WORD: definition`` line per word and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import deque
from typing import Any

import framework
from framework.basic import LineReceiver
from framework.defer import Deferred
from framework.endpoints import TCP4ClientEndpoint, connectProtocol
from framework.protocol import Factory
from framework.task import deferLater

DEFINITIONS = {
    "reactor": "an event loop that calls you back when something is ready",
    "deferred": "a result that is not there yet, with callbacks for when it is",
    "future": "asyncio's word for a deferred",
}


# -- 1. the dictionary service: plain asyncio --------------------------------------------------


async def define(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    word = (await reader.readline()).decode().strip()
    writer.write(DEFINITIONS.get(word.lower(), "no idea").encode() + b"\n")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


# -- 2. our lookup server: a Protocol that uses asyncio streams ---------------------------------


async def ask_dictionary(port: int, word: str) -> str:
    """The asyncio-only part: a streams client to the dictionary service."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(word.encode() + b"\n")
    answer = (await reader.readline()).decode().strip()
    writer.close()
    await writer.wait_closed()
    return answer


class Lookup(LineReceiver):
    def lineReceived(self, line: bytes) -> None:
        word = line.decode()
        # Called from dataReceived, between two runs of the asyncio loop: schedule the
        # coroutine on the loop and continue with a Deferred when it is done.
        task = self.factory.loop.create_task(ask_dictionary(self.factory.dictionary_port, word))
        d = Deferred.fromFuture(task)
        d.addCallback(lambda answer: self.sendLine(f"{word}: {answer}".encode()))
        d.addErrback(lambda failure: self.sendLine(f"{word}: error {failure.getErrorMessage()}".encode()))


class LookupFactory(Factory):
    protocol = Lookup

    def __init__(self, loop: asyncio.AbstractEventLoop, dictionary_port: int) -> None:
        self.loop = loop
        self.dictionary_port = dictionary_port


# -- 3. a client protocol with a Deferred per question ------------------------------------------


class Questions(LineReceiver):
    def __init__(self) -> None:
        self.waiting: deque[Deferred[str]] = deque()

    def ask(self, word: str) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.waiting.append(d)
        self.sendLine(word.encode())
        return d

    def lineReceived(self, line: bytes) -> None:
        self.waiting.popleft().callback(line.decode())


# -- the coroutine that ties it together --------------------------------------------------------


async def main(reactor: Any, loop: asyncio.AbstractEventLoop, words: list[str]) -> None:
    dictionary = await asyncio.start_server(define, "127.0.0.1", 0)
    port = reactor.listenTCP(0, LookupFactory(loop, dictionary.sockets[0].getsockname()[1]),
                             interface="127.0.0.1")
    try:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        client: Questions = await connectProtocol(endpoint, Questions())  # a Deferred, awaited
        for word in words:
            print(await client.ask(word), flush=True)  # one Deferred per answer
        client.transport.loseConnection()
        await deferLater(reactor, 0.01, lambda: None)  # a reactor timer, awaited from asyncio
    finally:
        await port.stopListening()
        dictionary.close()
        await dictionary.wait_closed()


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reactor", default="asyncio", help="asyncio (default) or uvloop")
    parser.add_argument("words", nargs="*", default=["reactor", "deferred", "future"])
    args = parser.parse_args(argv)

    from reactor_framework_plugins.backends.asynciobackend import get_event_loop

    reactor = framework.install_reactor(args.reactor)
    try:
        loop = get_event_loop(reactor)
    except RuntimeError as exc:  # e.g. --reactor epoll: no asyncio loop to share
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcome: list[BaseException | None] = []

    def finished(task: asyncio.Task[None]) -> None:
        outcome.append(task.exception())
        reactor.stop()

    def start() -> None:
        loop.create_task(main(reactor, loop, args.words)).add_done_callback(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome or outcome[0] is not None:
        print(f"failed: {outcome[0] if outcome else 'the reactor stopped first'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
