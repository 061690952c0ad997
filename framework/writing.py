"""What every byte-stream transport's ``write`` side shares: checking what is written.

One implementation for the stream base (``framework.stream``) and the TLS layer
(``framework.tls``), which both inherit ``SequenceWriter`` and call ``coerce`` on the rare write
whose data is not exactly ``bytes`` (the hot path tests ``data.__class__ is bytes`` inline first).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

__all__ = ["SequenceWriter", "coerce"]


def coerce(data: Any) -> bytes:
    """``data`` as ``bytes`` for ``write``: a copy of a ``bytearray``/``memoryview`` (the caller
    may change it after ``write`` returns); ``TypeError`` naming the fix for ``str`` and others."""
    if isinstance(data, str):
        raise TypeError(
            "write() takes bytes, not str: encode the text first (e.g. data.encode('utf-8'))"
        )
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, bytes):
        return data
    raise TypeError(f"write() takes bytes, not {type(data).__name__}")


class SequenceWriter:
    """``writeSequence`` in terms of the class's ``write``: one write of the joined chunks."""

    __slots__ = ()

    _coerce = staticmethod(coerce)

    write: Callable[[bytes], None]

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Write every chunk of ``data``, in order, as one write."""
        chunks = list(data)
        for chunk in chunks:
            if isinstance(chunk, str):
                raise TypeError(
                    "writeSequence() takes bytes chunks, not str: encode the text first"
                )
        self.write(b"".join(chunks))
