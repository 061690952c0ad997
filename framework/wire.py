"""The tiny services of Twisted's ``protocols.wire``: ``Echo``, ``Discard``, ``Chargen``,
``QOTD``, ``Who``, ``Daytime``, ``Time``.

``reactor-serve`` serves richer versions of these (the built-in ``echo``, ``discard``,
``chargen``, ``daytime``, ``time`` and ``qotd`` plugins, with options); these classes are for
code ported from Twisted and for small programs.
"""

from __future__ import annotations

import struct
import time


from framework.interfaces import IPullProducer
from framework.protocol import Protocol

__all__ = ["Chargen", "Daytime", "Discard", "Echo", "QOTD", "Time", "Who"]


class Echo(Protocol):
    """RFC 862: sends back whatever arrives."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Discard(Protocol):
    """RFC 863: throws away whatever arrives."""

    def dataReceived(self, data: bytes) -> None:
        pass


class Chargen(Protocol, IPullProducer):
    """RFC 864: sends printable characters for as long as the client reads them."""

    noise = b"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@"

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        self.transport.write(self.noise)

    def pauseProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class QOTD(Protocol):
    """RFC 865: sends one quote, then closes."""

    def connectionMade(self) -> None:
        self.transport.write(self.getQuote())
        self.transport.loseConnection()

    def getQuote(self) -> bytes:
        """The quote to send (override to pick another)."""
        return b"An apple a day keeps the doctor away.\r\n"


class Who(Protocol):
    """RFC 866 (active users): sends the list of users, then closes."""

    def connectionMade(self) -> None:
        self.transport.write(self.getUsers())
        self.transport.loseConnection()

    def getUsers(self) -> bytes:
        """The user list to send (override to report real users)."""
        return b"root\r\n"


class Daytime(Protocol):
    """RFC 867: sends the date and time as text, then closes."""

    def connectionMade(self) -> None:
        self.transport.write(time.asctime(time.gmtime(time.time())).encode("ascii") + b"\r\n")
        self.transport.loseConnection()


class Time(Protocol):
    """RFC 868: sends the seconds since 1900-01-01 as 4 big-endian bytes, then closes."""

    def connectionMade(self) -> None:
        self.transport.write(struct.pack("!I", (int(time.time()) + 2208988800) & 0xFFFFFFFF))
        self.transport.loseConnection()


