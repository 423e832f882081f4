"""The tray's model: one `AccountWorker` per account, each in its own thread, and what they report.

The controller owns the workers, turns their signals (through the `EngineBridge`) into an overall
state, counts, an activity log and notifications, and forwards the menu's commands (encrypt now,
pause, resume, backlog) to the workers, whose control methods are thread-safe and return at once.
Quitting asks every worker to stop (the message in flight completes) and reports `stopped` when all
threads ended; the GUI thread never joins a worker.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from imapcrypt_ui.bridge import EngineBridge
from imapcrypt_ui.qt import QObject, Signal, Slot

from imapcrypt.api import Account, AccountWorker, Config, DaemonEvents, StateChange, WorkerState
from imapcrypt.errors import ImapcryptError
from imapcrypt.events import MessageDone, Progress

log = logging.getLogger(__name__)

IconState = Literal["idle", "working", "paused", "error", "offline"]
ACTIVITY_LIMIT = 500
STOP_TIMEOUT = 60.0  # after this, Quit leaves the rest to recovery on the next start


class Worker(Protocol):
    """What the controller needs of an account worker (the daemon's `AccountWorker`)."""

    def run(self) -> None: ...
    def stop(self) -> None: ...
    def encrypt_now(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def backlog(self, folders: Sequence[str] | None = None) -> None: ...


WorkerFactory = Callable[[Config, Account, DaemonEvents], Worker]


@dataclass(frozen=True)
class ActivityEntry:
    """One line of the activity window: a message replaced, or an error with its fix.

    It holds no sender and no subject: the activity window looks those up on the server when shown.
    """

    when: dt.datetime
    account: str
    folder: str
    what: str  # "encrypted", "restored" or "error"
    uid: int = 0
    new_uid: int = 0
    size: int = 0
    message: str = ""
    fix: str = ""


@dataclass
class AccountStatus:
    """One account's worker, its thread and what it reported last."""

    account: Account
    worker: Worker
    thread: threading.Thread
    state: StateChange
    encrypted: int = 0  # this session
    progress: dict[str, Progress] = field(default_factory=dict)
    backlog_requested: bool = False
    backlog_done: int = 0


def overall_state(states: Sequence[WorkerState]) -> IconState:
    """The icon for a set of account states: an error wins, then offline, working, paused, idle."""
    if WorkerState.ERROR in states:
        return "error"
    if WorkerState.OFFLINE in states:
        return "offline"
    if WorkerState.WORKING in states or WorkerState.STARTING in states:
        return "working"
    if states and all(s in (WorkerState.PAUSED, WorkerState.STOPPED) for s in states):
        return "paused" if WorkerState.PAUSED in states else "idle"
    return "idle"


class Controller(QObject):
    """Runs the workers and keeps the state the tray, activity window and wizard show."""

    changed = Signal()  # state, counts or progress changed
    notify = Signal(str, str, bool)  # title, text, is_error
    activity_added = Signal(object)  # ActivityEntry
    progress = Signal(object)  # Progress, forwarded for progress bars
    stopped = Signal()  # every worker thread ended after shutdown()
    _all_stopped = Signal()  # emitted by the shutdown thread, delivered queued to the GUI thread

    def __init__(self, worker_factory: WorkerFactory | None = None) -> None:
        super().__init__()
        self.bridge = EngineBridge()
        self._factory: WorkerFactory = worker_factory or AccountWorker
        self.config: Config | None = None
        self.accounts: dict[str, AccountStatus] = {}
        self.activity: deque[ActivityEntry] = deque(maxlen=ACTIVITY_LIMIT)
        self.paused = False
        self._notified: dict[str, str] = {}  # account -> the error last notified, to notify once
        self.bridge.state_changed.connect(self._on_state)
        self.bridge.progress.connect(self._on_progress)
        self.bridge.message_done.connect(self._on_message_done)
        self.bridge.error.connect(self._on_error)
        self._all_stopped.connect(self._finish_shutdown)

    # -- starting and stopping ------------------------------------------------------------------
    def start(self, config: Config) -> None:
        """Start one worker thread per account of `config` (call `shutdown` first to restart)."""
        self.config = config
        for account in config.accounts:
            events = self.bridge.events_for(account.name)
            worker = self._factory(config, account, events)
            thread = threading.Thread(
                target=self._run_worker,
                args=(worker, events, account.name),
                name=f"imapcrypt-worker-{account.name}",
                daemon=True,
            )
            initial = StateChange(account.name, WorkerState.STARTING, "", "", None)
            self.accounts[account.name] = AccountStatus(account, worker, thread, initial)
            thread.start()
            if self.paused:
                worker.pause()
        self.changed.emit()

    @staticmethod
    def _run_worker(worker: Worker, events: DaemonEvents, name: str) -> None:
        """The worker thread: run until stopped; a failure that ends run() becomes an error state."""
        try:
            worker.run()
        except ImapcryptError as exc:  # LockedError, mostly: another process holds the account
            events.on_error(exc)
            events.on_state(StateChange(name, WorkerState.ERROR, exc.message, exc.fix, None))
        except Exception:  # a bug: keep the tray alive and say where to look
            log.exception("the worker of account %s crashed", name)
            events.on_state(
                StateChange(name, WorkerState.ERROR, "internal error", "see the log; restart imapcrypt", None)
            )

    def shutdown(self) -> None:
        """Ask every worker to stop; `stopped` is emitted once all their threads ended."""
        statuses = list(self.accounts.values())
        for status in statuses:
            status.worker.stop()

        def wait() -> None:
            for status in statuses:
                status.thread.join(STOP_TIMEOUT)
            self._all_stopped.emit()

        threading.Thread(target=wait, name="imapcrypt-shutdown", daemon=True).start()

    @Slot()
    def _finish_shutdown(self) -> None:
        self.accounts.clear()
        self.stopped.emit()

    @property
    def running(self) -> bool:
        """Whether any worker thread is alive."""
        return any(s.thread.is_alive() for s in self.accounts.values())

    # -- commands from the menu -----------------------------------------------------------------
    def encrypt_now(self) -> None:
        """A pass over every folder of every account, now."""
        for status in self.accounts.values():
            status.worker.encrypt_now()

    def set_paused(self, paused: bool) -> None:
        """Pause (the batch in flight completes) or resume every account."""
        self.paused = paused
        for status in self.accounts.values():
            if paused:
                status.worker.pause()
            else:
                status.worker.resume()
        self.changed.emit()

    def backlog(self, account: str | None = None, folders: Sequence[str] | None = None) -> None:
        """Encrypt existing mail too, with progress (every account when `account` is None)."""
        for name, status in self.accounts.items():
            if account is None or name == account:
                status.backlog_requested = True
                status.backlog_done = 0
                status.worker.backlog(folders)

    # -- what the tray shows ----------------------------------------------------------------------
    @property
    def icon_state(self) -> IconState:
        """The tray icon's state."""
        return overall_state([s.state.state for s in self.accounts.values()])

    def status_line(self) -> str:
        """One line for the menu: the state and what was done this session."""
        if not self.accounts:
            return "No account set up"
        encrypted = sum(s.encrypted for s in self.accounts.values())
        state = self.icon_state
        words = {
            "idle": "Watching",
            "working": "Encrypting",
            "paused": "Paused",
            "error": "Needs attention",
            "offline": "Offline",
        }
        return f"{words[state]} · {encrypted:,} encrypted this session"

    def tooltip(self) -> str:
        """The tray tooltip: one line per account with its state, counts and any fix."""
        lines = [f"imapcrypt: {self.status_line()}"]
        for name, status in self.accounts.items():
            line = f"{name}: {status.state.state.value}, {status.encrypted:,} encrypted"
            running = [p for p in status.progress.values() if p.done < p.total]
            if running:
                done = sum(p.done for p in running)
                total = sum(p.total for p in running)
                line += f", {done:,}/{total:,} in progress"
            if status.state.state in (WorkerState.ERROR, WorkerState.OFFLINE) and status.state.detail:
                line += f": {status.state.detail}"
                if status.state.fix:
                    line += f" ({status.state.fix})"
            lines.append(line)
        return "\n".join(lines)

    def errors(self) -> list[StateChange]:
        """The accounts in the error state, with what happened and the fix."""
        return [s.state for s in self.accounts.values() if s.state.state is WorkerState.ERROR]

    # -- slots for the bridge (GUI thread) ------------------------------------------------------------
    @Slot(object)
    def _on_state(self, change: StateChange) -> None:
        status = self.accounts.get(change.account)
        if status is None:
            return
        before = status.state.state
        status.state = change
        if change.state is WorkerState.ERROR and self._notified.get(change.account) != change.detail:
            self._notified[change.account] = change.detail
            text = change.detail + (f"\nFix: {change.fix}" if change.fix else "")
            self.notify.emit(f"imapcrypt: {change.account} needs attention", text, True)
        elif change.state in (WorkerState.IDLE, WorkerState.WORKING):
            self._notified.pop(change.account, None)
        if before is WorkerState.WORKING and change.state is WorkerState.IDLE and status.backlog_requested:
            status.backlog_requested = False
            self.notify.emit(
                "imapcrypt: existing mail done",
                f"{change.account}: {status.backlog_done:,} messages encrypted",
                False,
            )
        self.changed.emit()

    @Slot(object)
    def _on_progress(self, progress: Progress) -> None:
        status = self.accounts.get(progress.account)
        if status is not None:
            status.progress[progress.folder] = progress
        self.progress.emit(progress)
        self.changed.emit()

    @Slot(object)
    def _on_message_done(self, done: MessageDone) -> None:
        status = self.accounts.get(done.account)
        if status is not None and done.direction == "encrypt":
            status.encrypted += 1
            status.backlog_done += 1
        entry = ActivityEntry(
            dt.datetime.now().astimezone(),
            done.account,
            done.folder,
            "encrypted" if done.direction == "encrypt" else "restored",
            done.uid,
            done.new_uid,
            done.size,
        )
        self._add(entry)
        self.changed.emit()

    @Slot(str, object)
    def _on_error(self, account: str, error: ImapcryptError) -> None:
        entry = ActivityEntry(
            dt.datetime.now().astimezone(), account, "", "error", message=error.message, fix=error.fix
        )
        self._add(entry)

    def _add(self, entry: ActivityEntry) -> None:
        self.activity.append(entry)
        self.activity_added.emit(entry)
