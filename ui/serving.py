"""The tray's switch for `imapcrypt serve`: a local IMAP server that shows the mailbox decrypted to any
mail client (docs/serve.md). It starts and stops off the GUI thread and says how a client connects."""

from __future__ import annotations

from collections.abc import Callable

from imapcrypt_ui.labels import plain_label
from imapcrypt_ui.qt import QAction, QDialog, QDialogButtonBox, QMenu, QObject, Qt, QVBoxLayout, Signal
from imapcrypt_ui.tasks import run_task

from imapcrypt import api

OFF_TEXT = "Local IMAP server"
TOOLTIP = "Show the mailbox decrypted to any mail client, on this computer only (imapcrypt serve)"


def connection_text(port: int, accounts: list[str], password: str) -> str:
    """What to type into a mail client to add the local account (plain text)."""
    return (
        "Add an IMAP account in your mail client with:\n"
        f"  server: 127.0.0.1   port: {port}   connection security: none (only this computer can connect)\n"
        f"  user name: {' or '.join(accounts)}\n"
        f"  password: {password}\n"
        "Mail the client saves (drafts, sent mail) is encrypted before it reaches your provider."
    )


class LocalServerSwitch(QObject):
    """A checkable menu entry that runs the local IMAP server while it is checked."""

    changed = Signal()

    def __init__(self, menu: QMenu, config: Callable[[], api.Config | None], port: int) -> None:
        super().__init__(menu)
        self.config = config
        self.port = port
        self.action = QAction(OFF_TEXT, menu)
        self.action.setCheckable(True)
        self.action.setToolTip(TOOLTIP)
        self.action.toggled.connect(self._toggled)
        self.server: api.RunningServer | None = None
        self.error = ""
        self.details = QDialog()
        self.details.setWindowTitle("imapcrypt: local IMAP server")
        self.text = plain_label()
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.details.hide)
        layout = QVBoxLayout(self.details)
        layout.addWidget(self.text)
        layout.addWidget(buttons)

    def _show_unchecked(self) -> None:
        self.action.blockSignals(True)
        self.action.setChecked(False)
        self.action.blockSignals(False)
        self.action.setText(OFF_TEXT)
        self.action.setEnabled(True)

    def _toggled(self, on: bool) -> None:
        config = self.config()
        if not on:
            self.stop()
        elif config is None or not config.accounts:
            self._show_unchecked()
        else:
            self.action.setEnabled(False)
            self.action.setText("Local IMAP server: starting…")
            run_task(
                lambda: (api.start_local_server(config, self.port), api.local_server_password(config)),
                lambda started: self._started(config, *started),
                self._failed,
                name="serve",
            )

    def _started(self, config: api.Config, server: api.RunningServer, password: str) -> None:
        self.server = server
        self.error = ""
        self.action.setEnabled(True)
        self.action.setText(f"Local IMAP server: on, port {server.port}")
        self.show_details(connection_text(server.port, [a.name for a in config.accounts], password))
        self.changed.emit()

    def _failed(self, exc: BaseException) -> None:
        self._show_unchecked()
        self.error = str(exc)
        self.show_details(f"The local IMAP server could not start: {exc}")
        self.changed.emit()

    def show_details(self, text: str) -> None:
        """Show `text` in a small window as plain, selectable text (the password can be copied)."""
        self.text.setText(text)
        self.details.show()

    def stop(self) -> None:
        """Stop the server, off the GUI thread: it waits for its clients' provider connections."""
        server, self.server = self.server, None
        self._show_unchecked()
        if server is not None:
            run_task(server.stop, lambda _: self.changed.emit(), name="serve-stop")
