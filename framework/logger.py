"""Structured logging with Twisted's ``twisted.logger`` names, on top of the standard library.

    from framework.logger import Logger

    class Greeter(Protocol):
        log = Logger()

        def connectionMade(self):
            self.log.info("greeting {peer}", peer=self.transport.getPeer())

An event is a dict: the format string (``log_format``, PEP 3101 fields named after the
keyword arguments), the keyword arguments themselves, and ``log_level``, ``log_namespace``,
``log_source``, ``log_time`` (and ``log_failure`` for ``Logger.failure``). Every event goes
to the observers of ``globalLogPublisher`` and to the standard ``logging`` logger named after
its namespace (the record carries the event as ``record.log_event``), so ``logging``
configuration, ``reactor-serve --log-level`` and ``--log-format json`` apply to it.
``JSONFormatter`` is a ``logging.Formatter`` that writes one JSON object per record.
"""

from __future__ import annotations

import enum
import json
import logging
import string
import sys
import time
from typing import IO, Any, Callable

from framework.failure import Failure

__all__ = [
    "JSONFormatter",
    "LogLevel",
    "LogPublisher",
    "Logger",
    "eventAsJSON",
    "eventFromJSON",
    "formatEvent",
    "globalLogPublisher",
    "jsonFileLogObserver",
    "textFileLogObserver",
]

Event = dict[str, Any]
Observer = Callable[[Event], None]


class LogLevel(enum.Enum):
    """Twisted's five levels, each mapped onto the standard library's."""

    debug = logging.DEBUG
    info = logging.INFO
    warn = logging.WARNING
    error = logging.ERROR
    critical = logging.CRITICAL

    @classmethod
    def levelWithName(cls, name: str) -> LogLevel:
        """The level called ``name`` (``"warn"``); ``InvalidLogLevelError`` is Twisted's name,
        a ``ValueError`` here."""
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown log level {name!r}: one of {', '.join(m.name for m in cls)}") from None


class _Formatter(string.Formatter):
    """PEP 3101 formatting against an event; a bad or missing field never raises."""

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, int):
            raise KeyError(key)
        return kwargs[key]


_FORMATTER = _Formatter()


def formatEvent(event: Event) -> str:
    """The event's ``log_format`` with its fields filled in; a broken format says so instead of
    raising (logging must never take the program down)."""
    fmt = event.get("log_format")
    if fmt is None:
        failure = event.get("log_failure")
        return failure.getErrorMessage() if isinstance(failure, Failure) else ""
    if not isinstance(fmt, str):
        return f"Unable to format event {event!r}: log_format is {type(fmt).__name__}, not str"
    try:
        return _FORMATTER.vformat(fmt, (), event)
    except Exception as e:
        fields = {k: v for k, v in event.items() if not k.startswith("log_")}
        return f"Unable to format event {fmt!r} with {fields!r}: {type(e).__name__}: {e}"


class LogPublisher:
    """Fans events out to observers; an observer that raises is dropped from that event only
    and reported through the standard library, so one bad observer silences no other."""

    def __init__(self, *observers: Observer) -> None:
        self._observers: list[Observer] = list(observers)

    def addObserver(self, observer: Observer) -> None:
        if not callable(observer):
            raise TypeError(f"a log observer must be callable, not {type(observer).__name__}")
        if observer not in self._observers:
            self._observers.append(observer)

    def removeObserver(self, observer: Observer) -> None:
        try:
            self._observers.remove(observer)
        except ValueError:
            pass

    def __call__(self, event: Event) -> None:
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                logging.getLogger(__name__).exception("log observer %r failed", observer)


globalLogPublisher = LogPublisher()


class Logger:
    """Emits events in a namespace. As a class attribute (``log = Logger()``) it takes the
    class's ``module.Class`` as namespace and the instance as ``log_source``."""

    __slots__ = ("namespace", "source", "observer", "_stdlib")

    def __init__(self, namespace: str | None = None, source: object = None,
                 observer: Observer | None = None) -> None:
        if namespace is None:
            frame = sys._getframe(1)
            namespace = frame.f_globals.get("__name__", "<unknown>")
        self.namespace: str = namespace
        self.source = source
        self.observer: Observer = globalLogPublisher if observer is None else observer
        self._stdlib = logging.getLogger(namespace)

    def __set_name__(self, owner: type, name: str) -> None:
        self.namespace = f"{owner.__module__}.{owner.__qualname__}"
        self._stdlib = logging.getLogger(self.namespace)

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        source = owner if instance is None else instance
        bound = Logger(self.namespace, source, self.observer)
        return bound

    def __repr__(self) -> str:
        return f"<Logger {self.namespace!r}>"

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: Any) -> None:
        """Send one event at ``level`` to the observer and to the standard ``logging``."""
        if not isinstance(level, LogLevel):
            raise TypeError(f"level must be a LogLevel, not {level!r}")
        stdlib_enabled = self._stdlib.isEnabledFor(level.value)
        if not stdlib_enabled and self.observer is globalLogPublisher and not globalLogPublisher._observers:
            return  # nobody listens: no event built
        event: Event = dict(kwargs)
        event.update(
            log_logger=self, log_level=level, log_namespace=self.namespace,
            log_source=self.source, log_format=format, log_time=time.time(),
        )
        self.observer(event)
        if stdlib_enabled:
            failure = event.get("log_failure")
            exc_info = None
            if isinstance(failure, Failure) and isinstance(failure.value, BaseException):
                exc_info = (failure.type, failure.value, failure.getTracebackObject())
            self._stdlib.log(level.value, "%s", formatEvent(event), exc_info=exc_info,
                             extra={"log_event": event}, stacklevel=3)

    def debug(self, format: str | None = None, **kwargs: Any) -> None:
        self.emit(LogLevel.debug, format, **kwargs)

    def info(self, format: str | None = None, **kwargs: Any) -> None:
        self.emit(LogLevel.info, format, **kwargs)

    def warn(self, format: str | None = None, **kwargs: Any) -> None:
        self.emit(LogLevel.warn, format, **kwargs)

    def error(self, format: str | None = None, **kwargs: Any) -> None:
        self.emit(LogLevel.error, format, **kwargs)

    def critical(self, format: str | None = None, **kwargs: Any) -> None:
        self.emit(LogLevel.critical, format, **kwargs)

    def failure(self, format: str, failure: Failure | None = None,
                level: LogLevel = LogLevel.critical, **kwargs: Any) -> None:
        """Log a failure: the given one, else the exception being handled."""
        if failure is None:
            failure = Failure()
        self.emit(level, format, log_failure=failure, **kwargs)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, LogLevel):
        return {"log_level_name": value.name}
    if isinstance(value, Failure):
        return {"type": value.type.__name__ if isinstance(value.type, type) else str(value.type),
                "message": value.getErrorMessage(), "traceback": value.getTraceback()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return repr(value)


def eventAsJSON(event: Event) -> str:
    """The event as one line of JSON: values JSON cannot hold become their ``repr``, the level
    its name, a failure its type, message and traceback; ``log_text`` holds the formatted text."""
    out = {k: _jsonable(v) for k, v in event.items() if k != "log_logger"}
    out["log_text"] = formatEvent(event)
    return json.dumps(out, sort_keys=True)


def eventFromJSON(text: str) -> Event:
    """An event back from ``eventAsJSON`` (the level as a ``LogLevel`` again)."""
    event: Event = json.loads(text)
    level = event.get("log_level")
    if isinstance(level, dict) and "log_level_name" in level:
        event["log_level"] = LogLevel.levelWithName(level["log_level_name"])
    return event


def jsonFileLogObserver(outFile: IO[str], recordSeparator: str = "\x1e") -> Observer:
    """An observer writing each event as JSON to ``outFile`` (Twisted's record separator
    ``\\x1e`` first, so a reader can resynchronise after a torn write)."""
    def observe(event: Event) -> None:
        outFile.write(f"{recordSeparator}{eventAsJSON(event)}\n")
        outFile.flush()
    return observe


def textFileLogObserver(outFile: IO[str]) -> Observer:
    """An observer writing ``time [namespace#level] text`` lines to ``outFile``."""
    def observe(event: Event) -> None:
        when = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(event.get("log_time", time.time())))
        level = event.get("log_level")
        name = level.name if isinstance(level, LogLevel) else "-"
        text = formatEvent(event)
        failure = event.get("log_failure")
        if isinstance(failure, Failure):
            text = f"{text}\n{failure.getTraceback()}".rstrip("\n")
        outFile.write(f"{when} [{event.get('log_namespace', '-')}#{name}] {text}\n")
        outFile.flush()
    return observe


class JSONFormatter(logging.Formatter):
    """One JSON object per ``logging`` record: time, level, logger, message, and for records
    from ``Logger`` the event's own fields; exceptions as a ``traceback`` string. ``worker``
    (a ``--workers`` worker's number) adds ``worker`` and ``pid`` to every object."""

    def __init__(self, *, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            out["worker"] = self.worker
            out["pid"] = record.process
        event = getattr(record, "log_event", None)
        if isinstance(event, dict):
            for key, value in event.items():
                if not key.startswith("log_") and key not in out:
                    out[key] = _jsonable(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["traceback"] = record.exc_text
        return json.dumps(out, sort_keys=True)
