"""Quote of the Day (RFC 865): sends one quote, then closes.

Quotes come from ``file=PATH`` (quotes separated by blank lines, or by lines holding only ``%``
as in fortune files) or from a small built-in list. ``PATH`` must be a regular file of at most
64 KiB (``MAX_FILE``): a directory, device or FIFO, or a larger file, is refused at start-up.
"""

from __future__ import annotations

import os
import random
import stat
from typing import Sequence

from framework import hookimpl
from framework.registries import ProtocolRegistry
from framework.plugins import Option
from framework.protocol import Factory, Protocol

__all__ = ["BUILTIN_QUOTES", "MAX_FILE", "QOTD", "QOTDFactory", "load_quotes", "register_protocols"]

DEFAULT_PORT = 8017
#: RFC 865: a quote should be limited to 512 characters.
MAX_QUOTE = 512
#: The largest quotes file ``file=`` accepts, bytes: a larger one is refused at start-up.
MAX_FILE = 64 * 1024

BUILTIN_QUOTES: tuple[str, ...] = (
    "Never block the reactor.",
    "A Deferred is a promise that someone will call you back, exactly once.",
    "Small protocols, composed, make large servers.",
    "Measure before you optimise; then measure again.",
    "Errors should be loud, clear, and lose no data.",
)


def load_quotes(path: str) -> list[str]:
    """The quotes in the UTF-8 text file ``path``; ``ValueError`` with a clear reason if it has none
    or cannot be read (so a bad ``file=`` fails before the server listens).

    ``path`` must be a regular file (not a directory, device or FIFO) of at most
    :data:`MAX_FILE` bytes: a larger file is refused, never silently truncated."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ValueError(f"cannot read quotes file {path!r}: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"quotes file {path!r} is {_file_kind(mode)}, not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE + 1)  # bounded even if the file grows or lies about its size
    except OSError as e:
        raise ValueError(f"cannot read quotes file {path!r}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE:
        raise ValueError(f"quotes file {path!r} is larger than {MAX_FILE} bytes ({MAX_FILE // 1024} KiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"cannot read quotes file {path!r}: {e}") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    quotes: list[str] = []
    current: list[str] = []
    for line in lines + [""]:
        if line.strip() in ("", "%"):
            if current:
                quotes.append("\n".join(current)[:MAX_QUOTE])
                current = []
        else:
            current.append(line.rstrip())
    if not quotes:
        raise ValueError(f"quotes file {path!r} holds no quote")
    return quotes


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def quotes_file(path: str) -> str:
    """Option type for ``file=``: checks the file is readable and holds a quote."""
    load_quotes(path)
    return path


quotes_file.__name__ = "file"


class QOTD(Protocol):
    def connectionMade(self) -> None:
        quote = random.choice(self.factory.quotes)
        self.transport.write(quote.replace("\n", "\r\n").encode("utf-8") + b"\r\n")
        self.transport.loseConnection()


class QOTDFactory(Factory):
    """Serves a random quote from ``quotes`` (default: the built-in list) to each connection."""

    protocol = QOTD
    noisy = False

    def __init__(self, quotes: Sequence[str] | None = None, file: str | None = None) -> None:
        if file is not None:
            quotes = load_quotes(file)
        self.quotes: list[str] = list(quotes) if quotes else list(BUILTIN_QUOTES)


@hookimpl
def register_protocols(registry: ProtocolRegistry) -> None:
    registry.add(
        "qotd",
        QOTDFactory,
        description="RFC 865 quote of the day: one quote, then close",
        default_port=DEFAULT_PORT,
        options=(
            Option(
                "file",
                type=quotes_file,
                default=None,
                help="text file of quotes separated by blank lines or '%' lines "
                "(default: a built-in list)",
            ),
        ),
    )
