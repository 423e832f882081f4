"""Autostart at login: the platform's entry is written, found and removed; templates match installers/."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from imapcrypt import autostart

INSTALLERS = Path(__file__).resolve().parent.parent / "installers"


def test_linux_entry_in_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert not autostart.is_enabled("linux")
    path = autostart.enable(["/opt/imapcrypt/bin/imapcrypt-tray", "--config", "/my dir/c.toml"], "linux")
    assert path == tmp_path / "xdg" / "autostart" / "imapcrypt-tray.desktop"
    text = path.read_text()
    assert "Exec=/opt/imapcrypt/bin/imapcrypt-tray --config '/my dir/c.toml'\n" in text
    assert text.startswith("[Desktop Entry]\nType=Application\n")
    assert autostart.is_enabled("linux")
    autostart.disable("linux")
    assert not path.exists()
    assert not autostart.is_enabled("linux")


def test_macos_launch_agent(tmp_path: Path) -> None:
    path = autostart.enable(["/Applications/imapcrypt.app/Contents/MacOS/imapcrypt-tray"], "darwin", tmp_path)
    assert path == tmp_path / "Library" / "LaunchAgents" / "org.imapcrypt.tray.plist"
    agent = plistlib.loads(path.read_bytes())
    assert agent["Label"] == "org.imapcrypt.tray"
    assert agent["ProgramArguments"] == ["/Applications/imapcrypt.app/Contents/MacOS/imapcrypt-tray"]
    assert agent["RunAtLoad"] is True
    autostart.disable("darwin", tmp_path)
    assert not autostart.is_enabled("darwin", tmp_path)


def test_windows_run_key_file() -> None:
    text = autostart.render("win32", [r"C:\Program Files\imapcrypt\imapcrypt-tray.exe"])
    assert "[HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run]" in text
    assert '"imapcrypt"="\\"C:\\\\Program Files\\\\imapcrypt\\\\imapcrypt-tray.exe\\""' in text


def test_templates_are_the_ones_in_installers() -> None:
    assert (INSTALLERS / "linux" / "imapcrypt-tray-autostart.desktop").read_text() == autostart.LINUX_TEMPLATE
    assert (INSTALLERS / "macos" / "org.imapcrypt.tray.plist").read_text() == autostart.MACOS_TEMPLATE
    assert (INSTALLERS / "windows" / "autostart.reg").read_text() == autostart.WINDOWS_TEMPLATE
