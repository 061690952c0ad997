"""The framework's version, in a module of its own so that any layer can read it without
importing the package facade (``framework.__version__`` is the same string)."""

__version__ = "0.1.0.dev0"
