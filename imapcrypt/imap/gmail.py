"""The Gmail profile (docs/gmail.md): make the plaintext really go away, and keep its labels.

On Gmail a folder is a label over one message store, so deleting a message from INBOX only removes
the Inbox label: the plaintext stays in All Mail. `GmailRemover` therefore deletes an original by
moving it to the folder with the \\Trash special use (its name is localised) and, under policy
"purge", expunging it there, then checks that its X-GM-MSGID is gone from \\All. Before that,
`adopt` gives the verified copy the original's labels (\\Inbox and \\Important included) and flags,
and refuses a copy that Gmail merged into the original (same X-GM-MSGID).

The X-GM-MSGIDs of originals on their way through Trash are journalled first: after a crash between
the move and the purge, the next run purges them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from imapcrypt.config.model import OriginalPolicy
from imapcrypt.errors import ServerError
from imapcrypt.imap.session import ALL_MAIL, TRASH, Session
from imapcrypt.journal import Journal

log = logging.getLogger(__name__)

# Flags a copy must show like its original even if they changed after the header fetch.
CARRIED_FLAGS = (b"\\Seen", b"\\Flagged")


def _either(criteria_key: str, values: Sequence[int]) -> list[str | int]:
    """SEARCH criteria matching any of `values`: OR a OR b c (nested, as IMAP's OR takes two keys)."""
    criteria: list[str | int] = []
    for value in values[:-1]:
        criteria += ["OR", criteria_key, value]
    return [*criteria, criteria_key, values[-1]]


def find_by_gmail_id(session: Session, gmail_ids: Iterable[int]) -> dict[int, int]:
    """UID -> X-GM-MSGID in the selected folder for the messages with those ids."""
    wanted = sorted(set(gmail_ids))
    found: dict[int, int] = {}
    for start in range(0, len(wanted), 50):
        chunk = wanted[start : start + 50]
        uids = session.search(_either("X-GM-MSGID", chunk))
        found.update({uid: gid for uid, gid in session.gmail_ids(uids).items() if gid in chunk})
    return found


@dataclass
class GmailRemover:
    """Deletes originals on Gmail through the \\Trash folder; copies labels onto their copies."""

    policy: OriginalPolicy
    journal: Journal
    name: str = "gmail"
    _folders: dict[bytes, str] = field(default_factory=dict, repr=False)

    def _special(self, session: Session, use: bytes) -> str:
        if use not in self._folders:
            found = session.special_folder(use)
            if found is None:
                raise ServerError(
                    f"Gmail shows no folder with the {use.decode()} special use",
                    "in Gmail's settings, Labels tab, tick 'Show in IMAP' for Trash and All Mail",
                )
            self._folders[use] = found
        return self._folders[use]

    def refusal(self, session: Session, folder: str, uids: Sequence[int]) -> str | None:
        """Refuse when Trash or All Mail is hidden from IMAP: the plaintext could not be removed."""
        for use in (TRASH, ALL_MAIL):
            try:
                self._special(session, use)
            except ServerError:
                return f"Gmail shows no {use.decode()} folder over IMAP (enable 'Show in IMAP' for it)"
        return None

    def adopt(self, session: Session, folder: str, pairs: Mapping[int, int]) -> dict[int, int]:
        """Give each copy its original's labels and \\Seen/\\Flagged; return the pairs safe to remove.

        A pair whose copy has the original's X-GM-MSGID was merged by Gmail: it is left alone (the
        original stays). A pair whose original is already gone (recovery after a crash) is kept.
        """
        self._purge_leftovers(session, folder)
        if not pairs:
            return {}
        infos = session.gmail_info(sorted({*pairs, *pairs.values()}))
        kept: dict[int, int] = {}
        labels_for: dict[frozenset[str], list[int]] = {}
        flags_for: dict[bytes, list[int]] = {}
        for src, copy in pairs.items():
            original, stored = infos.get(src), infos.get(copy)
            if stored is None:
                continue
            if original is not None and original.gmail_id == stored.gmail_id:
                log.error(
                    "folder %s: Gmail merged the copy of uid %d into the original; kept it", folder, src
                )
                continue
            kept[src] = copy
            if original is None:
                continue
            missing = original.labels - stored.labels
            if missing:
                labels_for.setdefault(frozenset(missing), []).append(copy)
            for flag in CARRIED_FLAGS:
                if flag in original.flags and flag not in stored.flags:
                    flags_for.setdefault(flag, []).append(copy)
        for labels, copies in labels_for.items():
            session.add_gmail_labels(copies, labels)
        for flag, copies in flags_for.items():
            session.add_flags(copies, [flag])
        return kept

    def remove(self, session: Session, folder: str, uids: Sequence[int]) -> None:
        """Move `uids` to Trash, purge them there under "purge", and check they left All Mail."""
        if not uids:
            return
        trash = self._special(session, TRASH)
        gmail_ids = sorted(session.gmail_ids(uids).values())
        if self.policy == "purge":
            self.journal.note_purges(gmail_ids)
        session.move(uids, trash)
        if self.policy == "purge":
            self._purge(session, trash, gmail_ids)
        session.select(self._special(session, ALL_MAIL))
        left = find_by_gmail_id(session, gmail_ids)
        session.select(folder)
        if left:
            raise ServerError(
                f"{len(left)} original(s) are still in Gmail's All Mail after the move to Trash",
                "check that the account's profile is 'auto' or 'gmail'",
            )

    def _purge(self, session: Session, trash: str, gmail_ids: Sequence[int]) -> None:
        """Delete forever, from Trash, the messages with `gmail_ids` (those not there are skipped)."""
        session.select(trash)
        session.delete_uids(sorted(find_by_gmail_id(session, gmail_ids)))
        left = find_by_gmail_id(session, gmail_ids)
        if left:
            raise ServerError(f"{len(left)} original(s) could not be purged from Gmail's Trash")
        self.journal.purged(gmail_ids)

    def _purge_leftovers(self, session: Session, folder: str) -> None:
        """Finish purges an interrupted run left: originals that reached Trash and stayed there."""
        pending = self.journal.pending_purges()
        if not pending or self.policy != "purge":
            return
        log.info("purging %d original(s) an interrupted run left in Gmail's Trash", len(pending))
        self._purge(session, self._special(session, TRASH), pending)
        session.select(folder)
