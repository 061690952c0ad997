"""Tests for ``framework.failure.Failure``."""

from __future__ import annotations

import io
import pickle
import traceback
from typing import Any

import pytest

from framework.failure import Failure, NoCurrentExceptionError


class MyError(ValueError):
    pass


def raise_my_error() -> None:
    raise MyError("deep down")


def captured() -> Failure:
    try:
        raise_my_error()
    except MyError:
        return Failure()
    raise AssertionError("unreachable")


def test_wraps_current_exception() -> None:
    f = captured()
    assert isinstance(f.value, MyError)
    assert f.type is MyError
    assert f.tb is not None
    assert f.getTracebackObject() is f.tb


def test_no_current_exception() -> None:
    with pytest.raises(NoCurrentExceptionError, match="none is being handled"):
        Failure()


def test_wraps_given_exception() -> None:
    e = KeyError("k")
    f = Failure(e)
    assert f.value is e and f.type is KeyError and f.tb is None
    assert f.getErrorMessage() == "'k'"


def test_keeps_exception_traceback() -> None:
    try:
        raise_my_error()
    except MyError as e:
        exc = e
    f = Failure(exc)
    assert f.tb is exc.__traceback__
    assert "raise_my_error" in f.getTraceback()


def test_explicit_type_and_traceback() -> None:
    original = captured()
    f = Failure(original.value, MyError, original.tb)
    assert f.type is MyError and f.tb is original.tb


def test_copy_of_failure() -> None:
    original = captured()
    f = Failure(original)
    assert f.value is original.value and f.tb is original.tb and f.type is MyError


def test_exception_class_is_instantiated() -> None:
    f = Failure(KeyError)  # type: ignore[arg-type]
    assert isinstance(f.value, KeyError)


def test_rejects_non_exceptions() -> None:
    with pytest.raises(TypeError, match="needs an exception"):
        Failure("a string")  # type: ignore[arg-type]


def test_check() -> None:
    f = captured()
    assert f.check(KeyError) is None
    assert f.check(KeyError, ValueError) is ValueError
    assert f.check(MyError) is MyError
    assert f.check("MyError") == "MyError"
    assert f.check("builtins.ValueError") == "builtins.ValueError"
    assert f.check(f"{__name__}.MyError") == f"{__name__}.MyError"
    assert f.check("KeyError") is None


def test_trap() -> None:
    f = captured()
    assert f.trap(KeyError, ValueError) is ValueError
    with pytest.raises(MyError) as info:
        f.trap(KeyError)
    assert info.value is f.value
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "raise_my_error" in names


def test_raiseException_keeps_traceback() -> None:
    f = captured()
    with pytest.raises(MyError) as info:
        f.raiseException()
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "raise_my_error" in names


def test_throwExceptionIntoGenerator() -> None:
    def gen() -> Any:
        try:
            yield 1
        except MyError as e:
            yield f"caught {e}"

    g = gen()
    next(g)
    assert captured().throwExceptionIntoGenerator(g) == "caught deep down"


def test_getErrorMessage() -> None:
    assert Failure(ValueError("msg")).getErrorMessage() == "msg"
    assert Failure(ValueError()).getErrorMessage() == "ValueError()"

    class BadStr(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    assert "broken __str__" in Failure(BadStr()).getErrorMessage()


def test_getTraceback() -> None:
    f = captured()
    text = f.getTraceback()
    assert text.startswith("Traceback (most recent call last):")
    assert "raise_my_error" in text and "MyError: deep down" in text
    assert f.getTraceback(detail="brief") == "MyError: deep down\n"


def test_printTraceback() -> None:
    f = captured()
    out = io.StringIO()
    f.printTraceback(out)
    assert "raise_my_error" in out.getvalue()
    out = io.StringIO()
    f.printBriefTraceback(out)
    assert out.getvalue() == "MyError: deep down\n"
    out = io.StringIO()
    f.printDetailedTraceback(out)
    assert "raise_my_error" in out.getvalue()


def test_cleanFailure_keeps_text() -> None:
    f = captured()
    before = f.getTraceback()
    f.cleanFailure()
    assert f.tb is None and f.value.__traceback__ is None
    assert f.getTraceback() == before
    copy = Failure(f)
    assert copy.getTraceback() == before


def test_parents_and_frames() -> None:
    f = captured()
    assert f.parents[0] == f"{__name__}.MyError"
    assert "builtins.ValueError" in f.parents and "builtins.BaseException" in f.parents
    names = [frame[0] for frame in f.frames]
    assert names == ["captured", "raise_my_error"]


def test_repr_and_str() -> None:
    f = Failure(KeyError("k"))
    assert repr(f) == "<framework.failure.Failure KeyError: 'k'>"
    assert str(f) == "[Failure instance: KeyError: 'k']"


def test_args_mirror_value() -> None:
    f = Failure(ValueError(1, 2))
    assert f.args == (1, 2)


def test_pickle() -> None:
    f = captured()
    g = pickle.loads(pickle.dumps(f))
    assert isinstance(g, Failure) and g.type is MyError and g.getErrorMessage() == "deep down"


def test_can_be_raised() -> None:
    f = Failure(ValueError("x"))
    with pytest.raises(Failure):
        raise f
