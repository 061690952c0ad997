"""The built-in plugins of reactor-framework.

Each module here is registered through the ``reactor_framework`` entry-point group in
``pyproject.toml``, exactly as a third-party package would register its own.
"""
