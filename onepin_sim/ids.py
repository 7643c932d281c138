"""Deterministic, self-verifying ids for the simulated workspace.

Every id is a UUID4-shaped string whose low 48 bits carry the indices of the object it names
(workflow index, run index) and whose other bits are a keyed hash of them, so the simulator can
answer ``GET .../runs/{run_id}`` after a restart without remembering anything, and an id from
another seed (another workspace) does not verify and answers 404.
"""

from __future__ import annotations

import hashlib
import string
import uuid

_LOW_BITS = 48
_B_BITS = 32
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _digest(seed: int, kind: str, a: int, b: int, size: int = 10) -> bytes:
    return hashlib.blake2b(f"{seed}:{kind}:{a}:{b}".encode(), digest_size=size).digest()


def make_id(seed: int, kind: str, a: int, b: int = 0) -> str:
    """Return the UUID naming object ``(a, b)`` of ``kind`` in workspace ``seed``."""
    high = int.from_bytes(_digest(seed, kind, a, b), "big")  # 80 bits
    value = (high << _LOW_BITS) | (a << _B_BITS) | b
    return str(uuid.UUID(int=value, version=4))


def parse_id(seed: int, kind: str, text: str) -> tuple[int, int] | None:
    """Return ``(a, b)`` if ``text`` is an id this workspace issued for ``kind``, else None."""
    try:
        value = uuid.UUID(text).int
    except ValueError:
        return None
    low = value & ((1 << _LOW_BITS) - 1)
    a, b = low >> _B_BITS, low & ((1 << _B_BITS) - 1)
    return (a, b) if make_id(seed, kind, a, b) == str(uuid.UUID(text)) else None


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def make_api_key(seed: int) -> str:
    """The workspace's demo key: ``op_live_`` + 32 base62 characters, as Onepin issues them."""
    digest = _digest(seed, "api-key", 0, 0, size=32)
    return "op_live_" + "".join(_BASE62[byte % 62] for byte in digest)


def uuid_from(seed: int, kind: str, a: int = 0) -> str:
    """A stable UUID for things that are never looked up by id (users, workspace, api key id)."""
    return str(uuid.UUID(bytes=_digest(seed, kind, a, 0, size=16), version=4))
