"""A plugin module that cannot be imported: it needs a package that is not installed."""

import reactor_framework_no_such_package  # type: ignore[import-not-found]  # noqa: F401
