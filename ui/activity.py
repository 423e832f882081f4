"""The activity window: recent operations (time, account, folder, sender, size) and errors with their fix.

Engine events carry no sender and no subject. When the window is shown it looks up the senders of the
listed copies on the server (headers only); it shows subjects only for accounts whose reader the user
unlocked.
"""

from __future__ import annotations

from collections import defaultdict

from imapcrypt_ui.controller import ActivityEntry, Controller
from imapcrypt_ui.qt import (
    QAbstractItemView,
    QHeaderView,
    QShowEvent,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    Signal,
)
from imapcrypt_ui.reader import Unlocked, human_size
from imapcrypt_ui.tasks import run_task

from imapcrypt import api

COLUMNS = ["Time", "Account", "Folder", "What", "Sender", "Size", "Subject", "Fix"]


class ActivityWindow(QWidget):
    """A table of the controller's activity log, newest first."""

    details_loaded = Signal()

    def __init__(self, controller: Controller, unlocked: Unlocked) -> None:
        super().__init__()
        self.controller = controller
        self.unlocked = unlocked
        self.setWindowTitle("imapcrypt activity")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        self.resize(1200, 400)
        # Looked-up details by (account, folder, new uid): sender, subject or None.
        self.details: dict[tuple[str, str, int], tuple[str, str | None]] = {}
        controller.activity_added.connect(lambda _entry: self.refresh() if self.isVisible() else None)

    def showEvent(self, event: QShowEvent) -> None:
        """Refresh and look up what the events do not carry."""
        super().showEvent(event)
        self.refresh()
        self.look_up_details()

    def refresh(self) -> None:
        """Rebuild the table from the log."""
        entries = list(reversed(self.controller.activity))
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            sender, subject = self.details.get((entry.account, entry.folder, entry.new_uid), ("", None))
            if entry.account not in self.unlocked:
                subject = None
            values = [
                entry.when.strftime("%H:%M:%S"),
                entry.account,
                entry.folder,
                entry.what if entry.what != "error" else f"error: {entry.message}",
                sender,
                human_size(entry.size) if entry.size else "",
                subject or "",
                entry.fix,
            ]
            for column, text in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.setColumnWidth(3, min(self.table.columnWidth(3), 300))

    def look_up_details(self) -> None:
        """Fetch the sender (and, when unlocked, the subject) of each listed copy, in the background."""
        config = self.controller.config
        if config is None:
            return
        wanted: dict[tuple[str, str], list[int]] = defaultdict(list)
        for entry in self.controller.activity:
            key = (entry.account, entry.folder, entry.new_uid)
            if entry.what == "encrypted" and key not in self.details:
                wanted[(entry.account, entry.folder)].append(entry.new_uid)
        if wanted:
            run_task(lambda: _details(config, dict(wanted), self.unlocked), self._loaded, name="activity")

    def _loaded(self, found: dict[tuple[str, str, int], tuple[str, str | None]]) -> None:
        self.details.update(found)
        self.refresh()
        self.details_loaded.emit()


def _details(
    config: api.Config, wanted: dict[tuple[str, str], list[int]], unlocked: Unlocked
) -> dict[tuple[str, str, int], tuple[str, str | None]]:
    found: dict[tuple[str, str, int], tuple[str, str | None]] = {}
    for (account_name, folder), uids in wanted.items():
        account = config.account(account_name)
        summaries = api.summaries_of(config, account, folder, uids, unlocked.get(account_name))
        for uid, summary in summaries.items():
            found[(account_name, folder, uid)] = (summary.sender, summary.subject)
    return found


__all__ = ["ActivityEntry", "ActivityWindow"]
