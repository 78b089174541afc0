"""amplihack-hive: many AI agents sharing one sharded, replicated memory."""

from amplihack_hive._version import __version__
from amplihack_hive.api import Hive, Memory
from amplihack_hive.errors import HiveError
from amplihack_hive.memory.config import MemoryConfig
from amplihack_hive.memory.coordinator import Hit, Hits

__all__ = ["Hit", "Hits", "Hive", "HiveError", "Memory", "MemoryConfig", "__version__"]
