"""Settings: everything the wizard set, editable, plus autostart at login.

Saving writes the configuration (see imapcrypt.config.write) and, if a new password was typed, the OS keyring;
the tray then restarts the workers with the new settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from imapcrypt_ui.qt import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from imapcrypt import autostart
from imapcrypt.config import write as config_write
from imapcrypt.config.model import Account, Config
from imapcrypt.errors import ImapcryptError
from imapcrypt.secrets import store_account_password


class SettingsDialog(QDialog):
    """Edit one account's settings (choose the account at the top) and the autostart toggle."""

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
        self.security = QComboBox()
        self.security.addItems(["tls", "starttls", "plain"])
        self.username = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("unchanged")
        self.password_command = QLineEdit()
        self.folders = QLineEdit()
        self.folders.setToolTip("Folder names separated by commas")
        self.grace = QDoubleSpinBox()
        self.grace.setRange(0, 7 * 24 * 60)
        self.grace.setSuffix(" minutes")
        self.original = QComboBox()
        self.original.addItems(["purge", "trash"])
        self.poll = QDoubleSpinBox()
        self.poll.setRange(1, 3600)
        self.poll.setSuffix(" s")
        self.recipients = QLabel()
        self.recipients.setWordWrap(True)
        self.autostart = QCheckBox("Start imapcrypt when I log in")
        self.autostart.setChecked(autostart.is_enabled())
        self.error = QLabel()
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
        form.addRow("Folders", self.folders)
        form.addRow("Grace period", self.grace)
        form.addRow("Original after encrypting", self.original)
        form.addRow("Check for mail every", self.poll)
        form.addRow("Keys (imapcrypt keys …)", self.recipients)
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
        self.security.setCurrentText(a.security)
        self.username.setText(a.username)
        self.password.clear()
        self.password_command.setText(a.password_command or "")
        self.folders.setText(", ".join(a.folders))
        self.grace.setValue(a.grace_minutes)
        self.original.setCurrentText(a.original)
        self.poll.setValue(a.poll_seconds)
        self.recipients.setText("\n".join(a.recipients))

    def edited(self) -> Account:
        """The account as the fields now describe it."""
        folders = tuple(f.strip() for f in self.folders.text().split(",") if f.strip())
        security = self.security.currentText()
        return dataclasses.replace(
            self._account(),
            host=self.host.text().strip(),
            port=self.port.value(),
            security="starttls" if security == "starttls" else "plain" if security == "plain" else "tls",
            username=self.username.text().strip(),
            password_command=self.password_command.text().strip() or None,
            folders=folders or ("INBOX",),
            grace_minutes=float(self.grace.value()),
            original="trash" if self.original.currentText() == "trash" else "purge",
            poll_seconds=float(self.poll.value()),
        )

    def save(self) -> None:
        """Write the settings and the autostart entry; errors are shown with their fix."""
        try:
            account = self.edited()
            config = config_write.save(config_write.with_account(self.config, account))
            if self.password.text():
                store_account_password(account, self.password.text())
            if self.autostart.isChecked():
                autostart.enable()
            else:
                autostart.disable()
        except ImapcryptError as exc:
            self.error.setText(f"{exc.message}\nFix: {exc.fix}")
            return
        except OSError as exc:
            self.error.setText(f"Could not write the autostart entry: {exc.strerror}")
            return
        self.config = config
        self._saved(config)
        self.accept()
