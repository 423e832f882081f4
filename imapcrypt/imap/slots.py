"""How many IMAP sessions this process holds per account (Gmail allows 15 in all)."""

from __future__ import annotations

import threading

from imapcrypt.config.model import Account
from imapcrypt.errors import TransientError


class ConnectionSlots:
    """At most `max_connections` open sessions per account in this process (Gmail allows 15 in all,
    shared with the user's phone and desktop clients)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], int] = {}

    def take(self, account: Account) -> None:
        """Count one more session for `account`, or raise TransientError when all slots are in use."""
        key = (account.host.lower(), account.username)
        with self._lock:
            if self._open.get(key, 0) >= account.max_connections:
                raise TransientError(
                    f"{account.host}: already {account.max_connections} connection(s) open for "
                    f"{account.username}",
                    "it will be retried when one closes (max_connections)",
                )
            self._open[key] = self._open.get(key, 0) + 1

    def give_back(self, account: Account) -> None:
        """Count one session for `account` as closed."""
        key = (account.host.lower(), account.username)
        with self._lock:
            self._open[key] = max(self._open.get(key, 0) - 1, 0)

    def in_use(self, account: Account) -> int:
        """How many sessions for `account` are open now."""
        with self._lock:
            return self._open.get((account.host.lower(), account.username), 0)


CONNECTION_SLOTS = ConnectionSlots()
