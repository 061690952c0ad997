"""The conformance runner's own machinery (the ported Twisted tests are in test_twisted_*.py)."""

from __future__ import annotations

import pytest

from framework import defer

from .conftest import NonLoopbackAddress, _check_address
from .expectations import classify, read_expectations
from .porting import Missing, MissingAPI, port_from


def test_mapped_names_come_from_framework_and_others_stay_twisteds() -> None:
    Deferred, setDebugging = port_from("twisted.internet.defer", ("Deferred", "notAThing"))
    assert Deferred is defer.Deferred
    assert isinstance(setDebugging, Missing)
    (iterbytes,) = port_from("twisted.python.compat", ("iterbytes",))
    assert iterbytes.__module__.startswith("twisted.")


def test_a_missing_name_fails_when_used_and_is_classified() -> None:
    (missing,) = port_from("twisted.internet.task", ("notAThing",))
    with pytest.raises(MissingAPI) as info:
        missing(1)
    assert classify(info) == "missing: framework.task.notAThing"
    (private,) = port_from("twisted.internet.task", ("_private",))
    with pytest.raises(MissingAPI) as info:
        private()
    assert classify(info).startswith("out of scope: tests Twisted's private")


def test_a_class_deriving_from_a_missing_name_cannot_be_built() -> None:
    (base,) = port_from("twisted.protocols.basic", ("NotAReceiver",))

    class Sub(base):  # type: ignore[misc]
        pass

    with pytest.raises(MissingAPI):
        Sub()


def test_expectation_reasons_must_be_categorised(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.txt"
    good.write_text("# c\n\na.test_x.C.test_y missing: framework.x\n")
    assert read_expectations(good) == {"a.test_x.C.test_y": "missing: framework.x"}
    bad = tmp_path / "bad.txt"
    bad.write_text("a.test_x.C.test_y because\n")
    with pytest.raises(ValueError, match="must start with"):
        read_expectations(bad)
    twice = tmp_path / "twice.txt"
    twice.write_text("a.test_x.C.test_y missing: a\na.test_x.C.test_y missing: b\n")
    with pytest.raises(ValueError, match="twice"):
        read_expectations(twice)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_addresses_are_allowed(host: str) -> None:
    _check_address((host, 0), bind=True)


@pytest.mark.parametrize("host", ["", "0.0.0.0", "10.1.2.3", "::", "example.com"])
def test_other_addresses_are_refused(host: str) -> None:
    with pytest.raises(NonLoopbackAddress):
        _check_address((host, 0), bind=True)
