"""Which gpg imapcrypt runs, and what to tell the user when there is none.

imapcrypt runs the system's GnuPG by the name `gpg` found on PATH (python-gnupg; `gpgconf` the same way);
it never ships its own. An app started from the macOS Finder or the Windows Start menu may get a PATH
without GnuPG's folder, so the frozen bundle calls `add_known_dirs_to_path` at start: it appends the
folders where the usual installers put gpg (Homebrew, GPG Suite, Gpg4win).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import MutableMapping

# Where each platform's usual GnuPG installer puts gpg, in order of preference.
KNOWN_DIRS = {
    "darwin": ("/opt/homebrew/bin", "/usr/local/bin", "/usr/local/MacGPG2/bin"),
    "win32": (r"%ProgramFiles%\GnuPG\bin", r"%ProgramFiles(x86)%\GnuPG\bin"),
}


def known_dirs(platform: str | None = None) -> list[str]:
    """The folders (environment variables expanded) where `platform`'s GnuPG installers put gpg."""
    return [os.path.expandvars(d) for d in KNOWN_DIRS.get(platform or sys.platform, ())]


def find_gpg(path: str | None = None) -> str | None:
    """The gpg imapcrypt runs: the first `gpg` on `path` (default: PATH), or None."""
    return shutil.which("gpg", path=path)


def add_known_dirs_to_path(
    environ: MutableMapping[str, str] | None = None, platform: str | None = None
) -> None:
    """Append the known gpg folders that exist and are missing to PATH (gpg on PATH keeps priority)."""
    environ = os.environ if environ is None else environ
    parts = [p for p in environ.get("PATH", "").split(os.pathsep) if p]
    extra = [d for d in known_dirs(platform) if d not in parts and os.path.isdir(d)]
    if extra:
        environ["PATH"] = os.pathsep.join([*parts, *extra])


def gpg_version(binary: str) -> str:
    """The first line of `binary --version`, e.g. "gpg (GnuPG) 2.2.40"; OSError if it does not run."""
    try:
        result = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"{binary} --version did not answer") from exc
    first = result.stdout.splitlines()[0] if result.stdout else ""
    if result.returncode != 0 or not first:
        raise OSError(f"{binary} --version exited {result.returncode}")
    return first


def install_gpg_hint(platform: str | None = None) -> str:
    """How to install GnuPG on `platform` (default: this one): the fix shown when there is no gpg."""
    platform = platform or sys.platform
    if platform == "darwin":
        return (
            "install GnuPG with Homebrew (`brew install gnupg`) or GPG Suite (https://gpgtools.org), "
            "then start imapcrypt again"
        )
    if platform == "win32":
        return "install Gpg4win (https://gpg4win.org), then start imapcrypt again"
    return (
        "install GnuPG: `sudo apt install gnupg` on Debian and Ubuntu, or your distribution's gnupg "
        "package, then start imapcrypt again"
    )
