"""What one pass over a folder did, as counts (never a subject or an address), and the error that
stops a folder whose server changes every copy it stores."""

from __future__ import annotations

from dataclasses import dataclass

from imapcrypt.errors import ServerError


@dataclass
class FolderReport:
    """What one pass over a folder did (counts only: no subjects, no addresses)."""

    folder: str
    candidates: int = 0
    encrypted: int = 0
    restored: int = 0
    already_ours: int = 0
    sender_encrypted: int = 0
    too_young: int = 0
    marked_deleted: int = 0
    waiting: int = 0
    failed: int = 0
    recovered: int = 0
    would_encrypt: int = 0
    too_large: int = 0  # copies over the server's APPENDLIMIT: skipped, reported, never half-processed
    rejected: int = 0  # copies the server did not store as sent: removed, the original kept for a retry
    parked: int = 0  # messages whose copies failed verification MAX_VERIFY_FAILURES times: left alone
    # Copies stored but not to be found on the server even after NOOPs: originals kept, intents left
    # for the next run. A failure for the exit code, `status` and the tray, not "nothing to do".
    unverified: int = 0


class ServerAltersMessages(ServerError):
    """The server changes messages as it stores them, so no copy can ever be proven: nothing is
    deleted there, ever (docs/providers.md#servers-that-change-stored-mail)."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"{host} changes the messages it stores (an mbox server adding its own headers), so no "
            "encrypted copy can be verified; the mail stays as plaintext",
            "use a server that stores messages as sent (Maildir or a database); see docs/providers.md",
        )


def unverified_note(report: FolderReport) -> str | None:
    """The journal's last error for a run that left copies unverified (shown by `status`), or None."""
    if not report.unverified:
        return None
    return (
        f"{report.unverified} copies could not be verified on the server; "
        "their originals are kept and the next run checks again"
    )
