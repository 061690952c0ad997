"""``task.react``: run a main function on the reactor and exit with its outcome (Twisted's
API), re-exported by ``framework.task``."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from framework.defer import Deferred, ensureDeferred, maybeDeferred
from framework.error import ReactorNotRunning
from framework.failure import Failure
from framework.main import global_reactor

__all__ = ["react"]

log = logging.getLogger("framework.task")


def react(main: Callable[..., Any], argv: Sequence[Any] = (), _reactor: Any = None) -> NoReturn:
    """Call ``main(reactor, *argv)``, run the reactor until the Deferred (or coroutine) it
    returns has fired, then exit the process: status 0 on success, the code of a
    ``SystemExit`` it failed with, else 1 with the error logged (``main`` raising at once
    counts as that failure). If something else stops the reactor first, exit 0 once it has."""
    if _reactor is None:
        _reactor = global_reactor()
    reactor: Any = _reactor
    code: Any = 0
    stopping = False

    def on_shutdown() -> None:
        nonlocal stopping
        stopping = True

    def finish(result: Any, stop_reactor: bool) -> None:
        nonlocal code
        if stop_reactor:
            try:
                reactor.stop()
            except ReactorNotRunning:
                pass
        if isinstance(result, Failure):
            if isinstance(result.value, SystemExit):
                code = result.value.code
            else:
                log.error("main function encountered error\n%s", result.getTraceback(),
                          extra={"failure": result})
                code = 1

    def finished(result: Any) -> None:
        if stopping:
            finish(result, False)
        else:
            reactor.callWhenRunning(finish, result, True)

    reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
    outcome: Deferred[Any] = maybeDeferred(main, reactor, *argv)
    outcome.addCallback(lambda value: ensureDeferred(value) if inspect.iscoroutine(value) else value)
    outcome.addBoth(finished)
    reactor.run()
    sys.exit(code)
