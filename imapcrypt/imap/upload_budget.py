"""Gmail's upload limits, kept on our side (docs/gmail.md): a daily budget of bytes APPENDed.

Google caps IMAP uploads at 500 MB a day (Workspace; "Gmail bandwidth limits", support.google.com/a/
answer/1071518) and suspends IMAP for the account when the cap is crossed. A backlog of a large mailbox
would cross it on its first day, so imapcrypt counts what it APPENDs per UTC day in the journal and
pauses before the cap, naming the moment work resumes. Google does not say when its day starts; the
UTC day and a default 10% under the cap leave room for the user's other clients.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from imapcrypt.config.model import Account
from imapcrypt.errors import TransientError
from imapcrypt.journal import Journal

GMAIL_DAILY_UPLOAD_MB = 450.0
MB = 1_000_000


class UploadPaused(TransientError):
    """The day's upload budget is spent; `resume_at` is when the next day's budget starts."""

    def __init__(self, message: str, fix: str, resume_at: dt.datetime) -> None:
        super().__init__(message, fix)
        self.resume_at = resume_at


def daily_upload_limit(account: Account, gmail: bool) -> int:
    """The account's daily upload budget in bytes; 0 for none (the default away from Gmail)."""
    if account.daily_upload_mb is not None:
        return int(account.daily_upload_mb * MB)
    return int(GMAIL_DAILY_UPLOAD_MB * MB) if gmail else 0


@dataclass
class UploadBudget:
    """Bytes APPENDed today against a daily `limit` (0: unlimited), persisted in the journal."""

    journal: Journal
    limit: int
    clock: Callable[[], float]

    def today(self) -> str:
        """The current UTC day as an ISO date (the journal's key)."""
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).date().isoformat()

    def fitting(self, sizes: Sequence[int]) -> int:
        """How many of `sizes`, taken in order, fit in what is left of today's budget.

        On a day with nothing uploaded yet the first always fits, however large: waiting could
        never make it fit better.
        """
        if not self.limit:
            return len(sizes)
        used = self.journal.uploaded(self.today())
        count = 0
        for size in sizes:
            if used + size > self.limit and (used or count):
                break
            used += size
            count += 1
        return count

    def add(self, size: int) -> None:
        """Count `size` bytes APPENDed now."""
        if self.limit:
            self.journal.add_uploaded(self.today(), size)

    def paused(self) -> UploadPaused:
        """The error that stops the work for today, saying when it resumes."""
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        resume = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
        return UploadPaused(
            f"today's upload budget of {self.limit / MB:g} MB is spent; work resumes at "
            f"{resume:%Y-%m-%d %H:%M} UTC",
            "nothing to do: imapcrypt pauses before Gmail's daily upload limit (daily_upload_mb)",
            resume,
        )
