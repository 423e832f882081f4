"""The one adapter from the engine to the screen: daemon events in, Qt signals out, as Vorta does.

An `AccountWorker` calls its `DaemonEvents` from its own threads. `EngineBridge` hands each worker a
plain `AccountEvents` object whose methods only emit the bridge's signals; the bridge lives in the
GUI thread, so Qt queues every emission and the slots run there. Nothing in here blocks.
"""

from __future__ import annotations

from imapcrypt_ui.qt import QObject, Signal

from imapcrypt.api import StateChange
from imapcrypt.errors import ImapcryptError
from imapcrypt.events import MessageDone, Progress


class EngineBridge(QObject):
    """Re-emits every account's events as signals; connect slots of GUI-thread QObjects to them."""

    progress = Signal(object)  # Progress
    message_done = Signal(object)  # MessageDone
    error = Signal(str, object)  # account name, ImapcryptError
    state_changed = Signal(object)  # StateChange

    def events_for(self, account: str) -> AccountEvents:
        """The events object to give the worker of `account`."""
        return AccountEvents(self, account)


class AccountEvents:
    """One account's `DaemonEvents`: each call becomes a queued signal of the bridge."""

    def __init__(self, bridge: EngineBridge, account: str) -> None:
        self._bridge = bridge
        self.account = account

    def on_progress(self, progress: Progress) -> None:
        """Work advanced."""
        self._bridge.progress.emit(progress)

    def on_message_done(self, done: MessageDone) -> None:
        """A message was replaced."""
        self._bridge.message_done.emit(done)

    def on_error(self, error: ImapcryptError) -> None:
        """Something failed (the engine's errors carry no account: this object adds it)."""
        self._bridge.error.emit(self.account, error)

    def on_state(self, change: StateChange) -> None:
        """The worker's state changed."""
        self._bridge.state_changed.emit(change)
