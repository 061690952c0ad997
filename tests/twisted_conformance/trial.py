"""A small stand-in for ``twisted.trial.unittest``, over framework's Deferred, Failure and reactor.

Twisted's test modules subclass trial's ``SynchronousTestCase`` / ``TestCase``. Trial's own
classes cannot be used here: their helpers (``successResultOf``, ``assertFailure``,
``flushLoggedErrors``, tests returning Deferreds) are written against Twisted's Deferred,
Failure and reactor, so they would judge framework objects with Twisted's rules, or spin
the wrong reactor. So the runner rewrites ``twisted.trial.unittest`` to this module, written
for this project (no code taken from trial). It implements the part of trial's contract the
ported modules use, with trial's semantics:

- both classes are ``unittest.TestCase`` subclasses, so pytest collects and runs them;
- ``skip`` (class or method attribute) skips; ``todo`` marks an expected failure;
- ``assertRaises(exc, f, *a)`` *returns* the exception; ``assertIdentical``,
  ``assertApproximates``, ``assertSubstring``, ``failUnless*`` aliases, trial's
  ``assertWarns(category, message, filename, f, *a)``;
- ``successResultOf`` / ``failureResultOf`` / ``assertNoResult`` on a framework Deferred (or a
  coroutine, wrapped with ``ensureDeferred``), leaving a success result in place;
- ``assertFailure(d, *exc)``; ``flushLoggedErrors(*exc)``; ``flushWarnings``; ``mktemp``;
  ``patch``;
- an error logged during a test (through ``twisted.python.log.err`` or at ERROR with an
  exception on a ``framework`` logger, e.g. an unhandled error in a collected Deferred) and
  not flushed fails the test, as under trial. Garbage is collected before the check so the
  error is charged to the test that made it;
- ``TestCase`` only: a test method, ``setUp``, ``tearDown`` or cleanup returning a Deferred
  (or being a coroutine function) is waited for by running framework's global reactor until
  it fires, with a timeout (``timeout`` attribute, default :data:`DEFAULT_TIMEOUT` seconds);
  a test that leaves delayed calls, readers or writers on the reactor fails ("dirty
  reactor"), and they are cleaned up. The global reactor is installed only when a test first
  uses it (``from twisted.internet import reactor`` is rewritten to a lazy stand-in).

Not implemented (no ported module needs it): trial's suppression of warnings (``suppress``),
``runWithWarningsSuppressed``, ``getDeprecatedModuleAttribute``, ``callDeprecated``.
"""

from __future__ import annotations

import gc
import inspect
import logging
import os
import tempfile
import unittest as pyunit
import warnings
from typing import Any, Callable

import framework
from framework import defer as fdefer
from framework.failure import Failure

SkipTest = pyunit.SkipTest
DEFAULT_TIMEOUT = 10.0


class FailTest(AssertionError):
    """Raised by a failed assertion (trial's name)."""


def _is_failure(obj: Any) -> bool:
    if isinstance(obj, Failure):
        return True
    try:
        from twisted.python.failure import Failure as TwistedFailure
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, TwistedFailure)


def _as_deferred(obj: Any) -> Any:
    if inspect.iscoroutine(obj):
        return fdefer.ensureDeferred(obj)
    return obj


def _is_deferred(obj: Any) -> bool:
    return callable(getattr(obj, "addBoth", None)) and callable(getattr(obj, "addCallbacks", None))


class _ErrorCatcher(logging.Handler):
    """Collects Failures logged while a test runs (framework loggers and Twisted's log)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        failure = getattr(record, "failure", None)
        if failure is None and record.exc_info and record.exc_info[1] is not None:
            _, value, tb = record.exc_info
            failure = Failure(value, type(value), tb)
        if failure is not None:
            self.errors.append(failure)

    def twisted_observer(self, event: dict[str, Any]) -> None:
        if event.get("isError") and event.get("failure") is not None:
            self.errors.append(event["failure"])


class SynchronousTestCase(pyunit.TestCase):
    """trial's ``SynchronousTestCase`` over framework; see the module docstring."""

    failureException = FailTest
    skip: str | None = None
    todo: Any = None

    def __init__(self, methodName: str = "runTest") -> None:
        super().__init__(methodName)
        self._catcher: _ErrorCatcher | None = None
        self._warnings: list[warnings.WarningMessage] = []

    # -- running -----------------------------------------------------------------------------

    def run(self, result: Any = None) -> Any:
        method = getattr(self, self._testMethodName, None)
        reason = getattr(method, "skip", None) or self.skip
        if reason:
            # Report the skip through unittest's own machinery.
            setattr(self, self._testMethodName, _skipper(str(reason)))
        todo = getattr(method, "todo", None) or self.todo
        if todo:
            setattr(self, self._testMethodName, _expect_failure(method, todo))
        # Collect what earlier tests left, then freeze it: the collections this test triggers
        # (to charge unhandled errors to it) only scan what it creates, so they stay cheap.
        gc.collect()
        gc.freeze()
        catcher = _ErrorCatcher()
        self._catcher = catcher
        fw_logger = logging.getLogger("framework")
        fw_logger.addHandler(catcher)
        from twisted.python import log as tlog

        tlog.addObserver(catcher.twisted_observer)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._warnings = caught
            try:
                return super().run(result)
            finally:
                fw_logger.removeHandler(catcher)
                tlog.removeObserver(catcher.twisted_observer)
                self._catcher = None

    def _callTestMethod(self, method: Callable[[], Any]) -> None:
        self._run_maybe_async(method)
        self._check_logged_errors()

    def _callSetUp(self) -> None:
        self._run_maybe_async(self.setUp)

    def _callTearDown(self) -> None:
        self._run_maybe_async(self.tearDown)

    def _callCleanup(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        self._run_maybe_async(lambda: function(*args, **kwargs))

    def _run_maybe_async(self, f: Callable[[], Any]) -> Any:
        result = f()
        if inspect.iscoroutine(result) or _is_deferred(result):
            result.close() if inspect.iscoroutine(result) else None
            raise FailTest("a SynchronousTestCase method returned a Deferred or coroutine")
        return result

    def _check_logged_errors(self) -> None:
        gc.collect()
        if self._catcher is not None and self._catcher.errors:
            errors, self._catcher.errors = self._catcher.errors, []
            text = "\n".join(_describe(e) for e in errors)
            raise FailTest(f"{len(errors)} error(s) logged during the test and not flushed:\n{text}")

    # -- trial's helpers ---------------------------------------------------------------------

    def successResultOf(self, deferred: Any) -> Any:
        deferred = _as_deferred(deferred)
        results: list[Any] = []
        deferred.addBoth(results.append)
        if not results:
            self.fail(f"Success result expected on {deferred!r}, found no result instead")
        result = results[0]
        if _is_failure(result):
            deferred.addErrback(lambda _: None)
            self.fail(f"Success result expected on {deferred!r}, found failure result instead:\n"
                      f"{_describe(result)}")
        deferred.addCallback(lambda _: result)
        return result

    def failureResultOf(self, deferred: Any, *expectedExceptionTypes: type[BaseException]) -> Any:
        deferred = _as_deferred(deferred)
        results: list[Any] = []
        deferred.addBoth(results.append)
        if not results:
            self.fail(f"Failure result expected on {deferred!r}, found no result instead")
        result = results[0]
        if not _is_failure(result):
            deferred.addCallback(lambda _: result)
            self.fail(f"Failure result expected on {deferred!r}, found success result ({result!r}) instead")
        if expectedExceptionTypes and not result.check(*expectedExceptionTypes):
            names = " or ".join(t.__name__ for t in expectedExceptionTypes)
            self.fail(f"Failure of type ({names}) expected on {deferred!r}, found type "
                      f"{result.type!r} instead:\n{_describe(result)}")
        return result

    def assertNoResult(self, deferred: Any) -> None:
        deferred = _as_deferred(deferred)
        results: list[Any] = []

        def grab(r: Any) -> Any:
            results.append(r)
            return r

        deferred.addBoth(grab)
        if results:
            result = results[0]
            if _is_failure(result):
                deferred.addErrback(lambda _: None)
            self.fail(f"No result expected on {deferred!r}, found {result!r} instead")

    def assertFailure(self, deferred: Any, *expectedFailures: type[BaseException]) -> Any:
        def succeeded(result: Any) -> Any:
            raise self.failureException(f"did not catch an error, instead got {result!r}")

        def failed(failure: Any) -> Any:
            if failure.check(*expectedFailures):
                return failure.value
            raise self.failureException(f"{expectedFailures!r} not raised ({failure.type!r} raised instead)\n"
                                        f"{_describe(failure)}")

        return _as_deferred(deferred).addCallbacks(succeeded, failed)

    failUnlessFailure = assertFailure

    def flushLoggedErrors(self, *errorTypes: type[BaseException]) -> list[Any]:
        gc.collect()
        if self._catcher is None:
            return []
        flushed, kept = [], []
        for e in self._catcher.errors:
            (flushed if not errorTypes or e.check(*errorTypes) else kept).append(e)
        self._catcher.errors = kept
        return flushed

    def flushWarnings(self, offendingFunctions: Any = None) -> list[dict[str, Any]]:
        out = []
        keep = []
        for w in self._warnings:
            if offendingFunctions is None or any(
                getattr(getattr(f, "__code__", None), "co_filename", None) == w.filename for f in offendingFunctions
            ):
                out.append({"message": str(w.message), "category": w.category, "filename": w.filename,
                            "lineno": w.lineno})
            else:
                keep.append(w)
        self._warnings[:] = keep
        return out

    def assertRaises(self, exception: Any, f: Any = None, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if f is None:
            return super().assertRaises(exception)
        try:
            f(*args, **kwargs)
        except exception as e:
            return e
        except BaseException as e:
            raise self.failureException(f"{exception!r} not raised ({e!r} raised instead)") from e
        raise self.failureException(f"{exception!r} not raised ({f!r} returned)")

    failUnlessRaises = assertRaises

    def assertIdentical(self, first: Any, second: Any, msg: str | None = None) -> Any:
        if first is not second:
            raise self.failureException(msg or f"{first!r} is not {second!r}")
        return first

    def assertNotIdentical(self, first: Any, second: Any, msg: str | None = None) -> Any:
        if first is second:
            raise self.failureException(msg or f"{first!r} is {second!r}")
        return first

    def assertApproximates(self, first: float, second: float, tolerance: float, msg: str | None = None) -> float:
        if abs(first - second) > tolerance:
            raise self.failureException(msg or f"{first} ~== {second}")
        return first

    def assertSubstring(self, substring: Any, astring: Any, msg: str | None = None) -> None:
        if substring not in astring:
            raise self.failureException(msg or f"{substring!r} not in {astring!r}")

    def assertNotSubstring(self, substring: Any, astring: Any, msg: str | None = None) -> None:
        if substring in astring:
            raise self.failureException(msg or f"{substring!r} in {astring!r}")

    def assertWarns(self, category: Any, message: Any = None, filename: Any = None,  # type: ignore[override]
                    f: Any = None, *args: Any, **kwargs: Any) -> Any:
        if f is None:
            return super().assertWarns(category, *([message] if message else []))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = f(*args, **kwargs)
        if not caught:
            self.fail("No warnings emitted")
        first = caught[0]
        self.assertEqual(first.category, category)
        self.assertEqual(str(first.message), message)
        return result

    failUnless = assertTrue = pyunit.TestCase.assertTrue
    failIf = pyunit.TestCase.assertFalse
    failUnlessEqual = assertEquals = pyunit.TestCase.assertEqual
    failIfEqual = assertNotEquals = pyunit.TestCase.assertNotEqual
    failUnlessIdentical = assertIdentical
    failIfIdentical = assertNotIdentical
    failUnlessIn = pyunit.TestCase.assertIn
    failIfIn = pyunit.TestCase.assertNotIn

    def mktemp(self) -> str:
        base = tempfile.mkdtemp(prefix="conformance-")
        self.addCleanup(_rmtree, base)
        return os.path.join(base, "temp")

    def patch(self, obj: Any, attribute: str, value: Any) -> None:
        missing = object()
        old = getattr(obj, attribute, missing)
        setattr(obj, attribute, value)

        def restore() -> None:
            if old is missing:
                delattr(obj, attribute)
            else:
                setattr(obj, attribute, old)

        self.addCleanup(restore)


class TestCase(SynchronousTestCase):
    """trial's asynchronous ``TestCase``: Deferred-returning methods run framework's reactor."""

    timeout: float = DEFAULT_TIMEOUT

    def run(self, result: Any = None) -> Any:
        reactor = framework.installed_reactor()
        if reactor is not None:
            self._reactor_before = (set(reactor.getReaders()), set(reactor.getWriters()))
        self.addCleanup(self._clean_reactor)  # registered first, so it runs last
        return super().run(result)

    def _callTestMethod(self, method: Callable[[], Any]) -> None:
        self._run_maybe_async(method)
        self._check_logged_errors()

    def _callCleanup(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        self._run_maybe_async(lambda: function(*args, **kwargs))

    def _run_maybe_async(self, f: Callable[[], Any]) -> Any:
        result = f()
        if inspect.iscoroutine(result):
            result = fdefer.ensureDeferred(result)
        if _is_deferred(result):
            return self._wait(result)
        return result

    def _wait(self, d: Any) -> Any:
        from framework import reactor

        done: list[Any] = []

        def finish(r: Any) -> None:
            done.append(r)
            if reactor.running:
                reactor.stop()

        d.addBoth(finish)
        if not done:
            timeout = float(getattr(getattr(self, self._testMethodName, None), "timeout", None) or self.timeout)
            timer = reactor.callLater(timeout, lambda: (done.append(None), reactor.stop()) if not done else None)
            try:
                while not done:
                    reactor.run(installSignalHandlers=False)
            finally:
                if timer.active():
                    timer.cancel()
            if not d.called:
                d.cancel()
                d.addErrback(lambda _: None)
                raise FailTest(f"timed out after {timeout} seconds waiting for {d!r}")
        result = done[0]
        if _is_failure(result):
            result.raiseException()
        return result

    def _clean_reactor(self) -> None:
        reactor = framework.installed_reactor()
        if reactor is None:
            return
        readers_before, writers_before = getattr(self, "_reactor_before", (set(), set()))
        # As trial's janitor does: two turns of the reactor first, so what is already due
        # (a peer's close just sent, a callLater(0)) happens before anything counts as left.
        reactor.iterate(0)
        reactor.iterate(0)
        problems = []
        for call in reactor.getDelayedCalls():
            if call.active():
                problems.append(f"delayed call {call!r}")
                call.cancel()
        for r in set(reactor.getReaders()) - readers_before:
            problems.append(f"reader {r!r}")
            reactor.removeReader(r)
        for w in set(reactor.getWriters()) - writers_before:
            problems.append(f"writer {w!r}")
            reactor.removeWriter(w)
        if problems:
            raise FailTest("dirty reactor: the test left " + "; ".join(problems))


def _describe(failure: Any) -> str:
    try:
        return failure.getTraceback()
    except Exception:  # pragma: no cover
        return repr(failure)


def _skipper(reason: str) -> Callable[[], None]:
    def skipped() -> None:
        raise SkipTest(reason)

    return skipped


def _expect_failure(method: Any, todo: Any) -> Callable[[], Any]:
    def run() -> Any:
        try:
            result = method()
        except BaseException:
            raise SkipTest(f"todo (expected failure): {todo}")
        return result

    return run


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
