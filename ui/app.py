"""The `imapcrypt-tray` entry point: single instance, first-run wizard or the tray, and the windows.

With a configuration the workers start at once; without one the wizard opens (with "Try the demo").
Quit asks every worker to stop (the message in flight completes) and ends the app when they have.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imapcrypt_ui.activity import ActivityWindow
from imapcrypt_ui.controller import Controller, WorkerFactory
from imapcrypt_ui.qt import QApplication, QLockFile, QMessageBox, QStandardPaths, QWidget
from imapcrypt_ui.reader import ReaderWindow, Unlocked
from imapcrypt_ui.settings import SettingsDialog
from imapcrypt_ui.tasks import run_task
from imapcrypt_ui.tray import Tray, state_icon
from imapcrypt_ui.wizard import SetupWizard

from imapcrypt import __version__, api
from imapcrypt.api import Config, default_config_path, load_config
from imapcrypt.errors import ConfigError, ImapcryptError

log = logging.getLogger(__name__)


class TrayApp:
    """Everything the tray app holds: the controller, the tray and the windows it opened."""

    def __init__(
        self,
        config_path: Path,
        worker_factory: WorkerFactory | None = None,
        data_dir: Path | None = None,
        gnupg_home: Path | None = None,
        use_tray: bool | None = None,
    ) -> None:
        self.config_path = config_path
        self.data_dir = data_dir
        self.gnupg_home = gnupg_home
        self.controller = Controller(worker_factory)
        self.unlocked = Unlocked()
        self.tray = Tray(
            self.controller,
            self.open_reader,
            self.open_activity,
            self.open_settings,
            self.quit,
            use_tray=use_tray,
        )
        self.wizard: SetupWizard | None = None
        self.reader: ReaderWindow | None = None
        self.activity: ActivityWindow | None = None
        self.settings: SettingsDialog | None = None
        self.demo: object | None = None  # imapcrypt.demo.Demo while the demo runs
        self.quitting = False
        self.controller.stopped.connect(self._stopped)

    def start(self) -> None:
        """Start the workers from the configuration, or open the wizard when there is none."""
        self.tray.show()
        try:
            config = load_config(self.config_path)
        except ConfigError:
            config = None
        if config is None or not config.accounts:
            self.open_wizard()
        else:
            self.controller.start(config)

    # -- windows -----------------------------------------------------------------------------------
    def open_wizard(self) -> SetupWizard:
        """The first-run wizard; its Start hands the new configuration to the workers."""
        if self.wizard is None:
            self.wizard = SetupWizard(self.config_path, self.start_config, self.data_dir, self.gnupg_home)
            self.wizard.account_page.demo_requested.connect(self.start_demo)
            self.controller.progress.connect(self.wizard.start_page.show_progress)
        self.wizard.show()
        return self.wizard

    def start_config(self, config: Config, backlog: bool) -> None:
        """Run `config`'s accounts (restarting the workers if some run); `backlog`: existing mail too."""
        if self.controller.accounts:
            # Restart with the new settings once the old workers let go of their locks.
            def restart() -> None:
                self.controller.stopped.disconnect(restart)
                self.start_config(config, backlog)

            self.controller.stopped.connect(restart)
            self.controller.shutdown()
            return
        self.controller.start(config)
        if backlog:
            self.controller.backlog()
        for window in (self.reader, self.activity):
            if window is not None:
                window.close()
        self.reader = None

    def start_demo(self) -> None:
        """Start the embedded demo server with sample mail and a throwaway key, then run it."""
        if self.wizard is not None:
            self.wizard.account_page.demo.setEnabled(False)
            self.wizard.account_page.demo.setText("Starting the demo…")

        def started(running: Any) -> None:
            self.demo = running
            if self.wizard is not None:
                self.wizard.hide()
            self.tray.show_notification(
                "imapcrypt demo",
                f"{len(running.delivered)} sample messages are being encrypted on a built-in server. "
                f"Open the Reader to see them decrypted (passphrase: {running.passphrase}).",
                False,
            )
            self.start_config(running.config, backlog=True)

        def failed(exc: BaseException) -> None:
            text = str(exc) if isinstance(exc, ImapcryptError) else repr(exc)
            if self.wizard is not None:
                self.wizard.account_page.demo.setEnabled(True)
                self.wizard.account_page.demo.setText(f"The demo could not start: {text}")

        run_task(api.start_demo, started, failed, name="demo")

    def open_reader(self) -> ReaderWindow | None:
        """The reader for the running configuration."""
        config = self.controller.config
        if config is None:
            return None
        if self.reader is None:
            self.reader = ReaderWindow(config, self.unlocked)
        self.reader.show()
        self.reader.raise_()
        return self.reader

    def open_activity(self) -> ActivityWindow:
        """The activity window."""
        if self.activity is None:
            self.activity = ActivityWindow(self.controller, self.unlocked)
        self.activity.show()
        self.activity.raise_()
        return self.activity

    def open_settings(self) -> QWidget:
        """Settings, or the wizard when nothing is set up yet."""
        config = self.controller.config
        if config is None:
            return self.open_wizard()
        self.settings = SettingsDialog(config, lambda saved: self.start_config(saved, backlog=False))
        self.settings.show()
        return self.settings

    # -- quitting ------------------------------------------------------------------------------------
    def quit(self) -> None:
        """Stop the workers (the message in flight completes), then end the event loop."""
        self.quitting = True
        self.tray.serving.stop()
        self.tray.status_action.setText("Quitting: finishing the message in flight…")
        if self.controller.accounts:
            self.controller.shutdown()
        else:
            self._stopped()

    def _stopped(self) -> None:
        if not self.quitting:
            return
        running = self.demo
        if running is not None:
            running.close()  # type: ignore[attr-defined]
            self.demo = None
        self.tray.hide()
        app = QApplication.instance()
        if app is not None:
            app.quit()


def instance_lock() -> QLockFile | None:
    """This user's single-instance lock, or None when another tray app holds it."""
    where = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.RuntimeLocation) or str(
        Path.home()
    )
    lock = QLockFile(os.path.join(where, "imapcrypt-tray.lock"))
    lock.setStaleLockTime(0)  # a crashed instance's lock is recognised by its PID, not its age
    return lock if lock.tryLock(100) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Start the tray app and run the Qt event loop until Quit."""
    parser = argparse.ArgumentParser(prog="imapcrypt-tray", description="imapcrypt's tray app")
    parser.add_argument("--config", type=Path, help="the configuration file")
    parser.add_argument("--version", action="version", version=f"imapcrypt {__version__}")
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = QApplication(sys.argv[:1])
    app.setApplicationName("imapcrypt")
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(state_icon("idle"))
    lock = instance_lock()
    if lock is None:
        QMessageBox.information(
            None, "imapcrypt", "imapcrypt is already running: look for its icon in the tray."
        )
        return 1
    tray_app = TrayApp(args.config or default_config_path())
    tray_app.start()
    code = app.exec()
    lock.unlock()
    return code
