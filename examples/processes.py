"""Child processes: stream text through a program, then read another's output and status.

    python examples/processes.py [WORD]

Feeds a few lines to ``grep WORD`` (default "reactor") through a ProcessProtocol, printing
what grep prints as it arrives, then runs ``sh -c`` with ``getProcessOutputAndValue`` and
prints its output and exit code. Ends through ``task.react`` with grep's exit status.
"""

import os
import sys

from framework import task
from framework.defer import Deferred
from framework.protocol import ProcessProtocol
from framework.utils import getProcessOutputAndValue

LINES = b"the reactor waits\nthreads block\na reactor calls back\n"


class Grep(ProcessProtocol):
    def __init__(self):
        self.done = Deferred()

    def connectionMade(self):
        self.transport.write(LINES)
        self.transport.closeStdin()  # end of input: grep can finish

    def outReceived(self, data):
        for line in data.decode().splitlines():
            print("grep matched:", line)

    def processEnded(self, reason):
        self.done.callback(reason.value.exitCode)


async def main(reactor, word="reactor"):
    grep = Grep()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    reactor.spawnProcess(grep, "grep", ["grep", "--", word], env=env)
    status = await grep.done
    out, err, code = await getProcessOutputAndValue(
        "/bin/sh", ["-c", "echo from stdout; echo from stderr >&2; exit 3"], env={})
    print(f"sh said {out!r} and {err!r}, exit code {code}")
    raise SystemExit(status)  # grep's status: 0 if something matched, 1 if nothing did


if __name__ == "__main__":
    task.react(main, sys.argv[1:2])
