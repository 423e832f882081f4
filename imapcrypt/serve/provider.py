"""The account's side of `imapcrypt serve`: the provider's folders through imapcrypt's own Session.

Blocking code, called from the server's worker threads: one provider connection per local client
session, used under a lock. What a client reads is the original message (an imapcrypt copy decrypted in
memory through gpg-agent, what `restore` would give back; any other message as stored), kept in the
in-memory cache only. What a client appends is sealed exactly as the engine seals (engine.seal_for)
before it reaches the provider. UIDs, UIDVALIDITY, flags and INTERNALDATE are the provider's own, so a
client's cache stays valid across sessions and restarts. Nothing here logs a subject or a body.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from imapcrypt.config.model import Account
from imapcrypt.engine import seal_for
from imapcrypt.errors import ImapcryptError
from imapcrypt.imap.removers import uses_gmail
from imapcrypt.imap.session import Session
from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.serve.cache import OriginalCache

log = logging.getLogger(__name__)

NOTE_HEADER = "X-Imapcrypt-Note"
# gpg runs as one process per message: a few at once open a folder faster without starving the machine.
DECRYPT_WORKERS = 4
_NOTE_PREFIX = NOTE_HEADER.encode("ascii") + b":"


@dataclass(frozen=True)
class Entry:
    """One provider message's metadata: what a client sees before it asks for content."""

    uid: int
    flags: frozenset[bytes]
    internaldate: dt.datetime
    size: int


@dataclass(frozen=True)
class FolderView:
    """A folder as the provider has it now: UIDVALIDITY, UIDNEXT and every message, by ascending UID."""

    name: str
    uidvalidity: int
    uidnext: int
    entries: tuple[Entry, ...]


def with_note(raw: bytes, why: str) -> bytes:
    """`raw` as stored, with a first header field saying that imapcrypt could not decrypt it and why:
    the client shows the message as itself (a client that does OpenPGP may still open it)."""
    reason = " ".join(why.split())[:300]
    note = f"{NOTE_HEADER}: imapcrypt could not decrypt this message ({reason}); it is shown as stored\r\n"
    return note.encode("utf-8", "replace") + raw


def shown(raw: bytes, gpg: GnuPG, passphrase: str | None) -> bytes:
    """What a client is shown for the stored message `raw`: an imapcrypt copy decrypted to its original,
    any other message as it is, and a copy that does not decrypt as itself with a note (never raises)."""
    if envelope.classify(raw) is not envelope.Kind.OURS:
        return raw
    try:
        return envelope.restore(raw, gpg, passphrase)
    except ImapcryptError as exc:
        return with_note(raw, exc.message)


class Provider:
    """One provider connection of an account, shared by the threads of one local client session."""

    def __init__(
        self,
        account: Account,
        session: Session,
        gpg: GnuPG,
        id_secret: bytes,
        *,
        cache: OriginalCache,
        passphrase: Callable[[], str | None],
    ) -> None:
        self.account = account
        self.session = session
        self.gpg = gpg
        self.id_secret = id_secret
        self.cache = cache
        self._passphrase_source = passphrase
        self._passphrase: str | None = None
        self._passphrase_asked = False
        self._lock = threading.Lock()
        self._gmail = uses_gmail(session, account.profile)

    def close(self) -> None:
        """Log out of the provider."""
        with self._lock:
            self.session.logout()

    def _select(self, folder: str) -> None:
        if self.session.selected != folder:
            self.session.select(folder)

    def _passphrase_once(self) -> str | None:
        # Asked once per client session, and only when something needs decrypting.
        if not self._passphrase_asked:
            self._passphrase = self._passphrase_source()
            self._passphrase_asked = True
        return self._passphrase

    # -- folders -----------------------------------------------------------------------------------
    def folders(self) -> tuple[str, list[str]]:
        """The provider's hierarchy delimiter and every selectable folder's name."""
        with self._lock:
            return self.session.delimiter(), self.session.list_folders()

    def create(self, folder: str) -> None:
        """Create `folder` at the provider."""
        with self._lock:
            self.session.create_folder(folder)

    def delete(self, folder: str) -> None:
        """Delete `folder` at the provider."""
        with self._lock:
            if self.session.selected == folder:
                self.session.selected = None
            self.session.delete_folder(folder)

    def rename(self, folder: str, new_name: str) -> None:
        """Rename `folder` at the provider."""
        with self._lock:
            self.session.rename_folder(folder, new_name)
            self.session.selected = None

    def view(self, folder: str) -> FolderView:
        """`folder` as the provider has it now (SELECT, then flags, dates and sizes of all)."""
        with self._lock:
            status = self.session.select(folder)
            found = self.session.fetch_all_flags() if status.exists else {}
        entries = tuple(
            Entry(uid, frozenset(f for f in flags if f.lower() != b"\\recent"), when, size)
            for uid, (flags, when, size) in sorted(found.items())
        )
        return FolderView(folder, status.uidvalidity, status.uidnext, entries)

    # -- content -----------------------------------------------------------------------------------
    def originals(self, folder: str, uidvalidity: int, uids: Sequence[int]) -> dict[int, bytes]:
        """What a client is shown for `uids` (see `shown`), from the cache or fetched and decrypted
        (several at once); UIDs gone from the provider are absent."""
        key = (self.account.name, folder)
        result: dict[int, bytes] = {}
        missing: list[int] = []
        for uid in uids:
            held = self.cache.get((*key, uidvalidity, uid))
            if held is None:
                missing.append(uid)
            else:
                result[uid] = held
        if not missing:
            return result
        with self._lock:
            self._select(folder)
            stored = self.session.fetch_bodies(missing)
        passphrase = self._passphrase_once()
        with ThreadPoolExecutor(DECRYPT_WORKERS, thread_name_prefix="imapcrypt-serve-open") as pool:
            opened = dict(
                zip(
                    stored,
                    pool.map(lambda raw: shown(raw, self.gpg, passphrase), stored.values()),
                    strict=True,
                )
            )
        for uid, original in opened.items():
            if original is not stored[uid] and original.startswith(_NOTE_PREFIX):
                log.warning(
                    "%s: uid %d in %s does not decrypt; shown as stored", self.account.name, uid, folder
                )
            self.cache.put((*key, uidvalidity, uid), original)
            result[uid] = original
        return result

    # -- changes, passed through to the provider's copy ---------------------------------------------
    def store(
        self, folder: str, uids: Sequence[int], flags: Iterable[bytes], mode: str
    ) -> dict[int, frozenset[bytes]]:
        """STORE `flags` ("add", "remove" or "replace") on the provider's `uids`; their flags afterwards."""
        with self._lock:
            self._select(folder)
            answer = self.session.store_flags(uids, list(flags), mode)
        return {uid: frozenset(f for f in found if f.lower() != b"\\recent") for uid, found in answer.items()}

    def expunge(self, folder: str, uids: Sequence[int]) -> None:
        """Expunge the provider's `uids` (marked \\Deleted by the client)."""
        with self._lock:
            self._select(folder)
            self.session.expunge_uids(uids)

    def copy(self, folder: str, uids: Sequence[int], destination: str) -> None:
        """Copy the provider's `uids` (the encrypted copies themselves) to `destination`."""
        with self._lock:
            self._select(folder)
            self.session.copy(uids, destination)

    def move(self, folder: str, uids: Sequence[int], destination: str) -> None:
        """Move the provider's `uids` to `destination` (MOVE, else COPY, then delete exactly them)."""
        with self._lock:
            self._select(folder)
            if self.session.can_move:
                self.session.move(uids, destination)
            else:
                self.session.copy(uids, destination)
                self.session.delete_uids(uids)

    def append(self, folder: str, raw: bytes, flags: Iterable[bytes], when: dt.datetime) -> int | None:
        """Seal `raw` as the engine does and APPEND the sealed copy; its UID when the provider says it.

        A message that is already encrypted by its sender (or already ours) is stored as it is.
        """
        # As the engine decides (docs/format.md): plaintext is sealed; our copies and, unless the
        # account says otherwise, mail its sender encrypted are stored as they are.
        kind = envelope.classify(raw)
        seal = kind is envelope.Kind.PLAINTEXT or (
            kind is not envelope.Kind.OURS and self.account.encrypt_encrypted
        )
        stored = (
            seal_for(self.account, self.gpg, self.id_secret, raw, gmail=self._gmail).message if seal else raw
        )
        with self._lock:
            return self.session.append(folder, stored, flags, when)
