"""Twisted's `twisted.test.test_process`, imports pointed at framework (see docs/testing.md)."""

from pathlib import Path

import pytest

from ._collect import collect

collect("twisted.test.test_process", globals())


@pytest.fixture(autouse=True)
def _in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own directory, as trial runs in ``_trial_temp``.

    Twisted's process_tester child writes ``process_test.log.<pid>`` into its working
    directory; without this they would pile up in the checkout.
    """
    monkeypatch.chdir(tmp_path)
