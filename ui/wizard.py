"""The first-run wizard (docs/tray.md): account and login, folders, policy, key, dry run, start.

The steps are `imapcrypt.setup`'s, in its order: the first page logs in and finds where the password
will live (asking for a password command right there when there is no OS keyring), so a wrong
password is told before anything is made. Nothing is written before the key page (the key and its
backup) and the dry-run page (the password, the self-test's proof and the configuration). Cancelling
before that removes the key it made (`SetUp.abandon`). Every step that talks to the server or runs
gpg goes through `run_task`: the window never freezes and the GUI thread never runs IMAP or GnuPG.
Nothing on the server changes before the last page's Start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imapcrypt_ui.fields import FolderChecklist, SecurityChoice
from imapcrypt_ui.labels import plain_label
from imapcrypt_ui.qt import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
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

from imapcrypt import api, setup
from imapcrypt.errors import ConfigError, ImapcryptError
from imapcrypt.events import Progress

CUSTOM = "Other provider"
PRESETS = api.PRESETS


class Flow:
    """The set-up the pages share: the configuration it joins and the `SetUp` once logged in."""

    def __init__(self, config_path: Path, data_dir: Path, gnupg_home: Path) -> None:
        try:
            self.base = setup.base_config(config_path, data_dir, gnupg_home)
        except ConfigError:  # a broken file: the new account starts a fresh one (shown on save)
            self.base = api.Config(config_path, gnupg_home, data_dir)
        self.job: setup.SetUp | None = None
        self.dry_run: dict[str, setup.DryRun] = {}

    @property
    def would_encrypt(self) -> int:
        """How many messages the dry run counted for encryption."""
        return sum(c.would_encrypt for c in self.dry_run.values())

    def require(self) -> setup.SetUp:
        """The set-up (the first page made it; later pages cannot be reached without it)."""
        if self.job is None:
            raise ImapcryptError("not logged in yet", "go back to the first page")
        return self.job


def _check_text(check: Any) -> str:
    icon = {"OK": "✔", "WARN": "⚠", "FAIL": "✘"}[check.status]
    text = f"{icon}  {check.name}: {check.detail}"
    return text + (f"\n      fix: {check.fix}" if check.fix and check.status != "OK" else "")


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, ImapcryptError):
        return f"{exc.message}\nFix: {exc.fix}" if exc.fix else exc.message
    return f"Something unexpected went wrong: {type(exc).__name__}. The log has the details."


class AccountPage(QWizardPage):
    """The provider, the address and the password, and the login itself: told here if it is wrong."""

    demo_requested = Signal()
    tested = Signal()

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow
        self.setTitle("Your mail account")
        self.setSubTitle(
            "imapcrypt logs in to check these settings before anything is made. Nothing is changed."
        )
        self.provider = QComboBox()
        self.provider.addItems([*PRESETS, CUSTOM])
        self.note = plain_label()
        self.note.setWordWrap(True)
        self.address = QLineEdit()
        self.address.setPlaceholderText("you@example.org")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(993)
        self.security = SecurityChoice()
        self.password_command = QLineEdit()
        self.password_command.setPlaceholderText("optional, e.g. pass show mail/me")
        self.keyring_hint = plain_label()
        self.keyring_hint.setWordWrap(True)
        self.keyring_hint.setVisible(False)
        self.test_button = QPushButton("Log in")
        self.test_button.setToolTip("Connect, log in and list the folders; nothing is changed")
        self.test_button.clicked.connect(self.run_test)
        self.results = QListWidget()
        self.results.setWordWrap(True)  # a long reason and its fix are read whole, not scrolled
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.summary = plain_label()
        self.summary.setWordWrap(True)
        self.demo = QPushButton("Try the demo (no account needed)")
        self.demo.setToolTip("Runs everything on a built-in IMAP server with sample mail and a throwaway key")
        self.demo.clicked.connect(self.demo_requested)
        self._lay_out()
        self.passed_for: tuple[object, ...] | None = None
        self.provider.currentTextChanged.connect(self._preset)
        for edit in (self.address, self.password, self.host, self.password_command):
            edit.textChanged.connect(self._edited)
        self.port.valueChanged.connect(self._edited)
        self.security.currentTextChanged.connect(self._edited)
        self._preset(self.provider.currentText())

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Provider", self.provider)
        form.addRow("", self.note)
        form.addRow("Address / user name", self.address)
        form.addRow("Password", self.password)
        form.addRow("IMAP server", self.host)
        form.addRow("Port", self.port)
        form.addRow("Security", self.security)
        form.addRow("Password command", self.password_command)
        form.addRow("", self.keyring_hint)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        row = QHBoxLayout()
        row.addWidget(self.test_button)
        row.addWidget(self.summary, 1)
        layout.addLayout(row)
        layout.addWidget(self.results, 1)
        layout.addWidget(self.demo)

    def _preset(self, name: str) -> None:
        preset = PRESETS.get(name)
        if preset is None:
            # Another provider's server is not Gmail's: keep nothing from the preset chosen before.
            self.host.clear()
            self.port.setValue(993)
            self.security.set_value("tls")
            self.note.setText("Enter your provider's IMAP server; it is in their help pages.")
            return
        self.host.setText(preset.host)
        self.port.setValue(preset.port)
        self.security.set_value(preset.security)
        self.note.setText(preset.note)

    def _fields(self) -> tuple[object, ...]:
        return (
            self.address.text().strip(),
            self.password.text(),
            self.host.text().strip(),
            self.port.value(),
            self.security.value(),
            self.password_command.text().strip(),
        )

    def _edited(self) -> None:
        self.completeChanged.emit()

    def account(self) -> api.Account:
        """The account as the fields describe it (no key or folders yet)."""
        username = self.address.text().strip()
        return api.Account(
            name=username.split("@")[0] or "mail",
            host=self.host.text().strip(),
            username=username,
            recipients=(),
            port=self.port.value(),
            security=self.security.value(),
            password_command=self.password_command.text().strip() or None,
        )

    def run_test(self) -> None:
        """Log in in the background; list what passed, or the one thing that failed with its fix."""
        if not self.host.text().strip() or not self.address.text().strip():
            self.summary.setText("Fill in the server and the address first.")
            return
        if not (self.password.text() or self.password_command.text().strip()):
            self.summary.setText("Type the password (or give a password command) first.")
            return
        self.test_button.setEnabled(False)
        self.summary.setText("Logging in…")
        self.results.clear()
        self.keyring_hint.setVisible(False)
        fields = self._fields()
        job = setup.SetUp(self.flow.base, self.account(), self.password.text())
        if self.flow.job is not None:
            job.adopt_key(self.flow.job)  # back on this page after the key was made

        def test() -> setup.SetUp:
            job.check_server()
            return job

        run_task(test, lambda done: self._passed(done, fields), self._failed, name="login")

    def _show(self, checks: Any) -> None:
        self.results.clear()
        for check in checks:
            self.results.addItem(QListWidgetItem(_check_text(check)))

    def _passed(self, job: setup.SetUp, fields: tuple[object, ...]) -> None:
        assert job.report is not None  # noqa: S101 - check_server sets it
        self.flow.job = job
        self.passed_for = fields
        self._show(job.report.checks)
        warnings = sum(1 for c in job.report.checks if c.status == "WARN")
        self.summary.setText(
            "Logged in: the server is ready." + (f" ({warnings} warning(s) below.)" if warnings else "")
        )
        self.test_button.setEnabled(True)
        self.completeChanged.emit()
        self.tested.emit()

    def _failed(self, exc: BaseException) -> None:
        self.passed_for = None
        if isinstance(exc, ImapcryptError):
            # What failed comes first, where it is seen without scrolling; what passed follows.
            self._show([setup.failed_check(exc), *getattr(exc, "checks", ())])
            self.summary.setText("✘ " + exc.message)
        else:
            self.summary.setText(_failure_text(exc))
        if isinstance(exc, setup.NoKeyringError):
            self.summary.setText("✘ Logged in, but there is no OS keyring to keep the password.")
            self.keyring_hint.setText(
                "There is no OS keyring on this computer to keep the password. Fill in “Password "
                "command” above with a command that prints it (e.g. pass show mail/me), then log in again."
            )
            self.keyring_hint.setVisible(True)
            self.password_command.setFocus()
        self.test_button.setEnabled(True)
        self.completeChanged.emit()
        self.tested.emit()

    @property
    def passed(self) -> bool:
        """The login worked with the fields as they are now."""
        return self.passed_for is not None and self.passed_for == self._fields()

    def isComplete(self) -> bool:
        """Complete once the login worked with the fields as they are now."""
        return self.passed


class FoldersPage(QWizardPage):
    """Which folders to keep encrypted, listed from the server (INBOX first)."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow
        self.setTitle("Folders")
        self.setSubTitle("imapcrypt watches the ticked folders and encrypts the mail in them.")
        self.list = FolderChecklist()
        self.list.itemChanged.connect(self.completeChanged)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        self._filled_from: object = None

    def initializePage(self) -> None:
        """List the server's folders with the suggested ones ticked (once per login)."""
        report = self.flow.require().report
        if report is None or report is self._filled_from:
            return
        self._filled_from = report
        self.list.fill(report.folders, report.suggested)

    def chosen(self) -> tuple[str, ...]:
        """The ticked folders."""
        return self.list.chosen()

    def isComplete(self) -> bool:
        """At least one folder."""
        return bool(self.chosen())

    def validatePage(self) -> bool:
        """Hand the choice to the set-up."""
        self.flow.require().choose_folders(self.chosen())
        return True


class PolicyPage(QWizardPage):
    """The grace period and what happens to the plaintext original."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow
        self.setTitle("When and how")
        self.setSubTitle("How soon new mail is encrypted, and what happens to the readable original.")
        self.grace = QDoubleSpinBox()
        self.grace.setRange(0, 7 * 24 * 60)
        self.grace.setDecimals(0)
        self.grace.setSuffix(" minutes")
        self.purge = QRadioButton("Delete it for good once the encrypted copy is verified (recommended)")
        self.trash = QRadioButton(
            "Move it to Trash (your provider empties it later; plaintext stays until then)"
        )
        self.purge.setChecked(True)
        explain = plain_label(
            "New mail stays readable for the grace period (your phone can show it as it arrives), then "
            "it is encrypted. The original is removed only after its encrypted copy is proven to be on "
            "the server."
        )
        explain.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Grace period", self.grace)
        form.addRow(explain)
        form.addRow("The readable original", self.purge)
        form.addRow("", self.trash)

    def validatePage(self) -> bool:
        """Hand the choice to the set-up."""
        job = self.flow.require()
        job.account = dataclasses.replace(
            job.account,
            grace_minutes=float(self.grace.value()),
            original="trash" if self.trash.isChecked() else "purge",
        )
        return True


class KeyPage(QWizardPage):
    """A new key (with passphrase and a backup), or an existing one; either way it must pass the self-test."""

    key_ready = Signal()
    keys_listed = Signal()
    settled = Signal()  # a key task ended, one way or the other

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow
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
        self.browse = QPushButton("Choose…")
        self.browse.clicked.connect(self._choose_backup)
        backup_row = QHBoxLayout()
        backup_row.addWidget(self.backup)
        backup_row.addWidget(self.browse)
        self.keys = QComboBox()
        self.elsewhere = QCheckBox("Its secret key is on another device (I checked that it opens mail there)")
        self.generate = QPushButton("Create key")
        self.generate.clicked.connect(self.make_key)
        self.status = plain_label()
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
        self.busy = False
        self._listed = False

    def initializePage(self) -> None:
        """Offer a backup file name and list the keys already in the GnuPG home (in the background)."""
        job = self.flow.require()
        if not self.backup.text():
            self.backup.setText(str(Path.home() / f"imapcrypt-secret-key-{job.account.name}.asc"))
        if not self._listed:
            self._listed = True
            run_task(lambda: setup.list_keys(job.base), self._fill_keys, self._failed, name="list-keys")
        self._mode()

    def _fill_keys(self, found: list[Any]) -> None:
        self.keys.clear()
        for key in found:
            self.keys.addItem(
                f"{key.uids[0] if key.uids else '(no user id)'}  {key.fingerprint}", key.fingerprint
            )
        self.existing_key.setEnabled(bool(found) and not self.fingerprint)
        self._mode()
        self.keys_listed.emit()

    def _mode(self) -> None:
        new = self.new_key.isChecked()
        done = bool(self.fingerprint)
        self.passphrase.setEnabled(not done)
        self.new_key.setEnabled(not done)
        for field in (self.repeat, self.backup):
            field.setEnabled(new and not done)
        self.browse.setEnabled(new and not done)
        self.keys.setEnabled(not new and not done)
        self.elsewhere.setEnabled(not new and not done)
        self.existing_key.setEnabled(self.keys.count() > 0 and not done)
        # Once a key passed, there is nothing more to make here: a second key would only confuse.
        self.generate.setEnabled(not done and not self.busy)
        self.generate.setText("Create key" if new else "Check key")

    def _choose_backup(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Back up the secret key to", self.backup.text())
        if path:
            self.backup.setText(path)

    def make_key(self) -> None:
        """Create (or check) the key in the background: backup and self-test included."""
        passphrase = self.passphrase.text()
        new = self.new_key.isChecked()
        if new and passphrase != self.repeat.text():
            self.status.setText("The two passphrases differ.")
            return
        if new and len(passphrase) < setup.MIN_PASSPHRASE:
            self.status.setText(
                f"Choose a passphrase of at least {setup.MIN_PASSPHRASE} characters (a few words are best)."
            )
            return
        chosen = str(self.keys.currentData() or "")
        if not new and not chosen:
            self.status.setText("There is no usable key in the GnuPG home.")
            return
        job = self.flow.require()
        backup = Path(self.backup.text()).expanduser() if new and self.backup.text().strip() else None
        elsewhere = self.elsewhere.isChecked()
        uid = setup.new_key_uid(job.account.username)

        def work() -> str:
            if new:
                return job.make_key(uid, passphrase, backup).fingerprint
            return job.pick_key(chosen, passphrase or None, elsewhere).fingerprint

        self.busy = True
        self._mode()
        self.status.setText("Creating the key (this takes a few seconds)…" if new else "Checking the key…")
        run_task(work, self._ready, self._failed, name="key")

    def _ready(self, fingerprint: str) -> None:
        self.busy = False
        self.fingerprint = fingerprint
        job = self.flow.require()
        backup = f" Its backup is in {job.backup}: store it offline." if job.backup else ""
        self.status.setText(f"Key {fingerprint} is ready and passed the self-test.{backup}")
        self._mode()
        self.completeChanged.emit()
        self.key_ready.emit()
        self.settled.emit()

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.status.setText(_failure_text(exc))
        self._mode()
        self.settled.emit()

    def isComplete(self) -> bool:
        """Complete once a key passed the self-test."""
        return bool(self.fingerprint)


class DryRunPage(QWizardPage):
    """Save the settings, then count what would be encrypted; nothing on the server changes."""

    counted = Signal()

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow
        self.setTitle("What will happen")
        self.setSubTitle("The settings are saved now; the count below changes nothing on the server.")
        self.count = plain_label("Counting…")
        self.count.setWordWrap(True)
        font = self.count.font()
        font.setPointSize(font.pointSize() + 2)
        self.count.setFont(font)
        layout = QVBoxLayout(self)
        layout.addWidget(self.count)
        layout.addStretch()
        self.done = False

    def initializePage(self) -> None:
        """Keep the password, record the self-test, write the configuration, then count (background)."""
        self.done = False
        self.count.setText("Saving the settings and counting the mail (nothing is changed)…")
        job = self.flow.require()

        def save_and_count() -> dict[str, setup.DryRun]:
            if job.saved is None:
                job.save()
            return job.dry_run()

        run_task(save_and_count, self.show_counts, self._failed, name="dry-run")

    def show_counts(self, counts: dict[str, setup.DryRun]) -> None:
        """Show the dry run's numbers (also used with sample numbers for screenshots)."""
        self.flow.dry_run = counts
        would = sum(c.would_encrypt for c in counts.values())
        already = sum(c.already_encrypted for c in counts.values())
        young = sum(c.too_young for c in counts.values())
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
        self.count.setText(_failure_text(exc))

    def isComplete(self) -> bool:
        """Complete once counted."""
        return self.done


class StartPage(QWizardPage):
    """New mail only, or existing mail too; Start, then progress."""

    def __init__(self, flow: Flow, start: Callable[[api.Config, bool], None]) -> None:
        super().__init__()
        self.flow = flow
        self._start = start
        self.setTitle("Start")
        self.setSubTitle(
            "From here on imapcrypt changes the server: it encrypts, then removes the originals."
        )
        self.new_only = QRadioButton("New mail only")
        self.existing = QRadioButton("Existing mail too")
        self.existing.setChecked(True)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = plain_label()
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
        self.existing.setText(f"Existing mail too ({self.flow.would_encrypt:,} messages)")

    def start(self) -> None:
        """Hand the saved configuration to the tray's workers."""
        config = self.flow.require().saved
        if config is None:
            return
        self._start(config, self.existing.isChecked())
        self.started = True
        for widget in (self.start_button, self.new_only, self.existing):
            widget.setEnabled(False)
        self.progress.setVisible(self.existing.isChecked())
        self.progress.setRange(0, max(self.flow.would_encrypt, 1))
        self.status.setText("Running. You can close this window: imapcrypt keeps working from the tray.")
        wizard = self.wizard()
        if wizard is not None:
            # Done: nothing is left to cancel.
            wizard.setOption(QWizard.WizardOption.NoCancelButton, True)
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

    abandoned = Signal(list)  # what a cancelled set-up removed again, in words

    def __init__(
        self,
        config_path: Path,
        start: Callable[[api.Config, bool], None],
        data_dir: Path | None = None,
        gnupg_home: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        data = data_dir or api.default_data_dir()
        self.flow = Flow(config_path, data, gnupg_home or data / "gnupg")
        self.setWindowTitle("Set up imapcrypt")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)  # one title style on every page
        self.account_page = AccountPage(self.flow)
        self.folders_page = FoldersPage(self.flow)
        self.policy_page = PolicyPage(self.flow)
        self.key_page = KeyPage(self.flow)
        self.dry_run_page = DryRunPage(self.flow)
        self.start_page = StartPage(self.flow, start)
        for page in self.pages():
            self.addPage(page)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.resize(700, 640)

    def pages(self) -> list[Any]:
        """The pages in order (for tests and screenshots)."""
        return [
            self.account_page,
            self.folders_page,
            self.policy_page,
            self.key_page,
            self.dry_run_page,
            self.start_page,
        ]

    def reject(self) -> None:
        """Cancel: remove what this set-up made (its key and backup) unless it was saved; a key still
        being made is removed as soon as it is there."""
        if self.key_page.busy:
            self.key_page.settled.connect(self._abandon)
        else:
            self._abandon()
        super().reject()

    def _abandon(self) -> None:
        job = self.flow.job
        if job is not None and job.saved is None and job.made_key:
            run_task(job.abandon, self.abandoned.emit, lambda _exc: None, name="abandon")
