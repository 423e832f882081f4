"""The daemon (docs/design.md#triggers): keep one account's folders encrypted, continuously.

An `AccountWorker` holds the account's lock, runs a pass over every watched folder, then waits for
the server to report new mail: one `FolderWatcher` connection IDLEs on each folder (re-issued well
before the server's 29-minute limit), or, where IDLE is missing, it polls. Lost connections, a
server's BYE or throttling, and a resume from system sleep all lead to a reconnect with exponential
backoff and jitter; nothing the engine journalled is lost by any of them.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imapcrypt.config.model import Account, Config
from imapcrypt.engine import Engine, FolderReport
from imapcrypt.errors import ImapcryptError, TransientError
from imapcrypt.events import EngineEvents
from imapcrypt.imap.session import Session
from imapcrypt.imap.upload_budget import UploadPaused
from imapcrypt.lock import AccountLock
from imapcrypt.wiring import open_account, open_session, ready_to_encrypt

log = logging.getLogger(__name__)

IDLE_REFRESH_SECONDS = 10 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
IDLE_CHECK_SECONDS = 1.0  # how often a watcher looks at its stop flag while idling
KEEPALIVE_SECONDS = 5 * 60  # a NOOP on the work connection this often finds half-open sockets
SLEEP_JUMP_SECONDS = 30.0  # wall clock ahead of the monotonic clock by this much: we were suspended
# A pass that left copies unverified (a server slow to show them) is followed by another this soon:
# its recovery proves the copies and removes the originals, so no folder waits for the next mail.
UNVERIFIED_RETRY_SECONDS = 30.0


class WorkerState(enum.Enum):
    """What an account's worker is doing, for the tray icon and `status`."""

    STARTING = "starting"
    IDLE = "idle"
    WORKING = "working"
    PAUSED = "paused"
    OFFLINE = "offline"
    ERROR = "error"
    STOPPED = "stopped"


def _unexpected(exc: Exception) -> ImapcryptError:
    """An error to report for an exception imapcrypt did not expect: its type and where it was
    raised, never its text (which may quote a message or a server's words)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return ImapcryptError(f"unexpected {type(exc).__name__}{where}", "it will be retried; please report it")


@dataclass(frozen=True)
class StateChange:
    """The worker entered `state`; `retry_in` is the seconds until the next attempt, if one is due."""

    account: str
    state: WorkerState
    detail: str = ""
    fix: str = ""
    retry_in: float | None = None


class DaemonEvents(EngineEvents, Protocol):
    """The engine's events plus the worker's state changes. Called from the worker's threads."""

    def on_state(self, change: StateChange) -> None:
        """The worker's state changed."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all of min(cap, base * 2^n)."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt number `attempt` (0 for the first retry)."""
        return min(self.cap, self.base * float(2 ** min(attempt, 30))) * rng.uniform(0.5, 1.0)


class _Reconnect(TransientError):
    """Internal: the connections must be rebuilt (a watcher died, or the machine slept)."""


class FolderWatcher:
    """Its own connection IDLEing on one folder; calls `changed(folder)` when mail arrives and `lost()`
    when its connection fails."""

    def __init__(
        self, account: Account, folder: str, changed: Callable[[str], None], lost: Callable[[], None]
    ) -> None:
        self.account = account
        self.folder = folder
        self.changed = changed
        self.lost = lost
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"imapcrypt-idle-{folder}", daemon=True)
        self._ready = threading.Event()

    def start(self, timeout: float = 60.0) -> None:
        """Start idling; returns once the IDLE is in place (or it failed: see `failure`)."""
        self._thread.start()
        self._ready.wait(timeout)

    def stop(self) -> None:
        """Leave IDLE, log out and end the thread."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(IDLE_CHECK_SECONDS * 5)

    @property
    def alive(self) -> bool:
        """False once the watcher's connection failed."""
        return self.failure is None and self._thread.is_alive()

    def _run(self) -> None:
        session: Session | None = None
        try:
            session = open_session(self.account)
            session.examine(self.folder)
            # Leaving IDLE for a NOOP every idle_noop_seconds bounds the wait on a server that
            # pushes late; the NOOP reports what IDLE did not (yet).
            refresh = min(IDLE_REFRESH_SECONDS, self.account.idle_noop_seconds or IDLE_REFRESH_SECONDS)
            while not self._stop.is_set():
                if session.idle_until_change(self._stop.is_set, self._ready.set, refresh, IDLE_CHECK_SECONDS):
                    self.changed(self.folder)
        except BaseException as exc:  # reported through `failure`; the worker reconnects
            self.failure = exc
            log.info("watcher for %s stopped: %s", self.folder, type(exc).__name__)
            self.lost()
        finally:
            self._ready.set()
            if session is not None:
                session.logout()


class AccountWorker:
    """Keeps one account's folders encrypted until `stop()`; every method but `run` is thread-safe."""

    def __init__(
        self,
        config: Config,
        account: Account,
        events: DaemonEvents,
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.account = account
        self.events = events
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.monotonic = monotonic
        self.wall = wall
        self._state = WorkerState.STARTING
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._paused = False
        self._pending: set[str] = set()
        self._backlog: set[str] = set()
        self._unverified: set[str] = set()  # folders whose last pass left copies unverified
        self._engine: Engine | None = None
        self.passes = 0
        self.notifications = 0  # how often a watcher reported new mail

    # -- control, from any thread ---------------------------------------------------------------
    @property
    def state(self) -> WorkerState:
        """The current state."""
        return self._state

    def stop(self) -> None:
        """Finish the batch in flight (or leave it for recovery) and make `run` return."""
        self._stop.set()
        engine = self._engine
        if engine is not None:
            engine.stopping.set()
        self._wake.set()

    def encrypt_now(self) -> None:
        """Run a pass over every folder now (also cuts a backoff wait short)."""
        self._queue(self.account.folders, backlog=False)

    def backlog(self, folders: Sequence[str] | None = None) -> None:
        """Queue a pass over all existing mail of `folders` (default: every watched folder)."""
        self._queue(folders or self.account.folders, backlog=True)

    def pause(self) -> None:
        """Stop starting new work; the batch in flight completes."""
        with self._lock:
            self._paused = True
        self._wake.set()

    def resume(self) -> None:
        """Start working again, beginning with a pass over every folder."""
        with self._lock:
            self._paused = False
        self.encrypt_now()

    def _queue(self, folders: Sequence[str], backlog: bool) -> None:
        with self._lock:
            self._pending.update(folders)
            if backlog:
                self._backlog.update(folders)
        self._wake.set()

    def _folder_changed(self, folder: str) -> None:
        self.notifications += 1
        self._queue([folder], backlog=False)

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        """Work until `stop()`: take the account lock, connect, pass, watch, reconnect on failure.

        Raises LockedError when another process holds the account.
        """
        with AccountLock(self.config.data_dir, self.account.name):
            attempt = 0
            while not self._stop.is_set():
                try:
                    self._serve()
                    attempt = 0
                except UploadPaused as exc:
                    # The day's upload budget is spent: wait for the next day's, not for a backoff.
                    delay = max(exc.resume_at.timestamp() - self.wall(), 1.0)
                    log.warning("account %s: %s; resuming in %.0fs", self.account.name, exc.message, delay)
                    self._set(WorkerState.PAUSED, exc.message, exc.fix, delay)
                    self._rest(delay)
                except TransientError as exc:
                    delay = self.backoff.delay(attempt, self.rng)
                    attempt += 1
                    log.warning("account %s offline: %s; retrying in %.0fs", self.account.name, exc, delay)
                    self._set(WorkerState.OFFLINE, exc.message, exc.fix, delay)
                    self._rest(delay)
                except Exception as exc:
                    # The user must fix this (password, keys, config) or the server misbehaves: retry
                    # slowly, or on "Encrypt now". A bug or an input nobody foresaw must not end the
                    # account's work for good either.
                    error = exc if isinstance(exc, ImapcryptError) else _unexpected(exc)
                    delay = self.backoff.delay(attempt + 6, self.rng)
                    attempt += 1
                    log.error("account %s: %s", self.account.name, error)
                    self.events.on_error(error)
                    self._set(WorkerState.ERROR, error.message, error.fix, delay)
                    self._rest(delay)
            self._set(WorkerState.STOPPED)

    def _rest(self, seconds: float) -> None:
        self._wake.clear()
        self._wake.wait(seconds)

    def _serve(self) -> None:
        ready_to_encrypt(self.config, self.account)
        # Mail may have arrived while we were not watching: every (re)connection starts with a pass.
        self._queue(self.account.folders, backlog=False)
        with open_account(self.config, self.account, self.events) as opened:
            self._engine = opened.engine
            opened.session.sleep = self._throttle_pause
            if self._stop.is_set():
                opened.engine.stopping.set()
            watchers: list[FolderWatcher] = []
            try:
                if opened.session.can_idle:
                    # One connection is the engine's; the rest of the allowance IDLEs, folder by folder.
                    watched = self.account.folders[: max(self.account.max_connections - 1, 0)]
                    watchers = [
                        FolderWatcher(self.account, f, self._folder_changed, self._wake.set) for f in watched
                    ]
                    for watcher in watchers:
                        watcher.start()
                polled = [f for f in self.account.folders if f not in {w.folder for w in watchers}]
                self._loop(opened.session, opened.engine, watchers, polled)
            finally:
                for watcher in watchers:
                    watcher.stop()
                self._engine = None

    def _throttle_pause(self, seconds: float) -> None:
        """The session's wait before retrying a throttled command; a stop cuts it short."""
        if self._stop.wait(seconds):
            raise TransientError("stopping while the server throttles", "the next run goes on")

    def _loop(
        self, session: Session, engine: Engine, watchers: list[FolderWatcher], polled: list[str]
    ) -> None:
        last_mono, last_wall = self.monotonic(), self.wall()
        last_contact = last_mono
        while not self._stop.is_set():
            dead = [w for w in watchers if not w.alive]
            if dead:
                raise _Reconnect(f"the IDLE connection for {dead[0].folder} was lost", "reconnecting")
            now_mono, now_wall = self.monotonic(), self.wall()
            if (now_wall - last_wall) - (now_mono - last_mono) > SLEEP_JUMP_SECONDS:
                raise _Reconnect("the computer was asleep", "reconnecting")
            last_mono, last_wall = now_mono, now_wall
            with self._lock:
                paused = self._paused
                folders = [] if paused else sorted(self._pending)
                backlog = self._backlog & set(folders)
                self._pending -= set(folders)
                self._backlog -= backlog
                self._wake.clear()
            if paused:
                if self._state is not WorkerState.PAUSED:
                    self._set(WorkerState.PAUSED)
            elif folders:
                self._pass(engine, folders, backlog)
                last_contact = self.monotonic()
                continue
            elif self._state is not WorkerState.IDLE:
                self._set(WorkerState.IDLE)
            timeout = self.account.poll_seconds if polled else KEEPALIVE_SECONDS
            if self._unverified:
                timeout = min(timeout, UNVERIFIED_RETRY_SECONDS)
            if not self._wake.wait(min(timeout, KEEPALIVE_SECONDS)):
                if self._unverified and not paused:
                    self._queue(sorted(self._unverified), backlog=False)
                if polled and not paused:
                    self._queue(polled, backlog=False)  # folders no IDLE connection watches
                elif self.monotonic() - last_contact >= KEEPALIVE_SECONDS:
                    session.noop()
                    last_contact = self.monotonic()

    def _pass(self, engine: Engine, folders: list[str], backlog: set[str]) -> None:
        self._set(WorkerState.WORKING)
        for folder in folders:
            if self._stop.is_set():
                return
            report = engine.encrypt_folder(folder, backlog=folder in backlog)
            if report.unverified:
                self._unverified.add(folder)
            else:
                self._unverified.discard(folder)
            self.passes += 1
            self._log_report(report)

    def _log_report(self, report: FolderReport) -> None:
        if report.encrypted or report.failed or report.recovered or report.unverified:
            log.info(
                "pass account=%s folder=%s encrypted=%d failed=%d unverified=%d recovered=%d waiting=%d",
                self.account.name,
                report.folder,
                report.encrypted,
                report.failed,
                report.unverified,
                report.recovered,
                report.waiting + report.too_young,
            )

    def _set(
        self, state: WorkerState, detail: str = "", fix: str = "", retry_in: float | None = None
    ) -> None:
        self._state = state
        self.events.on_state(StateChange(self.account.name, state, detail, fix, retry_in))
