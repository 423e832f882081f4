"""Servers that do not store what they were sent (docs/engine.md#verification): a copy counts only when
the server gives back its exact bytes, a damaged copy never costs the original, and a message whose
copies keep failing is parked after a bounded number of tries instead of appended on every pass.

The hostile servers are a real Dovecot behind the fault proxy, rewriting what passes through it.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest

from imapcrypt.cli.main import main
from imapcrypt.daemon import AccountWorker, Backoff
from imapcrypt.doctor.checks import check_journal
from imapcrypt.engine import MAX_VERIFY_FAILURES, ServerAltersMessages
from imapcrypt.errors import ImapcryptError, TransientError, VerificationError
from imapcrypt.journal import _SCHEMA_V1, _SCHEMA_V2
from imapcrypt.message import copy, envelope
from imapcrypt.wiring import journal_path, open_journal
from tests.fixtures.corpus import Seed, varied_seeds
from tests.fixtures.engine import Rig, assert_exactly_once
from tests.fixtures.proxy import FaultProxy
from tests.fixtures.waiting import wait_for


class Errors:
    """Collects the engine's error events (what the tray and the log show)."""

    def __init__(self) -> None:
        self.errors: list[ImapcryptError] = []

    def on_progress(self, progress: object) -> None:
        """Progress is not looked at here."""

    def on_message_done(self, done: object) -> None:
        """Finished messages are checked on the server instead."""

    def on_error(self, error: ImapcryptError) -> None:
        self.errors.append(error)

    def on_state(self, change: object) -> None:
        """The daemon's state changes are not looked at here."""


def damage_armor(message: bytes) -> bytes:
    """`message` with one base64 character in the middle of its armor changed: same length, and no
    longer the ciphertext that was sent. Messages without armor pass unchanged."""
    block = copy.armor_block(message)
    if not block:
        return message
    start = message.find(block)
    at = start + len(block) // 2
    while message[at : at + 1] in (b"\r", b"\n", b"="):
        at += 1
    flipped = b"B" if message[at : at + 1] == b"A" else b"A"
    return message[:at] + flipped + message[at + 1 :]


def lying_size(line: bytes) -> bytes:
    """A FETCH line whose RFC822.SIZE is 7 bytes more than what the server stores."""
    return re.sub(rb"RFC822\.SIZE (\d+)", lambda m: b"RFC822.SIZE %d" % (int(m[1]) + 7), line)


def _copies(rig: Rig) -> int:
    return sum(1 for m in rig.mailbox.state() if envelope.classify(m.body) is envelope.Kind.OURS)


def test_a_damaged_copy_never_costs_the_original_and_is_parked_after_bounded_tries(
    rig: Rig, fault_proxy: FaultProxy
) -> None:
    seeds = varied_seeds(6)
    rig.mailbox.seed(seeds)
    fault_proxy.rewrite_appends(damage_armor)
    hostile = rig.at_port(fault_proxy.port)
    for attempt in range(1, MAX_VERIFY_FAILURES + 1):
        events = Errors()
        # Not one copy came back as sent: the run stops with the reason, after dealing with them.
        with pytest.raises(ServerAltersMessages), hostile.engine(events) as engine:
            engine.encrypt_folder("INBOX")
        with rig.engine() as engine:
            rejections = engine.journal.rejections("INBOX")
        parked_now = attempt == MAX_VERIFY_FAILURES
        assert [(r.failures, r.parked) for r in rejections] == [(attempt, parked_now)] * 6
        assert len(events.errors) == 6
        assert all(isinstance(e, VerificationError) for e in events.errors)
        assert all(("parked" in str(e)) == parked_now for e in events.errors)
        # Every damaged copy was removed again: the originals stand alone, as they were.
        assert _copies(rig) == 0
        assert_exactly_once(rig, seeds)

    fault_proxy.reset_counts()
    with hostile.engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
        rejections = engine.journal.rejections("INBOX")
    assert fault_proxy.counts().get("APPEND", 0) == 0, "a parked message was appended again"
    assert (report.parked, report.encrypted) == (6, 0)
    assert len(rejections) == 6
    assert all(r.parked and r.failures == MAX_VERIFY_FAILURES for r in rejections)
    assert all("other bytes than were sent" in r.reason for r in rejections)

    # The server is fixed and the user asks for another try: now they are encrypted.
    fault_proxy.rewrite_appends(None)
    with hostile.engine() as engine:
        engine.journal.unpark("INBOX")
        report = engine.encrypt_folder("INBOX", backlog=True)
        assert engine.journal.rejections("INBOX") == []
    assert report.encrypted == 6
    assert _copies(rig) == 6
    assert_exactly_once(rig, seeds)


def test_a_damaged_copy_is_rejected_under_the_old_verify_name_too(rig: Rig, fault_proxy: FaultProxy) -> None:
    seeds = varied_seeds(2)
    rig.mailbox.seed(seeds)
    fault_proxy.rewrite_appends(damage_armor)
    with (
        pytest.raises(ServerAltersMessages),
        rig.at_port(fault_proxy.port).with_policy(verify="hash").engine() as e,
    ):
        e.encrypt_folder("INBOX")
    with rig.engine() as engine:
        assert len(engine.journal.rejections("INBOX")) == 2
    assert _copies(rig) == 0
    assert_exactly_once(rig, seeds)


def test_a_size_that_lies_no_longer_means_a_copy_on_every_pass(rig: Rig, fault_proxy: FaultProxy) -> None:
    seeds = varied_seeds(6)
    rig.mailbox.seed(seeds)
    fault_proxy.rewrite_responses(lying_size)
    hostile = rig.at_port(fault_proxy.port)
    with hostile.engine() as engine:
        first = engine.encrypt_folder("INBOX")
    assert first.encrypted == 6  # the bytes came back as sent: the size the server reports does not matter
    fault_proxy.reset_counts()
    for _ in range(3):
        with hostile.engine() as engine:
            again = engine.encrypt_folder("INBOX", backlog=True)
        assert (again.encrypted, again.already_ours) == (0, 6)
    assert fault_proxy.counts().get("APPEND", 0) == 0
    assert _copies(rig) == 6
    assert_exactly_once(rig, seeds)


def test_the_size_opt_in_on_a_lying_server_parks_instead_of_appending_forever(
    rig: Rig, fault_proxy: FaultProxy
) -> None:
    seeds = varied_seeds(3)
    rig.mailbox.seed(seeds)
    fault_proxy.rewrite_responses(lying_size)
    hostile = rig.at_port(fault_proxy.port).with_policy(verify="size")
    for attempt in range(MAX_VERIFY_FAILURES + 2):
        with hostile.engine() as engine:
            if attempt < MAX_VERIFY_FAILURES:
                with pytest.raises(ServerAltersMessages):
                    engine.encrypt_folder("INBOX")
            else:  # parked: skipped once, then behind the watermark
                report = engine.encrypt_folder("INBOX")
                assert report.parked == (len(seeds) if attempt == MAX_VERIFY_FAILURES else 0)
        assert _copies(rig) == 0
        assert_exactly_once(rig, seeds)
    assert fault_proxy.counts()["APPEND"] <= MAX_VERIFY_FAILURES * len(seeds)
    with hostile.engine() as engine:
        assert len(engine.journal.parked("INBOX", "encrypt")) == 3


@pytest.mark.parametrize("damaged", [True, False])
def test_recovery_trusts_only_a_copy_with_the_bytes_that_were_sent(
    rig: Rig, fault_proxy: FaultProxy, damaged: bool
) -> None:
    """A crash right after the APPEND: the copy is on the server, unverified, its original not deleted.
    The next run's recovery finishes it only if the copy is byte for byte the one sent."""
    seeds = varied_seeds(1)
    rig.mailbox.seed(seeds)
    if damaged:
        fault_proxy.rewrite_appends(damage_armor)
    fault_proxy.cut_after("APPEND", 1)
    with pytest.raises(TransientError), rig.at_port(fault_proxy.port).engine() as engine:
        engine.encrypt_folder("INBOX")
    state = rig.mailbox.state()
    assert len(state) == 2
    stored_copy = state[1].body
    assert envelope.classify(stored_copy) is envelope.Kind.OURS
    with rig.engine() as engine:  # the server behaves again
        report = engine.open_folder("INBOX")
        pending = engine.journal.pending("INBOX")
    assert report[1] == 1
    assert pending == []
    state = rig.mailbox.state()
    if damaged:
        # Not ours to trust: the original stays, the bad copy is gone, and the message is retried.
        assert [m.body for m in state] == [seeds[0].raw]
        with rig.engine() as engine:
            assert engine.journal.rejections("INBOX")[0].failures == 1
            assert engine.encrypt_folder("INBOX").encrypted == 1
    else:
        assert [m.body for m in state] == [stored_copy]
    assert _copies(rig) == 1
    assert_exactly_once(rig, seeds)


def test_an_intent_from_before_digests_trusts_no_copy_while_its_original_is_there(
    rig: Rig, fault_proxy: FaultProxy
) -> None:
    """A version 2 journal recorded no digest: its copy in flight cannot be proven, so recovery removes
    it and encrypts the original afresh rather than delete the original for it."""
    seeds = varied_seeds(2)
    rig.mailbox.seed(seeds)
    fault_proxy.cut_after("APPEND", 1)
    with pytest.raises(TransientError), rig.at_port(fault_proxy.port).engine() as engine:
        engine.encrypt_folder("INBOX")
    _as_version_2(journal_path(rig.config(), rig.account))
    with rig.engine() as engine:
        assert engine.journal.pending("INBOX")[0].digest == ""
        report = engine.encrypt_folder("INBOX")
    assert report.recovered == 2
    assert report.encrypted == 2
    assert _copies(rig) == 2
    assert_exactly_once(rig, seeds)


def test_a_journal_from_a_newer_imapcrypt_is_refused(rig: Rig) -> None:
    with rig.engine() as engine:
        engine.journal._db.execute("PRAGMA user_version = 99")
    with pytest.raises(ImapcryptError, match="newer than this imapcrypt"), rig.engine():
        pass


def _as_version_2(path: Path) -> None:
    """Rewrite the journal at `path` as imapcrypt's schema 2 held it: the same folders and intents,
    without the digests."""
    with sqlite3.connect(path) as current:
        folders = current.execute("SELECT name, uidvalidity, watermark FROM folder").fetchall()
        intents = current.execute(
            "SELECT folder, uidvalidity, src_uid, direction, seal_id, size, uidnext, created FROM intent"
        ).fetchall()
    current.close()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with sqlite3.connect(path) as old:
        for statement in (_SCHEMA_V1 + ";" + _SCHEMA_V2).split(";"):
            if statement.strip():
                old.execute(statement)
        old.executemany("INSERT INTO folder (name, uidvalidity, watermark) VALUES (?, ?, ?)", folders)
        old.executemany("INSERT INTO intent VALUES (?, ?, ?, ?, ?, ?, ?, ?)", intents)
        old.execute("PRAGMA user_version = 2")
    old.close()


def test_parked_messages_show_in_status_and_doctor(
    rig: Rig, fault_proxy: FaultProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = varied_seeds(2)
    rig.mailbox.seed(seeds)
    fault_proxy.rewrite_appends(damage_armor)
    hostile = rig.at_port(fault_proxy.port)
    config = str(hostile.write_config())
    assert check_journal(rig.config(), rig.account).status == "OK"
    # No copy came back as sent: each is reported, then the run stops with the reason.
    assert main(["--config", config, "backlog"]) == ServerAltersMessages.exit_code
    err = capsys.readouterr().err
    assert err.count("was not stored as sent") == 2
    assert "changes the messages it stores" in err
    assert main(["--config", config, "status"]) == 0
    assert capsys.readouterr().out.count("retrying (1 copies not stored as sent") == 2
    for _ in range(MAX_VERIFY_FAILURES - 1):
        assert main(["--config", config, "backlog"]) == ServerAltersMessages.exit_code
    capsys.readouterr()
    assert main(["--config", config, "backlog"]) == 0  # only parked messages skipped: nothing failed now
    assert "2 parked (see `imapcrypt status`)" in capsys.readouterr().out
    assert main(["--config", config, "status"]) == 0
    status = capsys.readouterr().out
    assert status.count("parked (3 copies not stored as sent: the server gave back other bytes") == 2
    check = check_journal(rig.config(), rig.account)
    assert (check.status, "2 message(s) parked" in check.detail) == ("WARN", True)
    assert "--retry-parked" in check.fix
    fault_proxy.rewrite_appends(None)
    assert main(["--config", config, "backlog", "--retry-parked"]) == 0
    assert "2 encrypted" in capsys.readouterr().out
    assert check_journal(rig.config(), rig.account).status == "OK"
    assert_exactly_once(rig, seeds)


def test_the_daemon_parks_a_damaged_message_instead_of_appending_it_on_every_pass(
    rig: Rig, fault_proxy: FaultProxy
) -> None:
    """The daemon is woken by its own APPENDs: before parking existed, a server that damaged one
    message's copies got a new copy of it about every second, for ever."""
    bad = varied_seeds(2, seed=5)
    targets = {envelope.message_id(seed.raw, rig.id_secret) for seed in bad}
    damaged: list[str] = []

    def damage_some(message: bytes) -> bytes:
        ident = copy.copy_id(message)
        if ident not in targets:
            return message
        damaged.append(ident)
        return damage_armor(message)

    fault_proxy.rewrite_appends(damage_some)
    rig.mailbox.seed(bad)
    hostile = rig.at_port(fault_proxy.port)
    events = Errors()
    worker = AccountWorker(hostile.config(), hostile.account, events, backoff=Backoff(base=0.05, cap=0.3))
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            worker.run()
        except BaseException as exc:
            failures.append(exc)

    def parked() -> int:
        with open_journal(hostile.config(), hostile.account) as journal:
            return len(journal.parked("INBOX", "encrypt"))

    good: list[Seed] = []
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        # New mail wakes the daemon for another pass; each pass tries the damaged ones once more.
        for index in range(MAX_VERIFY_FAILURES + 3):
            if parked() == len(bad):
                break
            good += varied_seeds(1, seed=100 + index)
            rig.mailbox.seed(good[-1:])
            wait_for(lambda: _copies(rig) == len(good) or failures, timeout=60, what="the next pass")  # noqa: B023 (called at once)
        assert parked() == len(bad), (damaged, [str(e) for e in events.errors], failures)
        for index in range(2):  # two more passes after the parking
            good += varied_seeds(1, seed=200 + index)
            rig.mailbox.seed(good[-1:])
            wait_for(lambda: _copies(rig) == len(good) or failures, timeout=60, what="a pass after parking")  # noqa: B023
    finally:
        worker.stop()
        thread.join(60)
    assert not failures
    assert len(damaged) == MAX_VERIFY_FAILURES * len(bad)
    assert sum("is parked" in str(e) for e in events.errors) == len(bad)
    assert_exactly_once(rig, bad + good)
