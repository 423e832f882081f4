"""The reader: decrypted subjects from headers alone, a message body, attachments, and HTML that loads
nothing from the network (the engine-side imapcrypt.reader and the Qt window, on a real Dovecot)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from imapcrypt_ui.qt import QColor, QPixmap, QTextDocument, QUrl
from imapcrypt_ui.reader import LOCKED, ReaderWindow, Unlocked
from imapcrypt_ui.safe_html import SafeTextBrowser, sanitise
from pytestqt.qtbot import QtBot

from imapcrypt import reader
from imapcrypt.config.model import load_config
from imapcrypt.imap.session import MessageInfo
from imapcrypt.serve.index import open_index
from imapcrypt.wiring import open_session
from tests.fixtures.corpus import BODY_MARK, SUBJECT_MARK, Seed, varied_seeds
from tests.fixtures.engine import Rig
from tests.fixtures.keyrings import MemoryKeyring
from tests.fixtures.proxy import FaultProxy

WAIT_MS = 30_000
WHEN = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request: the test asserts there is none."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def web() -> Iterator[str]:
    """A local web server on 127.0.0.1 that counts hits; yields its base URL."""
    Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def html_message(base: str) -> bytes:
    html = (
        f'<html><head><link rel="stylesheet" href="{base}/style.css">'
        f"<style>body {{ background: url({base}/bg.png) }}</style></head><body>"
        f'<p>Hello <b>reader</b></p><img src="{base}/pixel.gif" width="1" height="1">'
        f'<div style="background-image: url({base}/div.png)">box</div>'
        f"<script>fetch('{base}/script')</script><a href=\"{base}/link\">a link</a></body></html>"
    )
    return (
        b"From: News <news@example.org>\r\nTo: me@example.net\r\nSubject: The HTML one\r\n"
        b"Date: Fri, 01 Mar 2024 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode() + b"\r\n"
    )


ATTACHED = (
    b"From: Ada <ada@example.org>\r\nTo: me@example.net\r\nSubject: Figures\r\n"
    b"Date: Fri, 01 Mar 2024 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
    b'--b\r\nContent-Type: text/csv; name="f.csv"\r\nContent-Disposition: attachment; filename="f.csv"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nYSxiCjEsMgo=\r\n--b--\r\n"
)


@pytest.fixture
def encrypted(rig: Rig, web: str) -> list[Seed]:
    seeds = [*varied_seeds(2), Seed(html_message(web), (), WHEN), Seed(ATTACHED, (b"\\Seen",), WHEN)]
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        assert engine.encrypt_folder("INBOX").encrypted == 4
    return seeds


def test_engine_side_reader_lists_and_opens(rig: Rig, encrypted: list[Seed]) -> None:
    flags_before = {m.uid: m.flags for m in rig.mailbox.state()}
    session = open_session(load_config(rig.write_config()).account(None))
    try:
        locked = reader.list_messages(session, "INBOX")
        assert [s.subject for s in locked] == [None] * 4
        assert all(s.encrypted_by_us for s in locked)
        opened = reader.list_messages(session, "INBOX", rig.gpg, "")
        assert [s.subject for s in opened] == [
            "Figures",
            "The HTML one",
            f"{SUBJECT_MARK} 1",
            f"{SUBJECT_MARK} 0",
        ]
        assert opened[0].sender == "Ada <ada@example.org>"
        original = reader.fetch_original(session, "INBOX", opened[-1].uid, rig.gpg, "")
        assert original == encrypted[0].raw
    finally:
        session.logout()
    assert {m.uid: m.flags for m in rig.mailbox.state()} == flags_before, "reading changes no flag"
    parsed = reader.parse_message(ATTACHED)
    assert (parsed.text or "").strip() == "see attached"
    assert parsed.attachments[0].filename == "f.csv"
    assert parsed.attachments[0].data == b"a,b\n1,2\n"


def test_reader_window_decrypts_subjects_and_shows_bodies_without_network(
    qtbot: QtBot, rig: Rig, encrypted: list[Seed], tmp_path: Path
) -> None:
    config = load_config(rig.write_config())
    asked: list[str] = []

    def ask(account: str) -> str:
        asked.append(account)
        return ""  # the test key has no passphrase

    window = ReaderWindow(config, Unlocked(), ask)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.listed, timeout=WAIT_MS):
        window.show_folder("test", "INBOX")
    subjects = [window.messages.item(r, 2).text() for r in range(window.messages.rowCount())]
    assert subjects == [LOCKED] * 4
    with qtbot.waitSignal(window.listed, timeout=WAIT_MS):
        window.unlock_button.click()
    assert asked == ["test"]
    subjects = [window.messages.item(r, 2).text() for r in range(window.messages.rowCount())]
    assert subjects == ["Figures", "The HTML one", f"{SUBJECT_MARK} 1", f"{SUBJECT_MARK} 0"]
    assert window.messages.item(0, 0).text() == "Ada <ada@example.org>"

    with qtbot.waitSignal(window.opened, timeout=WAIT_MS):
        window.open_row(3)
    assert BODY_MARK in window.body.toPlainText()

    with qtbot.waitSignal(window.opened, timeout=WAIT_MS):
        window.open_row(1)
    shown = window.body.toPlainText()
    assert "Hello reader" in shown
    assert "fetch(" not in shown
    assert "1 remote image(s) blocked" in window.notice.text()
    html = window.body.toHtml()
    assert "pixel.gif" not in html
    assert "style.css" not in html
    assert "bg.png" not in html
    qtbot.waitUntil(window.body.isVisible, timeout=WAIT_MS)
    window.body.grab()  # render it: a document that wanted a resource would ask for it now
    assert Recorder.hits == []

    with qtbot.waitSignal(window.opened, timeout=WAIT_MS):
        window.open_row(0)
    assert window.save_button.isEnabled()
    saved = window.save_attachment(tmp_path / "saved.csv")
    assert saved is not None
    assert saved.read_bytes() == b"a,b\n1,2\n"


def test_safe_browser_refuses_resources_even_unsanitised(qtbot: QtBot, web: str) -> None:
    browser = SafeTextBrowser()
    qtbot.addWidget(browser)
    browser.show()
    # Bypass the sanitiser on purpose: the second wall alone must hold.
    browser.setHtml(f'<p>x</p><img src="{web}/raw.gif"><img src="file:///etc/passwd">')
    browser.grab()
    assert f"{web}/raw.gif" in browser.refused
    assert "file:///etc/passwd" in browser.refused
    assert Recorder.hits == []


def test_sanitiser_keeps_formatting_and_drops_active_content() -> None:
    clean, blocked = sanitise(
        '<p onclick="x()">Hi <b>there</b></p><img src="http://a/b.png"><script>bad()</script>'
        '<iframe src="http://a/"></iframe><a href="javascript:alert(1)">j</a><a href="https://ok/">ok</a>'
    )
    assert blocked == 1
    assert "<b>there</b>" in clean
    for bad in ("onclick", "<img", "<script", "bad()", "<iframe", "javascript:"):
        assert bad not in clean
    assert 'href="https://ok/"' in clean


def test_the_pane_shows_only_the_chosen_message_and_waits_out_a_dead_server(
    qtbot: QtBot, rig: Rig, encrypted: list[Seed], fault_proxy: FaultProxy
) -> None:
    written = load_config(rig.write_config())
    account = dataclasses.replace(written.account("test"), port=fault_proxy.port)
    config = dataclasses.replace(written, accounts=(account,))
    unlocked = Unlocked()
    unlocked.set("test", "")  # the test key has no passphrase
    window = ReaderWindow(config, unlocked)
    qtbot.addWidget(window)
    window.retry_ms = 50  # the first retry comes quickly in a test
    with qtbot.waitSignal(window.listed, timeout=WAIT_MS):
        window.show_folder("test", "INBOX")
    with qtbot.waitSignal(window.opened, timeout=WAIT_MS):
        window.open_row(0)  # the one with an attachment
    assert window.save_button.isEnabled()

    # The server goes away: choosing another message clears the pane at once, then says why.
    fault_proxy.set_refusing(True)
    fault_proxy.cut_all()
    with qtbot.waitSignal(window.failed, timeout=WAIT_MS):
        window.open_row(3)
        assert window.body.toPlainText() == ""
        assert window.attachments.count() == 0
        assert not window.save_button.isEnabled()
    assert "server does not answer" in window.header.text()
    assert BODY_MARK not in window.body.toPlainText()

    # Back again: the reader tries again by itself and shows the chosen message.
    with qtbot.waitSignal(window.opened, timeout=WAIT_MS):
        fault_proxy.set_refusing(False)
    assert BODY_MARK in window.body.toPlainText()
    assert window.attachments.count() == 0


def test_safe_browser_never_lets_qt_load_a_local_file(qtbot: QtBot, tmp_path: Path) -> None:
    picture = tmp_path / "local.png"
    pixmap = QPixmap(400, 300)
    pixmap.fill(QColor("red"))
    assert pixmap.save(str(picture))
    browser = SafeTextBrowser()
    qtbot.addWidget(browser)
    browser.show()
    url = QUrl.fromLocalFile(str(picture))
    browser.setHtml(f'<p>x</p><img src="{url.toString()}">')  # unsanitised: the second wall alone
    browser.grab()
    assert url.toString() in browser.refused
    loaded = browser.document().resource(QTextDocument.ResourceType.ImageResource.value, url)
    assert loaded is None or loaded.isNull()  # nothing, or the empty resource: never the picture
    assert browser.document().size().height() < 300


def test_hostile_headers_and_attachment_names_are_tamed() -> None:
    raw = (
        b"From: " + b"(" * 5000 + b"\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="../../.bashrc"\r\n\r\nx\r\n--b--\r\n'
    )
    parsed = reader.parse_message(raw)
    assert parsed.subject == "hi"
    assert [a.filename for a in parsed.attachments] == ["bashrc"]
    info = MessageInfo(1, (), WHEN, len(raw), raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n")
    [line] = reader.summarise([info])
    assert line.sender.startswith("(((")


@pytest.mark.parametrize(
    ("name", "safe"),
    [("../../.bashrc", "bashrc"), ("C:\\Windows\\evil.exe", "evil.exe"),
     ("a\x00b\u202etxt.exe", "a_b_txt.exe"), ("..", "attachment"), (None, "attachment"),
     ("report.pdf", "report.pdf")],
)  # fmt: skip
def test_attachment_names_are_reduced_to_a_safe_base_name(name: str | None, safe: str) -> None:
    assert reader.safe_filename(name) == safe


def test_the_search_box_shows_the_messages_whose_decrypted_text_has_the_words(
    qtbot: QtBot, rig: Rig, encrypted: list[Seed], memory_keyring: MemoryKeyring
) -> None:
    config = load_config(rig.write_config())
    window = ReaderWindow(config, Unlocked(), lambda _account: "")
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.listed, timeout=WAIT_MS):
        window.show_folder("test", "INBOX")
    with qtbot.waitSignal(window.failed, timeout=WAIT_MS) as no_index:
        window.search_folder("Hello reader")
    assert "no search index yet" in no_index.args[0]
    # What the local IMAP server's indexer keeps: the originals' text, keyed from the keyring.
    with rig.mailbox.client() as client:
        uidvalidity = client.select_folder("INBOX")[b"UIDVALIDITY"]
    index = open_index(config.data_dir)
    assert index is not None
    try:
        html_uid = window.listing[1].uid
        index.add("test", "INBOX", uidvalidity, {html_uid: encrypted[2].raw, window.listing[0].uid: b"x"})
    finally:
        index.close()
    with qtbot.waitSignal(window.listed, timeout=WAIT_MS):
        window.search_folder("HELLO READER")
    assert [s.uid for s in window.summaries] == [html_uid]
    assert "1 of 4 messages" in window.status.text()
    window.search_folder("")
    assert len(window.summaries) == 4
