"""The local journal (docs/engine.md): one SQLite file per account, the engine's memory across crashes.

It records, per folder, the UIDVALIDITY and the watermark (highest UID fully handled), and per
message an *intent* written before the server is touched and completed after. It never holds a body,
a subject or an address: only UIDs, sizes and the keyed message id.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imapcrypt.errors import ConfigError
from imapcrypt.events import Direction

SCHEMA_VERSION = 2

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


@dataclass(frozen=True)
class Intent:
    """A message the engine started to replace and has not finished with.

    `seal_id` names the copy being written (its X-Imapcrypt id, or for a restore the keyed id of the
    original's bytes); `size` is the copy's size; `uidnext` the folder's UIDNEXT before the APPEND, so
    recovery knows where a copy could be.
    """

    folder: str
    uidvalidity: int
    src_uid: int
    direction: Direction
    seal_id: str
    size: int
    uidnext: int


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
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a completion the engine acted on must survive a power cut, or recovery would redo it.
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

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
        steps = [(1, _SCHEMA_V1), (2, _SCHEMA_V2)]
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
                "INSERT OR REPLACE INTO intent VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (i.folder, i.uidvalidity, i.src_uid, i.direction, i.seal_id, i.size, i.uidnext, now)
                    for i in intents
                ],
            )

    def complete(self, intents: Sequence[Intent]) -> None:
        """The originals are gone and their copies verified: forget the intents and count them."""
        with self._transaction():
            self._forget(intents)
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
            [(i.folder, i.uidvalidity, i.src_uid, i.direction) for i in intents],
        )

    def pending(self, name: str) -> list[Intent]:
        """The folder's unfinished intents, oldest UID first."""
        rows = self._db.execute(
            "SELECT folder, uidvalidity, src_uid, direction, seal_id, size, uidnext "
            "FROM intent WHERE folder = ? ORDER BY src_uid",
            (name,),
        ).fetchall()
        return [Intent(*row) for row in rows]

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
