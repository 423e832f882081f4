"""The journal (imapcrypt/journal.py) on its own: intents, watermarks, rejections, schema migrations."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from imapcrypt.errors import ConfigError
from imapcrypt.journal import _SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, SCHEMA_VERSION, Intent, Journal


def _intent(uid: int, folder: str = "INBOX", uidvalidity: int = 7) -> Intent:
    return Intent(folder, uidvalidity, uid, "encrypt", f"id{uid}", 100 + uid, 50, f"digest{uid}")


def test_intents_survive_a_reopen_until_completed_or_abandoned(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as journal:
        journal.set_uidvalidity("INBOX", 7)
        journal.begin([_intent(3), _intent(1), _intent(2)])
    with Journal(path) as journal:
        assert journal.pending("INBOX") == [_intent(1), _intent(2), _intent(3)]
        journal.complete([_intent(1)])
        journal.abandon([_intent(3)])
    with Journal(path) as journal:
        assert journal.pending("INBOX") == [_intent(2)]
        assert journal.pending("Archive") == []


def test_an_intent_marked_deleting_stays_marked_until_it_is_resolved(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as journal:
        journal.set_uidvalidity("INBOX", 7)
        journal.begin([_intent(1), _intent(2), _intent(3)])
        journal.mark_deleting([_intent(2), _intent(3)])
    with Journal(path) as journal:
        assert [(i.src_uid, i.deleting) for i in journal.pending("INBOX")] == [
            (1, False),
            (2, True),
            (3, True),
        ]
        journal.complete([replace(_intent(2), deleting=True)])
        # Written afresh (a new attempt after recovery dropped the old one), an intent starts undecided.
        journal.begin([_intent(3)])
        assert [(i.src_uid, i.deleting) for i in journal.pending("INBOX")] == [(1, False), (3, False)]


def test_the_watermark_moves_up_and_a_new_uidvalidity_starts_the_folder_afresh(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.sqlite3") as journal:
        assert not journal.set_uidvalidity("INBOX", 7)  # first seen: nothing to forget
        assert not journal.set_uidvalidity("INBOX", 7)
        journal.advance_watermark("INBOX", 40)
        assert journal.folder("INBOX").watermark == 40
        journal.begin([_intent(41)])
        assert journal.set_uidvalidity("INBOX", 8)  # the old UIDs mean nothing now
        assert journal.folder("INBOX").watermark == 0
        assert journal.pending("INBOX") == []


def test_a_message_is_parked_after_the_given_number_of_failures(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.set_uidvalidity("INBOX", 7)
        for attempt in range(1, 4):
            journal.begin([_intent(5)])
            rejected = journal.reject(_intent(5), "the stored copy differs", park_after=3)
            assert (rejected.failures, rejected.parked) == (attempt, attempt == 3)
        assert journal.pending("INBOX") == []
        assert journal.parked("INBOX", "encrypt") == {5}
        assert journal.parked("INBOX", "restore") == set()
        assert journal.unpark("INBOX") == 1
        assert journal.parked("INBOX", "encrypt") == set()


def test_a_journal_from_a_newer_imapcrypt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="is newer than this imapcrypt"):
        Journal(path)


def test_a_version_1_journal_migrates_to_version_2(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in _SCHEMA_V1.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO folder (name, watermark) VALUES ('INBOX', 42)")
        db.execute("INSERT INTO intent VALUES ('INBOX', 7, 3, 'encrypt', 'abc', 100, 9, 'then')")
        db.execute("PRAGMA user_version = 1")
    db.close()
    with Journal(path) as journal:
        assert journal.folder("INBOX").watermark == 42
        assert [(i.src_uid, i.digest, i.deleting) for i in journal.pending("INBOX")] == [(3, "", True)]
        journal.add_uploaded("2031-05-06", 10)
        journal.add_uploaded("2031-05-06", 5)
        assert journal.uploaded("2031-05-06") == 15
        journal.note_purges([11, 12])
        journal.purged([11])
        assert journal.pending_purges() == [12]
    check = sqlite3.connect(path)
    try:
        # On through version 3 (the copies' digests, docs/engine.md), which tests/test_verification.py
        # covers, and version 4 (below).
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    finally:
        check.close()


def test_a_version_3_journal_counts_its_pending_intents_as_deleting(tmp_path: Path) -> None:
    """Version 3 did not record whether an original's removal had begun: recovery must keep the copies
    of those intents whose originals are gone (docs/engine.md, many installations)."""
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in ";".join([_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3]).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO folder (name, uidvalidity, watermark) VALUES ('INBOX', 7, 2)")
        db.executemany(
            "INSERT INTO intent VALUES ('INBOX', 7, ?, ?, 'abc', 100, 9, 'then', ?)",
            [(3, "encrypt", "d3"), (4, "restore", "d4")],
        )
        db.execute("PRAGMA user_version = 3")
    db.close()
    with Journal(path) as journal:
        pending = journal.pending("INBOX")
        assert [(i.src_uid, i.direction, i.digest, i.deleting) for i in pending] == [
            (3, "encrypt", "d3", True),
            (4, "restore", "d4", True),
        ]
        journal.complete(pending)
        journal.begin([_intent(5)])  # written by this version: not deleting until marked
        assert [(i.src_uid, i.deleting) for i in journal.pending("INBOX")] == [(5, False)]
        assert journal.folder("INBOX").encrypted == journal.folder("INBOX").restored == 1
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    check.close()
