"""Start the tray app at login: the platform's own autostart entry, as Vorta does.

Linux (and other XDG desktops): `$XDG_CONFIG_HOME/autostart/imapcrypt-tray.desktop`. macOS: a
LaunchAgent `~/Library/LaunchAgents/org.imapcrypt.tray.plist`. Windows: the value `imapcrypt` under
`HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`. The file templates are the ones in
installers/ (a test keeps them identical); `@EXEC@` stands for the command that starts the app.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from pathlib import Path
from xml.sax.saxutils import escape

DESKTOP_FILE = "imapcrypt-tray.desktop"
LAUNCH_AGENT = "org.imapcrypt.tray.plist"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "imapcrypt"

LINUX_TEMPLATE = """\
[Desktop Entry]
Type=Application
Name=imapcrypt
Comment=Keep your IMAP mailbox encrypted at rest
Exec=@EXEC@
Icon=mail-encrypted
Terminal=false
Categories=Network;Email;Security;
X-GNOME-Autostart-enabled=true
"""

MACOS_TEMPLATE = """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>org.imapcrypt.tray</string>
  <key>ProgramArguments</key>
  <array>
@ARGS@
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>ProcessType</key>
  <string>Interactive</string>
</dict>
</plist>
"""

WINDOWS_TEMPLATE = """\
Windows Registry Editor Version 5.00

[HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run]
"imapcrypt"="@EXEC@"
"""


def tray_command() -> list[str]:
    """The command that starts the tray app: the installed `imapcrypt-tray`, else this Python.

    In the frozen bundle (installers/imapcrypt.spec) it is the `imapcrypt-tray` beside this executable.
    """
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).with_name("imapcrypt-tray" + Path(sys.executable).suffix))]
    found = shutil.which("imapcrypt-tray")
    if found:
        return [found]
    return [sys.executable, "-m", "imapcrypt_ui"]


def entry_path(platform: str | None = None, home: Path | None = None) -> Path | None:
    """Where the autostart entry lives on `platform` (default: this one); None on Windows (registry)."""
    platform = platform or sys.platform
    home = home or Path.home()
    if platform == "win32":
        return None
    if platform == "darwin":
        return home / "Library" / "LaunchAgents" / LAUNCH_AGENT
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config_home) / "autostart" / DESKTOP_FILE


def render(platform: str, command: list[str]) -> str:
    """The entry's text for `platform` running `command`."""
    if platform == "darwin":
        args = "\n".join(f"    <string>{escape(arg)}</string>" for arg in command)
        return MACOS_TEMPLATE.replace("@ARGS@", args)
    if platform == "win32":
        # A .reg string: backslashes and quotes escaped.
        line = subprocess_line(command)
        return WINDOWS_TEMPLATE.replace("@EXEC@", line.replace("\\", "\\\\").replace('"', '\\"'))
    # Desktop Entry spec: arguments quoted as a shell would, with a literal % doubled.
    return LINUX_TEMPLATE.replace("@EXEC@", shlex.join(command).replace("%", "%%"))


def is_enabled(platform: str | None = None, home: Path | None = None) -> bool:
    """Whether the autostart entry exists."""
    platform = platform or sys.platform
    if platform == "win32":
        return _windows_value() is not None
    path = entry_path(platform, home)
    return path is not None and path.exists()


def enable(
    command: list[str] | None = None, platform: str | None = None, home: Path | None = None
) -> Path | None:
    """Write the autostart entry (replacing an older one); returns its path (None for the registry)."""
    platform = platform or sys.platform
    command = command or tray_command()
    if platform == "win32":
        _windows_set(subprocess_line(command))
        return None
    path = entry_path(platform, home)
    assert path is not None  # noqa: S101 - only Windows has none
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(render(platform, command), encoding="utf-8")
    temp.replace(path)
    return path


def disable(platform: str | None = None, home: Path | None = None) -> None:
    """Remove the autostart entry if there is one."""
    platform = platform or sys.platform
    if platform == "win32":
        _windows_set(None)
        return
    path = entry_path(platform, home)
    if path is not None:
        path.unlink(missing_ok=True)


def subprocess_line(command: list[str]) -> str:
    """`command` as one Windows command line (what the Run key holds)."""
    return " ".join(f'"{arg}"' if " " in arg else arg for arg in command)


def _windows_value() -> str | None:
    if sys.platform != "win32":
        return None
    import winreg  # noqa: PLC0415 - Windows only

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            value, _ = winreg.QueryValueEx(key, RUN_VALUE)
            return str(value)
    except OSError:
        return None


def _windows_set(line: str | None) -> None:
    if sys.platform != "win32":
        raise OSError("the Run key exists only on Windows")
    import winreg  # noqa: PLC0415 - Windows only

    with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
        if line is None:
            with contextlib.suppress(FileNotFoundError):
                winreg.DeleteValue(key, RUN_VALUE)
        else:
            winreg.SetValueEx(key, RUN_VALUE, 0, winreg.REG_SZ, line)
