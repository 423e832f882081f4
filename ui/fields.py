"""Form fields the wizard and Settings share: the folder checklist and the security choice, in words."""

from __future__ import annotations

from collections.abc import Sequence

from imapcrypt_ui.qt import QComboBox, QListWidget, QListWidgetItem, Qt

from imapcrypt.api import Security

# The configuration's words (item data) shown as what they mean.
SECURITY_CHOICES: tuple[tuple[str, Security], ...] = (
    ("TLS (usually port 993)", "tls"),
    ("STARTTLS (usually port 143)", "starttls"),
    ("None: only to a server on this computer", "plain"),
)


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


class SecurityChoice(QComboBox):
    """How the connection is secured, in words; `value()` is the configuration's word."""

    def __init__(self) -> None:
        super().__init__()
        for text, value in SECURITY_CHOICES:
            self.addItem(text, value)

    def value(self) -> Security:
        """tls, starttls or plain."""
        chosen = self.currentData()
        return next((value for _text, value in SECURITY_CHOICES if value == chosen), "tls")

    def set_value(self, value: str) -> None:
        """Select the choice for the configuration's word `value`."""
        self.setCurrentIndex(max(self.findData(value), 0))
