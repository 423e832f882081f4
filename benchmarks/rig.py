"""What every benchmark that runs the engine starts with: a Dovecot, a GnuPG home with one key and a
scratch directory, all three removed again however the benchmark ends."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fixtures.dovecot import DovecotServer, start_dovecot
from tests.fixtures.gnupg_home import GnupgHome, make_gnupg_home, remove_gnupg_home


@contextmanager
def dovecot_and_key() -> Iterator[tuple[DovecotServer, GnupgHome, Path]]:
    """A running Dovecot, a GnuPG home holding one key pair, and an empty scratch directory."""
    server = start_dovecot()
    home = make_gnupg_home()
    scratch = Path(tempfile.mkdtemp(prefix="imapcrypt-bench-"))
    try:
        yield server, home, scratch
    finally:
        server.stop()
        remove_gnupg_home(home)
        shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
