"""Decrypted messages kept in memory only (never on disk), bounded by bytes, least recently used first out.

`serve` keeps them parsed (pymap's MessageContent, which holds the message's bytes): a client that
opens a folder again is answered without decrypting or parsing anything.

A message is named by (account, folder, UIDVALIDITY, UID): an IMAP server never reuses that name for
other bytes, so an entry never goes stale; it is dropped only to make room.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from imapcrypt.serve import DEFAULT_CACHE_MB

DEFAULT_CACHE_BYTES = DEFAULT_CACHE_MB * 1024 * 1024

Key = tuple[str, str, int, int]
V = TypeVar("V")


class OriginalCache(Generic[V]):
    """A thread-safe LRU of decrypted messages (in any form) holding at most `limit` bytes of them."""

    def __init__(self, limit: int = DEFAULT_CACHE_BYTES) -> None:
        self.limit = limit
        self._entries: OrderedDict[Key, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, key: Key) -> V | None:
        """The message under `key`, now the most recently used; None if it is not held."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: Key, message: V, size: int) -> None:
        """Hold `message` (of `size` bytes), dropping the least recently used ones until it fits (one
        larger than the whole limit is not held at all: it is served and forgotten)."""
        if size > self.limit:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            while self._entries and self._bytes + size > self.limit:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
            self._entries[key] = (message, size)
            self._bytes += size
