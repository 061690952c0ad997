"""UDP multicast on this host: two members of a group, one sender.

    python examples/multicast.py [GROUP]

Two ports join GROUP (default 228.0.0.5) on the loopback interface, sharing one port number
(``listenMultiple``); a third sends three datagrams to the group with TTL 0, so they never
leave this machine. Each member prints what it receives; the program ends through
``task.react`` once both members have all three, or after 5 seconds with exit status 1.
"""

import sys

from framework import task
from framework.defer import Deferred, gatherResults
from framework.protocol import DatagramProtocol

LOCAL = "127.0.0.1"
MESSAGES = [b"one", b"two", b"three"]


class Member(DatagramProtocol):
    def __init__(self, name):
        self.name = name
        self.got = []
        self.all = Deferred()

    def datagramReceived(self, data, addr):
        print(f"{self.name} got {data.decode()} from {addr[0]}")
        self.got.append(data)
        if len(self.got) == len(MESSAGES):
            self.all.callback(None)


async def main(reactor, group="228.0.0.5"):
    members = [Member("member 1"), Member("member 2")]
    first = reactor.listenMulticast(0, members[0], interface=group, listenMultiple=True)
    port = first.getHost().port
    second = reactor.listenMulticast(port, members[1], interface=group, listenMultiple=True)
    for p in (first, second):
        await p.joinGroup(group, LOCAL)
    sender = reactor.listenMulticast(0, DatagramProtocol(), interface=LOCAL)
    await sender.setOutgoingInterface(LOCAL)
    sender.setTTL(0)  # this host only
    sender.setLoopbackMode(True)  # deliver to members on this host
    for message in MESSAGES:
        sender.write(message, (group, port))
    done = gatherResults([m.all for m in members])
    done.addTimeout(5, reactor)
    try:
        await done
    finally:
        for p in (first, second, sender):
            await p.stopListening()


if __name__ == "__main__":
    task.react(main, sys.argv[1:2])
