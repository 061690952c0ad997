"""Expose one ported Twisted test module's test classes to pytest (used by the test_twisted_* files)."""

from __future__ import annotations

import traceback
from typing import Any

from .porting import port, test_classes


def collect(twisted_module: str, namespace: dict[str, Any]) -> None:
    """Put the TestCase classes of the ported ``twisted_module`` into ``namespace``.

    If the module cannot even be imported once ported, a single test stands for it, with
    the test id ``<twisted_module>.<import>`` (list that id to accept it).
    """
    namespace["TWISTED_MODULE"] = twisted_module
    try:
        module = port(twisted_module)
    except Exception as e:  # reported by the stand-in test, with the traceback
        error = e
        text = traceback.format_exc()

        def test_import() -> None:
            raise ImportError(f"{twisted_module} cannot be imported once ported:\n{text}") from error

        test_import.twisted_id = f"{twisted_module}.<import>"  # type: ignore[attr-defined]
        namespace["test_import"] = test_import
        return
    namespace.update(test_classes(module))
