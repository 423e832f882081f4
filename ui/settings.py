"""Settings: everything the wizard set, editable in the wizard's words, plus autostart at login.

Saving writes the configuration (`api.save_account`) and, if a new password was typed, the OS keyring;
the tray then restarts the workers with the new settings. The folders are the wizard's checklist,
filled from the server in the background.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from imapcrypt_ui.fields import FolderChecklist, SecurityChoice
from imapcrypt_ui.labels import plain_label
from imapcrypt_ui.qt import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from imapcrypt_ui.tasks import run_task

from imapcrypt import api
from imapcrypt.api import Account, Config
from imapcrypt.errors import ImapcryptError

# What happens to the readable original, in the wizard's sentences (config words as item data).
ORIGINAL_CHOICES = (
    ("Delete it for good once the encrypted copy is verified", "purge"),
    ("Move it to Trash (plaintext stays there until the provider empties it)", "trash"),
)


def grouped_fingerprint(fingerprint: str) -> str:
    """A fingerprint in groups of four, as GnuPG prints it: whole, and easy to compare by eye."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


class SettingsDialog(QDialog):
    """Edit one account's settings (choose the account at the top) and the autostart toggle."""

    folders_listed = Signal()

    def __init__(
        self, config: Config, saved: Callable[[Config], None], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.config = config
        self._saved = saved
        self.setWindowTitle("imapcrypt settings")
        self.account_choice = QComboBox()
        self.account_choice.addItems([a.name for a in config.accounts])
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.security = SecurityChoice()
        self.username = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("unchanged")
        self.password_command = QLineEdit()
        self.folders = FolderChecklist()
        self.folders.setMaximumHeight(140)
        self.folders_note = plain_label()
        self.folders_note.setWordWrap(True)
        self.grace = QSpinBox()
        self.grace.setRange(0, 7 * 24 * 60)
        self.grace.setSuffix(" minutes")
        self.grace.setSpecialValueText("none: encrypt new mail at once")
        self.original = QComboBox()
        for text, value in ORIGINAL_CHOICES:
            self.original.addItem(text, value)
        self.poll = QSpinBox()
        self.poll.setRange(1, 3600)
        self.poll.setSuffix(" seconds")
        self.poll.setToolTip("Only where the server cannot announce new mail (no IDLE)")
        self.recipients = plain_label()
        self.recipients.setWordWrap(True)
        self.recipients.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.autostart = QCheckBox("Start imapcrypt when I log in")
        self.autostart.setChecked(api.autostart_enabled())
        self.error = plain_label()
        self.error.setWordWrap(True)
        self._lay_out()
        self.account_choice.currentIndexChanged.connect(lambda _i: self._load())
        self._load()

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Account", self.account_choice)
        form.addRow("IMAP server", self.host)
        form.addRow("Port", self.port)
        form.addRow("Security", self.security)
        form.addRow("User name", self.username)
        form.addRow("New password", self.password)
        form.addRow("Password command", self.password_command)
        form.addRow("Folders to encrypt", self.folders)
        form.addRow("", self.folders_note)
        form.addRow("Grace period", self.grace)
        form.addRow("The readable original", self.original)
        form.addRow("Without IDLE, look every", self.poll)
        form.addRow("Mail is encrypted to", self.recipients)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.autostart)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _account(self) -> Account:
        return self.config.accounts[max(self.account_choice.currentIndex(), 0)]

    def _load(self) -> None:
        if not self.config.accounts:
            return
        a = self._account()
        self.host.setText(a.host)
        self.port.setValue(a.port)
        self.security.set_value(a.security)
        self.username.setText(a.username)
        self.password.clear()
        self.password_command.setText(a.password_command or "")
        self.folders.fill(a.folders, a.folders)
        self.folders_note.setText("Listing the server's folders…")
        self.grace.setValue(round(a.grace_minutes))
        self.original.setCurrentIndex(max(self.original.findData(a.original), 0))
        self.poll.setValue(round(a.poll_seconds))
        self.recipients.setText("\n".join(grouped_fingerprint(r) for r in a.recipients))
        self.recipients.setToolTip("Change keys with `imapcrypt keys` (docs/keys.md)")
        run_task(
            lambda: api.server_folders(a),
            lambda found: self._list_folders(a, found),
            lambda exc: self._folders_failed(a, exc),
            name="settings-folders",
        )

    def _list_folders(self, account: Account, found: tuple[str, ...]) -> None:
        if account != self._account():
            return
        ticked = self.folders.chosen()
        self.folders.fill(found, ticked)
        self.folders_note.setText("")
        self.folders_listed.emit()

    def _folders_failed(self, account: Account, exc: BaseException) -> None:
        if account != self._account():
            return
        why = exc.message if isinstance(exc, ImapcryptError) else type(exc).__name__
        self.folders_note.setText(f"Only the watched folders are listed: the server's list failed ({why}).")

    def edited(self) -> Account:
        """The account as the fields now describe it."""
        folders = self.folders.chosen()
        return dataclasses.replace(
            self._account(),
            host=self.host.text().strip(),
            port=self.port.value(),
            security=self.security.value(),
            username=self.username.text().strip(),
            password_command=self.password_command.text().strip() or None,
            folders=folders or ("INBOX",),
            grace_minutes=float(self.grace.value()),
            original="trash" if self.original.currentData() == "trash" else "purge",
            poll_seconds=float(self.poll.value()),
        )

    def save(self) -> None:
        """Write the settings and the autostart entry; errors are shown with their fix."""
        try:
            account = self.edited()
            config = api.save_account(self.config, account, self.password.text())
            api.set_autostart(self.autostart.isChecked())
        except ImapcryptError as exc:
            self.error.setText(f"{exc.message}\nFix: {exc.fix}")
            return
        except OSError as exc:
            self.error.setText(f"Could not write the autostart entry: {exc.strerror}")
            return
        self.config = config
        self._saved(config)
        self.accept()
