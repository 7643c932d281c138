"""A stable share of the workflows, so N loaders can load one workspace side by side.

``Shard.parse("2/4")`` owns the workflows whose id hashes to the second of four buckets. The hash
is SHA-256 of the id (not Python's ``hash``, which changes per process), so every loader, on any
machine, agrees on which shard owns a workflow, and a workflow never moves while N stays the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from onepin_source.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as ``K/N`` is written)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, sep, count = text.strip().partition("/")
        if sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
            return cls(int(index), int(count))
        raise ConfigError(f"shard {text!r} is not K/N with 1 <= K <= N; use e.g. 1/4")

    def owns(self, workflow_id: str) -> bool:
        digest = hashlib.sha256(workflow_id.lower().encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    @property
    def suffix(self) -> str:
        """Names the shard's pipeline and staging dataset: ``shard2of4``."""
        return f"shard{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
