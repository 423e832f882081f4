"""How each kind of server lets the engine delete an original without touching anything else.

The profiles are described in docs/design.md#server-profiles.

The engine asks a `Remover` three things: "can you delete these now?" (before it appends anything,
so a refusal leaves no duplicate), "take over these verified copies" (Gmail: copy the labels; refuse
a copy merged into its original) and "delete them". Which remover serves a session is decided from
its capabilities and its `ServerProfile` (imap/profile.py), never from the server's name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from imapcrypt.config.model import OriginalPolicy
from imapcrypt.errors import ServerError
from imapcrypt.imap.gmail import GmailRemover
from imapcrypt.imap.profile import ServerProfile
from imapcrypt.imap.session import TRASH, Session
from imapcrypt.journal import Journal

log = logging.getLogger(__name__)


class Remover(Protocol):
    """Deletes originals from the selected folder once their copies are verified."""

    name: str

    def refusal(self, session: Session, folder: str, uids: Sequence[int]) -> str | None:
        """Why `uids` cannot be deleted safely right now, or None when they can."""

    def adopt(self, session: Session, folder: str, pairs: Mapping[int, int]) -> dict[int, int]:
        """Carry over to each verified copy what APPEND could not give it (original UID -> copy UID);
        the pairs whose originals may now be removed."""

    def remove(self, session: Session, folder: str, uids: Sequence[int]) -> None:
        """Delete `uids` from `folder` (left selected afterwards), touching no other message."""


@dataclass
class UidExpungeRemover:
    """UIDPLUS: `UID EXPUNGE` removes exactly our messages (policy purge) or MOVE to Trash (trash)."""

    policy: OriginalPolicy
    name: str = "uid-expunge"

    def refusal(self, session: Session, folder: str, uids: Sequence[int]) -> str | None:
        """UID EXPUNGE is always safe."""
        return None

    def adopt(self, session: Session, folder: str, pairs: Mapping[int, int]) -> dict[int, int]:
        """Flags and INTERNALDATE came with the APPEND: nothing to add."""
        return dict(pairs)

    def remove(self, session: Session, folder: str, uids: Sequence[int]) -> None:
        """Expunge exactly `uids`, or move them to Trash under policy "trash"."""
        trash = session.special_folder(TRASH) if self.policy == "trash" else None
        if trash and trash != folder:
            if session.can_move:
                session.move(uids, trash)
                return
            session.copy(uids, trash)
        session.delete_uids(uids)


@dataclass
class MoveToTrashRemover:
    """No UIDPLUS but MOVE: move originals to the \\Trash folder, then purge them there if asked.

    In Trash the moved messages are found among the UIDs above Trash's UIDNEXT before the move, by
    size; they are expunged only when no other message there carries \\Deleted.
    """

    policy: OriginalPolicy
    name: str = "move-to-trash"

    def refusal(self, session: Session, folder: str, uids: Sequence[int]) -> str | None:
        """Refuse when the server has no \\Trash folder to move to."""
        trash = session.special_folder(TRASH)
        if not trash or trash == folder:
            return "the server has neither UIDPLUS nor a \\Trash folder to move originals to"
        return None

    def adopt(self, session: Session, folder: str, pairs: Mapping[int, int]) -> dict[int, int]:
        """Flags and INTERNALDATE came with the APPEND: nothing to add."""
        return dict(pairs)

    def remove(self, session: Session, folder: str, uids: Sequence[int]) -> None:
        """Move `uids` to Trash; under policy "purge" expunge them there when that is safe."""
        trash = session.special_folder(TRASH)
        if not trash:
            raise ServerError("the server's \\Trash folder disappeared", "create a Trash folder")
        sizes = {info.size for info in session.fetch_info(uids, ["Message-ID"]).values()}
        first_new = session.uidnext(trash)
        session.move(uids, trash)
        if self.policy == "purge":
            self._purge(session, trash, first_new, sizes, len(uids))
        session.select(folder)

    @staticmethod
    def _purge(session: Session, trash: str, first_new: int, sizes: set[int], count: int) -> None:
        session.select(trash)
        arrived = session.fetch_info(session.uids_above(first_new - 1), ["Message-ID"])
        ours = sorted(uid for uid, info in arrived.items() if info.size in sizes)[:count]
        if session.deleted_uids():
            log.warning("left %d original(s) in Trash: other messages there are marked deleted", len(ours))
            return
        session.mark_deleted(ours)
        session.expunge_all()


@dataclass
class SoleExpungeRemover:
    """Neither UIDPLUS nor MOVE: a bare EXPUNGE, only while no other message carries \\Deleted."""

    policy: OriginalPolicy
    name: str = "sole-expunge"

    def refusal(self, session: Session, folder: str, uids: Sequence[int]) -> str | None:
        """Refuse while another message in the folder is marked \\Deleted (EXPUNGE would take it)."""
        others = set(session.deleted_uids()) - set(uids)
        if others:
            return (
                f"{len(others)} other message(s) in {folder} are marked deleted and this server "
                "cannot expunge single messages (no UIDPLUS, no MOVE)"
            )
        return None

    def adopt(self, session: Session, folder: str, pairs: Mapping[int, int]) -> dict[int, int]:
        """Flags and INTERNALDATE came with the APPEND: nothing to add."""
        return dict(pairs)

    def remove(self, session: Session, folder: str, uids: Sequence[int]) -> None:
        """Mark `uids` deleted and expunge, after checking again that nothing else is marked."""
        reason = self.refusal(session, folder, uids)
        if reason:
            raise ServerError(f"not deleting the originals: {reason}", "expunge that folder in your client")
        if self.policy == "trash":
            trash = session.special_folder(TRASH)
            if trash and trash != folder:
                session.copy(uids, trash)
        session.mark_deleted(uids)
        session.expunge_all()


def remover_for(session: Session, policy: OriginalPolicy, server: ServerProfile, journal: Journal) -> Remover:
    """The safest way this server offers to delete originals under `policy`.

    `server` is the session's profile, decided once; the Gmail profile notes originals on their way
    through Trash in `journal`. Both are required: without them Gmail would get a bare `UID EXPUNGE`,
    which there only removes a label and leaves the plaintext in All Mail.
    """
    if server.gmail:
        return GmailRemover(policy, journal)
    if session.can_expunge_uid:
        return UidExpungeRemover(policy)
    if session.can_move:
        return MoveToTrashRemover(policy)
    return SoleExpungeRemover(policy)
