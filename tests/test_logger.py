"""framework.logger: Twisted's structured Logger names, delivered to observers and to logging."""

from __future__ import annotations

import io
import json
import logging

import pytest

from framework.failure import Failure
from framework.logger import (
    JSONFormatter, LogLevel, LogPublisher, Logger, eventAsJSON, eventFromJSON, formatEvent,
    globalLogPublisher, jsonFileLogObserver, textFileLogObserver,
)


class Greeter:
    log = Logger()

    def greet(self, who: str) -> None:
        self.log.info("hello {who}, {count} times", who=who, count=2)


@pytest.fixture
def events():
    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)


def test_class_attribute_logger_names_class_and_source(events, caplog) -> None:
    g = Greeter()
    with caplog.at_level(logging.INFO, logger="test_logger.Greeter"):
        g.greet("ada")
    (event,) = events
    assert event["log_namespace"] == "test_logger.Greeter"
    assert event["log_source"] is g
    assert event["log_level"] is LogLevel.info
    assert event["who"] == "ada" and event["log_format"] == "hello {who}, {count} times"
    assert formatEvent(event) == "hello ada, 2 times"
    (record,) = [r for r in caplog.records if r.name == "test_logger.Greeter"]
    assert record.getMessage() == "hello ada, 2 times"
    assert record.log_event is event
    assert record.filename == "test_logger.py" and record.funcName == "greet"


def test_module_logger_namespace_and_levels(events) -> None:
    log = Logger()
    assert log.namespace == __name__
    for level in LogLevel:
        getattr(log, level.name)("at {level_name}", level_name=level.name)
    assert [e["log_level"] for e in events] == list(LogLevel)
    assert LogLevel.levelWithName("warn") is LogLevel.warn
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        LogLevel.levelWithName("loud")


def test_failure_is_logged_with_its_traceback(events, caplog) -> None:
    log = Logger("my.ns")
    with caplog.at_level(logging.ERROR, logger="my.ns"):
        try:
            1 / 0
        except ZeroDivisionError:
            log.failure("while dividing {what}", what="numbers")
    (event,) = events
    assert isinstance(event["log_failure"], Failure)
    assert event["log_failure"].check(ZeroDivisionError)
    assert event["log_level"] is LogLevel.critical
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert "while dividing numbers" in record.getMessage()


def test_a_broken_format_never_raises() -> None:
    assert formatEvent({"log_format": "{missing}"}).startswith("Unable to format event '{missing}'")
    assert formatEvent({"log_format": "{x:d}", "x": "text"}).startswith("Unable to format event")
    assert formatEvent({"log_format": 42}).startswith("Unable to format event")
    assert formatEvent({"log_format": "{0}"}).startswith("Unable to format event")
    assert formatEvent({}) == ""


def test_json_round_trip_and_observers() -> None:
    out = io.StringIO()
    text = io.StringIO()
    publisher = LogPublisher(jsonFileLogObserver(out), textFileLogObserver(text))
    log = Logger("svc", observer=publisher)
    log.warn("port {port} in use", port=8000, raw=b"\xff", obj=object())
    record = out.getvalue()
    assert record.startswith("\x1e") and record.endswith("\n")
    event = eventFromJSON(record[1:])
    assert event["port"] == 8000 and event["log_level"] is LogLevel.warn
    assert event["log_text"] == "port 8000 in use" and event["raw"] == "\\xff"
    assert event["obj"].startswith("<object object at")
    assert "[svc#warn] port 8000 in use" in text.getvalue()
    assert json.loads(eventAsJSON({"log_format": "x"}))["log_text"] == "x"


def test_a_failing_observer_does_not_silence_the_others(caplog) -> None:
    seen: list[dict] = []

    def broken(event: dict) -> None:
        raise RuntimeError("observer bug")

    publisher = LogPublisher(broken, seen.append)
    Logger("x", observer=publisher).info("still delivered")
    assert [formatEvent(e) for e in seen] == ["still delivered"]
    assert any("log observer" in r.getMessage() for r in caplog.records)
    with pytest.raises(TypeError, match="must be callable"):
        publisher.addObserver("not callable")  # type: ignore[arg-type]


def test_json_formatter_for_any_logging_record() -> None:
    formatter = JSONFormatter()
    record = logging.LogRecord("framework.tcp", logging.WARNING, __file__, 1, "lost %s", ("peer",), None)
    data = json.loads(formatter.format(record))
    assert data["level"] == "warning" and data["logger"] == "framework.tcp"
    assert data["message"] == "lost peer" and isinstance(data["time"], float)
    record.log_event = {"log_format": "x", "peer": "127.0.0.1:9", "log_level": LogLevel.info}
    data = json.loads(formatter.format(record))
    assert data["peer"] == "127.0.0.1:9" and "log_level" not in data
    try:
        raise ValueError("bad")
    except ValueError:
        import sys
        exc = logging.LogRecord("n", logging.ERROR, __file__, 1, "m", (), sys.exc_info())
    assert "ValueError: bad" in json.loads(formatter.format(exc))["traceback"]
