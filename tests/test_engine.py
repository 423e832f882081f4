"""The engine against a real Dovecot: encrypt in place, never lose or duplicate a message (docs/engine.md)."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable

import pytest

from imapcrypt.errors import ImapcryptError, QuotaError, ServerError
from imapcrypt.events import MessageDone, Progress
from imapcrypt.message import envelope
from tests.fixtures.corpus import BODY_MARK, SUBJECT_MARK, Seed, varied_seeds
from tests.fixtures.dovecot import DovecotServer, hide_capabilities, quota_config
from tests.fixtures.engine import Rig, assert_exactly_once
from tests.samples import load

USER_DELETED = Seed(
    b"From: x@example.org\r\nSubject: the user deleted me\r\n\r\nkeep me until the user expunges\r\n",
    (b"\\Deleted", b"\\Seen"),
    dt.datetime(2020, 5, 5, 12, 0, tzinfo=dt.UTC),
)


def _all_ours(rig: Rig, folder: str = "INBOX") -> bool:
    return all(envelope.classify(m.body) is envelope.Kind.OURS for m in rig.mailbox.state(folder))


def test_run_encrypts_new_mail_keeping_flags_and_dates(rig: Rig) -> None:
    seeds = varied_seeds(5)
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX")
    assert report.encrypted == 5
    assert _all_ours(rig)
    state = assert_exactly_once(rig, seeds)
    assert all(m.uid > 5 for m in state)


def test_a_second_run_changes_nothing(rig: Rig) -> None:
    seeds = varied_seeds(3)
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        engine.encrypt_folder("INBOX")
    before = rig.mailbox.state()
    with rig.engine() as engine:
        again = engine.encrypt_folder("INBOX")  # sees its own copies once, then moves past them
        third = engine.encrypt_folder("INBOX")
        backlog = engine.encrypt_folder("INBOX", backlog=True)
    assert again.already_ours == 3
    assert again.encrypted == 0
    assert third.candidates == 0
    assert backlog.already_ours == 3
    assert backlog.encrypted == 0
    assert rig.mailbox.state() == before


def test_new_mail_after_a_run_is_encrypted_next_time(rig: Rig) -> None:
    first, second = varied_seeds(4)[:2], varied_seeds(4)[2:]
    rig.mailbox.seed(first)
    with rig.engine() as engine:
        engine.encrypt_folder("INBOX")
    rig.mailbox.seed(second)
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX")
    assert report.encrypted == 2
    assert_exactly_once(rig, first + second)


def test_other_deleted_messages_are_never_expunged(rig: Rig) -> None:
    seeds = varied_seeds(3)
    rig.mailbox.seed([USER_DELETED, *seeds])
    with rig.engine() as engine:
        engine.encrypt_folder("INBOX", backlog=True)
    state = assert_exactly_once(rig, [USER_DELETED, *seeds])
    assert sum(1 for m in state if b"\\Deleted" in m.flags) == 1


def test_grace_period_leaves_young_mail_and_holds_the_watermark(rig: Rig) -> None:
    old = varied_seeds(2)
    young = Seed(
        b"From: a@example.org\r\nSubject: fresh\r\n\r\njust arrived\r\n", (), dt.datetime.now(dt.UTC)
    )
    rig.mailbox.seed([old[0], young, old[1]])
    rig = rig.with_policy(grace_minutes=30)
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX")
        assert engine.journal.folder("INBOX").watermark == 1
    assert report.encrypted == 2
    assert report.too_young == 1
    kinds = [envelope.classify(m.body) for m in rig.mailbox.state()]
    assert kinds.count(envelope.Kind.PLAINTEXT) == 1
    with rig.with_policy(grace_minutes=0).engine() as engine:
        later = engine.encrypt_folder("INBOX")
    assert later.encrypted == 1
    assert _all_ours(rig)


def test_mail_the_sender_encrypted_is_left_alone(rig: Rig) -> None:
    pgp_mime = load("encrypted_pgp_mime")
    seeds = [Seed(pgp_mime, (b"\\Seen",), dt.datetime(2021, 1, 1, tzinfo=dt.UTC)), *varied_seeds(1)]
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX")
    assert report.sender_encrypted == 1
    assert report.encrypted == 1
    assert pgp_mime in [m.body for m in rig.mailbox.state()]


def test_dry_run_counts_and_touches_nothing(rig: Rig) -> None:
    rig.mailbox.seed(varied_seeds(4))
    before = rig.mailbox.state()
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True, dry_run=True)
        assert engine.journal.folder("INBOX").watermark == 0
    assert report.would_encrypt == 4
    assert rig.mailbox.state() == before


def test_restore_gives_back_the_exact_originals(rig: Rig) -> None:
    seeds = varied_seeds(6)
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        engine.encrypt_folder("INBOX")
    with rig.engine() as engine:
        report = engine.restore_folder("INBOX")
    assert report.restored == 6
    state = rig.mailbox.state()
    assert sorted(m.body for m in state) == sorted(s.raw for s in seeds)
    assert_exactly_once(rig, seeds)
    with rig.engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 0  # run does not re-encrypt restored mail


def test_paranoid_verification_compares_the_whole_copy(rig: Rig) -> None:
    seeds = varied_seeds(3)
    rig.mailbox.seed(seeds)
    with rig.with_policy(verify="hash").engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 3
    assert_exactly_once(rig, seeds)


def test_uidvalidity_change_rescans_the_folder(rig: Rig) -> None:
    first = varied_seeds(3, seed=5)
    rig = rig.with_policy(folders=("Work",))
    rig.mailbox.seed(first, folder="Work")
    with rig.engine() as engine:
        engine.encrypt_folder("Work")
        old = engine.journal.folder("Work")
    with rig.mailbox.client() as client:
        client.delete_folder("Work")
    second = varied_seeds(3, seed=6)
    rig.mailbox.seed(second, folder="Work")
    with rig.engine() as engine:
        report = engine.encrypt_folder("Work")
        assert engine.journal.folder("Work").uidvalidity != old.uidvalidity
    assert report.encrypted == 3
    assert_exactly_once(rig, second, folder="Work")


def test_a_missing_folder_is_a_clear_error(rig: Rig) -> None:
    with rig.engine() as engine, pytest.raises(ServerError, match="'Nope' does not exist"):
        engine.encrypt_folder("Nope")


def test_without_uidplus_and_move_a_foreign_deleted_message_blocks_deletion(
    dovecot_factory: Callable[[str], DovecotServer], rig_on: Callable[[DovecotServer], Rig]
) -> None:
    rig = rig_on(dovecot_factory(hide_capabilities("UIDPLUS", "MOVE")))
    seeds = varied_seeds(3)
    rig.mailbox.seed([USER_DELETED, *seeds])
    with rig.engine() as engine:
        assert engine.remover.name == "sole-expunge"
        blocked = engine.encrypt_folder("INBOX")
    assert blocked.encrypted == 0
    assert blocked.waiting == 3
    assert_exactly_once(rig, [USER_DELETED, *seeds])
    with rig.mailbox.client() as client:  # the user expunges in their client
        client.select_folder("INBOX")
        client.expunge()
    with rig.engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 3
    assert_exactly_once(rig, seeds)
    assert _all_ours(rig)


def test_without_uidplus_originals_go_to_trash_and_are_purged(
    dovecot_factory: Callable[[str], DovecotServer], rig_on: Callable[[DovecotServer], Rig]
) -> None:
    rig = rig_on(dovecot_factory(hide_capabilities("UIDPLUS")))
    seeds = varied_seeds(4)
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        assert engine.remover.name == "move-to-trash"
        assert engine.encrypt_folder("INBOX").encrypted == 4
    assert_exactly_once(rig, seeds)
    assert rig.mailbox.state("Trash") == []


def test_policy_trash_keeps_originals_in_trash(rig: Rig) -> None:
    seeds = varied_seeds(2)
    rig.mailbox.seed(seeds)
    with rig.with_policy(original="trash").engine() as engine:
        engine.encrypt_folder("INBOX")
    assert _all_ours(rig)
    assert sorted(m.body for m in rig.mailbox.state("Trash")) == sorted(s.raw for s in seeds)


def test_quota_refusal_deletes_nothing_and_resumes(
    dovecot_factory: Callable[[str], DovecotServer], rig_on: Callable[[DovecotServer], Rig]
) -> None:
    rig = rig_on(dovecot_factory(quota_config("150K")))
    seeds = varied_seeds(3, seed=9, large_every=1, large_size=30_000)  # ~41 kB each once encoded
    rig.mailbox.seed(seeds)
    with rig.engine() as engine, pytest.raises(QuotaError, match="over quota"):
        engine.encrypt_folder("INBOX")
    assert_exactly_once(rig, seeds)
    with rig.engine() as engine:
        assert engine.journal.pending("INBOX") == []
        assert "quota" in (engine.journal.folder("INBOX").last_error or "")


@pytest.mark.slow
def test_backlog_of_200_varied_messages_then_restore(rig: Rig) -> None:
    seeds = varied_seeds(200, seed=3, large_every=60, large_size=7_500_000)  # ~10 MB once base64
    rig.mailbox.seed(seeds)
    with rig.with_policy(batch_size=50).engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
    assert report.encrypted == 200
    assert _all_ours(rig)
    assert_exactly_once(rig, seeds)
    message_files = [
        p for sub in ("cur", "new") for p in (rig.mailbox.server.maildir(rig.mailbox.user) / sub).iterdir()
    ]
    assert len(message_files) == 200
    leaked = subprocess.run(
        ["grep", "-l", "-e", SUBJECT_MARK, "-e", BODY_MARK, *map(str, message_files)],
        capture_output=True,
        check=False,
    )
    assert leaked.stdout == b"", "plaintext left in the maildir"
    with rig.engine() as engine:
        assert engine.restore_folder("INBOX").restored == 200
    state = rig.mailbox.state()
    assert sorted(m.body for m in state) == sorted(s.raw for s in seeds)
    assert_exactly_once(rig, seeds)


class _DeleteFolderAfterFirstBatch:
    """Events that delete the folder from another connection once the first batch is done."""

    def __init__(self, rig: Rig, folder: str) -> None:
        self.rig = rig
        self.folder = folder
        self.fired = False

    def on_progress(self, progress: Progress) -> None:
        if not self.fired:
            self.fired = True
            with self.rig.mailbox.client() as client:
                client.delete_folder(self.folder)

    def on_message_done(self, done: MessageDone) -> None:
        pass

    def on_error(self, error: ImapcryptError) -> None:
        pass


def test_a_folder_deleted_mid_run_stops_the_run_with_a_clear_error(rig: Rig) -> None:
    rig = rig.with_policy(folders=("Work",), batch_size=2)
    rig.mailbox.seed(varied_seeds(6), folder="Work")
    events = _DeleteFolderAfterFirstBatch(rig, "Work")
    with rig.engine() as engine:
        engine.events = events
        with pytest.raises(ImapcryptError):
            engine.encrypt_folder("Work")
    assert events.fired
    with rig.engine() as engine, pytest.raises(ServerError, match="'Work' does not exist"):
        engine.encrypt_folder("Work")
    assert rig.mailbox.state("INBOX") == []  # nothing was stored anywhere else
