"""One-off background jobs for the windows (a login, a key, a dry run, a folder list, a passphrase check).

The GUI thread never waits on IMAP or GnuPG: `run_task` runs a function in a Python thread and calls
`on_done` (or `on_failed`) with its result back on the GUI thread, through a queued signal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from imapcrypt_ui.qt import QObject, Signal, Slot

log = logging.getLogger(__name__)
_running: set[Task] = set()  # a task must outlive the caller's reference until it delivered


class Task(QObject):
    """A function running in its own thread; its outcome is delivered on the GUI thread."""

    _finished = Signal(object)
    _raised = Signal(object)
    settled = Signal()  # after the callback ran, whatever the outcome

    def __init__(
        self,
        function: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[BaseException], None],
        name: str,
    ) -> None:
        super().__init__()
        self._function = function
        self._on_done = on_done
        self._on_failed = on_failed
        self._finished.connect(self._deliver)
        self._raised.connect(self._deliver_failure)
        self._thread = threading.Thread(target=self._run, name=f"imapcrypt-ui-{name}", daemon=True)

    def start(self) -> Task:
        """Start the thread."""
        _running.add(self)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            result = self._function()
        except BaseException as exc:  # delivered to on_failed on the GUI thread
            self._raised.emit(exc)
        else:
            self._finished.emit(result)

    @Slot(object)
    def _deliver(self, result: object) -> None:
        try:
            self._on_done(result)
        finally:
            self._settle()

    @Slot(object)
    def _deliver_failure(self, exc: object) -> None:
        try:
            assert isinstance(exc, BaseException)  # noqa: S101 - only _run emits it
            self._on_failed(exc)
        finally:
            self._settle()

    def _settle(self) -> None:
        _running.discard(self)
        self.settled.emit()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread (tests and shutdown only; never from a slot that must stay quick)."""
        self._thread.join(timeout)


def _log_failure(exc: BaseException) -> None:
    log.error("background task failed: %s", type(exc).__name__)


def run_task(
    function: Callable[[], Any],
    on_done: Callable[[Any], None],
    on_failed: Callable[[BaseException], None] = _log_failure,
    name: str = "task",
) -> Task:
    """Run `function()` in a thread; `on_done(result)` or `on_failed(exception)` runs on the GUI thread."""
    return Task(function, on_done, on_failed, name).start()
