"""Built passes kept by version, so a pass is signed once per change, not once per fetch.

A pass's version is the digest of everything it is built from (the card's fields and the
signing configuration's identity): while it is unchanged, the stored bytes are the pass,
byte for byte. `PassCache` keeps recent builds in memory, bounded in bytes, least
recently used first out; `wallet.store.passes` keeps the last build of every pass in
PostgreSQL (`pass_cache`), shared by every process and replica.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from typing import Any


def version(card: Any, signing: str) -> bytes:
    """The digest of a card and the signing configuration it is signed with (e.g. the
    configuration's update time).

    A card is a frozen dataclass of strings, numbers, datetimes and tuples of such
    dataclasses, whose repr names every field and value, always the same way; it is
    an order of magnitude cheaper than walking the fields into JSON.
    """
    if not dataclasses.is_dataclass(card):
        raise TypeError("a pass card is a dataclass")
    return hashlib.sha256(f"{card!r}\n{signing}".encode()).digest()


class PassCache:
    """Recent builds by (pass key, version), at most `max_bytes` of them."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: collections.OrderedDict[str, tuple[bytes, bytes]] = collections.OrderedDict()
        self.size = 0
        self.hits = 0
        self.misses = 0
        self.built = 0  # passes built and signed by the process, counted by its caller

    def get(self, key: str, version_: bytes) -> bytes | None:
        found = self._items.get(key)
        if found is None or found[0] != version_:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: str, version_: bytes, body: bytes) -> None:
        """Keep this build as the pass's current one (an older version is replaced)."""
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old[1])
        if len(body) > self.max_bytes:
            return
        self._items[key] = (version_, body)
        self.size += len(body)
        while self.size > self.max_bytes:
            _, (_, dropped) = self._items.popitem(last=False)
            self.size -= len(dropped)

    def clear(self) -> None:
        self._items.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._items)
