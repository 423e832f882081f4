"""imapcrypt on every real server of the suite (issue 14): Dovecot, Cyrus, Courier-IMAP, GNU Mailutils.

On each server that stores messages as sent (Dovecot, Cyrus, Courier): backlog encrypts every original
exactly once, with its flags and date, leaves nothing readable in the folder, and restore gives the
original bytes back; a connection cut at any command of a run (or of a restore) loses and duplicates
nothing. Mailutils stores messages changed (mbox headers), so no copy can be proven there: imapcrypt must
find its mail, say why it cannot encrypt it, and leave every message exactly once as plaintext.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from imapcrypt import daemon as daemon_module
from imapcrypt.cli.main import main
from imapcrypt.config.model import parse_config
from imapcrypt.daemon import AccountWorker, WorkerState
from imapcrypt.doctor.probe import probe_checks
from imapcrypt.doctor.provider import provider_check
from imapcrypt.engine import ServerAltersMessages
from imapcrypt.errors import ConfigError, TransientError
from imapcrypt.imap import session as session_module
from imapcrypt.wiring import open_journal, open_session
from tests.fixtures.corpus import BODY_MARK, SUBJECT_MARK, Seed, varied_seeds
from tests.fixtures.courier import CourierServer
from tests.fixtures.cyrus import CyrusServer
from tests.fixtures.dovecot import DovecotServer
from tests.fixtures.engine import Rig, assert_exactly_once, make_rig
from tests.fixtures.faults import all_encrypted, cut_during_restore, cut_every_command_of_a_run
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.proxy import FaultProxy
from tests.fixtures.servers import LoggingServer
from tests.fixtures.waiting import wait_for

# `cyrus_immediate` is Cyrus with `expunge_mode: immediate`; Debian's default (`cyrus`, delayed) keeps
# expunged originals on disk: test_cyrus_delayed_expunge_keeps_the_plaintext_originals pins that.
MAILUTILS_CANNOT = pytest.mark.skip(
    reason="GNU Mailutils (mbox) adds headers to every stored message, so no copy can be verified and "
    "nothing is encrypted there: the test_mailutils_* tests pin what imapcrypt does instead"
)
SEEDS = varied_seeds(6, seed=11)


@pytest.fixture(
    params=["dovecot", "cyrus_immediate", "courier", pytest.param("mailutils", marks=MAILUTILS_CANNOT)]
)
def exact_server(request: pytest.FixtureRequest) -> LoggingServer:
    """Each server in turn (those that store a message byte for byte can host the end to end)."""
    server: LoggingServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture(
    params=[
        pytest.param("dovecot", marks=pytest.mark.skip(reason="tests/test_faults.py runs it on Dovecot")),
        "cyrus_immediate",
        "courier",
        pytest.param("mailutils", marks=MAILUTILS_CANNOT),
    ]
)
def fault_server(request: pytest.FixtureRequest) -> LoggingServer:
    """Each server for the fault runs (Dovecot's are in tests/test_faults.py, with four variants)."""
    server: LoggingServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture
def rig_at(
    mailbox_on_server: Callable[[LoggingServer], Mailbox], gnupg_home: GnupgHome, tmp_path: Path
) -> Callable[[LoggingServer], Rig]:
    """Make a rig (engine, journal, key) on a fresh account of a given server."""
    return lambda server: make_rig(mailbox_on_server(server), gnupg_home, tmp_path)


def _message_files(server: LoggingServer, user: str) -> set[Path]:
    """Every file on the server's disk that holds one of the user's messages (on Cyrus, whose spool
    is laid out by mailbox UUID, every user's: tests take the difference from before)."""
    if isinstance(server, CyrusServer):  # "<uid>." files
        return {p for p in server.spool.rglob("*.") if p.name[:-1].isdigit()}
    assert isinstance(server, DovecotServer | CourierServer)
    maildir = server.maildir(user)
    return {p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new")}


def _readable(files: set[Path]) -> list[Path]:
    """The files among `files` in which a seed's subject or body can be read."""
    if not files:
        return []
    found = subprocess.run(
        ["grep", "-l", "-e", SUBJECT_MARK, "-e", BODY_MARK, *map(str, files)],
        capture_output=True,
        check=False,
    )
    return [Path(line) for line in found.stdout.decode().splitlines()]


# --- end to end ---------------------------------------------------------------------------------------


def test_backlog_encrypts_everything_once_and_restore_gives_the_bytes_back(
    exact_server: LoggingServer, rig_at: Callable[[LoggingServer], Rig]
) -> None:
    rig = rig_at(exact_server)
    seeds = varied_seeds(12, seed=4, large_every=6, large_size=200_000)
    others = _message_files(exact_server, rig.mailbox.user)
    rig.mailbox.seed(seeds)

    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
    assert (report.encrypted, report.failed, report.unverified) == (12, 0, 0)
    assert all_encrypted(rig)
    assert_exactly_once(rig, seeds)
    files = _message_files(exact_server, rig.mailbox.user) - others
    assert len(files) == 12
    assert _readable(files) == [], "plaintext left on the server's disk"

    with rig.engine() as engine:
        restored = engine.restore_folder("INBOX")
    assert (restored.restored, restored.failed, restored.unverified) == (12, 0, 0)
    assert sorted(m.body for m in rig.mailbox.state()) == sorted(s.raw for s in seeds)
    assert_exactly_once(rig, seeds)


def test_the_cli_backlog_exits_0_and_restore_too(
    exact_server: LoggingServer, rig_at: Callable[[LoggingServer], Rig], capsys: pytest.CaptureFixture[str]
) -> None:
    rig = rig_at(exact_server)
    rig.mailbox.seed(SEEDS)
    config = str(rig.write_config())

    assert main(["--config", config, "backlog"]) == 0
    assert "6 encrypted" in capsys.readouterr().out
    assert main(["--config", config, "restore"]) == 0
    assert "6 restored" in capsys.readouterr().out
    assert_exactly_once(rig, SEEDS)


def test_cyrus_delayed_expunge_keeps_the_plaintext_originals(
    cyrus: CyrusServer, rig_at: Callable[[LoggingServer], Rig]
) -> None:
    """What docs/providers.md tells Fastmail users: the folder is encrypted, the spool is not (yet)."""
    rig = rig_at(cyrus)
    others = _message_files(cyrus, rig.mailbox.user)
    rig.mailbox.seed(SEEDS)
    with rig.engine() as engine:
        assert engine.encrypt_folder("INBOX", backlog=True).encrypted == len(SEEDS)
    assert_exactly_once(rig, SEEDS)
    assert all_encrypted(rig)
    assert len(_readable(_message_files(cyrus, rig.mailbox.user) - others)) == len(SEEDS)
    assert cyrus.unexpunge_list(rig.mailbox.user).count("UID:") == len(SEEDS)


# --- Courier: an APPEND shows late -------------------------------------------------------------------


def test_courier_copies_are_verified_after_a_noop(
    courier: LoggingServer, rig_at: Callable[[LoggingServer], Rig]
) -> None:
    rig = rig_at(courier).with_policy(batch_size=3)
    rig.mailbox.seed(SEEDS)
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
        noops = engine.session.settle_noops
    assert (report.encrypted, report.unverified, report.recovered) == (6, 0, 0)
    assert 1 <= noops <= 2 * len(SEEDS)  # one NOOP per batch does it; never a wait per message
    assert_exactly_once(rig, SEEDS)


def test_a_copy_that_never_shows_is_given_up_on_at_the_deadline(
    courier: LoggingServer, rig_at: Callable[[LoggingServer], Rig]
) -> None:
    rig = rig_at(courier)
    [uid] = rig.mailbox.seed(SEEDS[:1])
    with rig.engine() as engine:
        session = engine.session
        session.select("INBOX")
        session.settle_seconds = 0.5
        started = time.monotonic()
        found = session.fetch_info_settled([uid, uid + 1000], ["Message-ID"])
        waited = time.monotonic() - started
    assert list(found) == [uid]
    assert 0.5 <= waited < 5
    assert 3 <= session.settle_noops <= 10  # asked again after growing pauses, not in a tight loop


def test_copies_left_unverified_fail_the_cli_and_show_in_status(
    courier: LoggingServer,
    rig_at: Callable[[LoggingServer], Rig],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without any patience for a late APPEND (the old behaviour) Courier's copies stay unproven: that
    is a failure (exit 1, said in the summary and in `status`), never "nothing to do"."""
    rig = rig_at(courier)
    rig.mailbox.seed(SEEDS)
    config = str(rig.write_config())
    monkeypatch.setattr(session_module, "SETTLE_SECONDS", 0.0)

    assert main(["--config", config, "backlog"]) == 1
    captured = capfd.readouterr()
    assert "6 not verified on the server (originals kept" in captured.out
    assert "nothing to do" not in captured.out
    assert captured.err.count("could not be verified") == 6
    assert main(["--config", config, "status"]) == 0
    assert "6 copies could not be verified" in capfd.readouterr().out
    with open_journal(rig.config(), rig.account) as journal:
        assert len(journal.pending("INBOX")) == 6

    monkeypatch.undo()  # the next run, patient again, proves the copies and finishes
    assert main(["--config", config, "run", "--once"]) == 0
    assert "6 finished after an interruption" in capfd.readouterr().out
    assert_exactly_once(rig, SEEDS)
    assert all_encrypted(rig)
    assert main(["--config", config, "status"]) == 0
    assert "could not be verified" not in capfd.readouterr().out


# --- faults on every server --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["after", "before"])
def test_a_cut_at_every_command_loses_and_duplicates_nothing(
    mode: str,
    fault_server: LoggingServer,
    rig_at: Callable[[LoggingServer], Rig],
    fault_proxy_factory: Callable[[int], FaultProxy],
    record_property: Callable[[str, object], None],
) -> None:
    proxy = fault_proxy_factory(fault_server.port)
    fresh = lambda: rig_at(fault_server).with_policy(batch_size=3)  # noqa: E731 - a factory, named for reading
    record_property("faults_injected", cut_every_command_of_a_run(proxy, fresh, SEEDS, mode))


@pytest.mark.slow
def test_a_cut_during_restore_loses_and_duplicates_nothing(
    fault_server: LoggingServer,
    rig_at: Callable[[LoggingServer], Rig],
    fault_proxy_factory: Callable[[int], FaultProxy],
) -> None:
    rig = rig_at(fault_server)
    rig.mailbox.seed(SEEDS)
    cut_during_restore(rig, fault_proxy_factory(fault_server.port), SEEDS)


def test_a_uidvalidity_change_while_copies_wait_for_their_originals_deletion_duplicates_nothing(
    exact_server: LoggingServer,
    rig_at: Callable[[LoggingServer], Rig],
    fault_proxy_factory: Callable[[int], FaultProxy],
) -> None:
    """A crash leaves copies stored but their originals not yet deleted; then the server renumbers the
    folder (a new UIDVALIDITY: a restored or migrated mailbox). The journal's intents name old UIDs,
    but the copies still name their originals by id: the rescan must not store a second copy."""
    rig = rig_at(exact_server).with_policy(folders=("Work",))
    work = rig.mailbox.folder("Work")
    rig = rig.with_policy(folders=(work,))
    rig.mailbox.seed(SEEDS, folder=work)
    proxy = fault_proxy_factory(exact_server.port)
    # The first UID STORE claims the batch (docs/engine.md, many installations); before the second,
    # the copies are stored and verified, the originals not touched.
    proxy.cut_before("UID STORE", 2)
    with pytest.raises(TransientError), rig.at_port(proxy.port).engine() as engine:
        engine.encrypt_folder(work)
    assert len(rig.mailbox.state(work)) == 2 * len(SEEDS)
    _renumber(rig.mailbox, work)

    with rig.engine() as engine:
        report = engine.encrypt_folder(work)
    assert (report.encrypted, report.already_ours) == (0, len(SEEDS))
    assert report.recovered == len(SEEDS)
    assert_exactly_once(rig, SEEDS, folder=work)
    assert all_encrypted(rig, work)


def test_a_crash_as_the_rescan_deletes_a_renumbered_original_duplicates_nothing(
    exact_server: LoggingServer,
    rig_at: Callable[[LoggingServer], Rig],
    fault_proxy_factory: Callable[[int], FaultProxy],
) -> None:
    """The rescan after a renumbering finishes an original whose copy is there under a new intent,
    journalled as deleting: a crash before that deletion reaches the server leaves recovery the
    intent to finish, not an original and its copy side by side."""
    seeds = SEEDS[:1]  # the crash ends the rescan: originals it never reached are a pair (engine.md)
    rig = rig_at(exact_server).with_policy(folders=("Work",))
    work = rig.mailbox.folder("Work")
    rig = rig.with_policy(folders=(work,))
    rig.mailbox.seed(seeds, folder=work)
    proxy = fault_proxy_factory(exact_server.port)
    proxy.cut_before("UID STORE", 2)  # as above: copy stored and verified, original untouched
    with pytest.raises(TransientError), rig.at_port(proxy.port).engine() as engine:
        engine.encrypt_folder(work)
    _renumber(rig.mailbox, work)
    with rig.at_port(proxy.port).engine() as engine:

        def crash(*_: object) -> None:
            proxy.cut_all()
            raise TransientError("killed")

        engine.remover.remove = crash  # type: ignore[method-assign]
        with pytest.raises(TransientError):
            engine.encrypt_folder(work)
        assert [i.deleting for i in engine.journal.pending(work)] == [True]
    assert len(rig.mailbox.state(work)) == 2
    with rig.engine() as engine:
        assert engine.encrypt_folder(work).recovered == 1
    assert_exactly_once(rig, seeds, folder=work)
    assert all_encrypted(rig, work)


def _renumber(mailbox: Mailbox, folder: str) -> None:
    """Give `folder` a new UIDVALIDITY with the same messages, flags and dates (copy out, recreate,
    copy back), as a server does when a mailbox is restored or migrated."""
    spare = mailbox.folder("Spare")
    with mailbox.client() as client:
        client.create_folder(spare)
        client.select_folder(folder)
        client.copy(client.search("ALL"), spare)
        client.close_folder()
        client.delete_folder(folder)
        client.create_folder(folder)
        client.select_folder(spare)
        client.copy(client.search("ALL"), folder)
        client.close_folder()
        client.delete_folder(spare)


# --- GNU Mailutils: broken searches, refused keywords, changed messages, UIDVALIDITY churn -----------


def _without_keywords(seeds: list[Seed]) -> list[Seed]:
    """Mailutils refuses keywords in APPEND: the seeds as it can take them."""
    return [replace(s, flags=tuple(f for f in s.flags if f.startswith(b"\\"))) for s in seeds]


MBOX_HEADERS = (b"X-IMAPbase:", b"X-UID:", b"Status:", b"X-Status:", b"X-Keywords:")


def _as_sent(body: bytes) -> bytes:
    """A message Mailutils gives back, without the bookkeeping headers its mbox adds."""
    head, sep, rest = body.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(MBOX_HEADERS)]
    return b"\r\n".join(lines) + sep + rest


def _plaintext_once(rig: Rig, seeds: list[Seed]) -> None:
    """Every seed is in INBOX exactly once, as plaintext, and nothing else is."""
    state = rig.mailbox.state()
    assert sorted(_as_sent(m.body) for m in state) == sorted(s.raw for s in seeds)
    assert sorted(m.internaldate for m in state) == sorted(s.when for s in seeds)


def test_mailutils_mail_is_found_though_uid_range_searches_answer_nothing(
    mailutils: LoggingServer, rig_at: Callable[[LoggingServer], Rig]
) -> None:
    rig = rig_at(mailutils)
    seeds = _without_keywords(SEEDS)
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        engine.open_folder("INBOX")
        assert len(engine.session.uids_above(0)) == len(seeds)
        assert engine.session.uid_range_search_broken
        assert len(engine.session.uids_above(2)) == len(seeds) - 2
        report = engine.encrypt_folder("INBOX", dry_run=True)
    assert report.would_encrypt == len(seeds)


def test_mailutils_append_drops_only_the_refused_keywords(
    mailutils: LoggingServer, rig_at: Callable[[LoggingServer], Rig], caplog: pytest.LogCaptureFixture
) -> None:
    rig = rig_at(mailutils)
    when = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with rig.engine() as engine:
        engine.session.append("INBOX", SEEDS[0].raw, (b"\\Seen", b"$Label1", b"work"), when)
    [stored] = rig.mailbox.state()
    assert stored.flags == {b"\\Seen"}
    assert stored.internaldate == when
    assert "stored without $Label1 work" in caplog.text


def test_mailutils_changes_stored_mail_so_nothing_is_deleted_and_the_cli_says_why(
    mailutils: LoggingServer, rig_at: Callable[[LoggingServer], Rig], capfd: pytest.CaptureFixture[str]
) -> None:
    rig = rig_at(mailutils)
    seeds = _without_keywords(SEEDS)
    rig.mailbox.seed(seeds)
    config = str(rig.write_config())

    for _ in range(2):  # a second run must not pile up copies either
        assert main(["--config", config, "backlog"]) == ServerAltersMessages.exit_code
        assert "changes the messages it stores" in capfd.readouterr().err
        _plaintext_once(rig, seeds)
    with open_journal(rig.config(), rig.account) as journal:
        assert "changes the messages it stores" in (journal.folder("INBOX").last_error or "")


def test_mailutils_uidvalidity_churn_on_an_empty_folder_duplicates_nothing(
    mailutils: LoggingServer, rig_at: Callable[[LoggingServer], Rig]
) -> None:
    """An empty mbox gets a new UIDVALIDITY each session: runs over it, then mail, then a run."""
    rig = rig_at(mailutils)
    for _ in range(2):
        with rig.engine() as engine:
            assert engine.encrypt_folder("INBOX").candidates == 0
    seeds = _without_keywords(SEEDS[:2])
    rig.mailbox.seed(seeds)
    with rig.engine() as engine, pytest.raises(ServerAltersMessages):
        engine.encrypt_folder("INBOX")
    _plaintext_once(rig, seeds)


# --- doctor on every server: the push delay, stored as sent, what the provider keeps ------------------


@pytest.mark.parametrize("name", ["dovecot", "cyrus", "courier", "mailutils"])
def test_doctor_measures_the_server_in_a_scratch_folder_and_leaves_nothing(
    name: str, request: pytest.FixtureRequest, rig_at: Callable[[LoggingServer], Rig]
) -> None:
    rig = rig_at(request.getfixturevalue(name))
    seeds = _without_keywords(SEEDS[:1])
    rig.mailbox.seed(seeds)
    before = rig.mailbox.state()
    session = open_session(rig.account)
    try:
        checks = {
            c.name: c for c in probe_checks(rig.account, session, lambda: open_session(rig.account), 2.0)
        }
        provider = provider_check(session)
    finally:
        session.logout()

    push = checks["push delay"]
    if name == "dovecot":  # pushes at once
        assert push.status == "OK"
        assert "IDLE pushed new mail after 0." in push.detail
    else:  # Cyrus without idled, Courier without FAM, Mailutils: IDLE polls every 30-60 s
        assert "did not push new mail within 2s" in push.detail
        assert "NOOP every 5s" in push.detail  # and a NOOP did show the probe (else: WARN)
        assert push.status == "OK"
    stored = checks["stored as sent"]
    assert stored.status == ("FAIL" if name == "mailutils" else "OK"), stored.detail
    if name == "courier":
        assert "only after a NOOP" in checks["own APPEND"].detail
    elif name != "mailutils":  # no APPENDUID there: the check is left out
        assert "visible at once" in checks["own APPEND"].detail
    assert provider.status == ("WARN" if name == "cyrus" else "OK")
    assert {"dovecot": "Dovecot", "cyrus": "Cyrus", "courier": "Courier"}.get(
        name, "unknown"
    ) in provider.detail
    with rig.mailbox.client() as client:
        assert [folder for _, _, folder in client.list_folders() if "imapcrypt-doctor" in folder] == []
    assert rig.mailbox.state() == before


def test_the_daemon_hears_of_new_mail_by_noop_where_idle_pushes_late(
    cyrus: LoggingServer, rig_at: Callable[[LoggingServer], Rig]
) -> None:
    """Cyrus without idled pushes every 60 s: the watcher's NOOP every idle_noop_seconds finds the
    mail first (an IDLE-only watcher would leave it plaintext for up to a minute)."""
    rig = rig_at(cyrus).with_policy(idle_noop_seconds=1.0)
    worker = AccountWorker(rig.config(), rig.account, _Quiet())
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.state is WorkerState.IDLE, timeout=30, what="the daemon idle")
        rig.mailbox.seed(SEEDS[:1])
        started = time.monotonic()
        wait_for(lambda: all_encrypted(rig) and rig.mailbox.state(), timeout=20, what="the mail encrypted")
        assert time.monotonic() - started < 10
        assert worker.notifications >= 1
    finally:
        worker.stop()
        thread.join(30)
    assert_exactly_once(rig, SEEDS[:1])


def test_the_daemon_comes_back_soon_for_copies_it_could_not_verify(
    courier: LoggingServer, rig_at: Callable[[LoggingServer], Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No patience for Courier's late APPENDs (as before): the daemon's first pass leaves the copies
    unverified, and it does not wait for the next mail to finish them."""
    monkeypatch.setattr(session_module, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(daemon_module, "UNVERIFIED_RETRY_SECONDS", 0.5)
    rig = rig_at(courier).with_policy(idle_noop_seconds=0)  # no watcher NOOP to bring it back
    rig.mailbox.seed(SEEDS)
    events = _Quiet()
    worker = AccountWorker(rig.config(), rig.account, events)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: all_encrypted(rig), timeout=30, what="every message encrypted")
        assert worker.passes >= 2
        assert any("could not be verified" in str(e) for e in events.errors)
    finally:
        worker.stop()
        thread.join(30)
    assert_exactly_once(rig, SEEDS)


def test_idle_noop_seconds_is_an_account_key(tmp_path: Path) -> None:
    base = '[[account]]\nname = "a"\nhost = "imap.example.org"\nusername = "me"\nrecipients = ["AAAA"]\n'
    assert parse_config(base, tmp_path / "c.toml").accounts[0].idle_noop_seconds == 5
    assert (
        parse_config(base + "idle_noop_seconds = 0\n", tmp_path / "c.toml").accounts[0].idle_noop_seconds == 0
    )
    with pytest.raises(ConfigError, match="idle_noop_seconds"):
        parse_config(base + "idle_noop_seconds = -1\n", tmp_path / "c.toml")


class _Quiet:
    """Daemon events nobody needs to see but the errors, kept."""

    def __init__(self) -> None:
        self.errors: list[object] = []

    def on_progress(self, progress: object) -> None:
        """Ignored."""

    def on_message_done(self, done: object) -> None:
        """Ignored."""

    def on_error(self, error: object) -> None:
        """Kept for the test."""
        self.errors.append(error)

    def on_state(self, change: object) -> None:
        """Ignored."""
