"""The restart policy of a local hive's agent processes (``restart:`` in config.yaml).

Its own small module: the keeper (one per agent process) imports it without the config's
YAML loader.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Restart policies of a local hive's agent processes (compose's ``restart:`` values).
RESTART_POLICIES = ("on-failure", "always", "no")


@dataclass
class RestartConfig:
    """What a local hive's keeper does when an agent process exits on its own: restart it
    (``on-failure``: when it failed; ``always``: also after exit status 0; ``no``: never),
    waiting ``backoff_s`` doubled per recent restart up to ``backoff_max_s``, and give up
    after ``max_restarts`` restarts within ``window_s`` seconds (supervisord's
    ``startretries``, compose's ``restart: on-failure``)."""

    policy: str = "on-failure"
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
