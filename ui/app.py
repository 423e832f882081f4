"""The `imapcrypt-tray` entry point."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QMenu, QStyle, QSystemTrayIcon

from imapcrypt import __version__


def main() -> int:
    """Start the tray app and run the Qt event loop until Quit."""
    app = QApplication(sys.argv)
    app.setApplicationName("imapcrypt")
    app.setQuitOnLastWindowClosed(False)
    icon = app.style().standardIcon(QStyle.StandardPixmap.SP_DriveNetIcon)
    tray = QSystemTrayIcon(icon)
    tray.setToolTip(f"imapcrypt {__version__}")
    menu = QMenu()
    menu.addAction("Quit", app.quit)
    tray.setContextMenu(menu)
    tray.show()
    return app.exec()
