"""PyInstaller runtime hook: the frozen programs run the system's GnuPG, never with the bundle's libraries.

Runs before the entry script. On Linux the bootloader may point LD_LIBRARY_PATH at the bundle; gpg,
gpgconf, gpg-agent and xdg-open are the system's own and must load the system's libraries, so the value
from before the bootloader is put back for child processes. On macOS and Windows an app started from
the Finder or the Start menu may not have GnuPG's folder on PATH: the folders where Homebrew, GPG Suite
and Gpg4win put gpg are added (imapcrypt/openpgp/binary.py).
"""

import os
import sys

if sys.platform.startswith("linux"):
    _original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if _original is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = _original

from imapcrypt.openpgp.binary import add_known_dirs_to_path

add_known_dirs_to_path()
