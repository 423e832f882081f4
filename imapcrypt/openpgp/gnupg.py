"""OpenPGP through GnuPG (python-gnupg), in an explicit GNUPGHOME.

Everything imapcrypt encrypts or decrypts goes through `GnuPG`: bytes in, bytes out, recipients by
full fingerprint. The options here are the crypto policy of docs/format.md in one place: binary literal data,
SEIPD v1 with MDC and never an AEAD (OCB) packet, compression as measured (docs/format.md).
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gnupg

from imapcrypt.errors import DecryptError, ImapcryptError, RecipientKeyError
from imapcrypt.openpgp import packets
from imapcrypt.openpgp.binary import install_gpg_hint

FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")

# Options on every gpg call. --no-random-seed-file: parallel gpg processes otherwise serialise on
# the seed file's lock (docs/format.md). --no-auto-key-locate/--no-auto-key-retrieve: never touch the
# network behind the user's back.
BASE_OPTIONS = (
    "--no-random-seed-file",
    "--no-auto-key-locate",
    "--no-auto-key-retrieve",
    "--no-greeting",
)
# On every encryption: exactly the configured recipients and binary literal data, whatever the home's
# gpg.conf says. `--options /dev/null` makes gpg read no gpg.conf at all for encryption: `recipient`,
# `hidden-recipient`, `group` and `default-recipient` lines have no command-line counterpart that
# undoes them. The user's gpg.conf still applies to everything else (decryption, key listings). The
# other options say the same again, for a gpg that would read a configuration anyway.
ENCRYPT_OPTIONS = (
    "--options",
    os.devnull,
    "--no-textmode",
    "--no-encrypt-to",
    "--no-default-recipient",
    "--no-groups",
)

# What one decryption may produce unless the caller says otherwise (accounts: max_message_mb).
DEFAULT_MAX_OUTPUT = 256 * 1024 * 1024
_FIX_KEYS = "check the recipients with `imapcrypt keys list`"
_GPG_ERR_BAD_PASSPHRASE = 11


class Compression(enum.Enum):
    """What gpg compresses the literal data with (measured in benchmarks/seal.py)."""

    NONE = "none"
    ZLIB_FAST = "zlib-1"
    ZLIB = "zlib-6"

    def gpg_options(self) -> list[str]:
        """The gpg options that select this compression."""
        if self is Compression.NONE:
            return ["--compress-algo", "none"]
        return ["--compress-algo", "zlib", "--compress-level", self.value.rsplit("-", 1)[1]]


# zlib level 1 costs ~1.3x the CPU of no compression on text and saves 60-80% of its size; on an
# attachment that is already compressed it still saves the ~25% of base64 (numbers: docs/format.md).
DEFAULT_COMPRESSION = Compression.ZLIB_FAST


class UnknownKeyError(RecipientKeyError):
    """The recipient's public key is not in the GnuPG home."""


class ExpiredKeyError(RecipientKeyError):
    """The recipient key (or its every encryption subkey) has expired."""


class RevokedKeyError(RecipientKeyError):
    """The recipient key (or its every encryption subkey) is revoked."""


class NotEncryptionKeyError(RecipientKeyError):
    """The recipient key has no subkey that may encrypt (a sign-only key)."""


class AeadKeyError(RecipientKeyError):
    """GnuPG chose AEAD (OCB), which OpenKeychain and PGPainless cannot read, for these recipients."""


class OutputLimitError(DecryptError):
    """The plaintext is larger than the caller's limit (or could not be held): nothing is returned."""


class EncryptError(ImapcryptError):
    """GnuPG failed to encrypt for a reason that is not a recipient key."""


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
    """A GnuPG home directory and the operations imapcrypt runs in it; safe to share between threads.

    Every call runs its own gpg process and keeps no state in this object, so a thread pool may call
    `encrypt` and `decrypt` concurrently (tests/test_openpgp.py runs them in parallel).
    """

    def __init__(
        self, home: Path, binary: str = "gpg", *, compression: Compression = DEFAULT_COMPRESSION
    ) -> None:
        self.home = home
        self.compression = compression
        try:
            self.gpg = gnupg.GPG(gpgbinary=binary, gnupghome=str(home), options=list(BASE_OPTIONS))
        except OSError as exc:  # python-gnupg runs `gpg --version` here
            raise ImapcryptError(f"GnuPG ({binary}) does not run: {exc}", install_gpg_hint()) from exc
        self.gpg.encoding = "utf-8"
        self._subkeys_cache: dict[tuple[tuple[str, ...], tuple[int, ...]], dict[str, frozenset[str]]] = {}

    def encrypt(self, data: bytes, recipients: Sequence[str], *, armor: bool = True) -> bytes:
        """An OpenPGP message of `data` (binary literal data, SEIPD v1) for every recipient.

        ASCII-armored unless `armor` is False. Recipients are full fingerprints. A recipient GnuPG cannot
        use raises a RecipientKeyError subclass that names the problem; a result that would use an AEAD
        packet raises AeadKeyError. Either way nothing is returned.
        """
        fingerprints = [normalise_fingerprint(r) for r in recipients]
        if not fingerprints:
            raise RecipientKeyError("no recipient key configured", "add a fingerprint to recipients")
        # gpg writes to a file read back in one piece: python-gnupg collects standard output in
        # chunks and joins them, which holds the output twice (docs/engine.md, "Memory"). The file
        # holds only ciphertext, in a directory of this process's own.
        with tempfile.TemporaryDirectory(prefix="imapcrypt-gpg-") as scratch:
            target = Path(scratch) / "sealed"
            result = self.gpg.encrypt(
                data,
                fingerprints,
                armor=armor,
                output=str(target),
                always_trust=True,  # the user named these keys by full fingerprint
                extra_args=[*ENCRYPT_OPTIONS, *self.compression.gpg_options()],
            )
            if not result.ok or result.returncode != 0:
                self.check_recipients(fingerprints)
                raise EncryptError(f"GnuPG could not encrypt: {result.status}", "run `imapcrypt doctor`")
            output = target.read_bytes()
        head = _dearmor_head(output) if armor else output
        _require_seipd_v1(head)
        self._require_recipients(head, fingerprints)
        return output

    def _require_recipients(self, head: bytes, fingerprints: Sequence[str]) -> None:
        """Raise EncryptError unless the session key is encrypted to the configured recipients only.

        Every PKESK packet must name an encryption (sub)key of a configured recipient (a hidden,
        all-zero key ID is refused), and every recipient must have one: whatever a configuration
        did, nobody else can open the message and every recipient can.
        """
        ids = packets.pkesk_key_ids(head)
        subkeys = self._encryption_subkeys(fingerprints)
        allowed = frozenset().union(*subkeys.values())
        strangers = [key_id for key_id in ids if key_id not in allowed]
        missing = [fpr for fpr, own in subkeys.items() if not own & set(ids)]
        if strangers or missing:
            raise EncryptError(
                f"GnuPG encrypted to other keys than the configured recipients "
                f"(unexpected: {', '.join(strangers) or 'none'}; left out: {', '.join(missing) or 'none'})",
                f"check the recipients and the gpg.conf in {self.home}; nothing was stored",
            )

    def _encryption_subkeys(self, fingerprints: Sequence[str]) -> dict[str, frozenset[str]]:
        """Each recipient's encryption-capable key IDs, cached until the keyring changes."""
        stamp = tuple(_mtime(self.home / name) for name in ("pubring.kbx", "pubring.gpg"))
        key = (tuple(fingerprints), stamp)
        cached = self._subkeys_cache.get(key)
        if cached is not None:
            return cached
        found: dict[str, frozenset[str]] = {}
        for fingerprint in fingerprints:
            listed: list[dict[str, Any]] = list(self.gpg.list_keys(keys=[fingerprint]))
            ids: set[str] = set()
            for entry in listed:
                if entry.get("fingerprint", "").upper() != fingerprint:
                    continue
                if "e" in entry.get("cap", ""):
                    ids.add(str(entry.get("keyid", "")).upper())
                ids |= {
                    str(k).upper()
                    for k, info in entry.get("subkey_info", {}).items()
                    if "e" in info.get("cap", "")
                }
            found[fingerprint] = frozenset(ids)
        self._subkeys_cache = {key: found}  # one entry: the recipients rarely change in a process
        return found

    def check_recipients(self, recipients: Sequence[str]) -> None:
        """Return if every recipient is a known, valid key that can encrypt; else the typed error."""
        for fingerprint in (normalise_fingerprint(r) for r in recipients):
            keys: list[dict[str, Any]] = list(self.gpg.list_keys(keys=[fingerprint]))
            if not keys:
                raise UnknownKeyError(
                    f"no public key {fingerprint} in the GnuPG home",
                    f"import it: gpg --homedir {self.home} --import KEYFILE",
                )
            _check_key(fingerprint, keys[0])

    def decrypt(
        self, data: bytes, passphrase: str | None = None, *, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> bytes:
        """The plaintext of an OpenPGP message, whole, or DecryptError; never a partial plaintext.

        gpg writes plaintext as it goes and reports a failed integrity check only at the end: the
        output counts only if gpg exited 0 and reported DECRYPTION_OKAY without a failure after it.
        gpg stops writing after `max_output` bytes (`--max-output`), so a compression bomb costs
        that much and no more; a larger plaintext raises OutputLimitError.
        """
        try:
            result = self.gpg.decrypt(
                data, passphrase=passphrase or None, extra_args=["--max-output", str(max_output)]
            )
        except ValueError as exc:  # python-gnupg refuses passphrases with line breaks
            raise DecryptError("the passphrase cannot contain a line break", "type it again") from exc
        except MemoryError:
            raise OutputLimitError(
                "the decrypted message does not fit in memory", "restore it on a machine with more"
            ) from None
        status = _status_lines(result.stderr)
        keywords = {keyword for keyword, _ in status}
        if "exceeded --max-output" in result.stderr:
            raise OutputLimitError(
                f"the decrypted message is larger than the limit of {max_output:,} bytes",
                "raise max_message_mb for this account if the message is genuine",
            )
        if result.ok and result.returncode == 0 and not keywords & {"DECRYPTION_FAILED", "BADMDC"}:
            plaintext = result.data
            # python-gnupg hands back "" (str) when its reader thread failed (a MemoryError, say).
            if not isinstance(plaintext, bytes) or len(plaintext) > max_output:
                raise OutputLimitError("GnuPG's output could not be read whole", "try again")
            return plaintext
        failures = {
            rest.split()[0]: _error_code(rest) for keyword, rest in status if keyword == "ERROR" and rest
        }
        if "BAD_PASSPHRASE" in keywords or _GPG_ERR_BAD_PASSPHRASE in failures.values():
            raise DecryptError("the passphrase for the secret key is wrong", "type it again")
        if "pkdecrypt_failed" in failures:
            raise DecryptError(
                "the secret key could not be unlocked",
                "give its passphrase, or let gpg-agent ask for it through a pinentry",
            )
        if "NO_SECKEY" in keywords:
            raise DecryptError(
                "no secret key in the GnuPG home opens this message",
                f"import the secret key into {self.home}",
            )
        raise DecryptError(
            "the encrypted data is damaged or not an OpenPGP message",
            "fetch the message again; if it stays damaged, keep it as it is",
        )


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _status_lines(stderr: str) -> list[tuple[str, str]]:
    """The (keyword, rest) pairs of gpg's machine-readable status lines."""
    lines = (line[9:].split(None, 1) for line in stderr.splitlines() if line.startswith("[GNUPG:] "))
    return [(parts[0], parts[1] if len(parts) > 1 else "") for parts in lines if parts]


def _error_code(rest: str) -> int:
    """The libgpg-error code (low 16 bits) in an ERROR status line, or -1."""
    last = rest.rsplit(maxsplit=1)[-1]
    return int(last) & 0xFFFF if last.isdigit() else -1


def _check_key(fingerprint: str, key: dict[str, Any]) -> None:
    validity = key.get("trust", "")
    if validity == "r":
        raise RevokedKeyError(f"recipient key {fingerprint} is revoked", "replace it with a current key")
    if validity == "e":
        raise ExpiredKeyError(
            f"recipient key {fingerprint} has expired",
            f"extend it (gpg --quick-set-expire {fingerprint}) or replace it",
        )
    if "E" in key.get("cap", ""):
        return
    subkeys = [s for s in key.get("subkey_info", {}).values() if "e" in s.get("cap", "")]
    states = {s.get("trust", "") for s in subkeys}
    if subkeys and states == {"r"}:
        raise RevokedKeyError(f"every encryption subkey of {fingerprint} is revoked", "add a new subkey")
    if subkeys and states <= {"e", "r"}:
        raise ExpiredKeyError(
            f"every encryption subkey of {fingerprint} has expired",
            f"extend it (gpg --quick-set-expire {fingerprint} 2y '*') or add a new one",
        )
    raise NotEncryptionKeyError(
        f"recipient key {fingerprint} cannot encrypt (it has no encryption subkey)",
        f"add one (gpg --quick-add-key {fingerprint} cv25519 encr) or use another key",
    )


def _dearmor_head(armored: bytes, limit: int = 32768) -> bytes:
    """The first ~24 KB of an armored message's packets: room for the session keys of many recipients."""
    lines = armored[:limit].split(b"\n")[:-1]  # the last piece may be a cut line
    body: list[bytes] = []
    in_headers = False
    for line in (raw.rstrip(b"\r") for raw in lines):
        if line.startswith(b"-----BEGIN PGP"):
            in_headers = True
        elif in_headers:
            in_headers = bool(line.strip())  # armor header lines end at the first blank line
        elif line.startswith((b"=", b"-----")):
            break
        else:
            body.append(line.strip())
    text = b"".join(body)
    try:
        return base64.b64decode(text[: len(text) // 4 * 4], validate=True)
    except binascii.Error:
        return b""


def _require_seipd_v1(binary: bytes) -> None:
    """Raise unless the first data packet is a SEIPD v1 (MDC) packet: never AEAD, never unprotected."""
    tag, version = packets.first_data_packet(binary)
    if tag == packets.SEIPD and version == 1:
        return
    if tag == packets.AEAD or (tag == packets.SEIPD and version == 2):
        raise AeadKeyError(
            "GnuPG chose AEAD encryption, which OpenKeychain and PGPainless cannot read",
            "remove AEAD from the key's features: gpg --edit-key FPR, setpref without OCB, save",
        )
    raise EncryptError(f"GnuPG wrote an unexpected packet (tag {tag})", "run `imapcrypt doctor`")


def session_key_ids(armored: bytes) -> frozenset[str]:
    """The key IDs (16 hex digits, upper case) an armored message's session key is encrypted to.

    Read from its v3 PKESK packets without decrypting anything: this is how `reencrypt` tells mail
    sealed to an old key from mail already sealed to the current recipients.
    """
    return frozenset(i for i in packets.pkesk_key_ids(_dearmor_head(armored)) if len(i) == 16 and i != "?")
