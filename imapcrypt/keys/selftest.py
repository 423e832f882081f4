"""The recipient self-test (docs/keys.md): a probe encrypted to each recipient and opened again.

Mail encrypted to a key nobody can open is mail lost. So before an account's first encryption, at
least one of its recipients must be *proven*: its secret key here opened a probe (`self_test` then
`record_self_test`), or the user confirmed that the secret key lives elsewhere
(`confirm_secret_elsewhere`). Proofs are kept per account in `<data_dir>/self-test.json`; it holds
fingerprints and dates only. `require_self_test` is the gate the engine calls at run start.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imapcrypt.config.model import Account
from imapcrypt.errors import ConfigError, ImapcryptError, RecipientKeyError
from imapcrypt.openpgp.gnupg import GnuPG, normalise_fingerprint
from imapcrypt.openpgp.inprocess import encryptor
from imapcrypt.openpgp.listing import list_certificates
from imapcrypt.private import open_private, private_dir

RECORD_FILE = "self-test.json"
Proof = Literal["decrypted", "elsewhere"]


@dataclass(frozen=True)
class ProbeOutcome:
    """One recipient's part of the self-test."""

    fingerprint: str
    encrypted: bool
    decrypted: bool | None  # None: its secret key is not in this home, so nothing was tried
    problem: str = ""


@dataclass(frozen=True)
class SelfTestResult:
    """The outcome for every recipient and how long the whole test took."""

    outcomes: tuple[ProbeOutcome, ...]
    seconds: float

    @property
    def decrypted(self) -> tuple[str, ...]:
        """The recipients whose secret key here opened their probe."""
        return tuple(o.fingerprint for o in self.outcomes if o.decrypted)

    @property
    def problems(self) -> tuple[str, ...]:
        """What went wrong, one line per recipient that failed."""
        return tuple(f"{o.fingerprint}: {o.problem}" for o in self.outcomes if o.problem)

    @property
    def passed(self) -> bool:
        """Every recipient encrypted, every secret key here decrypted, and at least one did."""
        return bool(self.outcomes) and not self.problems and bool(self.decrypted)

    @property
    def needs_confirmation(self) -> bool:
        """Encryption works but no secret key is here: the user must say where it lives."""
        return bool(self.outcomes) and not self.problems and all(o.decrypted is None for o in self.outcomes)


def self_test(gpg: GnuPG, fingerprints: Sequence[str], passphrase: str | None) -> SelfTestResult:
    """Encrypt a random probe to each recipient and decrypt it with the secret key when it is here.

    `passphrase` unlocks the secret keys ("" for none; None lets gpg-agent ask through pinentry).
    Never raises for a failing key: its outcome carries the problem.
    """
    started = time.monotonic()
    wanted = [normalise_fingerprint(f) for f in fingerprints]
    with_secret = {c.fingerprint for c in list_certificates(gpg, tuple(wanted)) if c.has_secret}
    outcomes: list[ProbeOutcome] = []
    for fingerprint in wanted:
        probe = b"imapcrypt self-test " + secrets.token_hex(16).encode()
        try:
            # The path that will seal the mail (in process where it can): that is what must open.
            sealed = encryptor(gpg).encrypt(probe, [fingerprint])
        except ImapcryptError as exc:
            outcomes.append(ProbeOutcome(fingerprint, False, None, f"cannot encrypt: {exc.message}"))
            continue
        if fingerprint not in with_secret:
            outcomes.append(ProbeOutcome(fingerprint, True, None))
            continue
        try:
            opened = gpg.decrypt(sealed, passphrase)
        except ImapcryptError as exc:
            outcomes.append(ProbeOutcome(fingerprint, True, False, f"cannot decrypt: {exc.message}"))
            continue
        if opened != probe:
            outcomes.append(ProbeOutcome(fingerprint, True, False, "decrypted to different bytes"))
        else:
            outcomes.append(ProbeOutcome(fingerprint, True, True))
    return SelfTestResult(tuple(outcomes), time.monotonic() - started)


@dataclass(frozen=True)
class ProvenKey:
    """A recipient the self-test proved readable, and how."""

    fingerprint: str
    how: Proof
    when: dt.datetime


def _record_path(data_dir: Path) -> Path:
    return data_dir / RECORD_FILE


def _load(data_dir: Path) -> dict[str, dict[str, dict[str, str]]]:
    path = _record_path(data_dir)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: unreadable ({exc})", "delete it and run `imapcrypt keys self-test`"
        ) from None
    accounts = loaded.get("accounts", {}) if isinstance(loaded, dict) else {}
    return accounts if isinstance(accounts, dict) else {}


def proven_keys(data_dir: Path, account_name: str) -> dict[str, ProvenKey]:
    """The account's proven recipients by fingerprint."""
    entries = _load(data_dir).get(account_name, {})
    return {
        fingerprint: ProvenKey(
            fingerprint,
            "elsewhere" if entry.get("how") == "elsewhere" else "decrypted",
            dt.datetime.fromisoformat(entry["when"]),
        )
        for fingerprint, entry in entries.items()
        if isinstance(entry, dict) and "when" in entry
    }


def _prove(data_dir: Path, account_name: str, fingerprints: Sequence[str], how: Proof) -> None:
    accounts = _load(data_dir)
    entries = accounts.setdefault(account_name, {})
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for fingerprint in fingerprints:
        entries[normalise_fingerprint(fingerprint)] = {"how": how, "when": when}
    path = _record_path(data_dir)
    private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open_private(temp) as handle:
        json.dump({"accounts": accounts}, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(path)  # a crash leaves the old record or the new one, never half of one


def record_self_test(data_dir: Path, account_name: str, result: SelfTestResult) -> None:
    """Remember the recipients whose secret key opened their probe (only from a passed test)."""
    if not result.passed:
        raise RecipientKeyError(
            "the self-test did not pass: " + ("; ".join(result.problems) or "no secret key here"),
            "fix the key, or confirm that its secret key lives elsewhere",
        )
    _prove(data_dir, account_name, result.decrypted, "decrypted")


def confirm_secret_elsewhere(data_dir: Path, account_name: str, fingerprints: Sequence[str]) -> None:
    """Remember the user's word that the secret keys of `fingerprints` live on another device."""
    _prove(data_dir, account_name, fingerprints, "elsewhere")


def require_self_test(data_dir: Path, account: Account) -> ProvenKey:
    """Return the proof for one of the account's recipients, or raise RecipientKeyError.

    The engine calls this before it encrypts anything for the account.
    """
    proven = proven_keys(data_dir, account.name)
    for recipient in account.recipients:
        proof = proven.get(normalise_fingerprint(recipient))
        if proof is not None:
            return proof
    raise RecipientKeyError(
        f"account {account.name!r}: no recipient key has passed the self-test yet",
        "run `imapcrypt keys self-test`, or `imapcrypt keys self-test --secret-elsewhere` "
        "if the secret key lives on another device",
    )
