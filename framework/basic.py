"""Framing protocols: lines, length-prefixed strings and netstrings.

Each parser is linear in the bytes received, whatever the chunking: a partial frame is
accumulated in a ``bytearray`` and scanned only where new bytes arrived, and complete frames
are sliced straight out of the chunk that completed them. Buffers stay bounded: a line longer
than ``MAX_LENGTH`` or a length prefix above ``MAX_LENGTH`` is reported (by default the
connection is dropped) before its payload is buffered.
"""

from __future__ import annotations

import logging
import struct
from typing import IO, Any, Callable

from framework.defer import Deferred
from framework.interfaces import IPullProducer
from framework.protocol import Protocol

__all__ = [
    "FileSender",
    "IncompleteNetstring",
    "Int8StringReceiver",
    "Int16StringReceiver",
    "Int32StringReceiver",
    "IntNStringReceiver",
    "LineOnlyReceiver",
    "LineReceiver",
    "NetstringParseError",
    "NetstringReceiver",
    "StringTooLongError",
]

log = logging.getLogger("framework.basic")


class NetstringParseError(ValueError):
    """The peer sent something that is not a netstring."""


class IncompleteNetstring(Exception):
    """Not enough data yet to complete a netstring."""


class StringTooLongError(AssertionError):
    """``sendString`` was given a string too long for the length prefix."""


class _PauseableMixin:
    """Lets a framing protocol stop delivering frames while its consumer is paused."""

    paused = False
    transport: Any

    def pauseProducing(self) -> None:
        """Stop delivering frames (they are buffered) and stop the transport reading."""
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Deliver the buffered frames and resume reading."""
        self.paused = False
        self.transport.resumeProducing()
        self.dataReceived(b"")

    def stopProducing(self) -> None:
        self.paused = True
        self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class LineReceiver(Protocol, _PauseableMixin):
    """Delivers ``lineReceived(line)`` for each ``delimiter``-terminated line, or raw bytes
    to ``rawDataReceived`` in raw mode.

    ``setRawMode()`` / ``setLineMode(extra)`` may be called from inside ``lineReceived`` /
    ``rawDataReceived``: the rest of the current chunk goes to the new mode. A line longer than
    ``MAX_LENGTH`` (excluding the delimiter) calls ``lineLengthExceeded``, which by default
    drops the connection. Delivery stops while ``paused`` and once the transport is
    disconnecting; the unread rest stays buffered.
    """

    line_mode = 1
    delimiter = b"\r\n"
    MAX_LENGTH = 16384

    _buf: bytes | bytearray = b""
    _busy = False
    # The delimiter the buffered partial line has already been scanned for (None: unscanned).
    _scanned: bytes | None = None
    # The chunk being delivered and the offset of its undelivered rest (for clearLineBuffer).
    _cur = b""
    _curpos = 0

    def clearLineBuffer(self) -> bytes:
        """Empty the buffer and return what was in it (no further lines from it)."""
        rest = b""
        if self._busy:
            rest = self._cur[self._curpos :]
            self._curpos = len(self._cur)
        buf = self._buf
        self._buf = b""
        self._scanned = None
        return rest + bytes(buf) if buf else rest

    def dataReceived(self, data: bytes) -> Any:
        buf = self._buf
        if self._busy or self.paused:
            if buf:
                if type(buf) is bytes:
                    buf = self._buf = bytearray(buf)
                buf += data
            elif data:
                self._buf = bytearray(data)
            return None
        if buf:
            # The buffer is the bytes left over by the previous call, or a bytearray that has
            # been accumulating a long partial line.
            delim = self.delimiter
            if self.line_mode and self._scanned == delim:
                # The buffered partial line holds no delimiter: only scan the seam and the
                # new bytes, and keep accumulating until a delimiter arrives.
                dlen = len(delim)
                if type(buf) is bytes:
                    if delim in data or (dlen > 1 and delim in buf[1 - dlen :] + data[: dlen - 1]):
                        data = buf + data
                        self._buf = b""
                    else:
                        buf = self._buf = bytearray(buf)
                        buf += data
                        if len(buf) >= self.MAX_LENGTH + dlen:
                            self._buf = b""
                            self._scanned = None
                            return self.lineLengthExceeded(bytes(buf))
                        return None
                else:
                    start = len(buf) - dlen + 1
                    buf += data
                    if buf.find(delim, start if start > 0 else 0) < 0:
                        if len(buf) >= self.MAX_LENGTH + dlen:
                            self._buf = b""
                            self._scanned = None
                            return self.lineLengthExceeded(bytes(buf))
                        return None
                    data = bytes(buf)
                    self._buf = b""
            else:
                data = (buf if type(buf) is bytes else bytes(buf)) + data
                self._buf = b""
        elif self.line_mode:
            delim = self.delimiter
            i = data.find(delim)
            if 0 <= i <= self.MAX_LENGTH and i + len(delim) == len(data):
                # Exactly one complete line, the usual shape of interactive traffic: nothing
                # follows it, so no bookkeeping for mode switches or re-entrancy is needed.
                return self.lineReceived(data[:i])
            if not data:
                return None

        self._busy = True
        self._cur = data
        transport = self.transport
        pos = 0
        n = len(data)
        scanned = None
        try:
            while not self.paused:
                if pos >= n:
                    if not self._buf:
                        break
                    # More data arrived re-entrantly (e.g. via setLineMode(extra)).
                    data = self._cur = bytes(self._buf)
                    self._buf = b""
                    pos = 0
                    n = len(data)
                    continue
                if self.line_mode:
                    delim = self.delimiter
                    i = data.find(delim, pos)
                    if i < 0:
                        if self._buf:
                            data = self._cur = data[pos:] + self._buf
                            self._buf = b""
                            pos = 0
                            n = len(data)
                            continue
                        if n - pos >= self.MAX_LENGTH + len(delim):
                            line = data[pos:]
                            pos = n
                            return self.lineLengthExceeded(line)
                        scanned = delim
                        break
                    if i - pos > self.MAX_LENGTH:
                        line = data[pos:] + self._buf
                        self._buf = b""
                        pos = n
                        return self.lineLengthExceeded(line)
                    line = data[pos:i]
                    self._curpos = i + len(delim)
                    try:
                        why = self.lineReceived(line)
                    finally:  # a line whose handler raised is consumed, never delivered again
                        pos = self._curpos
                    if why:
                        return why
                    if transport is not None and transport.disconnecting:
                        return None
                else:
                    chunk = data[pos:] if pos else data
                    self._curpos = pos = n
                    why = self.rawDataReceived(chunk)
                    pos = self._curpos
                    if why:
                        return why
            return None
        finally:
            self._busy = False
            self._cur = b""
            if pos < n:
                rest = data[pos:]
                if self._buf:
                    self._buf = bytearray(rest) + self._buf
                    scanned = None
                else:
                    self._buf = rest
                self._scanned = scanned
            elif self._scanned is not None:
                self._scanned = None

    def pending_message_bytes(self) -> int:
        """Bytes of an incomplete line held so far (0 between messages); message deadlines
        (``framework.policies``) start when this becomes non-zero."""
        return len(self._buf) if self.line_mode else 0

    def setLineMode(self, extra: bytes = b"") -> Any:
        """Go back to line mode; ``extra`` is parsed as if just received."""
        self.line_mode = 1
        if extra:
            return self.dataReceived(extra)
        return None

    def setRawMode(self) -> None:
        """Deliver everything from now on to ``rawDataReceived``, unsplit."""
        self.line_mode = 0

    def rawDataReceived(self, data: bytes) -> Any:
        """Override to handle raw-mode data."""
        raise NotImplementedError

    def lineReceived(self, line: bytes) -> Any:
        """Override to handle one line (delimiter stripped)."""
        raise NotImplementedError

    def sendLine(self, line: bytes) -> Any:
        """Write ``line`` followed by the delimiter."""
        return self.transport.write(line + self.delimiter)

    def lineLengthExceeded(self, line: bytes) -> Any:
        """A line (``line`` holds it and possibly what followed) exceeded ``MAX_LENGTH``.
        The default drops the connection."""
        return self.transport.loseConnection()


class LineOnlyReceiver(Protocol):
    """A simpler, faster line receiver: lines only, no raw mode, no pausing."""

    delimiter = b"\r\n"
    MAX_LENGTH = 16384

    _buf: bytes | bytearray = b""
    _scanned: bytes | None = None

    def dataReceived(self, data: bytes) -> Any:
        delim = self.delimiter
        buf = self._buf
        if buf:
            dlen = len(delim)
            start = len(buf) - dlen + 1 if self._scanned == delim else 0
            buf += data
            if buf.find(delim, start if start > 0 else 0) < 0:
                self._scanned = delim
                if len(buf) >= self.MAX_LENGTH + dlen:
                    self._buf = b""
                    return self.lineLengthExceeded(bytes(buf))
                return None
            data = bytes(buf)
            self._buf = b""
        lines = data.split(delim)
        rest = lines.pop()
        if rest:
            self._buf = bytearray(rest)
            self._scanned = delim
        transport = self.transport
        maxlen = self.MAX_LENGTH
        for line in lines:
            if getattr(transport, "disconnecting", False):
                return None
            if len(line) > maxlen:
                return self.lineLengthExceeded(line)
            self.lineReceived(line)
        if len(self._buf) >= maxlen + len(delim):
            line = bytes(self._buf)
            self._buf = b""
            return self.lineLengthExceeded(line)
        return None

    def pending_message_bytes(self) -> int:
        """Bytes of an incomplete line held so far (0 between messages); message deadlines
        (``framework.policies``) start when this becomes non-zero."""
        return len(self._buf)

    def lineReceived(self, line: bytes) -> Any:
        """Override to handle one line (delimiter stripped)."""
        raise NotImplementedError

    def sendLine(self, line: bytes) -> Any:
        """Write ``line`` followed by the delimiter."""
        return self.transport.write(line + self.delimiter)

    def lineLengthExceeded(self, line: bytes) -> Any:
        """A line exceeded ``MAX_LENGTH``; the default drops the connection."""
        return self.transport.loseConnection()


class IntNStringReceiver(Protocol, _PauseableMixin):
    """Strings each preceded by a fixed-size big-endian length (``structFormat``,
    ``prefixLength``). A prefix above ``MAX_LENGTH`` calls ``lengthLimitExceeded`` before
    any of the payload is buffered; after that the stream is out of sync and further input is
    ignored."""

    structFormat = "!I"
    prefixLength = 4
    MAX_LENGTH = 99999

    _buf: bytes | bytearray = b""
    # Bytes the buffer must hold before parsing can make progress.
    _need = 0
    _busy = False
    _broken = False
    # While the parse loop runs: the data it parses and where the next string starts, so that
    # ``recvd`` can show (and replace) what is left after the string being delivered.
    _data: bytes = b""
    _pos = 0
    _replaced = False

    def pending_message_bytes(self) -> int:
        """Bytes of an incomplete string held so far (0 between messages); message deadlines
        (``framework.policies``) start when this becomes non-zero."""
        return 0 if self._broken else len(self._buf)

    @property
    def recvd(self) -> bytes:
        """The bytes received and not parsed yet (Twisted's attribute): inside
        ``stringReceived``, everything after the current string. Assigning it replaces them,
        e.g. to hand the rest of the stream to another protocol (protocol switching)."""
        if self._busy:
            return self._data[self._pos:] + bytes(self._buf)
        return bytes(self._buf)

    @recvd.setter
    def recvd(self, data: bytes) -> None:
        if self._busy:
            self._data = b""
            self._pos = 0
            self._replaced = True
        self._buf = bytearray(data) if data else b""

    def stringReceived(self, string: bytes) -> Any:
        """Override to handle one complete string."""
        raise NotImplementedError

    def lengthLimitExceeded(self, length: int) -> Any:
        """The peer announced a string longer than ``MAX_LENGTH``; the default drops the
        connection."""
        return self.transport.loseConnection()

    def sendString(self, string: bytes) -> None:
        """Write ``string`` with its length prefix."""
        if len(string) >= 1 << (8 * self.prefixLength):
            raise StringTooLongError(
                f"string of {len(string)} bytes does not fit a {self.prefixLength}-byte "
                f"length prefix (limit {(1 << (8 * self.prefixLength)) - 1})"
            )
        self.transport.write(struct.pack(self.structFormat, len(string)) + string)

    def dataReceived(self, data: bytes) -> Any:
        if self._broken:
            return None
        buf = self._buf
        if self._busy or self.paused:
            if buf:
                buf += data
            elif data:
                self._buf = bytearray(data)
            return None
        if buf:
            buf += data
            if len(buf) < self._need:
                return None
            data = bytes(buf)
            self._buf = b""
        elif not data:
            return None
        else:
            pl = self.prefixLength
            if len(data) >= pl:
                length = struct.unpack_from(self.structFormat, data)[0]
                if length + pl == len(data) and length <= self.MAX_LENGTH:
                    # Exactly one complete string: no bookkeeping needed (recvd is empty).
                    return self.stringReceived(data[pl:])

        self._busy = True
        self._data = data
        fmt = self.structFormat
        pl = self.prefixLength
        unpack_from = struct.unpack_from
        pos = 0
        n = len(data)
        need = 0
        try:
            while not self.paused:
                if self._replaced:
                    # stringReceived assigned recvd: parse what it holds now instead.
                    self._replaced = False
                    data = self._data = bytes(self._buf)
                    self._buf = b""
                    pos = 0
                    n = len(data)
                    continue
                if n - pos < pl or self._buf:
                    if self._buf:
                        # Data arrived re-entrantly: append it and go on.
                        data = self._data = data[pos:] + self._buf
                        self._buf = b""
                        pos = 0
                        n = len(data)
                        continue
                    need = pl
                    break
                length = unpack_from(fmt, data, pos)[0]
                if length > self.MAX_LENGTH:
                    self._pos = pos  # recvd: the whole unparsed rest, prefix included
                    self._broken = True
                    try:
                        return self.lengthLimitExceeded(length)
                    finally:
                        pos = n
                start = pos + pl
                end = start + length
                if end > n:
                    need = pl + length
                    break
                pos = self._pos = end
                self.stringReceived(data[start:end])
            if self._replaced:  # recvd assigned by the last string before a pause
                self._replaced = False
                data = bytes(self._buf)
                self._buf = b""
                pos = 0
                n = len(data)
            return None
        finally:
            self._busy = False
            self._data = b""
            if self._broken:
                self._buf = b""
            elif pos < n:
                rest = data[pos:]
                if self._buf:
                    self._buf = bytearray(rest) + self._buf
                    need = 0
                else:
                    self._buf = bytearray(rest)
            self._need = need


class Int32StringReceiver(IntNStringReceiver):
    """Strings with a 4-byte big-endian length prefix."""

    structFormat = "!I"
    prefixLength = 4


class Int16StringReceiver(IntNStringReceiver):
    """Strings with a 2-byte big-endian length prefix."""

    structFormat = "!H"
    prefixLength = 2


class Int8StringReceiver(IntNStringReceiver):
    """Strings with a 1-byte length prefix."""

    structFormat = "!B"
    prefixLength = 1


class NetstringReceiver(Protocol, _PauseableMixin):
    """Netstrings (``b"5:hello,"``), as D. J. Bernstein defined them.

    A malformed length (non-digit, leading zero, too many digits), a length above
    ``MAX_LENGTH`` or a missing trailing comma is a parse error: ``brokenPeer`` is set, the
    connection is dropped and further input is ignored.
    """

    MAX_LENGTH = 99999
    brokenPeer = 0

    _buf: bytes | bytearray = b""
    _need = 0
    _busy = False

    def pending_message_bytes(self) -> int:
        """Bytes of an incomplete netstring held so far (0 between messages); message deadlines
        (``framework.policies``) start when this becomes non-zero."""
        return 0 if self.brokenPeer else len(self._buf)

    def stringReceived(self, string: bytes) -> Any:
        """Override to handle one complete string."""
        raise NotImplementedError

    def sendString(self, string: bytes) -> None:
        """Write ``string`` as a netstring."""
        self.transport.write(b"%d:%s," % (len(string), string))

    def _handleParseError(self, why: str) -> None:
        log.debug("%s: bad netstring from the peer (%s); dropping the connection", self.logPrefix(), why)
        self.brokenPeer = 1
        self._buf = b""
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> Any:
        if self.brokenPeer:
            return None
        buf = self._buf
        if self._busy or self.paused:
            if buf:
                buf += data
            elif data:
                self._buf = bytearray(data)
            return None
        if buf:
            buf += data
            if len(buf) < self._need:
                return None
            data = bytes(buf)
            self._buf = b""
        elif not data:
            return None

        self._busy = True
        maxdigits = len(str(self.MAX_LENGTH))
        pos = 0
        n = len(data)
        need = 0
        try:
            while not self.paused:
                if pos >= n or self._buf:
                    if self._buf:
                        data = data[pos:] + self._buf
                        self._buf = b""
                        pos = 0
                        n = len(data)
                        continue
                    break
                colon = data.find(b":", pos, pos + maxdigits + 1)
                if colon < 0:
                    digits = data[pos : pos + maxdigits + 1]
                    if len(digits) > maxdigits:
                        raise NetstringParseError(f"length prefix longer than {maxdigits} digits")
                    if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30):
                        raise NetstringParseError(f"invalid length prefix {digits!r}")
                    need = n - pos + 1
                    break
                digits = data[pos:colon]
                if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30):
                    raise NetstringParseError(f"invalid length prefix {digits!r}")
                length = int(digits)
                if length > self.MAX_LENGTH:
                    raise NetstringParseError(
                        f"netstring of {length} bytes exceeds MAX_LENGTH {self.MAX_LENGTH}"
                    )
                end = colon + 1 + length
                if end >= n:
                    need = end + 1 - pos
                    break
                if data[end] != 0x2C:
                    raise NetstringParseError("netstring is not terminated by a comma")
                s = data[colon + 1 : end]
                pos = end + 1
                self.stringReceived(s)
            return None
        except NetstringParseError as e:
            pos = n
            self._handleParseError(str(e))
            return None
        finally:
            self._busy = False
            if self.brokenPeer:
                self._buf = b""
            elif pos < n:
                rest = data[pos:]
                if self._buf:
                    self._buf = bytearray(rest) + self._buf
                    need = 0
                else:
                    self._buf = bytearray(rest)
            self._need = need


class FileSender(IPullProducer):
    """Sends a file to a consumer (a transport) as a pull producer: one ``CHUNK_SIZE`` read
    each time the consumer asks for more, so a slow peer never makes us read ahead.

    ``beginFileTransfer(file, consumer, transform=None)`` returns a Deferred that fires with
    the last byte sent (``b""`` for an empty file) once the file is exhausted, or fails if the
    consumer stops the transfer first. ``transform(chunk)`` may rewrite each chunk.
    """

    CHUNK_SIZE = 2 ** 14

    lastSent = b""
    deferred: Deferred[bytes] | None = None
    file: IO[bytes] | None = None

    def beginFileTransfer(self, file: IO[bytes], consumer: Any,
                          transform: Callable[[bytes], bytes] | None = None) -> Deferred[bytes]:
        self.file = file
        self.consumer = consumer
        self.transform = transform
        deferred: Deferred[bytes] = Deferred()
        self.deferred = deferred
        consumer.registerProducer(self, False)
        return deferred

    def resumeProducing(self) -> None:
        chunk = self.file.read(self.CHUNK_SIZE) if self.file is not None else b""
        if not chunk:
            self.file = None
            self.consumer.unregisterProducer()
            if self.deferred is not None:
                deferred, self.deferred = self.deferred, None
                deferred.callback(self.lastSent)
            return
        if self.transform is not None:
            chunk = self.transform(chunk)
        self.consumer.write(chunk)
        self.lastSent = chunk[-1:]

    def pauseProducing(self) -> None:
        """A pull producer is only asked, never paused."""

    def stopProducing(self) -> None:
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            deferred.errback(Exception("Consumer asked us to stop producing"))
