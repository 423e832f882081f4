"""The local journal (docs/engine.md): one SQLite file per account, the engine's memory across crashes.

It records, per folder, the UIDVALIDITY and the watermark (highest UID fully handled), and per
message an *intent* written before the server is touched, marked *deleting* before its original is
removed and completed after, and per message whose copies failed verification the count and reason.
It never holds a body, a subject or an address: only UIDs, sizes, the keyed message id and the keyed
digest of each copy sent.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imapcrypt.errors import ConfigError, JournalError
from imapcrypt.events import Direction

SCHEMA_VERSION = 4
# SQLite's file header is 100 bytes: a journal file shorter than that was cut (docs/engine.md).
_SQLITE_HEADER_BYTES = 100

_SCHEMA_V1 = """
CREATE TABLE folder (
    name TEXT PRIMARY KEY,
    uidvalidity INTEGER,
    watermark INTEGER NOT NULL DEFAULT 0,
    encrypted INTEGER NOT NULL DEFAULT 0,
    restored INTEGER NOT NULL DEFAULT 0,
    waiting INTEGER NOT NULL DEFAULT 0,
    last_run TEXT,
    last_error TEXT
);
CREATE TABLE intent (
    folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    src_uid INTEGER NOT NULL,
    direction TEXT NOT NULL,
    seal_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    uidnext INTEGER NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (folder, uidvalidity, src_uid, direction)
);
"""
# Version 2 (Gmail, docs/gmail.md): bytes APPENDed per UTC day, for the daily upload budget; and the
# X-GM-MSGIDs of originals on their way through Trash, so a crash between the move and the purge
# leaves nothing behind there.
_SCHEMA_V2 = """
CREATE TABLE upload (
    day TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
);
CREATE TABLE trash_purge (
    gmail_id INTEGER PRIMARY KEY,
    created TEXT NOT NULL
);
"""
# Version 3 (docs/engine.md, verification): the keyed digest of each copy as it was sent, so recovery trusts
# a copy on the server only when its bytes match; and the copies that failed verification per
# message, so a message the server keeps damaging is parked with its reason instead of retried forever.
_SCHEMA_V3 = """
ALTER TABLE intent ADD COLUMN digest TEXT NOT NULL DEFAULT '';
CREATE TABLE rejected (
    folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    src_uid INTEGER NOT NULL,
    direction TEXT NOT NULL,
    failures INTEGER NOT NULL,
    reason TEXT NOT NULL,
    parked INTEGER NOT NULL DEFAULT 0,
    updated TEXT NOT NULL,
    PRIMARY KEY (folder, uidvalidity, src_uid, direction)
);
"""
# Version 4 (docs/engine.md, many installations): whether the engine may have started removing an
# intent's original. Recovery keeps a copy whose original is gone only then; otherwise someone else
# removed the original and the copy goes too. Intents from before cannot tell: they count as deleting,
# as every intent did (the copy stays: a duplicate rather than a lost message).
_SCHEMA_V4 = """
ALTER TABLE intent ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
UPDATE intent SET deleting = 1
"""


def _damaged(path: Path, what: str) -> JournalError:
    """The error for a journal that cannot be trusted, with the way out."""
    return JournalError(
        f"the journal {path} {what}",
        f"nothing was changed on the server; move it aside (mv '{path}' '{path}.damaged') and run again: "
        "a new journal's first pass over a folder removes any copy it cannot vouch for before "
        "encrypting that message again",
    )


@dataclass(frozen=True)
class Intent:
    """A message the engine started to replace and has not finished with.

    `seal_id` names the copy being written (its X-Imapcrypt id, or for a restore the keyed id of the
    original's bytes); `size` is the copy's size; `uidnext` the folder's UIDNEXT before the APPEND, so
    recovery knows where a copy could be; `digest` the keyed digest (message/copy.py) of the copy's
    bytes as sent, the only proof recovery accepts that a copy on the server is this one ("" in
    intents written before schema 3: no copy is trusted for them); `deleting` whether the engine may
    have started removing the original (`Journal.mark_deleting`; True for intents from before schema 4).
    """

    folder: str
    uidvalidity: int
    src_uid: int
    direction: Direction
    seal_id: str
    size: int
    uidnext: int
    digest: str = ""
    deleting: bool = False


@dataclass(frozen=True)
class Rejected:
    """A message whose copies the server did not store as sent: how often, why, and whether it is
    parked (left as it is until the user asks for another try)."""

    folder: str
    src_uid: int
    direction: Direction
    failures: int
    reason: str
    parked: bool


@dataclass(frozen=True)
class FolderRecord:
    """What the journal knows of one folder."""

    name: str
    uidvalidity: int | None
    watermark: int
    encrypted: int
    restored: int
    waiting: int
    last_run: str | None
    last_error: str | None


class Journal:
    """An open journal file. Every write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # A journal that exists but was cut short would open as a new, empty one and forget the
        # intents in flight (their copies would be made again): refuse it instead. A new journal file
        # is never this short, as switching it to WAL below writes its first page at once.
        if path.exists() and path.stat().st_size < _SQLITE_HEADER_BYTES:
            raise _damaged(path, "is empty or cut short")
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a completion the engine acted on must survive a power cut, or recovery would redo it.
            self._db.execute("PRAGMA synchronous=FULL")
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise _damaged(path, "is damaged (SQLite's check fails)")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise _damaged(path, f"cannot be read ({exc})") from None
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the file; the journal object is unusable afterwards."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: journal schema {version} is newer than this imapcrypt understands",
                "upgrade imapcrypt (an older version must not rewrite a newer journal)",
            )
        steps = [(1, _SCHEMA_V1), (2, _SCHEMA_V2), (3, _SCHEMA_V3), (4, _SCHEMA_V4)]
        for target, schema in steps:
            if version >= target:
                continue
            with self._transaction():
                # executescript would COMMIT first: run the statements inside this transaction.
                for statement in schema.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")
            version = target

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def folder(self, name: str) -> FolderRecord:
        """The folder's record (an empty one if the journal never saw it)."""
        row = self._db.execute(
            "SELECT name, uidvalidity, watermark, encrypted, restored, waiting, last_run, last_error "
            "FROM folder WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return FolderRecord(name, None, 0, 0, 0, 0, None, None)
        return FolderRecord(*row)

    def folders(self) -> list[FolderRecord]:
        """Every folder the journal knows, by name."""
        names = [r[0] for r in self._db.execute("SELECT name FROM folder ORDER BY name")]
        return [self.folder(name) for name in names]

    def set_uidvalidity(self, name: str, uidvalidity: int) -> bool:
        """Record the folder's UIDVALIDITY; True when it changed (old UIDs then mean nothing)."""
        record = self.folder(name)
        if record.uidvalidity == uidvalidity:
            return False
        with self._transaction():
            self._ensure(name)
            self._db.execute(
                "UPDATE folder SET uidvalidity = ?, watermark = 0 WHERE name = ?", (uidvalidity, name)
            )
            self._db.execute("DELETE FROM intent WHERE folder = ? AND uidvalidity != ?", (name, uidvalidity))
            self._db.execute(
                "DELETE FROM rejected WHERE folder = ? AND uidvalidity != ?", (name, uidvalidity)
            )
        return record.uidvalidity is not None

    def advance_watermark(self, name: str, uid: int) -> None:
        """Move the watermark up to `uid` (never down): every UID up to it is handled."""
        with self._transaction():
            self._ensure(name)
            self._db.execute("UPDATE folder SET watermark = MAX(watermark, ?) WHERE name = ?", (uid, name))

    def note_run(self, name: str, waiting: int, error: str | None) -> None:
        """Record the end of a run over the folder: when, how many wait, the last error (or none)."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._transaction():
            self._ensure(name)
            self._db.execute(
                "UPDATE folder SET last_run = ?, waiting = ?, last_error = ? WHERE name = ?",
                (now, waiting, error, name),
            )

    def begin(self, intents: Sequence[Intent]) -> None:
        """Record the intents, in one transaction, before the first server write for any of them."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._transaction():
            for folder in {intent.folder for intent in intents}:
                self._ensure(folder)
            self._db.executemany(
                "INSERT OR REPLACE INTO intent (folder, uidvalidity, src_uid, direction, seal_id, size, "
                "uidnext, created, digest, deleting) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.folder,
                        i.uidvalidity,
                        i.src_uid,
                        i.direction,
                        i.seal_id,
                        i.size,
                        i.uidnext,
                        now,
                        i.digest,
                        i.deleting,
                    )
                    for i in intents
                ],
            )

    def mark_deleting(self, intents: Sequence[Intent]) -> None:
        """Record, committed, that the engine is about to remove these intents' originals: from now on
        recovery keeps their copies even when the originals are gone (the engine may have removed them)."""
        with self._transaction():
            self._db.executemany(
                "UPDATE intent SET deleting = 1 "
                "WHERE folder = ? AND uidvalidity = ? AND src_uid = ? AND direction = ?",
                [_key(i) for i in intents],
            )

    def complete(self, intents: Sequence[Intent]) -> None:
        """The originals are gone and their copies verified: forget the intents and count them."""
        with self._transaction():
            self._forget(intents)
            self._db.executemany(
                "DELETE FROM rejected WHERE folder = ? AND uidvalidity = ? AND src_uid = ? AND direction = ?",
                [_key(i) for i in intents],
            )
            for intent in intents:
                counter = (
                    "UPDATE folder SET encrypted = encrypted + 1 WHERE name = ?"
                    if intent.direction == "encrypt"
                    else "UPDATE folder SET restored = restored + 1 WHERE name = ?"
                )
                self._db.execute(counter, (intent.folder,))

    def abandon(self, intents: Sequence[Intent]) -> None:
        """No copies were written: forget the intents; the originals will be handled afresh."""
        with self._transaction():
            self._forget(intents)

    def _forget(self, intents: Sequence[Intent]) -> None:
        self._db.executemany(
            "DELETE FROM intent WHERE folder = ? AND uidvalidity = ? AND src_uid = ? AND direction = ?",
            [_key(i) for i in intents],
        )

    def pending(self, name: str) -> list[Intent]:
        """The folder's unfinished intents, oldest UID first."""
        rows = self._db.execute(
            "SELECT folder, uidvalidity, src_uid, direction, seal_id, size, uidnext, digest, deleting "
            "FROM intent WHERE folder = ? ORDER BY src_uid",
            (name,),
        ).fetchall()
        return [
            Intent(folder, uidvalidity, src_uid, direction, seal_id, size, uidnext, digest, bool(deleting))
            for folder, uidvalidity, src_uid, direction, seal_id, size, uidnext, digest, deleting in rows
        ]

    # -- copies the server did not store as sent (schema 3) ------------------------------------------
    def reject(self, intent: Intent, reason: str, park_after: int) -> Rejected:
        """The copy of `intent` failed verification (and was removed): forget the intent and count one
        more failure for its message, which is parked at `park_after` failures. Returns the message's
        record as it now stands."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        key = _key(intent)
        with self._transaction():
            self._forget([intent])
            self._db.execute(
                "INSERT INTO rejected VALUES (?, ?, ?, ?, 1, ?, 0, ?) ON CONFLICT DO UPDATE SET "
                "failures = failures + 1, reason = excluded.reason, updated = excluded.updated",
                (*key, reason, now),
            )
            self._db.execute(
                "UPDATE rejected SET parked = (failures >= ?) "
                "WHERE folder = ? AND uidvalidity = ? AND src_uid = ? AND direction = ?",
                (park_after, *key),
            )
            row = self._db.execute(
                "SELECT failures, reason, parked FROM rejected "
                "WHERE folder = ? AND uidvalidity = ? AND src_uid = ? AND direction = ?",
                key,
            ).fetchone()
        return Rejected(intent.folder, intent.src_uid, intent.direction, row[0], row[1], bool(row[2]))

    def parked(self, name: str, direction: Direction) -> set[int]:
        """The UIDs in folder `name` (at its current UIDVALIDITY) parked for `direction`."""
        rows = self._db.execute(
            "SELECT r.src_uid FROM rejected r JOIN folder f ON f.name = r.folder "
            "WHERE r.folder = ? AND r.uidvalidity = f.uidvalidity AND r.direction = ? AND r.parked",
            (name, direction),
        )
        return {int(row[0]) for row in rows}

    def rejections(self, name: str) -> list[Rejected]:
        """Every message of folder `name` whose copies failed verification, parked or not, by UID."""
        rows = self._db.execute(
            "SELECT folder, src_uid, direction, failures, reason, parked FROM rejected "
            "WHERE folder = ? ORDER BY src_uid",
            (name,),
        ).fetchall()
        return [Rejected(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

    def unpark(self, name: str) -> int:
        """Give every parked message of folder `name` another full set of tries; how many there were."""
        with self._transaction():
            return self._db.execute("DELETE FROM rejected WHERE folder = ? AND parked", (name,)).rowcount

    # -- daily upload budget and Gmail's Trash purges (schema 2) -----------------------------------
    def uploaded(self, day: str) -> int:
        """Bytes APPENDed on `day` (an ISO date, UTC)."""
        row = self._db.execute("SELECT bytes FROM upload WHERE day = ?", (day,)).fetchone()
        return int(row[0]) if row else 0

    def add_uploaded(self, day: str, size: int) -> None:
        """Count `size` more bytes APPENDed on `day`; older days are forgotten."""
        with self._transaction():
            self._db.execute("DELETE FROM upload WHERE day < ?", (day,))
            self._db.execute(
                "INSERT INTO upload VALUES (?, ?) ON CONFLICT(day) DO UPDATE SET bytes = bytes + ?",
                (day, size, size),
            )

    def note_purges(self, gmail_ids: Sequence[int]) -> None:
        """Remember originals about to be moved to Trash, until `purged` says they are gone."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO trash_purge VALUES (?, ?)", [(i, now) for i in gmail_ids]
            )

    def pending_purges(self) -> list[int]:
        """Originals moved to Trash (or about to be) that are not known to be purged yet."""
        return [int(r[0]) for r in self._db.execute("SELECT gmail_id FROM trash_purge ORDER BY gmail_id")]

    def purged(self, gmail_ids: Sequence[int]) -> None:
        """These originals are gone from Trash (or were never moved): forget them."""
        with self._transaction():
            self._db.executemany("DELETE FROM trash_purge WHERE gmail_id = ?", [(i,) for i in gmail_ids])

    def _ensure(self, name: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO folder (name) VALUES (?)", (name,))


def _key(intent: Intent) -> tuple[str, int, int, str]:
    """The columns that name an intent's message: folder, UIDVALIDITY, source UID, direction."""
    return (intent.folder, intent.uidvalidity, intent.src_uid, intent.direction)
