"""The first-run wizard (docs/tray.md): account, connection test, key, folders, policy, dry run, start.

Nothing on the server changes before the last page's Start. Every slow step (the connection test,
key generation, listing folders, the dry-run count) runs through `run_task`, so the window never
freezes. The password goes to the OS keyring (or the user gives a password command); the passphrase
is used for the self-test and the backup and then forgotten.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imapcrypt_ui.qt import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    Qt,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
    Signal,
)
from imapcrypt_ui.tasks import run_task

from imapcrypt.config import write as config_write
from imapcrypt.config.model import Account, Config, Security, default_data_dir, load_config
from imapcrypt.config.providers import PRESETS
from imapcrypt.doctor import checks as doctor
from imapcrypt.doctor.check import Check
from imapcrypt.errors import ConfigError, ImapcryptError
from imapcrypt.events import Progress
from imapcrypt.imap.connect import connect
from imapcrypt.keys import manage as keys
from imapcrypt.keys.selftest import confirm_secret_elsewhere, record_self_test, self_test
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.secrets import store_account_password
from imapcrypt.wiring import open_account

CUSTOM = "Other provider"
SERVER_CHECKS_EXCLUDED = ("recipient", "self-test", "journal")


@dataclass
class WizardModel:
    """What the pages gather; the pages read and write it, the wizard turns it into a Config."""

    config_path: Path
    data_dir: Path
    gnupg_home: Path
    name: str = ""
    host: str = ""
    port: int = 993
    security: Security = "tls"
    username: str = ""
    password: str = ""
    password_command: str = ""
    recipients: tuple[str, ...] = ()
    folders_found: list[str] = field(default_factory=list)
    folders: tuple[str, ...] = ("INBOX",)
    grace_minutes: float = 0.0
    original: str = "purge"
    would_encrypt: int = 0
    already: int = 0

    def account(self) -> Account:
        """The account as the pages describe it so far."""
        return Account(
            name=self.name or self.username or "mail",
            host=self.host,
            username=self.username,
            recipients=self.recipients,
            port=self.port,
            security=self.security,
            password_command=self.password_command or None,
            folders=self.folders,
            grace_minutes=self.grace_minutes,
            original="trash" if self.original == "trash" else "purge",
        )

    def config(self) -> Config:
        """The configuration to write: the existing file's accounts plus this one."""
        try:
            existing = load_config(self.config_path)
        except ConfigError:
            existing = Config(self.config_path, self.gnupg_home, self.data_dir)
        base = dataclasses.replace(existing, gnupg_home=self.gnupg_home, data_dir=self.data_dir)
        return config_write.with_account(base, self.account())

    def password_source(self) -> Callable[[], str]:
        """The password as typed (for the connection test, before anything is stored)."""
        password = self.password
        return lambda: password


def _check_icon(check: Check) -> str:
    return {"OK": "✔", "WARN": "⚠", "FAIL": "✘"}[check.status]


class AccountPage(QWizardPage):
    """The provider, the address and the password."""

    demo_requested = Signal()

    def __init__(self, model: WizardModel) -> None:
        super().__init__()
        self.model = model
        self.setTitle("Your mail account")
        self.setSubTitle("imapcrypt encrypts the mail stored in this account with your own key.")
        self.provider = QComboBox()
        self.provider.addItems([*PRESETS, CUSTOM])
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.address = QLineEdit()
        self.address.setPlaceholderText("you@example.org")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(993)
        self.security = QComboBox()
        self.security.addItems(["tls", "starttls", "plain"])
        self.password_command = QLineEdit()
        self.password_command.setPlaceholderText("optional, e.g. pass show mail/me")
        self.demo = QPushButton("Try the demo (no account needed)")
        self.demo.setToolTip("Runs everything on a built-in IMAP server with sample mail and a throwaway key")
        self.demo.clicked.connect(self.demo_requested)
        form = QFormLayout()
        form.addRow("Provider", self.provider)
        form.addRow("", self.note)
        form.addRow("Address / user name", self.address)
        form.addRow("Password", self.password)
        form.addRow("IMAP server", self.host)
        form.addRow("Port", self.port)
        form.addRow("Security", self.security)
        form.addRow("Password command", self.password_command)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch()
        layout.addWidget(self.demo)
        self.provider.currentTextChanged.connect(self._preset)
        for edit in (self.address, self.password, self.host, self.password_command):
            edit.textChanged.connect(self.completeChanged)
        self._preset(self.provider.currentText())

    def _preset(self, name: str) -> None:
        preset = PRESETS.get(name)
        if preset is None:
            self.note.setText("Enter your provider's IMAP server; it is in their help pages.")
            return
        self.host.setText(preset.host)
        self.port.setValue(preset.port)
        self.security.setCurrentText(preset.security)
        self.note.setText(preset.note)

    def isComplete(self) -> bool:
        """Complete with a server, a user name and a password (or a command that prints it)."""
        return bool(
            self.host.text().strip()
            and self.address.text().strip()
            and (self.password.text() or self.password_command.text().strip())
        )

    def validatePage(self) -> bool:
        """Copy the fields into the model."""
        m = self.model
        m.username = self.address.text().strip()
        m.name = m.username.split("@")[0] or "mail"
        m.password = self.password.text()
        m.host = self.host.text().strip()
        m.port = self.port.value()
        text = self.security.currentText()
        m.security = "starttls" if text == "starttls" else "plain" if text == "plain" else "tls"
        m.password_command = self.password_command.text().strip()
        return True


class ConnectionPage(QWizardPage):
    """Test connection: doctor's server checks, one line each, and the server's folders."""

    tested = Signal()

    def __init__(self, model: WizardModel) -> None:
        super().__init__()
        self.model = model
        self.setTitle("Test the connection")
        self.setSubTitle("imapcrypt logs in and looks at what the server offers. Nothing is changed.")
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.run_test)
        self.results = QListWidget()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.test_button)
        layout.addWidget(self.results)
        layout.addWidget(self.summary)
        self.checks: list[Check] = []
        self.passed = False

    def initializePage(self) -> None:
        """Forget the previous result: the account may have changed."""
        self.results.clear()
        self.summary.setText("")
        self.passed = False

    def run_test(self) -> None:
        """Run the checks in the background and list them when they are done."""
        self.test_button.setEnabled(False)
        self.summary.setText("Testing…")
        model = self.model
        account = model.account()
        config = Config(model.config_path, model.gnupg_home, model.data_dir, (account,))
        password = None if model.password_command else model.password_source()

        def test() -> tuple[list[Check], list[str]]:
            checks = [
                c
                for c in doctor.check_account(config, account, password)
                if not c.name.startswith(SERVER_CHECKS_EXCLUDED)
            ]
            folders: list[str] = []
            if all(c.status != "FAIL" for c in checks if c.name in ("server", "login")):
                secret = password or (lambda: _command_password(account))
                session = connect(account, secret)
                try:
                    folders = session.list_folders()
                finally:
                    session.logout()
            return checks, folders

        run_task(test, self._show, self._failed, name="connection-test")

    def _show(self, result: tuple[list[Check], list[str]]) -> None:
        checks, folders = result
        self.checks = checks
        self.model.folders_found = folders
        self.results.clear()
        for check in checks:
            text = f"{_check_icon(check)}  {check.name}: {check.detail}"
            if check.fix and check.status != "OK":
                text += f"\n      fix: {check.fix}"
            self.results.addItem(QListWidgetItem(text))
        failed = [c for c in checks if c.status == "FAIL"]
        self.passed = not failed
        self.summary.setText(
            "The server is ready."
            if self.passed
            else f"{len(failed)} check(s) failed: see the fix on each line."
        )
        self.test_button.setEnabled(True)
        self.completeChanged.emit()
        self.tested.emit()

    def _failed(self, exc: BaseException) -> None:
        self.summary.setText(str(exc) if isinstance(exc, ImapcryptError) else f"The test failed: {exc!r}")
        self.test_button.setEnabled(True)
        self.tested.emit()

    def isComplete(self) -> bool:
        """Complete once a test passed."""
        return self.passed


def _command_password(account: Account) -> str:
    from imapcrypt.secrets import account_password  # noqa: PLC0415 - the command path only

    return account_password(account)


class KeyPage(QWizardPage):
    """A new key (with passphrase and a backup), or an existing one; either way it must pass the self-test."""

    key_ready = Signal()

    def __init__(self, model: WizardModel) -> None:
        super().__init__()
        self.model = model
        self.setTitle("Your key")
        self.setSubTitle(
            "Mail is encrypted to this OpenPGP key. Without its secret key and passphrase the mail "
            "cannot be read: keep the backup somewhere safe."
        )
        self.new_key = QRadioButton("Create a new key")
        self.existing_key = QRadioButton("Use a key I already have")
        self.new_key.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.new_key)
        group.addButton(self.existing_key)
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.backup = QLineEdit()
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_backup)
        backup_row = QHBoxLayout()
        backup_row.addWidget(self.backup)
        backup_row.addWidget(browse)
        self.keys = QComboBox()
        self.elsewhere = QCheckBox("Its secret key is on another device (I checked that it opens mail there)")
        self.generate = QPushButton("Create key")
        self.generate.clicked.connect(self.make_key)
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.new_key)
        form.addRow("Passphrase", self.passphrase)
        form.addRow("Repeat", self.repeat)
        form.addRow("Backup file", backup_row)
        form.addRow(self.existing_key)
        form.addRow("Key", self.keys)
        form.addRow("", self.elsewhere)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.generate)
        layout.addWidget(self.status)
        self.new_key.toggled.connect(self._mode)
        self.fingerprint = ""

    def initializePage(self) -> None:
        """Offer a backup file name and list the keys already in the GnuPG home."""
        if not self.backup.text():
            self.backup.setText(str(Path.home() / f"imapcrypt-secret-key-{self.model.name}.asc"))
        self.keys.clear()
        if self.model.gnupg_home.is_dir():
            for key in keys.list_keys(GnuPG(self.model.gnupg_home)):
                if key.can_encrypt:
                    label = f"{key.uids[0] if key.uids else '(no user id)'}  {key.fingerprint}"
                    self.keys.addItem(label, key.fingerprint)
        self._mode()

    def _mode(self) -> None:
        new = self.new_key.isChecked()
        for widget in (self.repeat, self.backup):
            widget.setEnabled(new)
        self.keys.setEnabled(not new)
        self.elsewhere.setEnabled(not new)
        self.generate.setText("Create key" if new else "Check key")

    def _choose_backup(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Back up the secret key to", self.backup.text())
        if path:
            self.backup.setText(path)

    def make_key(self) -> None:
        """Create (or check) the key in the background; self-test it and record the proof."""
        passphrase = self.passphrase.text()
        new = self.new_key.isChecked()
        if new and passphrase != self.repeat.text():
            self.status.setText("The two passphrases differ.")
            return
        if new and len(passphrase) < 8:
            self.status.setText("Choose a passphrase of at least 8 characters (a few words are best).")
            return
        chosen = str(self.keys.currentData() or "")
        if not new and not chosen:
            self.status.setText("There is no usable key in the GnuPG home.")
            return
        model = self.model
        backup = Path(self.backup.text()).expanduser() if new and self.backup.text().strip() else None
        elsewhere = self.elsewhere.isChecked()
        name = model.account().name
        self.generate.setEnabled(False)
        self.status.setText("Creating the key…" if new else "Checking the key…")

        def work() -> str:
            gpg = GnuPG(model.gnupg_home)
            if new:
                uid = f"{model.username} <{model.username}>" if "@" in model.username else model.username
                fingerprint = keys.generate_key(gpg, uid, passphrase).fingerprint
                if backup is not None:
                    keys.backup_secret(gpg, fingerprint, backup, passphrase)
            else:
                fingerprint = chosen
            if not new and elsewhere:
                confirm_secret_elsewhere(model.data_dir, name, [fingerprint])
            else:
                record_self_test(model.data_dir, name, self_test(gpg, [fingerprint], passphrase))
            return fingerprint

        run_task(work, self._ready, self._failed, name="key")

    def _ready(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.model.recipients = (fingerprint,)
        backup = (
            f" A backup is in {self.backup.text()}."
            if self.new_key.isChecked() and self.backup.text()
            else ""
        )
        self.status.setText(f"Key {fingerprint} is ready and passed the self-test.{backup}")
        self.generate.setEnabled(True)
        self.completeChanged.emit()
        self.key_ready.emit()

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(str(exc) if isinstance(exc, ImapcryptError) else f"Failed: {exc!r}")
        self.generate.setEnabled(True)

    def isComplete(self) -> bool:
        """Complete once a key passed the self-test."""
        return bool(self.fingerprint)


class FoldersPage(QWizardPage):
    """Which folders to keep encrypted, listed from the server."""

    def __init__(self, model: WizardModel) -> None:
        super().__init__()
        self.model = model
        self.setTitle("Folders")
        self.setSubTitle("imapcrypt watches these folders and encrypts the mail in them.")
        self.list = QListWidget()
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)

    def initializePage(self) -> None:
        """List the server's folders; INBOX is checked."""
        self.list.clear()
        for name in self.model.folders_found or ["INBOX"]:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = name in self.model.folders
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.itemChanged.connect(self.completeChanged)

    def chosen(self) -> tuple[str, ...]:
        """The checked folders."""
        items = (self.list.item(i) for i in range(self.list.count()))
        return tuple(i.text() for i in items if i.checkState() == Qt.CheckState.Checked)

    def isComplete(self) -> bool:
        """At least one folder."""
        return bool(self.chosen())

    def validatePage(self) -> bool:
        """Copy the choice into the model."""
        self.model.folders = self.chosen()
        return True


class PolicyPage(QWizardPage):
    """The grace period and what happens to the plaintext original."""

    def __init__(self, model: WizardModel) -> None:
        super().__init__()
        self.model = model
        self.setTitle("Policy")
        self.grace = QDoubleSpinBox()
        self.grace.setRange(0, 7 * 24 * 60)
        self.grace.setDecimals(0)
        self.grace.setSuffix(" minutes")
        self.grace.setValue(model.grace_minutes)
        self.purge = QRadioButton("Delete it for good once the encrypted copy is verified (recommended)")
        self.trash = QRadioButton(
            "Move it to Trash (your provider empties it later; plaintext stays until then)"
        )
        self.purge.setChecked(True)
        explain = QLabel(
            "New mail stays readable for the grace period (your phone can show it as it arrives), then "
            "it is encrypted. The original is removed only after its encrypted copy is proven to be on "
            "the server."
        )
        explain.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Grace period", self.grace)
        form.addRow(explain)
        form.addRow("The plaintext original", self.purge)
        form.addRow("", self.trash)

    def validatePage(self) -> bool:
        """Copy the choice into the model."""
        self.model.grace_minutes = float(self.grace.value())
        self.model.original = "trash" if self.trash.isChecked() else "purge"
        return True


class DryRunPage(QWizardPage):
    """Save the settings, then count what would be encrypted; nothing on the server changes."""

    counted = Signal()

    def __init__(self, model: WizardModel) -> None:
        super().__init__()
        self.model = model
        self.setTitle("What will happen")
        self.count = QLabel("Counting…")
        self.count.setWordWrap(True)
        font = self.count.font()
        font.setPointSize(font.pointSize() + 2)
        self.count.setFont(font)
        layout = QVBoxLayout(self)
        layout.addWidget(self.count)
        layout.addStretch()
        self.done = False

    def initializePage(self) -> None:
        """Store the password and the configuration, then count in the background."""
        self.done = False
        self.count.setText("Saving the settings and counting the mail (nothing is changed)…")
        model = self.model
        try:
            config = config_write.save(model.config())
            account = config.account(model.account().name)
            if not account.password_command:
                store_account_password(account, model.password)
        except ImapcryptError as exc:
            self.count.setText(f"{exc.message}\nFix: {exc.fix}")
            return

        def count() -> tuple[int, int, int]:
            would = already = young = 0
            with open_account(config, account) as opened:
                for folder in account.folders:
                    report = opened.engine.encrypt_folder(folder, backlog=True, dry_run=True)
                    would += report.would_encrypt
                    already += report.already_ours + report.sender_encrypted
                    young += report.too_young
            return would, already, young

        run_task(count, self._show, self._failed, name="dry-run")

    def _show(self, counts: tuple[int, int, int]) -> None:
        would, already, young = counts
        self.model.would_encrypt, self.model.already = would, already
        text = (
            f"{would:,} would be encrypted, {already:,} {'is' if already == 1 else 'are'} already encrypted"
        )
        if young:
            text += f", {young:,} are inside the grace period"
        self.count.setText(text + ".\n\nNothing has been changed on the server yet.")
        self.done = True
        self.completeChanged.emit()
        self.counted.emit()

    def _failed(self, exc: BaseException) -> None:
        self.count.setText(f"{exc.message}\nFix: {exc.fix}" if isinstance(exc, ImapcryptError) else repr(exc))

    def isComplete(self) -> bool:
        """Complete once counted."""
        return self.done


class StartPage(QWizardPage):
    """New mail only, or existing mail too; Start, then progress."""

    def __init__(self, model: WizardModel, start: Callable[[Config, bool], None]) -> None:
        super().__init__()
        self.model = model
        self._start = start
        self.setTitle("Start")
        self.new_only = QRadioButton("New mail only")
        self.existing = QRadioButton("Existing mail too")
        self.existing.setChecked(True)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.new_only)
        layout.addWidget(self.existing)
        layout.addWidget(self.start_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()
        self.started = False

    def initializePage(self) -> None:
        """Say how much existing mail there is."""
        self.existing.setText(f"Existing mail too ({self.model.would_encrypt:,} messages)")

    def start(self) -> None:
        """Hand the saved configuration to the tray's workers."""
        config = load_config(self.model.config_path)
        self._start(config, self.existing.isChecked())
        self.started = True
        self.start_button.setEnabled(False)
        self.new_only.setEnabled(False)
        self.existing.setEnabled(False)
        self.progress.setVisible(self.existing.isChecked())
        self.progress.setRange(0, max(self.model.would_encrypt, 1))
        self.status.setText("Running. You can close this window: imapcrypt keeps working from the tray.")
        self.completeChanged.emit()

    def show_progress(self, progress: Progress) -> None:
        """Advance the bar (connected to the controller's progress signal)."""
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
            eta = f", about {progress.eta_seconds:.0f}s left" if progress.eta_seconds else ""
            self.status.setText(f"{progress.folder}: {progress.done:,} of {progress.total:,}{eta}")

    def isComplete(self) -> bool:
        """Finish is offered once started."""
        return self.started


class SetupWizard(QWizard):
    """The first-run wizard. `start(config, backlog)` is called by the last page's Start button."""

    def __init__(
        self,
        config_path: Path,
        start: Callable[[Config, bool], None],
        data_dir: Path | None = None,
        gnupg_home: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        data = data_dir or default_data_dir()
        self.model = WizardModel(config_path, data, gnupg_home or data / "gnupg")
        self.setWindowTitle("Set up imapcrypt")
        self.account_page = AccountPage(self.model)
        self.connection_page = ConnectionPage(self.model)
        self.key_page = KeyPage(self.model)
        self.folders_page = FoldersPage(self.model)
        self.policy_page = PolicyPage(self.model)
        self.dry_run_page = DryRunPage(self.model)
        self.start_page = StartPage(self.model, start)
        for page in (
            self.account_page,
            self.connection_page,
            self.key_page,
            self.folders_page,
            self.policy_page,
            self.dry_run_page,
            self.start_page,
        ):
            self.addPage(page)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.resize(640, 520)

    def pages(self) -> list[Any]:
        """The pages in order (for tests and screenshots)."""
        return [self.page(i) for i in self.pageIds()]
