"""The search index of `imapcrypt serve` (docs/serve.md#search): decrypted mail's text, encrypted at rest.

One SQLCipher database in the data dir (`search/index.db`) whose key is in the OS keyring (entry
`search-index-key`); there is no file fallback: a key lying next to the database would protect
nothing, so without a keyring there is no index and SEARCH decrypts as it goes. The text of each
message (subject, addresses, the plain text and the text of its HTML) sits in an FTS5 table with the
trigram tokenizer, which answers IMAP's case-insensitive substring search from the index.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import logging
import queue
import secrets as random_source
import threading
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring.errors
import nh3

from imapcrypt.errors import ConfigError, CredentialsError
from imapcrypt.message.headers import decode_words
from imapcrypt.private import private_dir, private_file
from imapcrypt.secrets import SERVICE, keyring_backend

log = logging.getLogger(__name__)
KEY_ENTRY = "search-index-key"
INDEX_FILE = Path("search") / "index.db"
# IMAP search keys the index answers, and the columns each one looks in.
COLUMNS = {
    b"SUBJECT": ("subject",),
    b"FROM": ("sender",),
    b"TO": ("recipients",),
    b"CC": ("recipients",),
    b"BODY": ("body",),
    b"TEXT": ("subject", "sender", "recipients", "body"),
}
_parser = email.parser.BytesParser(policy=email.policy.default)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
    UNIQUE (account, folder, uidvalidity, uid)
);
CREATE VIRTUAL TABLE IF NOT EXISTS text USING fts5(subject, sender, recipients, body, tokenize='trigram');
"""


def index_key(create: bool) -> str | None:
    """The index's key from the OS keyring (made when `create`); None if there is none yet.

    Raises CredentialsError when there is no usable OS keyring.
    """
    try:
        backend = keyring_backend()
        key = backend.get_password(SERVICE, KEY_ENTRY)
        if key is None and create:
            key = random_source.token_hex(32)
            backend.set_password(SERVICE, KEY_ENTRY, key)
        return key
    except keyring.errors.KeyringError:
        raise CredentialsError(
            "the search index needs an OS keyring for its key",
            "run a Secret Service (e.g. gnome-keyring); until then SEARCH decrypts as it goes",
        ) from None


def _header(message: email.message.Message, *names: str) -> str:
    return " ".join(decode_words(str(v)) for name in names for v in message.get_all(name, []))


def _text(part: email.message.EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken transfer encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def extract(original: bytes) -> tuple[str, str, str, str]:
    """Subject, sender, recipients and body text of a message, as a reader would see them."""
    message = _parser.parsebytes(original)
    bodies: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text" or part.get_filename():
            continue
        assert isinstance(part, email.message.EmailMessage)  # noqa: S101 - the default policy makes one
        text = _text(part)
        # HTML's text without its tags (nh3 with no tags allowed keeps only the text).
        bodies.append(nh3.clean(text, tags=set()) if part.get_content_subtype() == "html" else text)
    return (
        _header(message, "Subject"),
        _header(message, "From", "Sender", "Reply-To"),
        _header(message, "To", "Cc", "Bcc"),
        "\n".join(bodies),
    )


@dataclass(frozen=True)
class Hit:
    """One message `imapcrypt search` found."""

    account: str
    folder: str
    uid: int
    sender: str
    subject: str


class SearchIndex:
    """The index database, shared by the server's threads."""

    def __init__(self, path: Path, key: str) -> None:
        try:  # the extra `serve`: imported only when an index is opened
            import sqlcipher3  # noqa: PLC0415
        except ImportError:
            raise ConfigError(
                "the search index needs sqlcipher3, which is not installed", "pip install 'imapcrypt[serve]'"
            ) from None
        private_dir(path.parent)
        self.path = path
        try:
            self._db = self._open(sqlcipher3, key)
        except sqlcipher3.DatabaseError:
            # Another key made it (the keyring was reset): it cannot be read, and it can be rebuilt.
            log.warning("search index: made with another key; starting a new one")
            _remove_files(path)
            self._db = self._open(sqlcipher3, key)
        # SQLite creates its files under the umask; encrypted or not, they are the user's alone.
        for made in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
            private_file(made)
        self._lock = threading.Lock()
        # Messages a client had decrypted are indexed by this thread, off the client's path.
        self._queue: queue.Queue[tuple[str, str, int, dict[int, bytes]] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="imapcrypt-serve-index-writer", daemon=True)
        self._writer.start()

    def _open(self, sqlcipher3: Any, key: str) -> Any:
        db = sqlcipher3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute(f"PRAGMA key = \"x'{key}'\"")  # a raw 256-bit key: no passphrase stretching
            # The index can always be rebuilt from the mailbox: a write-ahead log, no sync per message.
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Index what is queued, then close the database."""
        self._queue.put(None)
        self._writer.join()
        with self._lock:
            self._db.close()

    def add_later(self, account: str, folder: str, uidvalidity: int, originals: dict[int, bytes]) -> None:
        """Queue `originals` to be indexed by the writer thread (see `flush`)."""
        self._queue.put((account, folder, uidvalidity, originals))

    def flush(self) -> None:
        """Wait until everything queued is indexed."""
        self._queue.join()

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self.add(*item)
            except Exception as exc:  # what does not index is found by decrypting instead
                # The error's name only: its text might quote the message.
                log.error(
                    "search index: %d message(s) not indexed (%s)",
                    len(item[3]) if item else 0,
                    type(exc).__name__,
                )
            finally:
                self._queue.task_done()

    def add(self, account: str, folder: str, uidvalidity: int, originals: dict[int, bytes]) -> None:
        """Index the text of `originals` (UID -> message; again, for one that was), in one transaction."""
        texts = {uid: extract(raw) for uid, raw in originals.items()}
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._drop(account, folder, uidvalidity, texts)
                for uid, text in texts.items():
                    row = self._db.execute(
                        "INSERT INTO docs (account, folder, uidvalidity, uid) VALUES (?, ?, ?, ?)",
                        (account, folder, uidvalidity, uid),
                    ).lastrowid
                    self._db.execute(
                        "INSERT INTO text (rowid, subject, sender, recipients, body) VALUES (?, ?, ?, ?, ?)",
                        (row, *text),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _drop(self, account: str, folder: str, uidvalidity: int, uids: Iterable[int]) -> None:
        for uid in uids:
            found = self._db.execute(
                "SELECT id FROM docs WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?",
                (account, folder, uidvalidity, uid),
            ).fetchone()
            if found is not None:
                self._db.execute("DELETE FROM text WHERE rowid = ?", found)
                self._db.execute("DELETE FROM docs WHERE id = ?", found)

    def forget(self, account: str, folder: str, uidvalidity: int, uids: Iterable[int]) -> None:
        """Drop messages that left the folder."""
        with self._lock:
            self._drop(account, folder, uidvalidity, uids)

    def forget_other_validities(self, account: str, folder: str, uidvalidity: int) -> int:
        """Drop what was indexed of the folder under another UIDVALIDITY (its UIDs name other mail now);
        how many messages that was."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM docs WHERE account = ? AND folder = ? AND uidvalidity != ?",
                (account, folder, uidvalidity),
            ).fetchall()
            self._db.execute("BEGIN")
            for row in rows:
                self._db.execute("DELETE FROM text WHERE rowid = ?", row)
                self._db.execute("DELETE FROM docs WHERE id = ?", row)
            self._db.execute("COMMIT")
        return len(rows)

    def indexed(self, account: str, folder: str, uidvalidity: int) -> set[int]:
        """The UIDs of the folder that are indexed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT uid FROM docs WHERE account = ? AND folder = ? AND uidvalidity = ?",
                (account, folder, uidvalidity),
            ).fetchall()
        return {int(uid) for (uid,) in rows}

    def search(self, account: str, folder: str, uidvalidity: int, key: bytes, words: str) -> set[int]:
        """UIDs of the folder whose `key` text (a name in COLUMNS) contains `words`, ignoring case."""
        columns = COLUMNS[key]
        if len(words) >= 3:
            # The trigram index answers a quoted phrase as a case-insensitive substring.
            where = "text MATCH ?"
            values: tuple[str, ...] = ("{" + " ".join(columns) + '} : "' + words.replace('"', '""') + '"',)
        else:  # shorter than a trigram: look at the text itself
            where = " OR ".join(f"instr(lower(text.{column}), lower(?)) > 0" for column in columns)
            values = (words,) * len(columns)
        # The text table is asked first (a subquery), so the trigram index does the work once.
        query = (
            "SELECT uid FROM docs WHERE account = ? AND folder = ? AND uidvalidity = ? AND id IN "  # noqa: S608 - columns from COLUMNS
            f"(SELECT rowid FROM text WHERE {where})"
        )
        with self._lock:
            rows = self._db.execute(query, (account, folder, uidvalidity, *values)).fetchall()
        return {int(uid) for (uid,) in rows}

    def find(self, words: str, account: str | None = None, folder: str | None = None) -> list[Hit]:
        """Every indexed message (of `account`, of `folder`) whose text contains `words`, ignoring case."""
        matches: list[Hit] = []
        with self._lock:
            places = self._db.execute("SELECT DISTINCT account, folder, uidvalidity FROM docs").fetchall()
        for place_account, place_folder, uidvalidity in places:
            if account not in (None, place_account) or folder not in (None, place_folder):
                continue
            uids = self.search(place_account, place_folder, uidvalidity, b"TEXT", words)
            with self._lock:
                for uid in sorted(uids):
                    sender, subject = self._db.execute(
                        "SELECT text.sender, text.subject FROM docs JOIN text ON text.rowid = docs.id WHERE "
                        "docs.account = ? AND docs.folder = ? AND docs.uidvalidity = ? AND docs.uid = ?",
                        (place_account, place_folder, uidvalidity, uid),
                    ).fetchone()
                    matches.append(Hit(place_account, place_folder, uid, sender, subject))
        return matches

    def count(self) -> int:
        """How many messages are indexed."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM docs").fetchone()[0])


def open_index(data_dir: Path, create: bool = True) -> SearchIndex | None:
    """The index in `data_dir`, created (with its key) on first use when `create`; None if there is
    none and `create` is false. CredentialsError without a keyring."""
    key = index_key(create)
    if key is None or (not create and not (data_dir / INDEX_FILE).exists()):
        return None
    return SearchIndex(data_dir / INDEX_FILE, key)


def _remove_files(path: Path) -> None:
    for made in (path, *(path.with_name(path.name + end) for end in ("-journal", "-wal", "-shm"))):
        made.unlink(missing_ok=True)


def drop_index(data_dir: Path) -> bool:
    """Delete the index and its key; whether there was one."""
    path = data_dir / INDEX_FILE
    existed = path.exists()
    _remove_files(path)
    with suppress(keyring.errors.KeyringError):  # no keyring, or no key in it: nothing to delete
        keyring_backend().delete_password(SERVICE, KEY_ENTRY)
    return existed


def uids_matching(
    index: SearchIndex, where: tuple[str, str, int], terms: Sequence[tuple[bytes, str]]
) -> set[int]:
    """UIDs matching every (key, words) of `terms` in the folder `where` = (account, folder, uidvalidity)."""
    found: set[int] | None = None
    for key, words in terms:
        matches = index.search(*where, key, words)
        found = matches if found is None else found & matches
    return found or set()
