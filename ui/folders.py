"""The folder checklist shared by the wizard and Settings: the server's folders, INBOX first."""

from __future__ import annotations

from collections.abc import Sequence

from imapcrypt_ui.qt import QListWidget, QListWidgetItem, Qt


class FolderChecklist(QListWidget):
    """One checkable line per folder; `chosen()` is what is ticked."""

    def fill(self, found: Sequence[str], ticked: Sequence[str]) -> None:
        """List `found` (in its order) plus any ticked folder the server did not list, ticking `ticked`."""
        self.clear()
        names = [*found, *(name for name in ticked if name not in found)]
        for name in names or ["INBOX"]:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in ticked else Qt.CheckState.Unchecked)
            self.addItem(item)

    def chosen(self) -> tuple[str, ...]:
        """The ticked folders, in the list's order."""
        items = (self.item(i) for i in range(self.count()))
        return tuple(i.text() for i in items if i.checkState() == Qt.CheckState.Checked)
