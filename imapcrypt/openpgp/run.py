"""Running gpg commands that python-gnupg does not wrap (key generation options, revocation, listings).

Every call runs in the `GnuPG` object's home with its binary and base options, in batch mode, and
hands a passphrase over a private pipe (never on the command line, where `ps` would show it).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from imapcrypt.openpgp.gnupg import BASE_OPTIONS, GnuPG

TIMEOUT_SECONDS = 300.0  # RSA 4096 generation on a slow machine


@dataclass(frozen=True)
class GpgOutput:
    """What one gpg process wrote: its exit status, standard output and the status keywords."""

    returncode: int
    stdout: bytes
    status: tuple[str, ...]  # "[GNUPG:] " lines without the prefix, e.g. "KEY_CREATED B <fpr>"

    @property
    def ok(self) -> bool:
        """gpg exited 0."""
        return self.returncode == 0

    def keyword(self, name: str) -> list[str]:
        """The arguments of every status line with keyword `name`."""
        return [line[len(name) :].strip() for line in self.status if line.split(" ", 1)[0] == name]


def run_gpg(
    gpg: GnuPG,
    args: Sequence[str],
    data: bytes = b"",
    passphrase: str | None = None,
    batch: bool = True,
) -> GpgOutput:
    """Run `gpg args` in the home of `gpg` with `data` on standard input.

    With `passphrase` (an empty one included) gpg reads it from a pipe in loopback pinentry mode, so no
    pinentry window opens. `batch=False` is for the few commands gpg refuses in batch mode (answers
    then come through `--command-fd 0`, which the caller passes in `args`).
    """
    command = [gpg.gpg.gpgbinary, "--homedir", str(gpg.home), "--no-tty", "--status-fd", "2"]
    command += ["--batch"] if batch else []
    command += list(BASE_OPTIONS)
    read_end = write_end = -1
    if passphrase is not None:
        if "\n" in passphrase or "\r" in passphrase:
            raise ValueError("a passphrase cannot contain a line break")
        read_end, write_end = os.pipe()
        # A pipe buffer holds far more than any passphrase: writing before gpg starts cannot block.
        os.write(write_end, passphrase.encode("utf-8") + b"\n")
        os.close(write_end)
        command += ["--pinentry-mode", "loopback", "--passphrase-fd", str(read_end)]
    command += list(args)
    try:
        done = subprocess.run(
            command,
            input=data,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
            pass_fds=(read_end,) if read_end >= 0 else (),
            env={**os.environ, "LC_ALL": "C"},
        )
    finally:
        if read_end >= 0:
            os.close(read_end)
    status = tuple(
        line[9:]
        for line in done.stderr.decode("utf-8", "replace").splitlines()
        if line.startswith("[GNUPG:] ")
    )
    return GpgOutput(returncode=done.returncode, stdout=done.stdout, status=status)
