"""Files and directories only their owner can read: the data and state imapcrypt keeps (docs/cli.md).

The journal names UIDs and folders, the lock holds a PID, the log tells when mail arrived, and the
id-secret fallback is a key: none of it is for other users of the machine, whatever the umask says.
Directories are 0700 and files 0600.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents, 0700) if needed and make it 0700; return it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make an existing file 0600 (files another library created under the umask); return it."""
    if path.exists() and path.stat().st_mode & 0o777 != FILE_MODE:
        path.chmod(FILE_MODE)
    return path


def open_private(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> io.TextIOWrapper:
    """Open `path` for writing as text, created 0600 from the start (no window under the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    return io.TextIOWrapper(io.FileIO(fd, mode.replace("t", "")), encoding=encoding)
