"""The search index of `imapcrypt serve` (docs/serve.md#search): built in the background, encrypted at
rest with a key from the OS keyring, answering SEARCH without decrypting, updated as mail arrives."""

from __future__ import annotations

import imaplib
import os
import random
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapcrypt.cli.main import main
from imapcrypt.message import envelope
from imapcrypt.secrets import SERVICE
from imapcrypt.serve import provider as provider_module
from imapcrypt.serve.index import INDEX_FILE, KEY_ENTRY, SearchIndex, drop_index
from imapcrypt.serve.server import LOOPBACK, LocalServer, ServeSettings
from tests.fixtures.corpus import BODY_MARK, SUBJECT_MARK, make_message
from tests.fixtures.engine import Rig
from tests.fixtures.keyrings import MemoryKeyring
from tests.fixtures.waiting import wait_for
from tests.test_serve import PASSWORD, encrypted_rig, ok

SETTINGS = ServeSettings(port=0, poll_seconds=0.1, wrong_password_pause=0.0, index_seconds=0.2)


@pytest.fixture
def indexed(rig: Rig, memory_keyring: MemoryKeyring) -> Iterator[LocalServer]:
    """Six encrypted messages behind a server whose index has made one full pass."""
    encrypted_rig(rig, 6)
    with LocalServer(rig.config(), PASSWORD, SETTINGS) as server:
        assert server.indexer is not None
        assert server.indexer.pass_done.wait(120)
        yield server


def uid_search(port: int, name: str, *criteria: str) -> list[int]:
    client = imaplib.IMAP4(LOOPBACK, port, timeout=60)
    client.login(name, PASSWORD)
    ok(client.select("INBOX"))
    found = [int(u) for u in ok(client.uid("SEARCH", *criteria))[0].split()]  # type: ignore[union-attr]
    client.logout()
    return found


def by_index(rig: Rig) -> dict[int, int]:
    """Seed number -> provider UID."""
    return {
        int(re.search(rb"Zebra (\d+)", raw).group(1)): uid  # type: ignore[union-attr]
        for uid, raw in {m.uid: envelope.restore(m.body, rig.gpg) for m in rig.mailbox.state()}.items()
    }


def test_the_index_is_built_encrypted_and_keyed_from_the_keyring(
    indexed: LocalServer, rig: Rig, memory_keyring: MemoryKeyring
) -> None:
    assert indexed.index is not None
    assert indexed.index.count() == 6
    progress = indexed.indexer.progress[rig.account.name, "INBOX"]  # type: ignore[union-attr]
    assert progress.complete
    assert (SERVICE, KEY_ENTRY) in memory_keyring.entries
    on_disk = b"".join(p.read_bytes() for p in (rig.data_dir / INDEX_FILE).parent.iterdir())
    assert not on_disk.startswith(b"SQLite format 3")
    for secret in (SUBJECT_MARK, BODY_MARK, "kiwi-mango", "sender1@example.org"):
        assert secret.encode() not in on_disk


def test_search_is_answered_from_the_index_without_decrypting(
    indexed: LocalServer, rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = by_index(rig)

    def no_decrypting(*_: object) -> bytes:
        raise AssertionError("a search decrypted a message")

    monkeypatch.setattr(provider_module, "shown", no_decrypting)
    indexed.cache.limit = 0  # nothing held in memory either
    name = rig.account.name
    assert uid_search(indexed.port, name, "BODY", '"number 4."') == [numbers[4]]
    assert uid_search(indexed.port, name, "SUBJECT", f'"{SUBJECT_MARK.lower()} 2"') == [numbers[2]]
    assert uid_search(indexed.port, name, "TEXT", '"KIWI-MANGO"') == sorted(numbers.values())
    assert uid_search(indexed.port, name, "FROM", '"sender5@"', "BODY", "Lorem") == [numbers[5]]
    assert uid_search(indexed.port, name, "BODY", '"not in any message"') == []


def test_new_mail_is_searchable_at_once(indexed: LocalServer, rig: Rig) -> None:
    raw = make_message(99, random.Random(5)).replace(BODY_MARK.encode(), b"papaya-unique-word")
    uid = rig.mailbox.append(raw)
    assert uid_search(indexed.port, rig.account.name, "BODY", "papaya-unique") == [uid]


def test_the_indexer_forgets_what_left_the_folder(indexed: LocalServer, rig: Rig) -> None:
    assert indexed.index is not None
    gone = rig.mailbox.state()[0].uid
    with rig.mailbox.client() as client:
        client.select_folder("INBOX")
        client.delete_messages([gone])
        client.expunge()
    wait_for(lambda: indexed.index is not None and indexed.index.count() == 5, 60, "the index to forget it")


def test_drop_index_removes_the_database_and_its_key(
    indexed: LocalServer, rig: Rig, memory_keyring: MemoryKeyring
) -> None:
    indexed.stop()
    assert drop_index(rig.data_dir)
    assert not (rig.data_dir / INDEX_FILE).exists()
    assert (SERVICE, KEY_ENTRY) not in memory_keyring.entries
    assert not drop_index(rig.data_dir)


def test_without_a_keyring_there_is_no_index_and_search_still_works(rig: Rig) -> None:
    encrypted_rig(rig, 2)
    with LocalServer(rig.config(), PASSWORD, SETTINGS) as server:
        assert server.index is None
        assert server.index_problem is not None
        assert "keyring" in server.index_problem
        assert len(uid_search(server.port, rig.account.name, "BODY", "kiwi-mango")) == 2
    assert not (rig.data_dir / INDEX_FILE).exists()


def test_search_and_drop_index_on_the_command_line(
    indexed: LocalServer, rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    indexed.stop()
    config = str(rig.write_config())
    uid = by_index(rig)[3]
    assert main(["--config", config, "search", "number 3."]) == 0
    out = capsys.readouterr().out
    assert (
        out.strip()
        == f"{rig.account.name}/INBOX uid {uid}: Sender 3 <sender3@example.org> | {SUBJECT_MARK} 3"
    )
    assert main(["--config", config, "search", "nothing like this anywhere"]) == 1
    assert main(["--config", config, "serve", "--drop-index"]) == 0
    assert "search index dropped" in capsys.readouterr().out
    assert main(["--config", config, "search", "number 3."]) == 2
    assert "no search index yet" in capsys.readouterr().err


def test_what_serve_keeps_on_disk_is_the_users_alone(rig: Rig, memory_keyring: MemoryKeyring) -> None:
    encrypted_rig(rig, 1)
    old = os.umask(0o022)  # the common default: imapcrypt must not rely on a strict one
    try:
        settings = ServeSettings(port=0, poll_seconds=0.1, wrong_password_pause=0.0, starttls=True)
        with LocalServer(rig.config(), PASSWORD, settings) as server:
            assert server.indexer is not None
            assert server.indexer.pass_done.wait(120)
    finally:
        os.umask(old)
    index_dir = (rig.data_dir / INDEX_FILE).parent
    assert stat.S_IMODE(index_dir.stat().st_mode) == 0o700
    for made in index_dir.iterdir():
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made.name
    assert stat.S_IMODE((rig.data_dir / "serve-tls.key").stat().st_mode) == 0o600


def test_an_index_made_with_a_lost_key_is_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    first = SearchIndex(path, "ab" * 32)
    first.add("a", "INBOX", 1, {5: b"From: x@example.org\r\nSubject: kiwi\r\n\r\nbody\r\n"})
    first.close()
    again = SearchIndex(path, "cd" * 32)  # the keyring was reset: a new key
    assert again.count() == 0
    again.add("a", "INBOX", 1, {6: b"From: y@example.org\r\nSubject: mango\r\n\r\nbody\r\n"})
    assert again.search("a", "INBOX", 1, b"SUBJECT", "mango") == {6}
    again.close()


def test_what_was_indexed_under_another_uidvalidity_is_forgotten(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index.db", "ab" * 32)
    raw = b"From: x@example.org\r\nSubject: kiwi\r\n\r\nbody\r\n"
    index.add("a", "INBOX", 1, {5: raw})
    index.add("a", "INBOX", 2, {5: raw, 6: raw})
    index.add("a", "Sent", 1, {5: raw})
    assert index.forget_other_validities("a", "INBOX", 2) == 1
    assert index.indexed("a", "INBOX", 1) == set()
    assert index.indexed("a", "INBOX", 2) == {5, 6}
    assert index.indexed("a", "Sent", 1) == {5}  # other folders keep theirs
    index.close()
