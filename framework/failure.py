"""``Failure``: an exception captured with its traceback, passed down errback chains."""

from __future__ import annotations

import builtins
import sys
import traceback as _traceback
from types import TracebackType
from typing import Any, NoReturn, TextIO

__all__ = ["Failure", "NoCurrentExceptionError"]


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called with no exception given and none being handled."""


def _qualname(klass: type) -> str:
    return f"{klass.__module__}.{klass.__qualname__}"


class Failure(BaseException):
    """An exception and its traceback, as delivered to errbacks.

    ``Failure()`` inside an ``except`` block wraps the exception being handled;
    ``Failure(exc)`` wraps the given exception (with its ``__traceback__`` if it has one);
    ``Failure(other_failure)`` copies it. ``Failure`` derives from ``BaseException`` only so that
    ``raise failure`` is possible in a pinch; errback chains never raise it, they raise
    ``failure.value``.
    """

    value: BaseException
    type: builtins.type[BaseException]
    tb: TracebackType | None

    def __init__(
        self,
        exc_value: BaseException | None = None,
        exc_type: builtins.type[BaseException] | None = None,
        exc_tb: TracebackType | None = None,
        captureVars: bool = False,
    ) -> None:
        if exc_value is None:
            exc_type_now, exc_value, tb_now = sys.exc_info()
            if exc_value is None:
                raise NoCurrentExceptionError(
                    "Failure() needs an exception: none was given and none is being handled")
            if exc_tb is None:
                exc_tb = tb_now
        elif isinstance(exc_value, Failure):
            exc_tb = exc_tb or exc_value.tb
            exc_type = exc_type or exc_value.type
            cleaned = exc_value._cleaned_text
            exc_value = exc_value.value
            self._cleaned_text = cleaned
        elif isinstance(exc_value, type) and issubclass(exc_value, BaseException):
            # Failure(ValueError): Twisted accepts an exception class; instantiate it.
            exc_value = exc_value()
        elif not isinstance(exc_value, BaseException):
            raise TypeError(f"Failure needs an exception, not {exc_value!r}")
        if exc_tb is None:
            exc_tb = exc_value.__traceback__
        self.value = exc_value
        self.type = exc_type or type(exc_value)
        self.tb = exc_tb
        self.captureVars = captureVars

    # Class-level defaults keep __init__ short; instances override only when needed.
    _cleaned_text: str | None = None

    # BaseException machinery would otherwise use our __init__ args for str()/args.
    @property
    def args(self) -> tuple[Any, ...]:  # type: ignore[override]
        return self.value.args

    @args.setter
    def args(self, value: Any) -> None:
        pass

    @property
    def parents(self) -> list[str]:
        """Fully qualified names of the exception's type and its bases, most derived first."""
        return [_qualname(klass) for klass in self.type.__mro__]

    @property
    def frames(self) -> list[tuple[str, str, int, list[Any], list[Any]]]:
        """``(function, filename, line, [], [])`` for each traceback frame, outermost first."""
        frames: list[tuple[str, str, int, list[Any], list[Any]]] = []
        tb = self.tb
        while tb is not None:
            code = tb.tb_frame.f_code
            frames.append((code.co_name, code.co_filename, tb.tb_lineno, [], []))
            tb = tb.tb_next
        return frames

    def trap(self, *errorTypes: builtins.type[BaseException] | str) -> builtins.type[BaseException] | str:
        """Return the first of ``errorTypes`` this failure is; otherwise re-raise the exception.

        Used in errbacks to handle only the expected errors and pass the rest on down the
        errback chain.
        """
        found = self.check(*errorTypes)
        if found is None:
            self.raiseException()
        return found

    def check(
        self, *errorTypes: builtins.type[BaseException] | str
    ) -> builtins.type[BaseException] | str | None:
        """Return the first of ``errorTypes`` that this failure is, else ``None``.

        A string matches the name or fully qualified name of the failure's type or any base.
        """
        for error in errorTypes:
            if isinstance(error, str):
                for klass in self.type.__mro__:
                    if error == klass.__name__ or error == _qualname(klass):
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
        """The formatted traceback, as the interpreter would print it.

        ``detail="brief"`` gives only the exception line. After ``cleanFailure()`` the text
        saved at cleaning time is returned.
        """
        if detail == "brief":
            return f"{self.type.__qualname__}: {self.getErrorMessage()}\n"
        if self.tb is None and self._cleaned_text is not None:
            return self._cleaned_text
        lines = _traceback.format_exception(self.type, self.value, self.tb)
        return "".join(lines)

    def printTraceback(self, file: TextIO | None = None, elideFrameworkCode: int = 0,
                       detail: str = "default") -> None:
        """Write ``getTraceback()`` to ``file`` (default ``sys.stderr``)."""
        (file or sys.stderr).write(self.getTraceback(elideFrameworkCode, detail))

    def printBriefTraceback(self, file: TextIO | None = None, elideFrameworkCode: int = 0) -> None:
        """Write the one-line form to ``file`` (default ``sys.stderr``)."""
        self.printTraceback(file, elideFrameworkCode, detail="brief")

    def printDetailedTraceback(self, file: TextIO | None = None, elideFrameworkCode: int = 0) -> None:
        """Write the full traceback to ``file`` (default ``sys.stderr``)."""
        self.printTraceback(file, elideFrameworkCode, detail="verbose")

    def getTracebackObject(self) -> TracebackType | None:
        """The traceback object (``None`` after ``cleanFailure()``)."""
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
