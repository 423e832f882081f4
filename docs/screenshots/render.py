"""Render each window of the tray app with sample data to docs/screenshots/*.png (not a test).

Starts its own Xvfb (Debian package `xvfb`) so it runs on a machine without a desktop:

    .venv/bin/python docs/screenshots/render.py

No server, no key and no network are used: every window is filled with invented sample data.
"""

# Qt is imported only after DISPLAY points at our Xvfb; X11 sockets live in /tmp/.X11-unix by design.
# ruff: noqa: PLC0415, S108

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZE = "1280x900x24"


def start_xvfb() -> subprocess.Popen[bytes]:
    """An Xvfb on a free display number; DISPLAY is set for Qt."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        sys.exit("render.py needs Xvfb: apt-get install xvfb")
    for number in range(90, 120):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            continue
        process = subprocess.Popen(
            [xvfb, f":{number}", "-screen", "0", SIZE, "-nolisten", "tcp", "-terminate"]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not Path(f"/tmp/.X11-unix/X{number}").exists():
            time.sleep(0.05)
        os.environ["DISPLAY"] = f":{number}"
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        return process
    sys.exit("no free X display number")


def main() -> None:
    """Render every window."""
    # No keyring: nothing the wizard's pages do here may reach the user's real one.
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    xvfb = start_xvfb()
    try:
        render_all()
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def render_all() -> None:  # noqa: PLR0915 - one sample scene after another
    """Open each window with sample data and save it as a PNG."""
    from imapcrypt_ui.activity import ActivityWindow
    from imapcrypt_ui.controller import AccountStatus, ActivityEntry, Controller
    from imapcrypt_ui.qt import QApplication, QListWidgetItem
    from imapcrypt_ui.reader import ReaderWindow, Unlocked
    from imapcrypt_ui.settings import SettingsDialog
    from imapcrypt_ui.tray import Tray, state_icon
    from imapcrypt_ui.wizard import SetupWizard

    from imapcrypt import api, setup
    from imapcrypt.config.model import Account, Config
    from imapcrypt.daemon import StateChange, WorkerState
    from imapcrypt.doctor.check import Check
    from imapcrypt.events import Progress
    from imapcrypt.message import envelope
    from imapcrypt.reader import Attachment, ParsedMessage, Summary

    app = QApplication([sys.argv[0]])
    app.setApplicationName("imapcrypt")
    app.setWindowIcon(state_icon("idle"))
    scratch = Path(tempfile.mkdtemp(prefix="imapcrypt-shots-"))
    account = Account(
        name="personal",
        host="imap.fastmail.com",
        username="me@example.org",
        recipients=("8F3C1A0B9E2D4F6071829384A5B6C7D8E9F00112",),
        folders=("INBOX", "Archive"),
        grace_minutes=10,
    )
    config = Config(scratch / "config.toml", scratch / "gnupg", scratch / "data", (account,))

    def save(widget: object, name: str) -> None:
        widget.show()  # type: ignore[attr-defined]
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)
        widget.grab().save(str(HERE / f"{name}.png"))  # type: ignore[attr-defined]
        print(f"wrote docs/screenshots/{name}.png")

    # The wizard, page by page: each step's outcome is put in place as the background task would.
    wizard = SetupWizard(scratch / "config.toml", lambda c, b: None, scratch / "data", scratch / "gnupg")
    page = wizard.account_page
    page.provider.setCurrentText("Fastmail")
    page.address.setText("me@example.org")
    page.password.setText("app-password")
    checks = (
        Check("server", "OK", "imap.fastmail.com:993 answers"),
        Check("TLS certificate", "OK", "verified"),
        Check("login", "OK", "logged in as me@example.org"),
        Check("UIDPLUS", "OK", "UID EXPUNGE deletes exactly the replaced message"),
        Check("MOVE", "OK", "messages change folder atomically"),
        Check("IDLE", "OK", "the server pushes new mail (how fast: see push delay)"),
        Check("MULTIAPPEND/LITERAL+", "OK", "a batch of copies is stored in one round trip"),
        Check("password storage", "OK", "the password will be kept in the OS keyring"),
    )
    job = setup.SetUp(wizard.flow.base, page.account(), "app-password")
    job.report = setup.ServerReport(
        checks, ("INBOX", "Archive", "Drafts", "Sent", "Trash"), ("INBOX",), "the OS keyring"
    )
    page._passed(job, page._fields())
    save(wizard, "wizard-account")
    wizard.next()
    wizard.folders_page.list.item(1).setCheckState(wizard.folders_page.list.item(0).checkState())
    save(wizard, "wizard-folders")
    wizard.next()
    wizard.policy_page.grace.setValue(10)
    save(wizard, "wizard-policy")
    wizard.next()
    key = wizard.key_page
    key.passphrase.setText("correct horse battery staple")
    key.repeat.setText("correct horse battery staple")
    job.backup = Path("~/imapcrypt-secret-key-me.asc")
    key._ready("8F3C1A0B9E2D4F6071829384A5B6C7D8E9F00112")
    save(wizard, "wizard-key")
    wizard.dry_run_page.initializePage = lambda: None  # type: ignore[method-assign]  # no server here
    wizard.next()
    wizard.dry_run_page.show_counts({"INBOX": setup.DryRun(1200, 56, 3), "Archive": setup.DryRun(34, 0, 0)})
    save(wizard, "wizard-dry-run")
    wizard.next()
    start = wizard.start_page
    start._start = lambda c, b: None
    start.started = True
    start.start_button.setEnabled(False)
    start.progress.setVisible(True)
    wizard.setOption(wizard.WizardOption.NoCancelButton, True)
    start.show_progress(Progress("personal", "INBOX", 480, 1234, 41.5, 18.2))
    save(wizard, "wizard-start")
    wizard.hide()

    # The tray's stand-in status window and its menu, with an account at work.
    controller = Controller()
    controller.config = config
    status = AccountStatus(
        account,
        worker=None,  # type: ignore[arg-type]  # nothing runs in a screenshot
        thread=threading.Thread(),
        state=StateChange("personal", WorkerState.WORKING),
        encrypted=482,
        progress={"INBOX": Progress("personal", "INBOX", 480, 1234, 41.5, 18.2)},
    )
    controller.accounts["personal"] = status
    tray = Tray(controller, lambda: None, lambda: None, lambda: None, lambda: None, use_tray=False)
    tray.update()
    assert tray.window is not None  # noqa: S101
    save(tray.window, "status-window")
    tray.menu.popup(tray.window.mapToGlobal(tray.window.rect().center()))
    save(tray.menu, "tray-menu")
    tray.menu.hide()
    status.state = StateChange(
        "personal",
        WorkerState.ERROR,
        "imap.fastmail.com refused the login",
        "check the user name and password (Gmail needs an app password)",
    )
    tray.update()
    tray.show_notification(
        "imapcrypt: personal needs attention",
        "imap.fastmail.com refused the login\nFix: check the user name and password",
        True,
    )
    save(tray.window, "status-window-error")
    tray.window.hide()

    # Activity.
    now = dt.datetime(2024, 5, 6, 9, 30, tzinfo=dt.UTC).astimezone()
    unlocked = Unlocked()
    activity = ActivityWindow(controller, unlocked)
    senders = ["Ada Lovelace <ada@analytical.example>", "Bank of Examples <noreply@bank.example>"]
    for index in range(8):
        entry = ActivityEntry(
            now + dt.timedelta(seconds=7 * index),
            "personal",
            "INBOX",
            "encrypted",
            100 + index,
            900 + index,
            2_000 + 1_700 * index,
        )
        controller.activity.append(entry)
        activity.details[("personal", "INBOX", 900 + index)] = (senders[index % 2], None)
    controller.activity.append(
        ActivityEntry(
            now + dt.timedelta(minutes=2), "personal", "", "error",
            message="imap.fastmail.com: connection lost during FETCH", fix="it will be retried",
        )
    )  # fmt: skip
    activity.refresh()
    save(activity, "activity")
    activity.hide()

    # The reader, unlocked, with an HTML newsletter open (its tracking pixel blocked).
    reader = ReaderWindow(config, unlocked, lambda name: None)
    unlocked.set("personal", "sample")
    reader.current = (account, "INBOX")
    reader._show_lock_state()
    subjects = [
        ("Ada Lovelace <ada@analytical.example>", "Dinner on Friday?"),
        ("The Weekly Letter <news@letter.example>", "This week: ten things worth reading"),
        ("Bank of Examples <noreply@bank.example>", "Your statement for April is ready"),
        ("Grace Hopper <grace@cobol.example>", "Re: the draft chapter"),
        ("Margaret Hamilton <margaret@apollo.example>", "Meeting notes, April"),
        ("Linus <linus@kernel.example>", "Photos from the trip"),
        ("Alice <alice@pgp.example>", None),
    ]
    reader.show_summaries(
        [
            Summary(
                200 - i, sender, now - dt.timedelta(hours=5 * i), 3_000 + 900 * i,
                envelope.Kind.OURS if subject else envelope.Kind.PGP_MIME, subject,
            )
            for i, (sender, subject) in enumerate(subjects)
        ]
    )  # fmt: skip
    reader.messages.selectRow(1)
    item = reader.folders.topLevelItem(0)
    reader.folders.setCurrentItem(item.child(0))
    reader.status.setText("7 messages, 6 encrypted")
    reader.show_message(
        ParsedMessage(
            sender="The Weekly Letter <news@letter.example>",
            to="me@example.org",
            date="Mon, 06 May 2024 08:00:00 +0000",
            subject="This week: ten things worth reading",
            text=None,
            html=(
                "<h2>This week</h2><p>Ten things worth reading, picked for you.</p>"
                '<img src="https://tracker.letter.example/open.gif"><ol><li>Why plaintext email lasts</li>'
                "<li>OpenPGP in 2024</li><li>Keeping backups of keys</li></ol>"
                '<p><a href="https://letter.example/read">Read online</a></p>'
            ),
            attachments=(Attachment("reading-list.csv", "text/csv", b"a,b\n"),),
        )
    )
    save(reader, "reader")
    reader.hide()

    # Settings lists the server's folders in the background: here, sample ones.
    api.server_folders = lambda _account: ("INBOX", "Archive", "Drafts", "Sent", "Trash")
    settings = SettingsDialog(config, lambda c: None)
    save(settings, "settings")
    shutil.rmtree(scratch, ignore_errors=True)
    del QListWidgetItem


if __name__ == "__main__":
    main()
