"""Quote of the Day (RFC 865): sends one quote, then closes.

Quotes come from ``file=PATH`` (quotes separated by blank lines, or by lines holding only ``%``
as in fortune files) or from a small built-in list.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from framework import hookimpl
from framework.plugins import Option
from framework.protocol import Factory, Protocol

__all__ = ["BUILTIN_QUOTES", "QOTD", "QOTDFactory", "load_quotes", "register_protocols"]

DEFAULT_PORT = 8017
#: RFC 865: a quote should be limited to 512 characters.
MAX_QUOTE = 512

BUILTIN_QUOTES: tuple[str, ...] = (
    "Never block the reactor.",
    "A Deferred is a promise that someone will call you back, exactly once.",
    "Small protocols, composed, make large servers.",
    "Measure before you optimise; then measure again.",
    "Errors should be loud, clear, and lose no data.",
)


def load_quotes(path: str) -> list[str]:
    """The quotes in the UTF-8 text file ``path``; ``ValueError`` with a clear reason if it has none
    or cannot be read (so a bad ``file=`` fails before the server listens)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ValueError(f"cannot read quotes file {path!r}: {reason}") from None
    lines = text.replace("\r\n", "\n").split("\n")
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
def register_protocols(registry: Any) -> None:
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
