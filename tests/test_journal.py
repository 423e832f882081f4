"""The journal (imapcrypt/journal.py) on its own: intents, watermarks, rejections, schema migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from imapcrypt.errors import ConfigError
from imapcrypt.journal import _SCHEMA_V1, SCHEMA_VERSION, Intent, Journal


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
        assert [(i.src_uid, i.digest) for i in journal.pending("INBOX")] == [(3, "")]
        journal.add_uploaded("2031-05-06", 10)
        journal.add_uploaded("2031-05-06", 5)
        assert journal.uploaded("2031-05-06") == 15
        journal.note_purges([11, 12])
        journal.purged([11])
        assert journal.pending_purges() == [12]
    check = sqlite3.connect(path)
    try:
        # On through version 3 (the copies' digests, docs/engine.md), which tests/test_verification.py covers.
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    finally:
        check.close()
