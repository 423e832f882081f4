"""The activity window: recent operations (time, account, folder, sender, size) and errors with their fix.

Engine events carry no sender and no subject. When the window is shown it looks up the senders of the
listed copies on the server (headers only); it shows subjects only for accounts whose reader the user
unlocked.
"""

from __future__ import annotations

from collections import defaultdict

from imapcrypt_ui.controller import ActivityEntry, Controller
from imapcrypt_ui.labels import plain_label
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
# What each column holds, for its header's tooltip: the blank ones say why they are blank.
EXPLAINED = {
    "Sender": "Looked up on the server when this window opens (the engine's events carry no address)",
    "Subject": "Shown once the reader is unlocked with the key's passphrase; until then it stays hidden",
    "Fix": "For an error: what to do about it. Empty when all went well",
}
MIN_WIDTHS = {"Sender": 160, "Subject": 220, "Fix": 240}
LOCKED_SUBJECT = "(locked: unlock the reader)"


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
        for column, name in enumerate(COLUMNS):
            header = self.table.horizontalHeaderItem(column)
            if header is not None and name in EXPLAINED:
                header.setToolTip(EXPLAINED[name])
        self.note = plain_label(
            "Senders are looked up on the server; subjects appear once the reader is unlocked. "
            "Hover over a column's title for what it shows."
        )
        self.note.setWordWrap(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
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
            locked = entry.account not in self.unlocked
            if locked:
                subject = LOCKED_SUBJECT if entry.what == "encrypted" else None
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
        # Columns filled later (or only on errors) would otherwise shrink to a sliver.
        for name, width in MIN_WIDTHS.items():
            column = COLUMNS.index(name)
            self.table.setColumnWidth(column, max(self.table.columnWidth(column), width))

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
