"""The tray app against a real Dovecot: workers in threads, icon states, pause/resume, errors, quit, demo."""

from __future__ import annotations

import datetime as dt
import imaplib
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapcrypt_ui.activity import LOCKED_SUBJECT
from imapcrypt_ui.app import TrayApp
from imapcrypt_ui.controller import overall_state
from imapcrypt_ui.labels import plain_notification, plain_tooltip
from imapcrypt_ui.qt import QLabel, Qt
from imapcrypt_ui.tray import ICONS
from pytestqt.qtbot import QtBot

from imapcrypt.daemon import AccountWorker, WorkerState
from imapcrypt.message import envelope
from tests.fixtures.corpus import Seed, varied_seeds
from tests.fixtures.engine import Rig, assert_exactly_once
from tests.fixtures.proxy import FaultProxy

WAIT_MS = 30_000


def _all_ours(rig: Rig) -> bool:
    state = rig.mailbox.state()
    return bool(state) and all(envelope.classify(m.body) is envelope.Kind.OURS for m in state)


@pytest.fixture
def tray_app(qtbot: QtBot, rig: Rig) -> Iterator[TrayApp]:
    """A tray app (status window: offscreen has no tray) on the rig's configuration, quit afterwards."""
    app = TrayApp(rig.write_config(), use_tray=False)
    yield app
    if app.controller.accounts:
        with qtbot.waitSignal(app.controller.stopped, timeout=WAIT_MS):
            app.quit()
    app.tray.hide()


def test_icons_ship_for_every_state() -> None:
    assert {p.stem for p in ICONS.glob("*.svg")} == {"idle", "working", "paused", "error", "offline"}
    assert overall_state([WorkerState.IDLE, WorkerState.ERROR]) == "error"
    assert overall_state([WorkerState.PAUSED, WorkerState.PAUSED]) == "paused"
    assert overall_state([WorkerState.IDLE, WorkerState.WORKING]) == "working"


def test_tray_runs_the_worker_and_pause_stops_work(qtbot: QtBot, rig: Rig, tray_app: TrayApp) -> None:
    first = varied_seeds(3)
    rig.mailbox.seed(first)
    tray_app.start()
    window = tray_app.tray.window
    assert window is not None
    assert window.isVisible()
    qtbot.waitUntil(lambda: tray_app.tray.state == "idle" and _all_ours(rig), timeout=WAIT_MS)
    assert tray_app.controller.accounts["test"].encrypted == 3
    assert "3 encrypted" in tray_app.tray.status_action.text()
    assert "test: idle, 3 encrypted" in tray_app.tray.tooltip

    tray_app.tray.pause_action.trigger()
    qtbot.waitUntil(lambda: tray_app.tray.state == "paused", timeout=WAIT_MS)
    assert tray_app.tray.pause_action.text() == "Resume"
    worker = tray_app.controller.accounts["test"].worker
    assert isinstance(worker, AccountWorker)
    heard = worker.notifications
    young = Seed(
        b"From: a@example.org\r\nSubject: while paused\r\n\r\nwait\r\n",
        (),
        dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    rig.mailbox.seed([young])
    # The server told the worker about the new mail (IDLE), and being paused it did nothing.
    qtbot.waitUntil(lambda: worker.notifications > heard, timeout=WAIT_MS)
    tray_app.tray.encrypt_action.trigger()  # "Encrypt now" while paused starts nothing either
    kinds = [envelope.classify(m.body) for m in rig.mailbox.state()]
    assert kinds.count(envelope.Kind.PLAINTEXT) == 1
    assert worker.state is WorkerState.PAUSED

    tray_app.tray.pause_action.trigger()
    assert tray_app.tray.pause_action.text() == "Pause"
    qtbot.waitUntil(lambda: _all_ours(rig) and tray_app.tray.state == "idle", timeout=WAIT_MS)
    assert_exactly_once(rig, [*first, young])
    activity = tray_app.open_activity()
    with qtbot.waitSignal(activity.details_loaded, timeout=WAIT_MS):
        activity.look_up_details()
    senders = {activity.table.item(r, 4).text() for r in range(activity.table.rowCount())}
    assert "a@example.org" in senders
    subjects = {activity.table.item(r, 6).text() for r in range(activity.table.rowCount())}
    assert subjects == {LOCKED_SUBJECT}, "no subject in the activity window while the reader is locked"
    header = activity.table.horizontalHeaderItem(6)
    assert header is not None
    assert "unlocked" in header.toolTip()  # the column says why it shows no subject
    assert activity.table.columnWidth(6) >= 200


def test_wrong_password_shows_the_error_state_with_the_fix(qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    path = rig.write_config()
    path.write_text(path.read_text().replace(f"echo '{rig.mailbox.password}'", "echo 'wrong'"))
    app = TrayApp(path, use_tray=False)
    app.start()
    qtbot.waitUntil(lambda: app.tray.state == "error", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(app.tray.notifications), timeout=WAIT_MS)
    _title, text, is_error = app.tray.notifications[0]
    assert is_error
    assert "refused the login" in text
    assert "Fix: check the user name and password" in text
    assert "check the user name and password" in app.tray.tooltip
    window = app.tray.window
    assert window is not None
    assert "Fix:" in window.message.text()
    assert any(e.what == "error" and e.fix for e in app.controller.activity)
    with qtbot.waitSignal(app.controller.stopped, timeout=WAIT_MS):
        app.quit()


def test_quit_waits_for_the_workers(qtbot: QtBot, rig: Rig, tray_app: TrayApp) -> None:
    seeds = varied_seeds(12)
    rig.mailbox.seed(seeds)
    tray_app.start()
    qtbot.waitUntil(lambda: tray_app.controller.accounts["test"].encrypted > 0, timeout=WAIT_MS)
    threads = [s.thread for s in tray_app.controller.accounts.values()]
    with qtbot.waitSignal(tray_app.controller.stopped, timeout=WAIT_MS):
        tray_app.quit()
    assert not any(t.is_alive() for t in threads)
    with rig.engine() as engine:  # the lock is free again and every message is whole
        engine.encrypt_folder("INBOX")
    assert_exactly_once(rig, seeds)


def test_a_second_process_on_the_account_is_refused(qtbot: QtBot, rig: Rig, tray_app: TrayApp) -> None:
    from imapcrypt.lock import AccountLock  # noqa: PLC0415

    with AccountLock(rig.data_dir, "test"):
        tray_app.start()
        qtbot.waitUntil(lambda: tray_app.tray.state == "error", timeout=WAIT_MS)
    assert "in use by another imapcrypt process" in tray_app.tray.tooltip


@pytest.mark.slow
def test_try_the_demo_runs_on_the_embedded_server(qtbot: QtBot, tmp_path: Path) -> None:
    app = TrayApp(tmp_path / "config.toml", data_dir=tmp_path / "data", use_tray=False)
    app.start()
    wizard = app.wizard
    assert wizard is not None
    assert wizard.isVisible()
    wizard.account_page.demo.click()
    qtbot.waitUntil(lambda: app.demo is not None, timeout=WAIT_MS)
    from imapcrypt.demo import Demo  # noqa: PLC0415

    demo = app.demo
    assert isinstance(demo, Demo)

    def encrypted_on_server() -> bool:
        client = demo.server.client()
        try:
            client.select_folder("INBOX")
            bodies = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
        finally:
            client.logout()
        kinds = [envelope.classify(item[b"BODY[]"]) for item in bodies.values()]
        return kinds.count(envelope.Kind.OURS) == len(demo.delivered) - 1

    qtbot.waitUntil(encrypted_on_server, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: app.tray.state == "idle", timeout=WAIT_MS)
    assert not wizard.isVisible()
    assert any(n[0] == "imapcrypt: existing mail done" for n in app.tray.notifications)
    root = demo.root
    with qtbot.waitSignal(app.controller.stopped, timeout=WAIT_MS):
        app.quit()
    assert app.demo is None
    assert not root.exists()


def test_without_an_account_the_status_window_offers_nothing_to_do(qtbot: QtBot, tmp_path: Path) -> None:
    app = TrayApp(tmp_path / "none.toml", data_dir=tmp_path / "data", use_tray=False)
    app.start()  # no configuration: the wizard opens, the status window waits
    window = app.tray.window
    assert window is not None
    assert app.wizard is not None
    qtbot.addWidget(app.wizard)
    for name in ("Encrypt now", "Pause", "Reader"):
        assert not window.buttons[name].isEnabled(), name
    assert window.buttons["Settings…"].isEnabled()
    assert window.buttons["Quit"].isEnabled()
    app.wizard.hide()
    window.hide()


def test_a_server_answer_is_shown_as_text_never_as_markup(
    qtbot: QtBot, rig: Rig, fault_proxy_factory: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy_factory(rig.account.port)
    # What a hostile server may answer; as rich text `<img src="/dev/zero">` aborted the tray.
    answer = b'<b>NO</b> <img src="/nonexistent/picture.png">'
    proxy.rewrite_responses(
        lambda line: re.sub(rb"^(\S+) OK \[READ-WRITE\].*\r\n", rb"\1 NO " + answer + rb"\r\n", line)
    )
    app = TrayApp(rig.at_port(proxy.port).write_config(), use_tray=False)
    app.start()
    qtbot.waitUntil(lambda: app.tray.state == "error", timeout=WAIT_MS)
    window = app.tray.window
    assert window is not None
    qtbot.waitUntil(lambda: "<img" in window.message.text(), timeout=WAIT_MS)
    labels = window.findChildren(QLabel)
    assert labels
    assert all(label.textFormat() == Qt.TextFormat.PlainText for label in labels)
    # The tray icon's tooltip and notifications (no tray offscreen): escaped, and tag-free.
    assert "<img" not in plain_tooltip(window.message.text())
    assert "&lt;img" in plain_tooltip(window.message.text())
    assert "<" not in plain_notification(window.message.text())
    with qtbot.waitSignal(app.controller.stopped, timeout=WAIT_MS):
        app.quit()


def test_the_local_imap_server_switch_serves_the_mailbox_decrypted(
    qtbot: QtBot, rig: Rig, tray_app: TrayApp
) -> None:
    rig.mailbox.seed(varied_seeds(2))
    tray_app.start()
    qtbot.waitUntil(lambda: tray_app.tray.state == "idle" and _all_ours(rig), timeout=WAIT_MS)
    switch = tray_app.tray.serving
    switch.port = 0  # any free port: the default one may be taken on a test machine
    assert switch.action.isEnabled()
    switch.action.trigger()
    qtbot.waitUntil(lambda: switch.server is not None, timeout=WAIT_MS)
    assert switch.server is not None
    port = switch.server.port
    assert f"on, port {port}" in switch.action.text()
    shown = switch.text.text()
    password = re.search(r"password: (\S+)", shown)
    assert password is not None
    assert switch.text.textFormat() == Qt.TextFormat.PlainText
    client = imaplib.IMAP4("127.0.0.1", port)
    try:
        client.login("test", password.group(1))
        client.select("INBOX", readonly=True)
        _, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = b"".join(part[1] for part in data if isinstance(part, tuple))
        assert b"Subject:" in subjects
        assert b"[...]" not in subjects  # the originals' subjects, not the copies' placeholder
    finally:
        client.logout()
    switch.action.trigger()
    assert switch.server is None
    assert not switch.action.isChecked()

    def refused() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) != 0

    qtbot.waitUntil(refused, timeout=WAIT_MS)
