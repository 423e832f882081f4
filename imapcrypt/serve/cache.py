"""Decrypted messages kept in memory only (never on disk), bounded by bytes, least recently used first out.

A message is named by (account, folder, UIDVALIDITY, UID): an IMAP server never reuses that name for
other bytes, so an entry never goes stale; it is dropped only to make room.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024

Key = tuple[str, str, int, int]


class OriginalCache:
    """A thread-safe LRU of decrypted messages holding at most `limit` bytes."""

    def __init__(self, limit: int = DEFAULT_CACHE_BYTES) -> None:
        self.limit = limit
        self._entries: OrderedDict[Key, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, key: Key) -> bytes | None:
        """The message under `key`, now the most recently used; None if it is not held."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Key, message: bytes) -> None:
        """Hold `message`, dropping the least recently used ones until it fits (one larger than the
        whole limit is not held at all: it is served and forgotten)."""
        if len(message) > self.limit:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            while self._entries and self._bytes + len(message) > self.limit:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)
            self._entries[key] = message
            self._bytes += len(message)
