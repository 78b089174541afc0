"""The package version: from the installed metadata, else the source tree's."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("amplihack-hive")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"
