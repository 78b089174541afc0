"""The package version: the one place it is written (pyproject.toml reads it from here, so
the installed metadata and ``--version`` cannot disagree, and no import of
importlib.metadata is needed to print it)."""

__version__ = "0.1.0"
