"""The reader window: folders, the message list with decrypted subjects, and one message shown safely.

Subjects are decrypted only after the user unlocks the reader with the key's passphrase (kept in
memory for this run of the app, never written anywhere). Messages are decrypted in memory; the copy
on the server is not touched (BODY.PEEK: not even \\Seen).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from imapcrypt_ui.qt import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSplitter,
    Qt,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
    Signal,
)
from imapcrypt_ui.safe_html import SafeTextBrowser
from imapcrypt_ui.tasks import run_task

from imapcrypt import reader
from imapcrypt.config.model import Account, Config
from imapcrypt.errors import ImapcryptError
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.wiring import account_passphrase, open_session

LOCKED = "(encrypted: unlock to read)"


class Unlocked:
    """Passphrases the user typed this run, by account (memory only)."""

    def __init__(self) -> None:
        self._by_account: dict[str, str] = {}

    def get(self, account: str) -> str | None:
        """The passphrase for `account`, or None while locked."""
        return self._by_account.get(account)

    def set(self, account: str, passphrase: str) -> None:
        """Remember a passphrase that opened a subject."""
        self._by_account[account] = passphrase

    def __contains__(self, account: str) -> bool:
        return account in self._by_account


def human_size(size: int) -> str:
    """1234567 -> "1.2 MB"."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _date_text(when: dt.datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M") if when else ""


class ReaderWindow(QMainWindow):
    """Accounts and folders on the left, messages in the middle, the open message on the right."""

    listed = Signal()  # the message list was filled
    opened = Signal()  # a message is shown
    failed = Signal(str)

    def __init__(
        self, config: Config, unlocked: Unlocked, ask_passphrase: Callable[[str], str | None] | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.unlocked = unlocked
        self._ask = ask_passphrase or self._prompt
        self.setWindowTitle("imapcrypt reader")
        self.folders = QTreeWidget()
        self.folders.setHeaderLabels(["Folders"])
        self.messages = QTableWidget(0, 4)
        self.messages.setHorizontalHeaderLabels(["From", "Date", "Subject", "Size"])
        self.messages.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.messages.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.messages.verticalHeader().setVisible(False)
        self.messages.setWordWrap(False)
        self.messages.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.unlock_button = QPushButton("Unlock subjects…")
        self.unlock_button.clicked.connect(self.unlock)
        self.status = QLabel()
        self.header = QLabel()
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.header.setWordWrap(True)
        self.notice = QLabel()
        self.body = SafeTextBrowser()
        self.attachments = QListWidget()
        self.attachments.setMaximumHeight(80)
        self.save_button = QPushButton("Save attachment…")
        self.save_button.clicked.connect(self.save_attachment)
        self.save_button.setEnabled(False)
        self._lay_out()
        self.current: tuple[Account, str] | None = None
        self.summaries: list[reader.Summary] = []
        self.parsed: reader.ParsedMessage | None = None
        self._fill_folders()
        self.folders.itemClicked.connect(self._folder_clicked)
        self.messages.cellClicked.connect(lambda row, _col: self.open_row(row))

    def _lay_out(self) -> None:
        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        top = QHBoxLayout()
        top.addWidget(self.unlock_button)
        top.addWidget(self.status, 1)
        middle_layout.addLayout(top)
        middle_layout.addWidget(self.messages)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.header)
        right_layout.addWidget(self.notice)
        right_layout.addWidget(self.body, 1)
        right_layout.addWidget(self.attachments)
        right_layout.addWidget(self.save_button)
        splitter = QSplitter()
        splitter.addWidget(self.folders)
        splitter.addWidget(middle)
        splitter.addWidget(right)
        splitter.setSizes([140, 560, 420])
        self.setCentralWidget(splitter)
        self.resize(1200, 600)

    # -- folders and the list ------------------------------------------------------------------------
    def _fill_folders(self) -> None:
        for account in self.config.accounts:
            top = QTreeWidgetItem([account.name])
            for folder in account.folders:
                child = QTreeWidgetItem([folder])
                child.setData(0, Qt.ItemDataRole.UserRole, (account.name, folder))
                top.addChild(child)
            self.folders.addTopLevelItem(top)
            top.setExpanded(True)

    def _folder_clicked(self, item: QTreeWidgetItem) -> None:
        data = item.data(0, Qt.ItemDataRole.UserRole)
        if data:
            self.show_folder(data[0], data[1])

    def show_folder(self, account_name: str, folder: str) -> None:
        """List `folder` of `account_name` in the background (subjects decrypted when unlocked)."""
        account = self.config.account(account_name)
        self.current = (account, folder)
        self.status.setText(f"Loading {folder}…")
        passphrase = self.unlocked.get(account.name)
        gpg = GnuPG(self.config.gnupg_home) if passphrase is not None else None

        def load() -> list[reader.Summary]:
            session = open_session(account)
            try:
                return reader.list_messages(session, folder, gpg, passphrase)
            finally:
                session.logout()

        run_task(load, self._listed, self._failed, name="reader-list")

    def show_summaries(self, summaries: list[reader.Summary]) -> None:
        """Fill the list (also used with sample data for screenshots)."""
        self.summaries = summaries
        self.messages.setRowCount(len(summaries))
        for row, line in enumerate(summaries):
            subject = line.subject if line.subject is not None else LOCKED
            for column, text in enumerate(
                (line.sender, _date_text(line.date), subject, human_size(line.size))
            ):
                self.messages.setItem(row, column, QTableWidgetItem(text))
        self.messages.resizeColumnToContents(1)
        self.messages.setColumnWidth(0, min(self.messages.sizeHintForColumn(0), 220))

    def _listed(self, summaries: list[reader.Summary]) -> None:
        self.show_summaries(summaries)
        locked = self.current is not None and self.current[0].name not in self.unlocked
        ours = sum(1 for s in summaries if s.encrypted_by_us)
        self.status.setText(
            f"{len(summaries)} messages, {ours} encrypted" + (" · subjects locked" if locked and ours else "")
        )
        self.listed.emit()

    def _failed(self, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, ImapcryptError) else f"failed: {type(exc).__name__}"
        self.status.setText(text)
        self.failed.emit(text)

    # -- unlocking ---------------------------------------------------------------------------------
    def _prompt(self, account: str) -> str | None:
        text, ok = QInputDialog.getText(
            self, "Unlock the reader", f"Passphrase of the key of {account}:", QLineEdit.EchoMode.Password
        )
        return text if ok else None

    def unlock(self) -> None:
        """Ask for the passphrase (unless a passphrase command or the keyring has it) and relist."""
        if self.current is None:
            return
        account = self.current[0]
        passphrase = account_passphrase(account)
        if passphrase is None:
            passphrase = self._ask(account.name)
        if passphrase is None:
            return
        self.unlocked.set(account.name, passphrase)
        self.show_folder(account.name, self.current[1])

    # -- one message -------------------------------------------------------------------------------
    def open_row(self, row: int) -> None:
        """Fetch and decrypt the message in `row` in the background, then show it."""
        if self.current is None or not 0 <= row < len(self.summaries):
            return
        account, folder = self.current
        uid = self.summaries[row].uid
        passphrase = self.unlocked.get(account.name)
        if passphrase is None and self.summaries[row].encrypted_by_us:
            self.unlock()
            passphrase = self.unlocked.get(account.name)
            if passphrase is None:
                return
        gpg = GnuPG(self.config.gnupg_home)

        def load() -> reader.ParsedMessage:
            session = open_session(account)
            try:
                return reader.parse_message(reader.fetch_original(session, folder, uid, gpg, passphrase))
            finally:
                session.logout()

        self.header.setText("Decrypting…")
        run_task(load, self.show_message, self._failed, name="reader-open")

    def show_message(self, parsed: reader.ParsedMessage) -> None:
        """Show a parsed message: plain text as text, HTML sanitised, attachments listed."""
        self.parsed = parsed
        self.header.setText(
            f"<b>{_escape(parsed.subject)}</b><br>From: {_escape(parsed.sender)}<br>"
            f"To: {_escape(parsed.to)}<br>Date: {_escape(parsed.date)}"
        )
        self.notice.setText("")
        if parsed.html is not None:
            blocked = self.body.show_html(parsed.html)
            if blocked:
                self.notice.setText(
                    f"{blocked} remote image(s) blocked: imapcrypt never loads remote content."
                )
        else:
            self.body.setPlainText(parsed.text or "")
        self.attachments.clear()
        for attachment in parsed.attachments:
            label = f"{attachment.filename} ({attachment.content_type}, {human_size(len(attachment.data))})"
            self.attachments.addItem(QListWidgetItem(label))
        self.save_button.setEnabled(bool(parsed.attachments))
        self.opened.emit()

    def save_attachment(self, path: Path | None = None) -> Path | None:
        """Save the selected (or first) attachment; asks where unless `path` is given."""
        if self.parsed is None or not self.parsed.attachments:
            return None
        index = max(self.attachments.currentRow(), 0)
        attachment = self.parsed.attachments[index]
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Save attachment", attachment.filename)
            if not chosen:
                return None
            path = Path(chosen)
        path.write_bytes(attachment.data)
        return path


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
