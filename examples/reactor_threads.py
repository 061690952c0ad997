"""Tutorial example 4: a blocking function run in a thread while the reactor stays responsive.

``deferToThread.__get__`` turns ``deferToThread`` into a decorator: calling ``sleep(1)`` now
runs it in a worker thread and returns a Deferred. While the thread sleeps, the reactor keeps
printing dots from ``callLater``; when the result arrives it is printed and the reactor stops.

    python examples/reactor_threads.py [SECONDS]
"""

import sys
import time

from framework import reactor
from framework.threads import deferToThread


@deferToThread.__get__
def sleep(sec):
    """A blocking function, run in a thread."""
    time.sleep(sec)
    return sec


def print_dots(interval):
    print(".", end="", flush=True)
    dots[0] = reactor.callLater(interval, print_dots, interval)


def done(result):
    dots[0].cancel()
    print(f"\nslept {result} seconds in a thread", flush=True)
    reactor.stop()


dots = [None]

if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    d = sleep(seconds)
    d.addCallback(done)
    reactor.callWhenRunning(print_dots, seconds / 10)
    reactor.run()
