"""Tutorial example 1: a raw socket watched by the reactor.

``MySocket`` inherits ``IReadDescriptor`` and gives the reactor what it needs: ``fileno()``
to watch, ``doRead()`` to call when data is waiting, and ``connectionLost()`` for when the
descriptor is dropped. It prints what the peer sends and stops the reactor at EOF.

    python examples/reactor_readdescriptor.py HOST PORT
"""

import socket
import sys

from framework import main, reactor
from framework.interfaces import IReadDescriptor


class MySocket(IReadDescriptor):
    def __init__(self, address):
        self.sock = socket.create_connection(address)
        self.sock.setblocking(False)

    def fileno(self):
        return self.sock.fileno()

    def doRead(self):
        data = self.sock.recv(4096)
        if not data:
            # The peer closed: returning CONNECTION_DONE makes the reactor drop us and call
            # connectionLost.
            return main.CONNECTION_DONE
        print("received:", data.decode(errors="replace"), flush=True)

    def connectionLost(self, reason):
        print("connection lost:", reason.getErrorMessage(), flush=True)
        self.sock.close()
        reactor.stop()

    def logPrefix(self):
        return "MySocket"


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
    reactor.addReader(MySocket((host, port)))
    reactor.run()
