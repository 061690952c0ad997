"""The endpoint-string syntax and the parsing helpers endpoint parsers share (public API for
endpoint plugins).

A description is fields separated by ``:``; a field ``key=value`` is an option, any other field
is positional; a backslash makes the next character literal (``\\:``, ``\\=``, ``\\\\``). The first
field is the prefix (``tcp``, ``unix``, ``tls``...), which picks the parser; the parser gets the
other fields as strings: ``"tcp:8000:interface=127.0.0.1"`` calls the ``tcp`` server parser as
``parser(reactor, "8000", interface="127.0.0.1")``.

A parser reports a bad description by raising :class:`DescriptionError` with the *reason*
("port must be an integer, not 'http'"); ``serverFromString``/``clientFromString`` add which
description it was about ("server endpoint description 'tcp:http': port must be an integer,
not 'http'"). The helpers below raise it with the core parsers' wording::

    from framework.endpointstrings import MAX_BACKLOG, collect_options, parse_int, require

    def parse_server(reactor, /, *args, **kwargs):
        options = collect_options(args, kwargs, ("port",), ("port", "backlog"))
        port = parse_int(require(options, "port"), "port", 0, 65535)
        backlog = parse_int(options.get("backlog", "50"), "backlog", 1, MAX_BACKLOG)
        return TCP4ServerEndpoint(reactor, port, backlog, "127.0.0.1")

Imports nothing of the framework but ``framework.address``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from framework.address import isIPv6Address

__all__ = [
    "MAX_BACKLOG",
    "DescriptionError",
    "collect_options",
    "join_description",
    "parse_bool",
    "parse_int",
    "parse_seconds",
    "quoteStringArgument",
    "require",
    "split_description",
    "unix_path",
]

#: The largest ``backlog=`` an endpoint string accepts: ``listen(2)`` takes a C int and the kernel
#: caps it anyway (Linux at ``net.core.somaxconn``), so a larger number is a mistake.
MAX_BACKLOG = 65535


class DescriptionError(ValueError):
    """A malformed endpoint description.

    A parser raises it with the ``reason`` alone; ``serverFromString``/``clientFromString``
    re-raise it with ``description`` and ``side`` ("server"/"client") filled in and the message
    naming them. ``reason`` is always the bare reason; ``message`` replaces the whole text
    (for errors whose reason already quotes the description).
    """

    def __init__(self, reason: str, *, description: str | None = None, side: str | None = None,
                 message: str | None = None) -> None:
        self.reason = reason
        self.description = description
        self.side = side
        if message is None:
            message = reason
            if description is not None:
                message = f"{side + ' ' if side else ''}endpoint description {description!r}: {reason}"
        super().__init__(message)

    def naming(self, description: str, side: str | None = None) -> DescriptionError:
        """This error, about ``description`` (a new exception; ``self`` if it already names one)."""
        if self.description is not None:
            return self
        return DescriptionError(self.reason, description=description, side=side)


def _said(message: str, description: str) -> DescriptionError:
    # An error whose message already quotes the description (it is raised while splitting).
    return DescriptionError(message, description=description, message=message)


# --- the syntax ---------------------------------------------------------------------------


def _escape_ipv6_values(description: str) -> str:
    """Let ``interface=::1`` and ``host=::1`` through unescaped, as users write them.

    Twisted requires ``interface=\\:\\:1``; here the longest run of following fields that
    completes an IPv6 literal is taken into the value. Escaped values are left alone.
    """
    fields: list[str] = []
    current: list[str] = []
    chars = iter(description)
    for ch in chars:
        if ch == "\\":
            current.append(ch)
            current.append(next(chars, ""))
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    out: list[str] = []
    i = 0
    while i < len(fields):
        field = fields[i]
        key, sep, value = field.partition("=")
        if sep and key in ("interface", "host") and "\\" not in value:
            for j in range(len(fields) - 1, i, -1):
                tail = fields[i + 1:j + 1]
                candidate = ":".join([value, *tail])
                if all("=" not in t and "\\" not in t for t in tail) and isIPv6Address(candidate):
                    field = f"{key}={candidate.replace(':', chr(92) + ':')}"
                    i = j
                    break
        out.append(field)
        i += 1
    return ":".join(out)


def split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """Split an endpoint description into positional fields and ``key=value`` options.

    ``"tcp:8000:interface=::1"`` gives ``(["tcp", "8000"], {"interface": "::1"})``; a backslash
    escapes the next character. Raises :class:`DescriptionError` (a ``ValueError``) on a
    malformed description, ``TypeError`` if it is not a ``str``."""
    if not isinstance(description, str):
        raise TypeError(f"endpoint description must be str, not {type(description).__name__}")
    original = description
    description = _escape_ipv6_values(description)
    args: list[str] = []
    kwargs: dict[str, str] = {}
    current: list[str] = []
    key: str | None = None
    chars = iter(description)

    def finish() -> None:
        value = "".join(current)
        current.clear()
        if key is None:
            args.append(value)
        else:
            if not key:
                raise _said(f"empty option name in endpoint description {description!r}", original)
            if key in kwargs:
                raise _said(f"option {key!r} given twice in endpoint description {description!r}",
                            original)
            kwargs[key] = value

    for ch in chars:
        if ch == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise _said(f"endpoint description {description!r} ends with a lone backslash",
                            original)
            current.append(escaped)
        elif ch == ":":
            finish()
            key = None
        elif ch == "=" and key is None:
            key = "".join(current)
            current.clear()
        else:
            current.append(ch)
    finish()
    return args, kwargs


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def quoteStringArgument(argument: str) -> str:
    """``argument`` with its backslashes and colons escaped, to put it into an endpoint
    description as one field (Twisted's name)."""
    return argument.replace("\\", "\\\\").replace(":", "\\:")


def join_description(args: Sequence[str], kwargs: Mapping[str, str] | None = None) -> str:
    """The description :func:`split_description` splits into ``args`` and ``kwargs`` (fields
    escaped as needed): how a wrapping parser such as ``haproxy:`` passes the rest of its
    description on, ``serverFromString(reactor, join_description(args, kwargs))``."""
    fields = [_escape(arg) for arg in args]
    fields += [f"{_escape(key)}={_escape(value)}" for key, value in (kwargs or {}).items()]
    return ":".join(fields)


# --- the checks ---------------------------------------------------------------------------


def collect_options(
    args: Sequence[str],
    kwargs: Mapping[str, str],
    positional: Sequence[str] = (),
    allowed: Sequence[str] = (),
) -> dict[str, str]:
    """Merge the positional fields into named options (``positional`` names them in order)
    and reject extra fields, unknown options (not in ``allowed``) and an option given both
    positionally and by name."""
    if len(args) > len(positional):
        extra = ":".join(args[len(positional):])
        raise DescriptionError(f"unexpected extra field(s) {extra!r}")
    options = dict(kwargs)
    for name, value in zip(positional, args):
        if name in options:
            raise DescriptionError(f"{name} given both positionally and as {name}=")
        options[name] = value
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DescriptionError(f"unknown option(s) {', '.join(unknown)} (valid: {', '.join(allowed)})")
    return options


def require(options: Mapping[str, str], name: str) -> str:
    """``options[name]``; :class:`DescriptionError` ("needs NAME") if missing or empty."""
    value = options.get(name, "")
    if value == "":
        raise DescriptionError(f"needs {name}")
    return value


def parse_int(value: str, what: str, low: int = 0, high: int | None = None, base: int = 10) -> int:
    """``value`` as an integer between ``low`` and ``high`` (``base=8`` for file modes)."""
    try:
        number = int(value, base)
    except ValueError:
        kind = "an octal number" if base == 8 else "an integer"
        raise DescriptionError(f"{what} must be {kind}, not {value!r}") from None
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise DescriptionError(f"{what} must be {bounds}, not {number}")
    return number


def parse_seconds(value: str, what: str) -> float:
    """``value`` as a positive number of seconds."""
    try:
        number = float(value)
    except ValueError:
        raise DescriptionError(f"{what} must be a number of seconds, not {value!r}") from None
    if not number > 0:
        raise DescriptionError(f"{what} must be positive, not {value!r}")
    return number


def parse_bool(value: str, what: str) -> bool:
    """``value`` as a flag: 1/true/yes/on or 0/false/no/off/empty."""
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise DescriptionError(f"{what} must be 0 or 1, not {value!r}")


def unix_path(path: str) -> str:
    """A UNIX socket path from a description: ``@name`` is the Linux abstract address
    ``"\\0name"`` (write ``./@name`` for a file really called ``@name``)."""
    if path.startswith("@"):
        return "\0" + path[1:]
    return path
