"""Encryption without a gpg process per message (docs/format.md, "Two writers, one profile").

gpg still decides everything about the recipients, once per recipient set: one probe encryption
shows which (sub)key of each recipient gpg encrypts to and with which cipher, and the public keys are
exported once and held in memory. Each message is then encrypted here by `writer` and armored by
Sequoia (pysequoia). The plan is made again when the keyring changes or a chosen key expires.

Where the fast path cannot serve (pysequoia or `cryptography`'s CFB missing, a key type `writer`
does not write, gpg choosing AEAD or failing, a message above IN_PROCESS_MAX_BYTES), the message goes
through `GnuPG.encrypt` exactly as before, which also raises the typed recipient errors.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from imapcrypt.errors import ImapcryptError
from imapcrypt.openpgp import packets
from imapcrypt.openpgp.gnupg import (
    ENCRYPT_OPTIONS,
    Compression,
    GnuPG,
    normalise_fingerprint,
    session_key_ids,
)
from imapcrypt.openpgp.listing import list_certificates
from imapcrypt.openpgp.run import run_gpg

log = logging.getLogger(__name__)

try:  # the fast path's two libraries; without either, gpg encrypts as before (and doctor says so)
    from pysequoia import ArmorKind, armor
    from pysequoia.packet import PacketPile, Tag

    from imapcrypt.openpgp import writer

    UNAVAILABLE = ""
except ImportError as exc:  # a platform without pysequoia's wheel, or cryptography before 47
    missing = exc.name or "a library"
    missing = "cryptography >= 47" if missing.startswith("cryptography") else missing
    UNAVAILABLE = f"{missing} is not installed"

# Above this the gpg process costs under 10% of the work, and gpg streams where this path holds about
# four copies of the message in memory at once: large messages go through gpg.
IN_PROCESS_MAX_BYTES = 2 * 1024 * 1024
_MDC = "2"
_KEYRING_FILES = ("pubring.kbx", "pubring.gpg")  # not trustdb.gpg: trust is "always" here


class Encryptor(Protocol):
    """What envelope.seal needs: `GnuPG.encrypt`'s signature."""

    def encrypt(self, data: bytes, recipients: Sequence[str], *, armor: bool = True) -> bytes:
        """An OpenPGP message of `data` for every recipient (full fingerprints)."""
        ...


@dataclass(frozen=True)
class Plan:
    """How one recipient set is encrypted to in process: gpg's choice of keys and cipher."""

    keys: tuple[writer.RecipientKey, ...]
    cipher: int  # symmetric algorithm id (RFC 4880 §9.2)
    valid_until: float  # the earliest expiry of a chosen key (seconds since the epoch), or inf


class InProcessEncryptor:
    """Encrypts like `gpg.encrypt` (same recipients, cipher, profile), in this process when it can.

    Safe to share between threads: plans are made under a lock, encryption itself holds no state.
    """

    def __init__(self, gpg: GnuPG, max_bytes: int = IN_PROCESS_MAX_BYTES) -> None:
        self.gpg = gpg
        self.max_bytes = max_bytes
        # Per recipient set: the keyring's stamp when planned, and the Plan or why there is none.
        self._plans: dict[tuple[str, ...], tuple[tuple[int, ...], Plan | str]] = {}
        self._lock = threading.Lock()
        self._keyring = tuple(os.fspath(gpg.home / name) for name in _KEYRING_FILES)

    def encrypt(self, data: bytes, recipients: Sequence[str], *, armor: bool = True) -> bytes:
        """An OpenPGP message of `data` for every recipient, as `GnuPG.encrypt` specifies it."""
        plan = self.plan(recipients) if len(data) <= self.max_bytes else None
        if not isinstance(plan, Plan):
            return self.gpg.encrypt(data, recipients, armor=armor)
        level = _zlib_level(self.gpg.compression)
        binary = writer.encrypt(data, plan.keys, plan.cipher, level, int(time.time()))
        return _armored(binary) if armor else binary

    def plan(self, recipients: Sequence[str]) -> Plan | str:
        """The plan for these recipients, or the reason they go through gpg."""
        if UNAVAILABLE:
            return UNAVAILABLE
        fingerprints = tuple(normalise_fingerprint(r) for r in recipients)
        stamp = _keyring_stamp(self._keyring)  # a few µs, twice a message
        with self._lock:
            made = self._plans.get(fingerprints)
            if (
                made is None
                or made[0] != stamp
                or (isinstance(made[1], Plan) and time.time() >= made[1].valid_until)
            ):
                made = (stamp, _make_plan(self.gpg, fingerprints))
                if isinstance(made[1], str):
                    log.info("encrypting through gpg: %s", made[1])
                self._plans[fingerprints] = made
            return made[1]

    def describe(self, recipients: Sequence[str]) -> str:
        """Which OpenPGP path encrypts to these recipients, in words (for `imapcrypt doctor`)."""
        plan = self.plan(recipients)
        if isinstance(plan, str):
            return f"GnuPG, one process per message ({plan})"
        return (
            f"in process (cryptography, armor by Sequoia) for messages up to "
            f"{self.max_bytes // (1024 * 1024)} MiB, to {len(plan.keys)} key(s) as gpg chooses them; "
            "GnuPG for larger ones"
        )


# One encryptor per GnuPG home (and binary and compression): a GnuPG object holds no state, so every
# object for the same home shares the plans, and the daemon opening an account again makes none anew.
_encryptors: dict[tuple[str, str, Compression], InProcessEncryptor] = {}
_encryptors_lock = threading.Lock()


def encryptor(gpg: GnuPG) -> InProcessEncryptor:
    """The encryptor of this GnuPG home: its plans (one per recipient set) are made once."""
    key = (str(gpg.home), str(gpg.gpg.gpgbinary), gpg.compression)
    with _encryptors_lock:
        found = _encryptors.get(key)
        if found is None:
            found = _encryptors[key] = InProcessEncryptor(gpg)
        return found


def _make_plan(gpg: GnuPG, fingerprints: tuple[str, ...]) -> Plan | str:
    """Ask gpg what it would do for these recipients; a Plan if this process can do the same."""
    choice = _gpg_choice(gpg, fingerprints) if fingerprints else "no recipients"
    if isinstance(choice, str):
        return choice
    cipher, wanted = choice
    keys = _exported_keys(gpg, fingerprints, wanted)
    if isinstance(keys, str):
        return keys
    return Plan(tuple(keys.values()), cipher, _earliest_expiry(gpg, fingerprints, keys))


def _gpg_choice(gpg: GnuPG, fingerprints: tuple[str, ...]) -> tuple[int, frozenset[str]] | str:
    """The cipher and the key IDs gpg encrypts to (two probes of empty data), or why not this path.

    The first probe is `GnuPG.encrypt` itself, with every check it makes of a ciphertext (SEIPD v1, the
    session key encrypted to the configured recipients and nobody else): the plan exists only where
    gpg's own output would be used. The second, with the same options, tells the cipher.
    """
    try:
        checked = frozenset(packets.pkesk_key_ids(gpg.encrypt(b"", fingerprints, armor=False)))
    except ImapcryptError as exc:
        return f"gpg refuses to encrypt to these recipients now: {exc.message}"
    recipients = [arg for f in fingerprints for arg in ("--recipient", f)]
    probe = run_gpg(
        gpg, ["--encrypt", "--armor", "--trust-model", "always", *ENCRYPT_OPTIONS, *recipients], b""
    )
    began = probe.keyword("BEGIN_ENCRYPTION")  # "<mdc method> <cipher> [<aead algorithm>]"
    fields = began[0].split() if began else []
    if not probe.ok or len(fields) < 2:
        return "gpg cannot encrypt to these recipients now"
    if fields[0] != _MDC or any(f != "0" for f in fields[2:]) or int(fields[1]) not in writer.AES_KEY_BYTES:
        return f"gpg encrypts with BEGIN_ENCRYPTION {' '.join(fields)}, which this path does not write"
    if session_key_ids(probe.stdout) != checked:
        return "gpg chose different keys in two runs"
    return int(fields[1]), checked


def _exported_keys(
    gpg: GnuPG, fingerprints: tuple[str, ...], wanted: frozenset[str]
) -> dict[str, writer.RecipientKey] | str:
    """The keys with the `wanted` IDs, parsed from one export of the recipients, or why not."""
    exported = run_gpg(gpg, ["--export-options", "export-minimal", "--export", *fingerprints]).stdout
    keys: dict[str, writer.RecipientKey] = {}
    try:
        for packet in PacketPile.from_bytes(exported):
            key_id = (packet.key_id or "").upper()
            if packet.tag in (Tag.PublicKey, Tag.PublicSubkey) and key_id in wanted:
                key = writer.RecipientKey.parse(packet.body)
                if key.key_id.hex().upper() != key_id:  # Sequoia's parse and the writer's must agree
                    return f"key {key_id} does not parse the same twice"
                keys[key_id] = key
    except writer.UnsupportedKeyError as exc:
        return str(exc)
    except (ValueError, RuntimeError) as exc:  # pysequoia reports a parse failure as RuntimeError
        return f"the exported keys do not parse: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    return keys if set(keys) == wanted else "gpg encrypts to keys that the export does not show"


def _earliest_expiry(
    gpg: GnuPG, fingerprints: tuple[str, ...], keys: dict[str, writer.RecipientKey]
) -> float:
    """When the first of the chosen keys expires: the plan is made again then (gpg then refuses it)."""
    chosen = {key.fingerprint.hex().upper() for key in keys.values()}
    ends = [
        key.expires
        for certificate in list_certificates(gpg, fingerprints)
        for key in (certificate.primary, *certificate.subkeys)
        if key.expires is not None and (key.fingerprint in chosen or key is certificate.primary)
    ]
    return min((end.timestamp() for end in ends), default=math.inf)


def _keyring_stamp(files: tuple[str, ...]) -> tuple[int, ...]:
    """Sizes and modification times of the keyring files: an import or a revocation changes them."""
    stamp: list[int] = []
    for name in files:
        try:
            info = os.stat(name)
        except OSError:
            stamp += [-1, -1]
        else:
            stamp += [info.st_size, info.st_mtime_ns]
    return tuple(stamp)


def _zlib_level(compression: Compression) -> int | None:
    """The zlib level of a Compression, None for none (the value names it: "zlib-1")."""
    return None if compression is Compression.NONE else int(compression.value.rsplit("-", 1)[1])


def _armored(binary: bytes) -> bytes:
    """ASCII armor with its CRC-24 (which some readers still require), written by Sequoia."""
    return armor(binary, ArmorKind.Message).encode("ascii")


__all__ = ["IN_PROCESS_MAX_BYTES", "UNAVAILABLE", "Encryptor", "InProcessEncryptor", "Plan", "encryptor"]
