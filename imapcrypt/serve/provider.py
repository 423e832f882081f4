"""The account's side of `imapcrypt serve`: the provider's folders through imapcrypt's own Session.

Blocking code, called from the server's worker threads: one provider connection per local client
session, used under a lock. What a client reads is the original message (an imapcrypt copy decrypted in
memory through gpg-agent, what `restore` would give back; any other message as stored), never written
anywhere but the encrypted search index. What a client appends is sealed exactly as the engine seals
(engine.seal_for) before it reaches the provider. UIDs, UIDVALIDITY, flags and INTERNALDATE are the
provider's own, so a client's cache stays valid across sessions and restarts. Nothing here logs a
subject or a body.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from imapcrypt.config.model import Account
from imapcrypt.engine import seal_for
from imapcrypt.errors import ImapcryptError, TransientError
from imapcrypt.imap.profile import server_profile
from imapcrypt.imap.session import Session
from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.serve.index import SearchIndex

log = logging.getLogger(__name__)
T = TypeVar("T")

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
    """One provider connection of an account, shared by the threads of one local client session.

    A connection the provider dropped (an idle timeout, a network change) is opened again: a read is
    retried once on the new connection, a change is not (it may have happened) and fails with the
    error, for the client to retry.
    """

    def __init__(
        self,
        account: Account,
        connect: Callable[[], Session],
        gpg: GnuPG,
        id_secret: bytes,
        *,
        passphrase: Callable[[], str | None],
        index: SearchIndex | None = None,
        on_decrypt: Callable[[], None] | None = None,
    ) -> None:
        self.account = account
        self.gpg = gpg
        self.id_secret = id_secret
        self.index = index
        self._on_decrypt = on_decrypt
        self.reconnects = 0  # how often a dropped connection was opened again (for tests and logs)
        self._connect = connect
        self._session: Session | None = connect()
        self._gmail = server_profile(self._session, account.profile).gmail  # decided once, as the engine does
        self._passphrase_source = passphrase
        self._passphrase: str | None = None
        self._passphrase_asked = False
        self._lock = threading.Lock()

    def close(self) -> None:
        """Log out of the provider."""
        with self._lock:
            if self._session is not None:
                self._session.logout()
                self._session = None

    def _run(self, work: Callable[[Session], T], *, retry: bool) -> T:
        with self._lock:
            for attempt in (1, 2):
                if self._session is None:
                    self._session = self._connect()
                    self.reconnects += 1
                    log.info("%s: provider connection opened again", self.account.name)
                try:
                    return work(self._session)
                except TransientError:
                    self._session.logout()  # closes what is left of it
                    self._session = None
                    if not retry or attempt == 2:
                        raise
            raise AssertionError("unreachable")

    @staticmethod
    def _select(session: Session, folder: str) -> None:
        if session.selected != folder:
            session.select(folder)

    def _passphrase_once(self) -> str | None:
        # Asked once per client session, and only when something needs decrypting.
        if not self._passphrase_asked:
            self._passphrase = self._passphrase_source()
            self._passphrase_asked = True
        return self._passphrase

    # -- folders -----------------------------------------------------------------------------------
    def folders(self) -> tuple[str, list[str]]:
        """The provider's hierarchy delimiter and every selectable folder's name."""
        return self._run(lambda s: (s.delimiter(), s.list_folders()), retry=True)

    def special_uses(self) -> dict[str, tuple[bytes, ...]]:
        """The provider's SPECIAL-USE attributes by folder (so a client finds Sent, Drafts, Trash)."""
        return self._run(lambda s: s.special_uses(), retry=True)

    def create(self, folder: str) -> None:
        """Create `folder` at the provider."""
        self._run(lambda s: s.create_folder(folder), retry=False)

    def delete(self, folder: str) -> None:
        """Delete `folder` at the provider."""

        self._run(lambda s: s.delete_folder(folder), retry=False)

    def rename(self, folder: str, new_name: str) -> None:
        """Rename `folder` at the provider."""

        def rename(session: Session) -> None:
            session.rename_folder(folder, new_name)
            session.selected = None

        self._run(rename, retry=False)

    def view(self, folder: str) -> FolderView:
        """`folder` as the provider has it now (SELECT, then flags, dates and sizes of all)."""

        def look(session: Session) -> FolderView:
            status = session.select(folder)
            found = session.fetch_all_flags() if status.exists else {}
            entries = tuple(
                Entry(uid, frozenset(f for f in flags if f.lower() != b"\\recent"), when, size)
                for uid, (flags, when, size) in sorted(found.items())
            )
            return FolderView(folder, status.uidvalidity, status.uidnext, entries)

        return self._run(look, retry=True)

    def has_news(self, folder: str) -> bool:
        """Whether `folder` may have changed at the provider since this connection last looked (a NOOP;
        True whenever the connection had to select it again, as it cannot tell then)."""

        def news(session: Session) -> bool:
            if session.selected != folder:
                session.select(folder)
                return True
            return session.noop_reports_change()

        return self._run(news, retry=True)

    # -- content -----------------------------------------------------------------------------------
    def originals(self, folder: str, uidvalidity: int, uids: Sequence[int]) -> dict[int, bytes]:
        """What a client is shown for `uids` (see `shown`): fetched and decrypted (several at once), and
        queued for the search index if there is one; UIDs gone from the provider are absent."""

        def fetch(session: Session) -> dict[int, bytes]:
            self._select(session, folder)
            return session.fetch_bodies(uids)

        stored = self._run(fetch, retry=True) if uids else {}
        if not stored:
            return {}
        passphrase = self._passphrase_once()
        if self._on_decrypt is not None:
            self._on_decrypt()
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
        if self.index is not None:
            self.index.add_later(self.account.name, folder, uidvalidity, opened)
        return opened

    # -- changes, passed through to the provider's copy ---------------------------------------------
    def store(
        self, folder: str, uids: Sequence[int], flags: Iterable[bytes], mode: str
    ) -> dict[int, frozenset[bytes]]:
        """STORE `flags` ("add", "remove" or "replace") on the provider's `uids`; their flags afterwards."""
        wanted = list(flags)

        def store(session: Session) -> dict[int, tuple[bytes, ...]]:
            self._select(session, folder)
            return session.store_flags(uids, wanted, mode)

        # Setting the same flags twice is harmless: a STORE is retried on a new connection.
        answer = self._run(store, retry=True)
        return {uid: frozenset(f for f in found if f.lower() != b"\\recent") for uid, found in answer.items()}

    def expunge(self, folder: str, uids: Sequence[int]) -> None:
        """Expunge the provider's `uids` (marked \\Deleted by the client)."""

        def expunge(session: Session) -> None:
            self._select(session, folder)
            session.expunge_uids(uids)

        self._run(expunge, retry=False)

    def copy(self, folder: str, uids: Sequence[int], destination: str) -> None:
        """Copy the provider's `uids` (the encrypted copies themselves) to `destination`."""

        def copy(session: Session) -> None:
            self._select(session, folder)
            session.copy(uids, destination)

        self._run(copy, retry=False)

    def move(self, folder: str, uids: Sequence[int], destination: str) -> None:
        """Move the provider's `uids` to `destination` (MOVE, else COPY, then delete exactly them)."""

        def move(session: Session) -> None:
            self._select(session, folder)
            if session.can_move:
                session.move(uids, destination)
            else:
                session.copy(uids, destination)
                session.delete_uids(uids)

        self._run(move, retry=False)

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
        kept = list(flags)
        return self._run(lambda s: s.append(folder, stored, kept, when), retry=False)
