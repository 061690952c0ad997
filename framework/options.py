"""Plugin option conversion: :class:`Option` (one ``--option NAME=VALUE`` a protocol accepts),
:func:`option_key` (``max-line`` is ``max_line``) and the small text helpers the plugin
registries share (booleans, close matches, "distribution version" labels).

Imported by ``framework.registries`` and ``framework.plugins``; imports nothing of the framework.
Every public name here is also importable from ``framework.plugins``.
"""

from __future__ import annotations

import difflib
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FALSE_WORDS", "IN_CODE", "Option", "TRUE_WORDS", "close_match", "describe_source",
           "option_key"]

#: What listings show as the distribution of a plugin registered in code.
IN_CODE = "(in code)"

#: The spellings of a true / false boolean option (compared in lower case).
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", "f"})


def describe_source(distribution: str | None, version: str | None) -> str:
    """``"<distribution> <version>"`` for listings, or ``"(in code)"`` without a distribution."""
    if distribution is None:
        return IN_CODE
    return f"{distribution} {version}" if version else distribution


def close_match(name: object, names: Sequence[str]) -> str | None:
    """The entry of ``names`` that ``name`` most likely meant (case-insensitive), or ``None``."""
    if not isinstance(name, str):
        return None
    lowered = {n.lower(): n for n in names}
    if name.lower() in lowered:
        return lowered[name.lower()]
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[matches[0]] if matches else None


def option_key(name: str) -> str:
    """The option a user-given name means: dashes and underscores are the same
    (``max-line`` is ``max_line``)."""
    return name.replace("-", "_")


@dataclass(frozen=True, slots=True)
class Option:
    """One option a protocol accepts (``reactor-serve --option NAME=VALUE``).

    ``type`` converts the text: ``str``, ``int``, ``float``, ``bool`` (true/false, yes/no,
    on/off, 1/0), a ``pathlib.Path`` class (not checked for existence: that is the
    protocol's job), or any callable that raises ``ValueError`` on bad text.
    """

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    required: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"option name must be a Python identifier, not {self.name!r}")
        if not callable(self.type):
            raise TypeError(f"option {self.name!r}: type must be callable, not {self.type!r}")

    @property
    def type_name(self) -> str:
        """A short name of the expected type, for help text."""
        kind = self.type
        if isinstance(kind, type) and issubclass(kind, pathlib.PurePath):
            return "path"
        return getattr(kind, "__name__", repr(kind))

    def parse(self, raw: Any) -> Any:
        """Convert ``raw`` (normally text) to the option's type; ``ValueError`` with a short
        reason when it does not fit."""
        kind = self.type
        if not isinstance(raw, str):
            if isinstance(kind, type) and isinstance(raw, kind) and not (
                kind is int and isinstance(raw, bool)
            ):
                return raw  # already converted (options given in code)
            raw = str(raw)
        if kind is str:
            return raw
        text = raw.strip()
        if kind is bool:
            lowered = text.lower()
            if lowered in TRUE_WORDS:
                return True
            if lowered in FALSE_WORDS:
                return False
            raise ValueError("expected a boolean (true/false, yes/no, on/off, 1/0)")
        if kind is int:
            try:
                return int(text)
            except ValueError:
                raise ValueError("expected an integer") from None
        if kind is float:
            try:
                return float(text)
            except ValueError:
                raise ValueError("expected a number") from None
        if isinstance(kind, type) and issubclass(kind, pathlib.PurePath):
            if not text:
                raise ValueError("expected a file path, got an empty string")
            if "\0" in text:
                raise ValueError("a file path cannot contain a NUL character")
            path: Any = kind(text)
            return path.expanduser() if isinstance(path, pathlib.Path) else path
        convert: Callable[[str], Any] = self.type
        try:
            return convert(raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc) or f"not a valid {self.type_name}") from None

    def describe(self) -> str:
        """One line for listings: ``name (type[, required][, default X]): help``."""
        bits = [self.type_name]
        if self.required:
            bits.append("required")
        elif self.default is not None:
            bits.append(f"default {self.default!r}")
        text = f"{self.name} ({', '.join(bits)})"
        return f"{text}: {self.help}" if self.help else text
