"""Gmail's limits and sign-in (docs/gmail.md): throttling back-off, APPENDLIMIT, the daily upload budget,
the connection cap, app passwords and XOAUTH2 token refresh; and the journal's schema 2."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imapcrypt.config.model import parse_config
from imapcrypt.daemon import AccountWorker, StateChange, WorkerState
from imapcrypt.engine import Engine
from imapcrypt.errors import ConfigError, CredentialsError, ImapcryptError, QuotaError, TransientError
from imapcrypt.events import MessageDone, Progress
from imapcrypt.imap.connect import connect
from imapcrypt.imap.translate import ThrottledError
from imapcrypt.imap.upload_budget import MB, UploadPaused
from imapcrypt.wiring import open_session
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.engine import Rig, assert_exactly_once, make_rig
from tests.fixtures.gmail_rig import ALL_MAIL, gmail_account
from tests.fixtures.gmail_server import OVERQUOTA, GmailServer, gmail_mailbox_on
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.waiting import wait_for

A_NOON = dt.datetime(2031, 5, 6, 12, 0, tzinfo=dt.UTC).timestamp()


@dataclass
class Recorded:
    """Engine events kept for assertions."""

    errors: list[ImapcryptError] = field(default_factory=list)

    def on_progress(self, progress: Progress) -> None:
        """Not needed here."""

    def on_message_done(self, done: MessageDone) -> None:
        """Not needed here."""

    def on_error(self, error: ImapcryptError) -> None:
        self.errors.append(error)


@contextmanager
def engine_for(
    rig: Rig,
    events: Recorded | None = None,
    waits: list[float] | None = None,
    clock: Callable[[], float] = lambda: A_NOON,
) -> Iterator[Engine]:
    """An engine at a fixed noon whose session records throttling pauses in `waits`."""
    with rig.engine(events, clock, waits) as engine:
        yield engine


@pytest.fixture
def gmail_rig(gmail_server: GmailServer, gnupg_home: GnupgHome, tmp_path: Path) -> Rig:
    return make_rig(gmail_mailbox_on(gmail_server), gnupg_home, tmp_path)


def test_throttled_commands_are_retried_after_growing_pauses(gmail_rig: Rig) -> None:
    seeds = varied_seeds(3, seed=51)
    gmail_rig.mailbox.seed(seeds)
    gmail_account(gmail_rig).throttle(2, commands=("APPEND",))
    waits: list[float] = []
    with engine_for(gmail_rig, waits=waits) as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 3
        assert engine.session.throttle_waits == 2
    assert waits == [30.0, 120.0]
    assert_exactly_once(gmail_rig, seeds, folder=ALL_MAIL)
    assert gmail_account(gmail_rig).plaintext_left() == []


def test_throttling_that_outlasts_the_pauses_stops_the_run_and_it_resumes_later(gmail_rig: Rig) -> None:
    seeds = varied_seeds(3, seed=52)
    gmail_rig.mailbox.seed(seeds)
    gmail_account(gmail_rig).throttle(4, commands=("APPEND",))  # the first APPEND and its 3 retries
    waits: list[float] = []
    with engine_for(gmail_rig, waits=waits) as engine, pytest.raises(ThrottledError, match="throttled"):
        engine.encrypt_folder("INBOX")
    assert waits == [30.0, 120.0, 300.0]
    assert_exactly_once(gmail_rig, seeds, folder=ALL_MAIL)  # nothing half-done
    with engine_for(gmail_rig) as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 3
        assert engine.journal.pending("INBOX") == []
    assert gmail_account(gmail_rig).plaintext_left() == []


def test_overquota_stops_the_run_without_losing_anything_and_it_resumes_later(gmail_rig: Rig) -> None:
    seeds = varied_seeds(3, seed=53)
    gmail_rig.mailbox.seed(seeds)
    gmail_account(gmail_rig).throttle(1, text=OVERQUOTA, commands=("APPEND",))
    with engine_for(gmail_rig) as engine, pytest.raises(QuotaError):
        engine.encrypt_folder("INBOX")
    assert_exactly_once(gmail_rig, seeds, folder=ALL_MAIL)
    with engine_for(gmail_rig) as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 3
    assert gmail_account(gmail_rig).plaintext_left() == []


def test_too_many_connections_is_transient(gmail_rig: Rig) -> None:
    gmail_account(gmail_rig).max_connections = 1
    with gmail_rig.mailbox.client():  # the user's phone holds the only connection
        with pytest.raises(TransientError, match="too many simultaneous connections") as raised:
            connect(gmail_rig.account, lambda: gmail_rig.mailbox.password)
        assert not isinstance(raised.value, CredentialsError)
    connect(gmail_rig.account, lambda: gmail_rig.mailbox.password).logout()


def test_imap_turned_off_says_how_to_turn_it_on(gmail_rig: Rig) -> None:
    gmail_account(gmail_rig).imap_enabled = False
    with pytest.raises(CredentialsError, match="IMAP is turned off") as raised:
        connect(gmail_rig.account, lambda: gmail_rig.mailbox.password)
    assert "Forwarding and POP/IMAP" in raised.value.fix


def test_a_message_over_appendlimit_is_skipped_whole_with_a_report(
    gmail_server_factory: Callable[..., GmailServer], gnupg_home: GnupgHome, tmp_path: Path
) -> None:
    server = gmail_server_factory(append_limit=None)
    rig = make_rig(gmail_mailbox_on(server), gnupg_home, tmp_path)
    seeds = varied_seeds(4, seed=54, large_every=4, large_size=30_000)  # the 4th: ~41 kB
    rig.mailbox.seed(seeds)
    server.append_limit = 40_000  # mail can arrive by SMTP larger than IMAP lets anyone APPEND
    events = Recorded()
    with engine_for(rig, events) as engine:
        assert engine.session.append_limit == 40_000
        report = engine.encrypt_folder("INBOX")
        assert engine.journal.pending("INBOX") == []
        assert engine.journal.folder("INBOX").watermark == 4  # reported, not retried forever
    assert report.encrypted == 3
    assert report.too_large == 1
    assert any("exceeds the server's limit of 40,000 bytes" in e.message for e in events.errors)
    stored = server.account(rig.mailbox.user).in_all_mail()
    assert seeds[3].raw in [s.raw for s in stored]  # the large one is untouched plaintext
    assert_exactly_once(rig, seeds, folder=ALL_MAIL)


def test_the_daily_upload_budget_pauses_before_the_limit_and_resumes_the_next_day(gmail_rig: Rig) -> None:
    seeds = varied_seeds(8, seed=55)
    gmail_rig.mailbox.seed(seeds)
    rig = gmail_rig.with_policy(daily_upload_mb=0.05, batch_size=4)  # 50 kB: a few copies a day
    now = [A_NOON]
    pauses: list[tuple[dt.datetime, str, int, int]] = []  # resume_at, message, bytes that day, copies
    with engine_for(rig, clock=lambda: now[0]) as engine:
        while True:
            try:
                engine.encrypt_folder("INBOX")
                break
            except UploadPaused as paused:
                day = dt.datetime.fromtimestamp(now[0], dt.UTC).date().isoformat()
                copies = engine.journal.folder("INBOX").encrypted
                pauses.append((paused.resume_at, paused.message, engine.journal.uploaded(day), copies))
                assert_exactly_once(rig, seeds, folder=ALL_MAIL)  # a pause never leaves half a message
                now[0] += 86_400
    assert len(pauses) >= 2
    done = 0
    for day, (resume_at, message, uploaded, copies) in enumerate(pauses):
        assert resume_at == dt.datetime(2031, 5, 7 + day, tzinfo=dt.UTC)
        assert f"resumes at 2031-05-{7 + day:02d} 00:00 UTC" in message
        today, done = copies - done, copies
        # Within the budget, or a single copy larger than a whole day's budget.
        assert today >= 1
        assert uploaded <= 0.05 * MB or today == 1
    assert gmail_account(rig).plaintext_left() == []
    assert_exactly_once(rig, seeds, folder=ALL_MAIL)


def test_xoauth2_token_is_refreshed_once_when_the_server_rejects_it(gmail_rig: Rig, tmp_path: Path) -> None:
    marker = tmp_path / "refreshed"
    user = gmail_rig.mailbox.user
    # Like mutt's oauth2.py: the first answer is a cached token that expired, the next a fresh one.
    command = f"if [ -e {marker} ]; then echo {user}-token; else touch {marker}; echo expired-token; fi"
    account = gmail_rig.with_policy(token_command=command, password_command=None).account
    session = open_session(account)
    try:
        assert session.is_gmail
        assert session.select("INBOX").exists == 0
    finally:
        session.logout()
    assert marker.exists()
    bad = gmail_rig.with_policy(token_command="echo wrong", password_command=None).account
    with pytest.raises(CredentialsError, match="refused the login"):
        open_session(bad)


def test_gmail_config_keys_are_checked(tmp_path: Path) -> None:
    base = (
        '[[account]]\nname = "g"\nhost = "imap.gmail.com"\nusername = "me@gmail.com"\nrecipients = ["AAAA"]\n'
    )
    parsed = parse_config(base + "daily_upload_mb = 300\nmax_connections = 2\n", tmp_path / "c.toml")
    assert parsed.accounts[0].daily_upload_mb == 300
    assert parsed.accounts[0].max_connections == 2
    with pytest.raises(ConfigError, match="max_connections"):
        parse_config(base + "max_connections = 0\n", tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"unknown key account\[0\]\.daily_upload"):
        parse_config(base + "daily_upload = 3\n", tmp_path / "c.toml")


def test_a_stop_during_a_throttle_pause_returns_at_once(gmail_rig: Rig) -> None:
    seeds = varied_seeds(2, seed=57)
    gmail_rig.mailbox.seed(seeds)
    account = gmail_account(gmail_rig)
    account.throttle(1000, commands=("APPEND",))  # every APPEND: the daemon waits 30 s, then 2 min...
    states: list[WorkerState] = []

    class Events:
        def on_progress(self, progress: Progress) -> None: ...
        def on_message_done(self, done: MessageDone) -> None: ...
        def on_error(self, error: ImapcryptError) -> None: ...
        def on_state(self, change: StateChange) -> None:
            states.append(change.state)

    worker = AccountWorker(gmail_rig.config(), gmail_rig.account, Events())
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    seeded = account.command_log.count("APPEND")
    wait_for(lambda: account.command_log.count("APPEND") > seeded, timeout=30, what="a throttled APPEND")
    worker.stop()
    thread.join(10)  # far below the 30 s pause the server asked for
    assert not thread.is_alive()
    assert WorkerState.WORKING in states
    assert states[-1] is WorkerState.STOPPED
    assert_exactly_once(gmail_rig, seeds, folder=ALL_MAIL)
