"""The tray icon and its menu, or a small status window where the desktop has no tray.

The icon says the overall state (idle, working, paused, error, offline), the tooltip the counts, and
the menu offers: status line, Encrypt now, Pause/Resume, Reader, the local IMAP server for mail clients
(on/off), Activity, Settings…, About imapcrypt…, Quit.
Errors and a finished backlog become notifications.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from imapcrypt_ui.controller import Controller, IconState
from imapcrypt_ui.labels import plain_label, plain_notification, plain_tooltip
from imapcrypt_ui.qt import (
    QAction,
    QCloseEvent,
    QHBoxLayout,
    QIcon,
    QMenu,
    QMessageBox,
    QObject,
    QPushButton,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
    Signal,
)
from imapcrypt_ui.serving import LocalServerSwitch
from imapcrypt_ui.tasks import run_task

from imapcrypt import __version__, api

ICONS = Path(__file__).parent / "icons"


def state_icon(state: IconState) -> QIcon:
    """The shipped SVG icon for `state`."""
    return QIcon(str(ICONS / f"{state}.svg"))


def about_text(gnupg: str) -> str:
    """The About box's text (rich text): the version, what imapcrypt does, and which gpg it runs."""
    return (
        f"<p><b>imapcrypt {html.escape(__version__)}</b></p>"
        "<p>Keeps your IMAP mailbox OpenPGP-encrypted at rest, on your provider's disk.</p>"
        f"<p>GnuPG: {html.escape(gnupg)}</p>"
        "<p>Licence: GPL-3.0-or-later.</p>"
    )


class StatusWindow(QWidget):
    """Stands in for the tray icon: the icon, the status line, the last notification and the commands."""

    close_requested = Signal()

    def __init__(self, menu: QMenu) -> None:
        super().__init__()
        self.setWindowTitle("imapcrypt")
        self.icon = plain_label()
        self.status = plain_label()
        self.status.setWordWrap(True)
        self.message = plain_label()
        self.message.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.icon)
        top.addWidget(self.status, 1)
        buttons = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for action in menu.actions()[1:]:  # the first is the status line, shown above
            if action.isSeparator():
                continue
            button = QPushButton(action.text())
            button.setEnabled(action.isEnabled())
            button.clicked.connect(action.trigger)
            # A button does what its menu entry does, so it is enabled when that entry is.
            action.changed.connect(
                lambda b=button, a=action: (b.setText(a.text()), b.setEnabled(a.isEnabled()))
            )
            self.buttons[action.text()] = button
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.setMinimumSize(620, 200)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window hides it; Quit ends the app."""
        event.ignore()
        self.hide()


class Tray(QObject):
    """The tray icon (or status window) bound to a controller."""

    def __init__(
        self,
        controller: Controller,
        open_reader: Callable[[], object],
        open_activity: Callable[[], object],
        open_settings: Callable[[], object],
        quit_app: Callable[[], None],
        *,
        use_tray: bool | None = None,
        serve_port: int = api.DEFAULT_SERVE_PORT,
    ) -> None:
        super().__init__()
        self.controller = controller
        self.menu = QMenu()
        self.status_action = QAction("Starting…", self.menu)
        self.status_action.setEnabled(False)
        self.encrypt_action = QAction("Encrypt now", self.menu)
        self.encrypt_action.triggered.connect(controller.encrypt_now)
        self.pause_action = QAction("Pause", self.menu)
        self.pause_action.triggered.connect(self.toggle_pause)
        self.reader_action = QAction("Reader", self.menu)
        self.reader_action.triggered.connect(open_reader)
        self.activity_action = QAction("Activity", self.menu)
        self.activity_action.triggered.connect(open_activity)
        self.settings_action = QAction("Settings…", self.menu)
        self.settings_action.triggered.connect(open_settings)
        self.serving = LocalServerSwitch(self.menu, lambda: controller.config, serve_port)
        self.about_action = QAction("About imapcrypt…", self.menu)
        self.about_action.triggered.connect(self.show_about)
        self.about_box: QMessageBox | None = None
        self.quit_action = QAction("Quit", self.menu)
        self.quit_action.triggered.connect(quit_app)
        self.menu.addAction(self.status_action)
        self.menu.addSeparator()
        for action in (self.encrypt_action, self.pause_action):
            self.menu.addAction(action)
        self.menu.addSeparator()
        for action in (
            self.reader_action,
            self.serving.action,
            self.activity_action,
            self.settings_action,
            self.about_action,
        ):
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        available = QSystemTrayIcon.isSystemTrayAvailable() if use_tray is None else use_tray
        self.icon: QSystemTrayIcon | None = None
        self.window: StatusWindow | None = None
        if available:
            self.icon = QSystemTrayIcon(state_icon("idle"))
            self.icon.setContextMenu(self.menu)
        else:
            self.window = StatusWindow(self.menu)
        self.state: IconState = "idle"
        self.tooltip = ""
        self.notifications: list[
            tuple[str, str, bool]
        ] = []  # what was shown, for the status window and tests
        controller.changed.connect(self.update)
        controller.notify.connect(self.show_notification)
        self.update()

    def show(self) -> None:
        """Show the icon (or the status window)."""
        if self.icon is not None:
            self.icon.show()
        elif self.window is not None:
            self.window.show()

    def hide(self) -> None:
        """Hide the icon (or the status window)."""
        if self.icon is not None:
            self.icon.hide()
        elif self.window is not None:
            self.window.hide()

    def show_about(self) -> QMessageBox:
        """A small dialog with the version (not modal: the tray keeps working behind it)."""
        if self.about_box is None:
            box = QMessageBox(QMessageBox.Icon.NoIcon, "About imapcrypt", about_text("looking…"))
            self.about_box = box
            # `gpg --version` is a gpg run: never on the GUI thread.
            run_task(api.gnupg_description, lambda found: box.setText(about_text(found)), name="about")
            self.about_box.setIconPixmap(state_icon("idle").pixmap(64, 64))
        self.about_box.show()
        self.about_box.raise_()
        return self.about_box

    def toggle_pause(self) -> None:
        """Pause or resume every account."""
        self.controller.set_paused(not self.controller.paused)

    def update(self) -> None:
        """Show the controller's state: icon, tooltip, status line, Pause/Resume."""
        self.state = self.controller.icon_state
        self.tooltip = self.controller.tooltip()
        self.status_action.setText(self.controller.status_line())
        self.pause_action.setText("Resume" if self.controller.paused else "Pause")
        # Nothing to encrypt, pause or read without an account, nor while the server is out of reach.
        usable = bool(self.controller.accounts) and self.state != "offline"
        for action in (self.encrypt_action, self.pause_action, self.reader_action):
            action.setEnabled(usable)
        if self.serving.server is None:  # a running server can always be switched off
            self.serving.action.setEnabled(bool(self.controller.accounts))
        icon = state_icon(self.state)
        if self.icon is not None:
            self.icon.setIcon(icon)
            self.icon.setToolTip(plain_tooltip(self.tooltip))
        if self.window is not None:
            self.window.setWindowIcon(icon)
            self.window.icon.setPixmap(icon.pixmap(48, 48))
            self.window.status.setText(self.tooltip)

    def show_notification(self, title: str, text: str, is_error: bool) -> None:
        """A desktop notification (the status window shows it in a line instead)."""
        self.notifications.append((title, text, is_error))
        if self.icon is not None and QSystemTrayIcon.supportsMessages():
            kind = (
                QSystemTrayIcon.MessageIcon.Critical if is_error else QSystemTrayIcon.MessageIcon.Information
            )
            self.icon.showMessage(plain_notification(title), plain_notification(text), kind, 15000)
        if self.window is not None:
            self.window.message.setText(f"{title}: {text}")
