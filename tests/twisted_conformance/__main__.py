"""Run the Twisted conformance tests: ``python -m tests.twisted_conformance [--update] [pytest args]``.

Without ``--update`` this is the same comparison the project's test run makes. With
``--update`` nothing is compared and ``expectations.txt`` is rewritten from the outcomes: lines
of tests that still fail keep their reason, tests that pass lose their line, and new failures
get a guessed reason ("missing: <API>", or "unexplained: ..." for a person to replace).
Extra arguments go to pytest (e.g. ``-k DeferredTests`` or one ``test_twisted_*.py`` file);
lines of tests that did not run are kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if "--update" in argv:
        argv = [a for a in argv if a != "--update"]
        env["TWISTED_CONFORMANCE_UPDATE"] = "1"
    paths = [a for a in argv if not a.startswith("-") and a.endswith(".py")]
    args = [a for a in argv if a not in paths]
    targets = paths or [str(HERE.relative_to(ROOT))]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets, *args]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
