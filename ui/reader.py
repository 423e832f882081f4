"""The reader window: folders, the message list with decrypted subjects, and one message shown safely.

Subjects are decrypted only after the user unlocks the reader with the key's passphrase, checked
against the key itself whatever gpg-agent has cached (`api.unlock`), and kept in memory for this run
of the app, never written anywhere; "Lock" forgets it and makes the agent forget it too. Messages are
decrypted in memory; the copy on the server is not touched (BODY.PEEK: not even \\Seen). The pane
shows only the selected message: it is cleared when another is chosen, says so when the server cannot
be reached, and tries again until it answers.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from pathlib import Path

from imapcrypt_ui.labels import plain_label
from imapcrypt_ui.qt import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSplitter,
    Qt,
    QTableWidget,
    QTableWidgetItem,
    QTimer,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
    Signal,
)
from imapcrypt_ui.safe_html import SafeTextBrowser
from imapcrypt_ui.tasks import run_task

from imapcrypt import api
from imapcrypt.api import Account, Config, ParsedMessage, Summary
from imapcrypt.errors import ImapcryptError, ServerError

LOCKED = "(encrypted: unlock to read)"


class Unlocked:
    """Passphrases the user typed this run, by account (memory only)."""

    def __init__(self) -> None:
        self._by_account: dict[str, str] = {}

    def get(self, account: str) -> str | None:
        """The passphrase for `account`, or None while locked."""
        return self._by_account.get(account)

    def set(self, account: str, passphrase: str) -> None:
        """Remember a passphrase that was checked against the account's key."""
        self._by_account[account] = passphrase

    def forget(self, account: str) -> None:
        """Lock `account` again."""
        self._by_account.pop(account, None)

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
    unlock_refused = Signal(str)  # the passphrase did not open the key
    lock_changed = Signal()  # unlocked or locked again

    RETRY_FIRST_MS = 2_000  # then doubling up to RETRY_MAX_MS while the server does not answer
    RETRY_MAX_MS = 60_000

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
        self.lock_button = QPushButton("Lock")
        self.lock_button.setToolTip("Forget the passphrase (gpg-agent too): the next read asks again")
        self.lock_button.clicked.connect(self.lock)
        self.lock_button.setEnabled(False)
        self.search = self._search_box()
        self.status = plain_label()
        self.header = plain_label()
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # The one rich label: its layout is ours, every value in it passes through _escape.
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.notice = plain_label()
        self.body = SafeTextBrowser()
        self.attachments = QListWidget()
        self.attachments.setMaximumHeight(80)
        self.save_button = QPushButton("Save attachment…")
        self.save_button.clicked.connect(self.save_attachment)
        self.save_button.setEnabled(False)
        self._lay_out()
        self.current: tuple[Account, str] | None = None
        self.summaries: list[Summary] = []  # the rows shown
        self.listing: list[Summary] = []  # the whole folder, of which a search shows some
        self.parsed: ParsedMessage | None = None
        self.wanted: tuple[str, str, int] | None = None  # the message the pane should show
        self.retry_ms = self.RETRY_FIRST_MS
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.timeout.connect(self._try_again)
        self._open_after_unlock: int | None = None
        self._fill_folders()
        self.folders.itemClicked.connect(self._folder_clicked)
        self.messages.cellClicked.connect(lambda row, _col: self.open_row(row))
        self._show_lock_state()  # nothing to unlock or lock before a folder is chosen

    def _lay_out(self) -> None:
        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        top = QHBoxLayout()
        top.addWidget(self.unlock_button)
        top.addWidget(self.lock_button)
        top.addWidget(self.status, 1)
        middle_layout.addLayout(top)
        middle_layout.addWidget(self.search)
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
        if self.current is None or self.current[0].name != account_name or self.current[1] != folder:
            self.clear_message()
        self.current = (account, folder)
        self.status.setText(f"Loading {folder}…")
        passphrase = self.unlocked.get(account.name)
        self._show_lock_state()
        config = self.config
        run_task(
            lambda: api.list_folder(config, account, folder, passphrase),
            self._listed,
            self._list_failed,
            name="reader-list",
        )

    def show_summaries(self, summaries: list[Summary]) -> None:
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

    def _listed(self, summaries: list[Summary]) -> None:
        self.retry_ms = self.RETRY_FIRST_MS
        self.listing = summaries
        self.search.clear()
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

    def _list_failed(self, exc: BaseException) -> None:
        self._failed(exc)
        if isinstance(exc, ServerError):
            self.status.setText(f"The server cannot be reached ({_short(exc)}). Trying again…")
            self._schedule_retry()

    # -- search ------------------------------------------------------------------------------------
    def _search_box(self) -> QLineEdit:
        box = QLineEdit()
        box.setPlaceholderText("Search the decrypted mail of this folder (local index)")
        box.setClearButtonEnabled(True)
        box.returnPressed.connect(lambda: self.search_folder(box.text()))
        return box

    def search_folder(self, words: str) -> None:
        """Show only the folder's messages whose decrypted text contains `words` (the local search
        index answers, in the background); empty `words` shows the whole folder again."""
        if self.current is None:
            return
        if not words.strip():
            self.show_summaries(self.listing)
            self.status.setText(f"{len(self.listing)} messages")
            return
        account, folder = self.current
        config = self.config
        self.status.setText("Searching…")
        run_task(
            lambda: api.search_index(config, words, account.name, folder),
            lambda hits: self._found(words, {hit.uid for hit in hits}),
            self._failed,
            name="reader-search",
        )

    def _found(self, words: str, uids: set[int]) -> None:
        self.clear_message()
        shown = [s for s in self.listing if s.uid in uids]
        self.show_summaries(shown)
        self.status.setText(f"{len(shown)} of {len(self.listing)} messages contain {words!r}")
        self.listed.emit()

    # -- the server is away: try again until it answers ----------------------------------------------
    def _schedule_retry(self) -> None:
        self._retry.start(self.retry_ms)
        self.retry_ms = min(self.retry_ms * 2, self.RETRY_MAX_MS)

    def _try_again(self) -> None:
        """Reload what the window shows: the folder's list, and the wanted message if there is one."""
        if self.current is None:
            return
        account, folder = self.current
        wanted = self.wanted
        self.show_folder(account.name, folder)
        if wanted is not None and wanted[:2] == (account.name, folder):
            self._fetch(account, folder, wanted[2])

    # -- unlocking ---------------------------------------------------------------------------------
    def _prompt(self, account: str) -> str | None:
        text, ok = QInputDialog.getText(
            self, "Unlock the reader", f"Passphrase of the key of {account}:", QLineEdit.EchoMode.Password
        )
        return text if ok else None

    def unlock(self) -> None:
        """Ask for the passphrase (unless a passphrase command or the keyring has it), check it against
        the key itself in the background, and relist with subjects."""
        if self.current is None:
            return
        account = self.current[0]
        self.unlock_button.setEnabled(False)
        run_task(
            lambda: api.stored_passphrase(account),
            lambda stored: self._check(account, stored),
            self._unlock_failed,
            name="reader-passphrase",
        )

    def _check(self, account: Account, stored: str | None) -> None:
        passphrase = stored if stored is not None else self._ask(account.name)
        if passphrase is None:
            self.unlock_button.setEnabled(True)
            self._open_after_unlock = None
            return
        self.status.setText("Checking the passphrase…")
        config = self.config

        def check() -> str:
            api.unlock(config, account, passphrase)
            return passphrase

        run_task(check, lambda checked: self._unlocked(account, checked), self._unlock_failed, name="unlock")

    def _unlocked(self, account: Account, passphrase: str) -> None:
        self.unlocked.set(account.name, passphrase)
        self._show_lock_state()
        self.lock_changed.emit()
        if self.current is not None:
            self.show_folder(account.name, self.current[1])
        row, self._open_after_unlock = self._open_after_unlock, None
        if row is not None:
            self.open_row(row)

    def _unlock_failed(self, exc: BaseException) -> None:
        self._open_after_unlock = None
        text = exc.message if isinstance(exc, ImapcryptError) else f"failed: {type(exc).__name__}"
        self.status.setText(f"Still locked: {text}.")
        self._show_lock_state()
        self.unlock_refused.emit(text)

    def lock(self) -> None:
        """Forget the passphrase of the shown account (gpg-agent's cache too) and hide the subjects."""
        if self.current is None:
            return
        account, folder = self.current
        self.unlocked.forget(account.name)
        self.clear_message()
        self._show_lock_state()
        config = self.config
        run_task(lambda: api.lock(config, account), lambda _none: self.lock_changed.emit(), self._failed)
        self.show_folder(account.name, folder)

    def _show_lock_state(self) -> None:
        unlocked = self.current is not None and self.current[0].name in self.unlocked
        self.unlock_button.setEnabled(self.current is not None and not unlocked)
        self.lock_button.setEnabled(unlocked)

    # -- one message -------------------------------------------------------------------------------
    def open_row(self, row: int) -> None:
        """Fetch and decrypt the message in `row` in the background, then show it (nothing else)."""
        if self.current is None or not 0 <= row < len(self.summaries):
            return
        account, folder = self.current
        summary = self.summaries[row]
        self.clear_message()
        if self.unlocked.get(account.name) is None and summary.encrypted_by_us:
            self._open_after_unlock = row
            self.header.setText("Locked: unlock with the key's passphrase to read this message.")
            self.unlock()
            return
        self._fetch(account, folder, summary.uid)

    def _fetch(self, account: Account, folder: str, uid: int) -> None:
        wanted = (account.name, folder, uid)
        self.wanted = wanted
        passphrase = self.unlocked.get(account.name)
        config = self.config
        self.header.setText("Decrypting…")
        run_task(
            lambda: api.open_message(config, account, folder, uid, passphrase),
            lambda parsed: self._opened(wanted, parsed),
            lambda exc: self._open_failed(wanted, exc),
            name="reader-open",
        )

    def clear_message(self) -> None:
        """Empty the pane: nothing of the previously shown message stays."""
        self.wanted = None
        self.parsed = None
        self.header.clear()
        self.notice.clear()
        self.body.clear()
        self.attachments.clear()
        self.save_button.setEnabled(False)

    def _opened(self, wanted: tuple[str, str, int], parsed: ParsedMessage) -> None:
        if wanted != self.wanted:  # another message was chosen meanwhile
            return
        self.retry_ms = self.RETRY_FIRST_MS
        self.show_message(parsed)

    def _open_failed(self, wanted: tuple[str, str, int], exc: BaseException) -> None:
        if wanted != self.wanted:
            return
        if isinstance(exc, ServerError):
            self.header.setText(
                f"This message cannot be fetched: the server does not answer ({_short(exc)}). "
                "Trying again until it does…"
            )
            self._schedule_retry()
            self.failed.emit(str(exc))
            return
        self.header.setText(f"This message cannot be shown: {_short(exc)}")
        self._failed(exc)

    def show_message(self, parsed: ParsedMessage) -> None:
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
            # The sender's name reduced to a safe base name (imapcrypt.reader.safe_filename).
            chosen, _ = QFileDialog.getSaveFileName(self, "Save attachment", attachment.filename)
            if not chosen:
                return None
            path = Path(chosen)
        path.write_bytes(attachment.data)
        return path


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _short(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ImapcryptError) else type(exc).__name__
