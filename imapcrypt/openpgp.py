"""OpenPGP through GnuPG (python-gnupg), in an explicit GNUPGHOME.

Everything imapcrypt encrypts or decrypts goes through `GnuPG`: bytes in, bytes out, recipients by
full fingerprint. The options here are the crypto policy of DESIGN §2 in one place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import gnupg

from imapcrypt.errors import DecryptError, RecipientKeyError

FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")

# Options on every gpg call. --no-random-seed-file: parallel gpg processes otherwise serialise on
# the seed file's lock (DESIGN §3). --no-auto-key-locate/--no-auto-key-retrieve: never touch the
# network behind the user's back.
BASE_OPTIONS = (
    "--no-random-seed-file",
    "--no-auto-key-locate",
    "--no-auto-key-retrieve",
    "--no-greeting",
)


def normalise_fingerprint(value: str) -> str:
    """The fingerprint in canonical form (upper case, no spaces) or RecipientKeyError."""
    fingerprint = value.replace(" ", "").upper()
    if fingerprint.startswith("0X"):
        fingerprint = fingerprint[2:]
    if not FINGERPRINT.match(fingerprint):
        raise RecipientKeyError(
            f"{value!r} is not a full key fingerprint",
            "give the 40-hex-digit fingerprint that `gpg --list-keys --with-colons` shows",
        )
    return fingerprint


class GnuPG:
    """A GnuPG home directory and the operations imapcrypt runs in it."""

    def __init__(self, home: Path, binary: str = "gpg") -> None:
        self.home = home
        self.gpg = gnupg.GPG(gpgbinary=binary, gnupghome=str(home), options=list(BASE_OPTIONS))
        self.gpg.encoding = "utf-8"

    def encrypt(self, data: bytes, recipients: Sequence[str]) -> bytes:
        """ASCII-armored OpenPGP message of `data` (binary literal data) for every recipient.

        Recipients are full fingerprints; a recipient GnuPG cannot use raises RecipientKeyError and
        nothing is returned.
        """
        fingerprints = [normalise_fingerprint(r) for r in recipients]
        if not fingerprints:
            raise RecipientKeyError("no recipient key configured", "add a fingerprint to recipients")
        result = self.gpg.encrypt(
            data,
            fingerprints,
            armor=True,
            always_trust=True,  # the user named these keys by full fingerprint
            extra_args=["--compress-algo", "none"],
        )
        if not result.ok:
            raise RecipientKeyError(
                f"GnuPG could not encrypt: {result.status}",
                "check the recipients with `imapcrypt keys list`",
            )
        armored: bytes = result.data
        return armored

    def decrypt(self, data: bytes, passphrase: str | None = None) -> bytes:
        """The plaintext of an OpenPGP message; DecryptError if it does not decrypt with integrity."""
        result = self.gpg.decrypt(data, passphrase=passphrase)
        if not result.ok:
            raise DecryptError(
                f"GnuPG could not decrypt: {result.status}",
                "make sure the secret key is in the GnuPG home and the passphrase is right",
            )
        plaintext: bytes = result.data
        return plaintext
