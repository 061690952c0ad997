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


USAGE = "usage: python examples/reactor_readdescriptor.py HOST PORT   (e.g. 127.0.0.1 8000)"


def main_(argv):
    if len(argv) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    host, port_text = argv
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        print(f"PORT must be a number from 1 to 65535, not {port_text!r}\n{USAGE}", file=sys.stderr)
        return 2
    try:
        handler = MySocket((host, port))
    except OSError as e:
        print(f"cannot connect to {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    reactor.addReader(handler)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main_(sys.argv[1:]))
