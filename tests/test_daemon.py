"""The daemon against a real Dovecot: push-driven encryption, polling, reconnects, locks, logs."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from imapcrypt.daemon import AccountWorker, Backoff, StateChange, WorkerState
from imapcrypt.engine import Engine, FolderReport
from imapcrypt.errors import ImapcryptError, LockedError
from imapcrypt.events import MessageDone, Progress
from imapcrypt.message import envelope
from tests.fixtures.corpus import BODY_MARK, SUBJECT_MARK, Seed, varied_seeds
from tests.fixtures.dovecot import DovecotServer, hide_capabilities
from tests.fixtures.engine import Rig, assert_exactly_once
from tests.fixtures.processes import daemon_process
from tests.fixtures.proxy import FaultProxy
from tests.fixtures.waiting import wait_for

FAST = Backoff(base=0.05, cap=0.3)


class Recorder:
    """Collects a worker's events (called from its threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: list[MessageDone] = []
        self.states: list[StateChange] = []
        self.errors: list[ImapcryptError] = []

    def on_progress(self, progress: Progress) -> None:
        pass

    def on_message_done(self, done: MessageDone) -> None:
        with self.lock:
            self.done.append(done)

    def on_error(self, error: ImapcryptError) -> None:
        with self.lock:
            self.errors.append(error)

    def on_state(self, change: StateChange) -> None:
        with self.lock:
            self.states.append(change)

    def saw(self, state: WorkerState) -> int:
        with self.lock:
            return sum(1 for change in self.states if change.state is state)


@contextmanager
def running(rig: Rig, wall: Callable[[], float] | None = None) -> Iterator[tuple[AccountWorker, Recorder]]:
    """A worker for `rig` running in a thread until the block ends."""
    events = Recorder()
    extra = {"wall": wall} if wall else {}
    worker = AccountWorker(rig.config(), rig.account, events, backoff=FAST, **extra)
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            worker.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.state is WorkerState.IDLE or failures, timeout=30, what="the first pass")
        yield worker, events
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive(), "the worker did not stop"
    assert not failures, failures


def _ours(rig: Rig) -> int:
    return sum(1 for m in rig.mailbox.state() if envelope.classify(m.body) is envelope.Kind.OURS)


def _plaintext(rig: Rig) -> int:
    return sum(1 for m in rig.mailbox.state() if envelope.classify(m.body) is envelope.Kind.PLAINTEXT)


def test_mail_arriving_while_watching_is_encrypted(rig: Rig) -> None:
    first = varied_seeds(2, seed=1)
    rig.mailbox.seed(first)
    with running(rig) as (worker, _events):
        assert _ours(rig) == 2  # the first pass took the existing mail
        later = varied_seeds(3, seed=2)
        rig.mailbox.seed(later)
        wait_for(lambda: _ours(rig) == 5 and _plaintext(rig) == 0, timeout=15, what="IDLE-driven encryption")
        assert worker.notifications >= 1
    assert_exactly_once(rig, first + later)


def test_a_server_without_idle_is_polled(
    dovecot_factory: Callable[[str], DovecotServer], rig_on: Callable[[DovecotServer], Rig]
) -> None:
    rig = rig_on(dovecot_factory(hide_capabilities("IDLE"))).with_policy(poll_seconds=0.2)
    with running(rig) as (worker, _):
        rig.mailbox.seed(varied_seeds(2))
        wait_for(lambda: _ours(rig) == 2, timeout=15, what="polling to encrypt")
        assert worker.notifications == 0


def test_pause_holds_work_and_resume_restarts_it(rig: Rig) -> None:
    with running(rig) as (worker, _events):
        worker.pause()
        wait_for(lambda: worker.state is WorkerState.PAUSED, timeout=10, what="paused")
        rig.mailbox.seed(varied_seeds(1))
        wait_for(lambda: worker.notifications >= 1, timeout=10, what="the server's news of new mail")
        assert worker.state is WorkerState.PAUSED
        assert _plaintext(rig) == 1
        worker.resume()
        wait_for(lambda: _ours(rig) == 1, timeout=15, what="work after resume")


@pytest.mark.parametrize("moment", ["idling", "processing"])
def test_dropped_connections_are_rebuilt_and_nothing_is_lost(
    moment: str, rig: Rig, fault_proxy_factory: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy_factory(rig.account.port)
    seeds = varied_seeds(6, seed=4)
    via_proxy = rig.at_port(proxy.port)
    with running(via_proxy) as (worker, events):
        if moment == "idling":
            assert proxy.cut_all() >= 2  # the work connection and the IDLE one
            wait_for(lambda: events.saw(WorkerState.OFFLINE) >= 1, timeout=10, what="the drop noticed")
            rig.mailbox.seed(seeds)
        else:
            proxy.cut_after("APPEND", 1)
            rig.mailbox.seed(seeds)
            wait_for(lambda: proxy.cuts_done == 1, timeout=15, what="the cut during an APPEND")
        wait_for(
            lambda: _ours(rig) == 6 and _plaintext(rig) == 0, timeout=30, what="encryption after reconnect"
        )
        wait_for(lambda: worker.state is WorkerState.IDLE, timeout=10, what="idle again")
    assert_exactly_once(rig, seeds)


def test_waking_from_sleep_reconnects(rig: Rig) -> None:
    jump = [0.0]
    with running(rig, wall=lambda: dt.datetime.now().timestamp() + jump[0]) as (worker, events):
        jump[0] = 3600.0  # an hour passed on the wall clock while the monotonic clock stood still
        worker.encrypt_now()
        wait_for(lambda: events.saw(WorkerState.OFFLINE) >= 1, timeout=10, what="the resume noticed")
        rig.mailbox.seed(varied_seeds(2))
        wait_for(lambda: _ours(rig) == 2, timeout=15, what="encryption after the resume")


def test_a_second_worker_on_the_same_account_is_refused(rig: Rig) -> None:
    with running(rig):
        other = AccountWorker(rig.config(), rig.account, Recorder())
        with pytest.raises(LockedError, match=f"PID {os.getpid()}"):
            other.run()


@pytest.mark.slow
def test_sigterm_during_a_backlog_exits_0_and_the_next_run_finishes(rig: Rig, tmp_path: Path) -> None:
    seeds = varied_seeds(300, seed=8)
    rig.mailbox.seed(seeds)
    config = rig.write_config(batch_size="20")
    daemon = daemon_process(config, tmp_path / "daemon.log")
    wait_for(lambda: _ours(rig) > 0 or daemon.poll() is not None, timeout=60, what="work under way")
    daemon.send_signal(signal.SIGTERM)
    _, errors = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, errors.decode()
    assert _plaintext(rig) > 0, "the backlog finished before the signal: nothing was interrupted"
    assert_exactly_once(rig, seeds)
    finish = subprocess.run(
        [sys.executable, "-m", "imapcrypt", "--config", str(config), "run", "--once"],
        capture_output=True,
        check=False,
    )
    assert finish.returncode == 0, finish.stderr.decode()
    assert _plaintext(rig) == 0
    assert_exactly_once(rig, seeds)


def test_a_second_daemon_refuses_naming_the_first(rig: Rig, tmp_path: Path) -> None:
    config = rig.write_config()
    first = daemon_process(config, tmp_path / "first.log")
    try:
        wait_for(
            lambda: (
                "state=idle" in (tmp_path / "first.log").read_text()
                if (tmp_path / "first.log").exists()
                else False
            ),
            timeout=30,
            what="the first daemon idle",
        )
        second = subprocess.run(
            [sys.executable, "-m", "imapcrypt", "--config", str(config), "run"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 7
        assert f"PID {first.pid}" in second.stderr.decode()
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_the_log_of_a_full_run_holds_no_subject_body_or_password(rig: Rig, tmp_path: Path) -> None:
    seeds = varied_seeds(5, seed=3)
    rig.mailbox.seed(seeds)
    log_file = tmp_path / "daemon.log"
    daemon = daemon_process(rig.write_config(), log_file)
    try:
        wait_for(lambda: _ours(rig) == 5, timeout=30, what="the first pass")
        rig.mailbox.seed([Seed(seeds[0].raw.replace(b"Zebra 0", b"Zebra late"), (), seeds[0].when)])
        wait_for(lambda: _ours(rig) == 6, timeout=30, what="the pushed message")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    text = log_file.read_text()
    assert "encrypted account=test folder=INBOX" in text
    for secret in (SUBJECT_MARK, BODY_MARK, rig.mailbox.password, "sender0@example.org"):
        assert secret not in text


def test_an_unreachable_server_is_retried_with_growing_backoff(
    rig: Rig, fault_proxy_factory: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy_factory(rig.account.port)
    with running(rig.at_port(proxy.port)) as (worker, events):
        proxy.set_refusing(True)
        proxy.cut_all()
        wait_for(lambda: events.saw(WorkerState.OFFLINE) >= 4, timeout=20, what="several failed reconnects")
        with events.lock:
            delays = [c.retry_in for c in events.states if c.state is WorkerState.OFFLINE and c.retry_in]
        # Each delay is drawn from [half, all] of a doubling bound: the fourth cannot be below the first's.
        assert delays[3] >= delays[0]
        assert max(delays) <= FAST.cap
        attempts = proxy.connections_accepted
        rig.mailbox.seed(varied_seeds(2))
        proxy.set_refusing(False)
        wait_for(lambda: _ours(rig) == 2, timeout=20, what="work once the server is back")
        assert proxy.connections_accepted > attempts
        assert worker.state in (WorkerState.IDLE, WorkerState.WORKING)


def test_folders_beyond_the_connection_allowance_are_polled(rig: Rig) -> None:
    for folder in ("Work", "Lists"):
        with rig.mailbox.client() as client:
            client.create_folder(folder)
    rig = rig.with_policy(folders=("INBOX", "Work", "Lists"), max_connections=2, poll_seconds=0.2)
    with running(rig) as (worker, _):
        rig.mailbox.seed(varied_seeds(1, seed=40), folder="INBOX")  # watched with IDLE
        rig.mailbox.seed(varied_seeds(1, seed=41), folder="Lists")  # polled
        wait_for(
            lambda: (
                all(
                    envelope.classify(m.body) is envelope.Kind.OURS
                    for folder in ("INBOX", "Lists")
                    for m in rig.mailbox.state(folder)
                )
                and len(rig.mailbox.state("Lists")) == 1
            ),
            timeout=15,
            what="both folders encrypted",
        )
        assert worker.notifications >= 1


def test_a_hostile_server_response_sends_the_worker_into_backoff_not_to_its_death(
    rig: Rig, fault_proxy_factory: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy_factory(rig.account.port)
    seeds = varied_seeds(3, seed=8)
    with running(rig.at_port(proxy.port)) as (worker, events):
        # FETCH answers without FLAGS: a KeyError that once killed the worker's thread.
        proxy.rewrite_responses(
            lambda line: re.sub(rb"FLAGS \([^)]*\) ?", b"", line) if b" FETCH (" in line else line
        )
        rig.mailbox.seed(seeds)
        wait_for(lambda: events.saw(WorkerState.ERROR) >= 1, timeout=20, what="the bad response reported")
        with events.lock:
            error = next(c for c in events.states if c.state is WorkerState.ERROR)
        assert "FLAGS" in error.detail
        assert error.retry_in
        proxy.rewrite_responses(None)
        worker.encrypt_now()
        wait_for(lambda: _ours(rig) == 3, timeout=30, what="work once the server behaves")
    assert_exactly_once(rig, seeds)


def test_an_unforeseen_error_is_reported_without_its_text_and_retried(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Engine.encrypt_folder
    calls: list[str] = []

    def flaky(self: Engine, folder: str, backlog: bool = False, dry_run: bool = False) -> FolderReport:
        calls.append(folder)
        if len(calls) == 2:  # the first pass after the worker went idle
            raise RuntimeError("Subject: Quarterly-Report-Zebra")
        return real(self, folder, backlog, dry_run)

    monkeypatch.setattr(Engine, "encrypt_folder", flaky)
    with running(rig) as (worker, events):
        rig.mailbox.seed(varied_seeds(2, seed=9))
        worker.encrypt_now()
        wait_for(lambda: events.saw(WorkerState.ERROR) >= 1, timeout=20, what="the error reported")
        wait_for(lambda: _ours(rig) == 2, timeout=30, what="work after the retry")
    with events.lock:
        error = next(c for c in events.states if c.state is WorkerState.ERROR)
    assert error.detail.startswith("unexpected RuntimeError at test_daemon.py:")
    assert "Zebra" not in error.detail
