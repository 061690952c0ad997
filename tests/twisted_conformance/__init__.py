"""Twisted's own unit tests, imports pointed at framework, judged against expectations.txt.

See docs/testing.md, "Twisted conformance". Files: ``porting.py`` (the import rewrite),
``trial.py`` (the trial shim), ``zope_compat.py`` (``@implementer`` over framework's class
interfaces), ``conftest.py`` (the comparison and the summary), ``expectations.py`` (the file
format), ``test_twisted_*.py`` (one per ported Twisted module), ``test_runner.py`` (the runner's own tests).
"""
