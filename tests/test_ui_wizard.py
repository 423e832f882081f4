"""The first-run wizard end to end against a real Dovecot and a real GnuPG: fields and login on the first
page, folders, key generation, dry-run count, start, and the messages on the server are encrypted; on
a fresh machine, with no keyring, a wrong password first; a cancelled set-up removes its key."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapcrypt_ui.app import TrayApp
from imapcrypt_ui.wizard import PRESETS, SetupWizard
from pytestqt.qtbot import QtBot

import imapcrypt.imap.connect
import imapcrypt.wiring
from imapcrypt import api
from imapcrypt.config.model import load_config
from imapcrypt.keys.manage import list_keys
from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.corpus import BODY_MARK, varied_seeds
from tests.fixtures.engine import Rig
from tests.fixtures.keyrings import MemoryKeyring
from tests.fixtures.keys import make_home, remove_home, remove_tree_with_agent
from tests.fixtures.mailbox import Mailbox

WAIT_MS = 30_000


@pytest.fixture
def empty_gnupg() -> Iterator[GnuPG]:
    gpg = make_home("icwiz-")
    yield gpg
    remove_home(gpg)


@pytest.fixture
def off_the_gui_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fails the test if gpg runs or an IMAP session opens on the GUI (main) thread while it runs."""
    seen: list[str] = []
    popen_init = subprocess.Popen.__init__
    connect = imapcrypt.imap.connect.connect

    def on_gui_thread() -> bool:
        return threading.current_thread() is threading.main_thread()

    def watched_popen(self: subprocess.Popen[bytes], args: Any, *rest: Any, **kw: Any) -> None:
        program = Path(str(args[0] if isinstance(args, list | tuple) else args)).name
        if program.startswith("gpg") and on_gui_thread():
            seen.append(f"gpg: {args}")
        popen_init(self, args, *rest, **kw)

    def watched_connect(*args: Any, **kw: Any) -> Any:
        if on_gui_thread():
            seen.append("IMAP connect")
        return connect(*args, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", watched_popen)
    monkeypatch.setattr(imapcrypt.wiring, "connect", watched_connect)
    yield seen
    assert seen == [], "the GUI thread ran gpg or IMAP"


def _all_ours(mailbox: Mailbox) -> bool:
    state = mailbox.state()
    return bool(state) and all(envelope.classify(m.body) is envelope.Kind.OURS for m in state)


def test_presets_fill_the_server(qtbot: QtBot, tmp_path: Path) -> None:
    wizard = SetupWizard(tmp_path / "c.toml", lambda config, backlog: None, tmp_path)
    qtbot.addWidget(wizard)
    page = wizard.account_page
    assert set(PRESETS) == {"Gmail", "Fastmail", "Outlook", "iCloud", "Yahoo"}
    page.provider.setCurrentText("iCloud")
    assert page.host.text() == "imap.mail.me.com"
    assert page.port.value() == 993
    assert "app-specific password" in page.note.text()
    page.provider.setCurrentText("Gmail")
    assert page.host.text() == "imap.gmail.com"
    assert "app password" in page.note.text()
    page.provider.setCurrentText("Other provider")
    assert page.host.text() == ""
    assert "Gmail" not in page.note.text()


def _log_in(qtbot: QtBot, wizard: SetupWizard) -> None:
    page = wizard.account_page
    with qtbot.waitSignal(page.tested, timeout=WAIT_MS):
        page.test_button.click()


def _fill_account(wizard: SetupWizard, mailbox: Mailbox, password: str) -> None:
    page = wizard.account_page
    page.provider.setCurrentText("Gmail")
    page.provider.setCurrentText("Other provider")
    assert page.host.text() == ""  # nothing of Gmail's server stays
    assert not wizard.button(wizard.WizardButton.NextButton).isEnabled()
    page.address.setText(mailbox.user)
    page.password.setText(password)
    page.host.setText("127.0.0.1")
    page.port.setValue(mailbox.port)
    page.security.set_value("plain")


def _lines(wizard: SetupWizard) -> list[str]:
    results = wizard.account_page.results
    return [results.item(i).text() for i in range(results.count())]


def _make_key(qtbot: QtBot, wizard: SetupWizard, backup: Path) -> None:
    key = wizard.key_page
    qtbot.waitUntil(lambda: key._listed, timeout=WAIT_MS)
    key.passphrase.setText(PASSPHRASE)
    key.repeat.setText(PASSPHRASE)
    key.backup.setText(str(backup))
    with qtbot.waitSignal(key.key_ready, timeout=WAIT_MS):
        key.generate.click()
    assert not key.generate.isEnabled()  # one key is enough
    assert b"BEGIN PGP PRIVATE KEY BLOCK" in backup.read_bytes()
    assert backup.stat().st_mode & 0o777 == 0o600


PASSPHRASE = "correct horse battery"


@pytest.mark.slow
def test_wizard_end_to_end(
    qtbot: QtBot,
    rig: Rig,
    memory_keyring: MemoryKeyring,
    empty_gnupg: GnuPG,
    tmp_path: Path,
    off_the_gui_thread: list[str],
) -> None:
    seeds = varied_seeds(7)
    rig.mailbox.seed(seeds)
    config_path = tmp_path / "config" / "config.toml"
    app = TrayApp(config_path, data_dir=tmp_path / "data", gnupg_home=empty_gnupg.home, use_tray=False)
    app.start()
    wizard = app.wizard
    assert wizard is not None
    assert wizard.isVisible()
    qtbot.addWidget(wizard)

    # 1. The account and the login: doctor's lines, listed on the same page.
    _fill_account(wizard, rig.mailbox, rig.mailbox.password)
    _log_in(qtbot, wizard)
    lines = _lines(wizard)
    assert any(line.startswith("✔  login:") for line in lines), lines
    assert any("UIDPLUS" in line for line in lines)
    assert any("OS keyring" in line for line in lines)
    assert not any(line.startswith("✘") for line in lines), lines
    assert wizard.account_page.isComplete()
    wizard.next()

    # 2. Folders from the server (INBOX first); 3. the policy.
    assert wizard.folders_page.chosen() == ("INBOX",)
    wizard.next()
    wizard.policy_page.grace.setValue(0)
    wizard.next()

    # 4. A new key with a passphrase and a backup; it passes the self-test.
    _make_key(qtbot, wizard, tmp_path / "secret-key.asc")
    assert not config_path.exists()  # nothing is saved before the dry-run page
    wizard.next()

    # 5. The dry run saves, counts and changes nothing.
    before = rig.mailbox.state()
    dry = wizard.dry_run_page
    qtbot.waitUntil(lambda: dry.done, timeout=WAIT_MS)
    assert dry.count.text().startswith("7 would be encrypted, 0 are already encrypted")
    assert rig.mailbox.state() == before
    config = load_config(config_path)
    account = config.account(None)
    assert account.recipients == (wizard.key_page.fingerprint,)
    assert account.password_command is None
    assert rig.mailbox.password not in config_path.read_text()
    assert memory_keyring.entries[("imapcrypt", account.keyring_user)] == rig.mailbox.password
    wizard.next()

    # 6. Start, existing mail too: the tray's worker encrypts it, with progress.
    start = wizard.start_page
    assert start.existing.isChecked()
    start.start_button.click()
    assert not wizard.button(wizard.WizardButton.CancelButton).isVisible()  # done: nothing to cancel
    qtbot.waitUntil(lambda: _all_ours(rig.mailbox), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: start.progress.value() == 7, timeout=WAIT_MS)
    assert len(rig.mailbox.state()) == 7
    qtbot.waitUntil(lambda: app.tray.state == "idle", timeout=WAIT_MS)
    with qtbot.waitSignal(app.controller.stopped, timeout=WAIT_MS):
        app.quit()


@pytest.fixture
def fresh_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new user's HOME: no configuration, no data dir, no GnuPG home, no keyring (conftest)."""
    home = Path(tempfile.mkdtemp(prefix="icwh-"))  # short: gpg-agent's sockets live below it
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "IMAPCRYPT_CONFIG", "GNUPGHOME"):
        monkeypatch.delenv(name, raising=False)
    yield home
    remove_tree_with_agent(home, api.default_data_dir() / "gnupg")


@pytest.mark.slow
def test_a_new_user_sets_up_on_a_fresh_machine(
    qtbot: QtBot, mailbox: Mailbox, fresh_home: Path, off_the_gui_thread: list[str]
) -> None:
    mailbox.seed(varied_seeds(3, seed=12))
    config_path = api.default_config_path()
    data_dir = api.default_data_dir()
    assert fresh_home in data_dir.parents
    app = TrayApp(config_path, use_tray=False)
    app.start()
    wizard = app.wizard
    assert wizard is not None
    qtbot.addWidget(wizard)
    page = wizard.account_page
    next_button = wizard.button(wizard.WizardButton.NextButton)

    # A wrong password is told on the first page, and nothing is written anywhere.
    _fill_account(wizard, mailbox, "wrong")
    _log_in(qtbot, wizard)
    assert any(line.startswith("✘  login:") for line in _lines(wizard)), _lines(wizard)
    assert "Gmail" not in "\n".join(_lines(wizard))
    assert not next_button.isEnabled()
    assert sorted(p.name for p in fresh_home.iterdir()) == []  # no config, data dir, key or backup

    # The right one logs in; with no OS keyring the same page asks for a password command.
    page.password.setText(mailbox.password)
    _log_in(qtbot, wizard)
    lines = _lines(wizard)
    assert any(line.startswith("✔  login:") for line in lines), lines
    assert any(line.startswith("✘  password storage:") for line in lines), lines
    assert page.keyring_hint.isVisible()
    assert "Password command" in page.keyring_hint.text()
    assert not next_button.isEnabled()
    page.password_command.setText(f"echo {mailbox.password}")
    _log_in(qtbot, wizard)
    assert not any(line.startswith("✘") for line in _lines(wizard)), _lines(wizard)
    assert next_button.isEnabled()
    wizard.next()

    # Folders, policy, then the key: the GnuPG home is made (0700) with the key and its backup.
    assert wizard.folders_page.chosen() == ("INBOX",)
    wizard.next()
    wizard.next()
    backup = fresh_home / "my-key-backup.asc"
    _make_key(qtbot, wizard, backup)
    assert (data_dir / "gnupg").stat().st_mode & 0o777 == 0o700
    wizard.next()
    qtbot.waitUntil(lambda: wizard.dry_run_page.done, timeout=WAIT_MS)
    assert wizard.dry_run_page.count.text().startswith("3 would be encrypted")
    account = load_config(config_path).account(None)
    assert account.password_command == f"echo {mailbox.password}"
    wizard.next()
    wizard.start_page.start_button.click()
    qtbot.waitUntil(lambda: _all_ours(mailbox), timeout=WAIT_MS)
    assert len(mailbox.state()) == 3  # only encrypted copies are left, none lost

    # The reader: a wrong passphrase does not unlock, whatever gpg-agent cached at key generation.
    reader = app.open_reader()
    assert reader is not None
    qtbot.addWidget(reader)
    with qtbot.waitSignal(reader.listed, timeout=WAIT_MS):
        reader.show_folder(account.name, "INBOX")
    answers = iter(["wrong", PASSPHRASE, "wrong"])
    reader._ask = lambda _name: next(answers)
    with qtbot.waitSignal(reader.unlock_refused, timeout=WAIT_MS):
        reader.open_row(0)
    assert account.name not in app.unlocked
    assert "Locked" in reader.header.text()
    assert all(s.subject is None for s in reader.summaries)
    with qtbot.waitSignal(reader.opened, timeout=WAIT_MS):
        reader.unlock_button.click()
        qtbot.waitUntil(lambda: account.name in app.unlocked, timeout=WAIT_MS)
        reader.open_row(0)
    assert reader.body.toPlainText().startswith(BODY_MARK)
    qtbot.waitUntil(lambda: all(s.subject for s in reader.summaries), timeout=WAIT_MS)
    # Lock forgets it, in gpg-agent too: the wrong passphrase is refused again.
    with qtbot.waitSignal(reader.lock_changed, timeout=WAIT_MS):
        reader.lock_button.click()
    assert reader.body.toPlainText() == ""
    with qtbot.waitSignal(reader.unlock_refused, timeout=WAIT_MS):
        reader.unlock_button.click()
    assert account.name not in app.unlocked
    with qtbot.waitSignal(app.controller.stopped, timeout=WAIT_MS):
        app.quit()


@pytest.mark.slow
def test_cancelling_after_the_key_removes_it(
    qtbot: QtBot, mailbox: Mailbox, memory_keyring: MemoryKeyring, empty_gnupg: GnuPG, tmp_path: Path
) -> None:
    wizard = SetupWizard(
        tmp_path / "c.toml", lambda config, backlog: None, tmp_path / "data", empty_gnupg.home
    )
    qtbot.addWidget(wizard)
    wizard.show()
    _fill_account(wizard, mailbox, mailbox.password)
    _log_in(qtbot, wizard)
    wizard.next()
    wizard.next()
    wizard.next()
    backup = tmp_path / "backup.asc"
    _make_key(qtbot, wizard, backup)
    fingerprint = wizard.key_page.fingerprint
    for _page in range(3):  # back to the first page, and log in again: the key is kept, not remade
        wizard.back()
    _log_in(qtbot, wizard)
    assert wizard.flow.require().key == fingerprint
    with qtbot.waitSignal(wizard.abandoned, timeout=WAIT_MS) as removed:
        wizard.reject()
    assert f"the key {fingerprint}" in removed.args[0]
    assert not backup.exists()
    assert fingerprint not in [k.fingerprint for k in list_keys(empty_gnupg)]
    assert not (tmp_path / "c.toml").exists()
    assert memory_keyring.entries == {}
