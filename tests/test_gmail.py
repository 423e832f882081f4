"""The engine on Gmail (docs/gmail.md), against the Gmail-behaviour double: no plaintext left anywhere,
labels and flags kept, nothing merged, restore brings everything back."""

from __future__ import annotations

import datetime as dt
import inspect
from pathlib import Path

import pytest

from imapcrypt.doctor.checks import check_account
from imapcrypt.errors import TransientError
from imapcrypt.imap.connect import connect
from imapcrypt.imap.gmail import GmailRemover
from imapcrypt.imap.removers import remover_for
from imapcrypt.imap.slots import CONNECTION_SLOTS
from imapcrypt.message import envelope
from imapcrypt.message.headers import HeaderSection
from tests.fixtures.corpus import Seed, varied_seeds
from tests.fixtures.engine import Rig, assert_exactly_once, make_rig, opened
from tests.fixtures.gmail_rig import ALL_MAIL, gmail_account, label
from tests.fixtures.gmail_server import GmailServer, StoredGmail, gmail_mailbox_on
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.mailbox import Mailbox, StoredMessage

WATCHED = ("INBOX", "\\All")


@pytest.fixture
def gmail_rig(gmail_mailbox: Mailbox, gnupg_home: GnupgHome, tmp_path: Path) -> Rig:
    """An account on the Gmail double watching INBOX and \\All, as docs/gmail.md recommends."""
    return make_rig(gmail_mailbox, gnupg_home, tmp_path).with_policy(folders=WATCHED)


def originals_by_raw(rig: Rig, stored: list[StoredGmail]) -> dict[bytes, StoredGmail]:
    """Each stored message under its original bytes (encrypted copies decrypted)."""
    as_messages = [StoredMessage(s.msgid, frozenset(), s.internaldate, s.raw) for s in stored]
    return dict(zip(opened(as_messages, rig.gpg), stored, strict=True))


def seed_labelled(rig: Rig) -> tuple[list[Seed], dict[bytes, frozenset[str]]]:
    """Five messages in INBOX (one also Important, one also labelled Work) and three archived under
    Work only; returns the seeds and each one's labels as Gmail holds them."""
    inbox, work = varied_seeds(5, seed=31), varied_seeds(3, seed=32)
    uids = rig.mailbox.seed(inbox)
    rig.mailbox.seed(work, folder="Work")
    label(rig, "INBOX", [uids[0]], ["\\Important"])
    label(rig, "INBOX", [uids[1]], ["Work", "Travel/2024"])
    labels = {s.raw: s.labels for s in gmail_account(rig).in_all_mail()}
    assert len(labels) == 8
    return inbox + work, labels


def test_backlog_over_inbox_and_all_mail_leaves_no_plaintext_and_keeps_labels(gmail_rig: Rig) -> None:
    seeds, labels = seed_labelled(gmail_rig)
    account = gmail_account(gmail_rig)
    with gmail_rig.engine() as engine:
        assert engine.remover.name == "gmail"
        inbox = engine.encrypt_folder("INBOX", backlog=True)
        everything = engine.encrypt_folder("\\All", backlog=True)
    assert inbox.encrypted == 5
    assert everything.encrypted == 3  # the archived ones; the INBOX copies are seen once, as ours
    assert everything.already_ours == 5
    assert account.plaintext_left() == [], "plaintext left in All Mail or Trash"
    assert account.in_trash() == []
    assert account.merges == 0
    assert_exactly_once(gmail_rig, seeds, folder=ALL_MAIL)
    copies = originals_by_raw(gmail_rig, account.in_all_mail())
    assert {raw: s.labels for raw, s in copies.items()} == labels
    assert all(envelope.classify(s.raw) is envelope.Kind.OURS for s in copies.values())


def test_the_copy_has_a_new_message_id_and_keeps_the_thread(gmail_rig: Rig) -> None:
    parent = b"From: a@example.org\r\nSubject: first\r\nMessage-ID: <p1@example.org>\r\n\r\nhello\r\n"
    reply = (
        b"From: b@example.org\r\nSubject: Re: first\r\nMessage-ID: <r1@example.org>\r\n"
        b"In-Reply-To: <p1@example.org>\r\nReferences: <p1@example.org>\r\n\r\nhi back\r\n"
    )
    when = dt.datetime(2022, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    gmail_rig.mailbox.seed([Seed(parent, (b"\\Seen",), when), Seed(reply, (), when)])
    with gmail_rig.engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 2
    stored = gmail_account(gmail_rig).in_all_mail()
    outer_ids = {HeaderSection.parse(s.raw).first("Message-ID") for s in stored}
    assert len(outer_ids) == 2
    for s in stored:
        section = HeaderSection.parse(s.raw)
        message_id = section.first("Message-ID")
        assert message_id is not None
        assert message_id.text().endswith("@imapcrypt.invalid>")
    copy_of_reply = next(s for s in stored if b"In-Reply-To" in s.raw)
    assert b"References: <p1@example.org>" in copy_of_reply.raw  # clients still thread it
    assert gmail_account(gmail_rig).merges == 0


def test_restore_brings_back_originals_with_message_ids_labels_flags_and_dates(gmail_rig: Rig) -> None:
    seeds, labels = seed_labelled(gmail_rig)
    account = gmail_account(gmail_rig)
    with gmail_rig.engine() as engine:
        engine.encrypt_folder("INBOX", backlog=True)
        engine.encrypt_folder("\\All", backlog=True)
    with gmail_rig.engine() as engine:
        report = engine.restore_folder("\\All")
    assert report.restored == 8
    stored = account.in_all_mail()
    assert sorted(s.raw for s in stored) == sorted(s.raw for s in seeds)  # Message-IDs included
    assert {s.raw: s.labels for s in stored} == labels
    assert_exactly_once(gmail_rig, seeds, folder=ALL_MAIL)
    assert account.in_trash() == []  # the encrypted copies were purged, not left in Trash
    assert account.merges == 0


def test_policy_trash_leaves_originals_in_trash_only(gmail_rig: Rig) -> None:
    seeds = varied_seeds(3, seed=33)
    gmail_rig.mailbox.seed(seeds)
    with gmail_rig.with_policy(original="trash").engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 3
    account = gmail_account(gmail_rig)
    assert sorted(s.raw for s in account.in_trash()) == sorted(s.raw for s in seeds)
    assert all(envelope.classify(s.raw) is envelope.Kind.OURS for s in account.in_all_mail())


def test_folders_are_found_by_special_use_when_names_are_localised(
    gmail_server_factory: type[GmailServer], gnupg_home: GnupgHome, tmp_path: Path
) -> None:
    server = gmail_server_factory(localised=True)
    rig = make_rig(gmail_mailbox_on(server), gnupg_home, tmp_path)
    seeds = varied_seeds(2, seed=34)
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 2
        assert engine.encrypt_folder("\\All").already_ours == 2
    account = server.account(rig.mailbox.user)
    assert account.plaintext_left() == []
    assert_exactly_once(rig, seeds, folder="[Google Mail]/Alle Nachrichten")


def test_a_merged_append_is_never_taken_for_a_copy(gmail_rig: Rig) -> None:
    # Under profile "generic" the outer Message-ID is the original's: Gmail folds the copy into the
    # original, and the engine must notice instead of deleting the only copy there is.
    seeds = varied_seeds(2, seed=35)
    gmail_rig.mailbox.seed(seeds)
    with gmail_rig.with_policy(profile="generic").engine() as engine:
        report = engine.encrypt_folder("INBOX")
    account = gmail_account(gmail_rig)
    assert account.merges == 2
    assert report.encrypted == 0
    assert sorted(s.raw for s in account.in_all_mail()) == sorted(s.raw for s in seeds)


def test_connections_are_capped_per_account(gmail_rig: Rig) -> None:
    capped = gmail_rig.with_policy(max_connections=2)
    first = connect(capped.account, lambda: capped.mailbox.password)
    second = connect(capped.account, lambda: capped.mailbox.password)
    try:
        with pytest.raises(TransientError, match="already 2 connection"):
            connect(capped.account, lambda: capped.mailbox.password)
        assert gmail_account(gmail_rig).connections == 2
    finally:
        first.logout()
        second.logout()
    assert CONNECTION_SLOTS.in_use(capped.account) == 0


def test_doctor_recognises_gmail_and_checks_what_the_profile_needs(gmail_rig: Rig) -> None:
    gmail_rig.mailbox.seed(varied_seeds(1, seed=36))
    account = gmail_account(gmail_rig)
    before = account.stored()
    checks = {
        c.name: c
        for c in check_account(gmail_rig.config(), gmail_rig.account, lambda: gmail_rig.mailbox.password)
    }
    assert checks["login"].status == "OK"
    assert checks["Gmail"].detail.startswith("Gmail")
    assert checks["Gmail IMAP"].status == "OK"
    assert checks["Gmail Trash"].detail.startswith("[Gmail]/Trash")
    assert checks["Gmail All Mail"].status == "OK"
    assert checks["Gmail labels"].detail == "readable (1 on the newest INBOX message)"
    assert checks["Gmail auto-expunge"].detail.startswith("on (Gmail's default)")
    assert checks["folder \\All"].status == "OK"
    assert account.stored() == before, "doctor's probe left something behind"
    account.auto_expunge = False
    inbox_only = gmail_rig.with_policy(folders=("INBOX",))
    checks = {
        c.name: c
        for c in check_account(inbox_only.config(), inbox_only.account, lambda: gmail_rig.mailbox.password)
    }
    assert checks["Gmail auto-expunge"].detail.startswith("off")
    assert checks["Gmail All Mail"].status == "WARN"
    assert account.stored() == before
    account.imap_enabled = False
    checks = {
        c.name: c
        for c in check_account(gmail_rig.config(), gmail_rig.account, lambda: gmail_rig.mailbox.password)
    }
    assert checks["login"].status == "FAIL"
    assert "Forwarding and POP/IMAP" in checks["login"].fix


@pytest.mark.parametrize(("configured", "gmail"), [("auto", True), ("gmail", True), ("generic", False)])
def test_the_gmail_profile_is_decided_once_and_chooses_the_remover(
    gmail_rig: Rig, configured: str, gmail: bool
) -> None:
    """One `ServerProfile` per session decides the remover: on Gmail never a bare UID EXPUNGE (which
    there only removes a label), and `remover_for` cannot be called without the journal it needs."""
    with gmail_rig.with_policy(profile=configured).engine() as engine:
        assert engine.server.announces_gmail
        assert engine.server.gmail is gmail
        assert isinstance(engine.remover, GmailRemover) is gmail
        assert engine.remover.name == ("gmail" if gmail else "uid-expunge")
    assert list(inspect.signature(remover_for).parameters) == ["session", "policy", "server", "journal"]
    assert all(
        p.default is inspect.Parameter.empty for p in inspect.signature(remover_for).parameters.values()
    )
