"""The built-in plugins of reactor-framework.

This folder installs under the import name ``reactor_framework_plugins`` (see
``[tool.setuptools.package-dir]`` in ``pyproject.toml``), never as a top-level ``plugins``
package; import the built-ins as ``reactor_framework_plugins.protocols.echo`` and so on.

Each module here is registered through the ``reactor_framework`` entry-point group in
``pyproject.toml``, exactly as a third-party package would register its own.
"""
