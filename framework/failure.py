"""``Failure``: an exception captured with its traceback, passed down errback chains."""

from __future__ import annotations

import sys
import traceback as _traceback
from types import TracebackType
from typing import Any, NoReturn, TextIO


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called with no exception given and none being handled."""


class Failure(BaseException):
    """An exception and its traceback, as delivered to errbacks.

    ``Failure()`` inside an ``except`` block wraps the exception being handled;
    ``Failure(exc)`` wraps the given exception (with its ``__traceback__`` if it has one).
    ``Failure`` derives from ``BaseException`` only so that ``raise failure`` is possible in a
    pinch; errback chains never raise it, they raise ``failure.value``.
    """

    def __init__(
        self,
        exc_value: BaseException | None = None,
        exc_type: type[BaseException] | None = None,
        exc_tb: TracebackType | None = None,
        captureVars: bool = False,
    ) -> None:
        if exc_value is None:
            exc_type_now, exc_value, tb_now = sys.exc_info()
            if exc_value is None:
                raise NoCurrentExceptionError("Failure() called outside an except block")
            if exc_tb is None:
                exc_tb = tb_now
        elif isinstance(exc_value, Failure):
            exc_tb = exc_tb or exc_value.tb
            exc_value = exc_value.value
        elif not isinstance(exc_value, BaseException):
            raise TypeError(f"Failure needs an exception, not {exc_value!r}")
        if exc_tb is None:
            exc_tb = exc_value.__traceback__
        self.value: BaseException = exc_value
        self.type: type[BaseException] = exc_type or type(exc_value)
        self.tb: TracebackType | None = exc_tb
        # Set by Deferred when nobody has handled this failure yet; logged on collection.
        self._handled = False
        self._cleaned_text: str | None = None

    # BaseException machinery would otherwise use our __init__ args for str()/args.
    @property
    def args(self) -> tuple[Any, ...]:  # type: ignore[override]
        return self.value.args

    @args.setter
    def args(self, value: Any) -> None:
        pass

    def trap(self, *errorTypes: type[BaseException] | str) -> type[BaseException]:
        """Return the matching type, or re-raise the wrapped exception if none matches."""
        found = self.check(*errorTypes)
        if found is None:
            self.raiseException()
        return found  # type: ignore[return-value]

    def check(self, *errorTypes: type[BaseException] | str) -> type[BaseException] | str | None:
        """Return the first of ``errorTypes`` that this failure is, else ``None``.

        A string matches the fully qualified name of the failure's type or any of its bases.
        """
        for error in errorTypes:
            if isinstance(error, str):
                for klass in self.type.__mro__:
                    if error in (klass.__name__, f"{klass.__module__}.{klass.__qualname__}"):
                        return error
            elif isinstance(error, type) and issubclass(self.type, error):
                return error
        return None

    def raiseException(self) -> NoReturn:
        """Raise the wrapped exception with its original traceback."""
        raise self.value.with_traceback(self.tb)

    def throwExceptionIntoGenerator(self, g: Any) -> Any:
        """Throw the wrapped exception into generator ``g``; return what it yields next."""
        return g.throw(self.value.with_traceback(self.tb))

    def getErrorMessage(self) -> str:
        """A short human-readable message: ``str(value)``, or its repr when that is empty."""
        try:
            text = str(self.value)
        except Exception as e:  # a broken __str__ must not break error reporting
            return f"<{self.type.__name__} with broken __str__: {e!r}>"
        return text or repr(self.value)

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        """The formatted traceback, as the interpreter would print it."""
        if detail == "brief":
            return f"{self.type.__qualname__}: {self.getErrorMessage()}\n"
        if self.tb is None and getattr(self, "_cleaned_text", None):
            return self._cleaned_text
        lines = _traceback.format_exception(self.type, self.value, self.tb)
        return "".join(lines)

    def printTraceback(self, file: TextIO | None = None, elideFrameworkCode: int = 0,
                       detail: str = "default") -> None:
        """Write ``getTraceback()`` to ``file`` (default ``sys.stderr``)."""
        (file or sys.stderr).write(self.getTraceback(elideFrameworkCode, detail))

    def printBriefTraceback(self, file: TextIO | None = None) -> None:
        self.printTraceback(file, detail="brief")

    def getTracebackObject(self) -> TracebackType | None:
        return self.tb

    def cleanFailure(self) -> None:
        """Drop the traceback's frames so they can be collected (keeps the formatted text)."""
        if self.tb is not None:
            self._cleaned_text = self.getTraceback()
            self.tb = None
            self.value.__traceback__ = None

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.Failure {self.type.__qualname__}: {self.getErrorMessage()}>"

    def __str__(self) -> str:
        return f"[Failure instance: {self.getTraceback(detail='brief').rstrip()}]"

    def __reduce__(self) -> Any:
        return (Failure, (self.value,))
