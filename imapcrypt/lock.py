"""One process per account (docs/cli.md, running as a service): an exclusive lock file in the data dir.

The tray app and a daemon must never work on the same account at once. The lock is an OS file lock
(released by the kernel when its holder dies, so a crash never leaves a stale lock); the file also
holds the holder's PID so the second process can say who has it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from imapcrypt.config.model import account_file_stem
from imapcrypt.errors import LockedError


def lock_path(data_dir: Path, account_name: str) -> Path:
    """The lock file of one account (distinct account names never share one)."""
    return data_dir / "locks" / f"{account_file_stem(account_name)}.lock"


class AccountLock:
    """Holds the account's lock from `acquire()` (or `with`) until `release()`."""

    def __init__(self, data_dir: Path, account_name: str) -> None:
        self.account_name = account_name
        self.path = lock_path(data_dir, account_name)
        self._fd: int | None = None

    def acquire(self) -> AccountLock:
        """Take the lock or raise LockedError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"account {self.account_name!r} is in use by another imapcrypt process (PID {holder})",
                "stop that process first (the tray app or `imapcrypt run`), or use it instead",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AccountLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()
