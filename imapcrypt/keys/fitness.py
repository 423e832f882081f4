"""Is a key fit to be a recipient? The checks of docs/keys.md, each refusal with its reason.

A recipient must have an encryption-capable (sub)key that is neither expired nor revoked, RSA of at
least 2048 bits, no DSA or ElGamal below 2048 bits and no withdrawn algorithm. A key that expires
within 30 days, or that advertises AEAD (which GnuPG 2.3+ would then use, and OpenKeychain and
PGPainless cannot read), passes with a warning. Encrypting needs only the public key, so nothing here
touches secret keys.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from imapcrypt.errors import RecipientKeyError
from imapcrypt.openpgp.gnupg import GnuPG, normalise_fingerprint
from imapcrypt.openpgp.listing import ListedCertificate, ListedKey, list_certificates
from imapcrypt.openpgp.run import run_gpg

log = logging.getLogger(__name__)

MIN_BITS = 2048
WARN_BEFORE_EXPIRY = dt.timedelta(days=30)
_FEATURES = re.compile(r"subpkt 30 len \d+ \(features: ([0-9a-fA-F]+)\)")
_AEAD_PREFS = re.compile(r"subpkt 34 len [1-9]|pref-aead-algos: \d")
# The algorithms accepted, with the family name of those that need at least MIN_BITS ("" for ECC).
_FAMILIES = {1: "RSA", 2: "RSA", 3: "RSA", 16: "ElGamal", 17: "DSA", 18: "", 19: "", 22: ""}
_FEATURE_AEAD = 0x02  # RFC 4880bis "AEAD" / RFC 9580 "SEIPDv2" feature flag


@dataclass(frozen=True)
class KeyHealth:
    """The verdict on one recipient key: `ok` is False when `problems` is not empty."""

    fingerprint: str
    ok: bool
    problems: tuple[str, ...]
    warnings: tuple[str, ...]


def _weakness(key: ListedKey) -> str | None:
    """Why this (sub)key's algorithm or size is not acceptable, or None."""
    if key.algorithm_id == 20:
        return f"{key.algorithm}: ElGamal sign-or-encrypt keys (algorithm 20) are withdrawn and unsafe"
    if key.algorithm_id not in _FAMILIES:
        return f"public-key algorithm {key.algorithm_id} is not supported"
    family = _FAMILIES[key.algorithm_id]
    if family and key.bits < MIN_BITS:
        return f"{key.algorithm}: {family} below {MIN_BITS} bits is too weak"
    if len(key.fingerprint) == 32:
        return "a version 3 key (MD5 fingerprint) is deprecated and unsafe"
    return None


def encryption_key(certificate: ListedCertificate, now: dt.datetime) -> ListedKey | None:
    """The (sub)key gpg would encrypt to at `now`: the newest usable one that may encrypt."""
    candidates = [k for k in (certificate.primary, *certificate.subkeys) if "e" in k.capabilities]
    usable = [k for k in candidates if not k.revoked and not k.expired_at(now) and k.validity != "i"]
    return max(usable, key=lambda k: k.created, default=None)


def assess(certificate: ListedCertificate, now: dt.datetime | None = None) -> KeyHealth:
    """Judge a listed certificate at `now` (default: the current time)."""
    now = now or dt.datetime.now(dt.UTC)
    primary = certificate.primary
    problems: list[str] = []
    warnings: list[str] = []
    if primary.revoked:
        problems.append("the key is revoked")
    elif primary.validity == "i":
        problems.append("the key is invalid (no valid self-signature)")
    if primary.expired_at(now) and primary.expires is not None:
        problems.append(f"the key expired on {primary.expires:%Y-%m-%d}")
    weak = _weakness(primary)
    if weak:
        problems.append(f"primary key {weak}")
    if primary.algorithm_id in (2, 3):
        warnings.append(f"primary key {primary.algorithm}: RSA encrypt-only/sign-only keys are deprecated")
    candidates = [k for k in (primary, *certificate.subkeys) if "e" in k.capabilities]
    chosen = encryption_key(certificate, now)
    if not candidates:
        problems.append("the key cannot encrypt (sign-only: it has no encryption subkey)")
    elif chosen is None and not primary.revoked and not primary.expired_at(now):
        states = {"revoked" if k.revoked else "expired" for k in candidates}
        problems.append(f"every encryption subkey is {' or '.join(sorted(states))}")
    if chosen is not None:
        weak = _weakness(chosen) if chosen is not primary else None
        if weak:
            problems.append(f"encryption subkey {weak}")
    for key, what in ((primary, "the key"), (chosen, "the encryption subkey")):
        if key is not None and key.expires is not None and now < key.expires <= now + WARN_BEFORE_EXPIRY:
            days = (key.expires - now).days
            warnings.append(f"{what} expires on {key.expires:%Y-%m-%d} (in {days} days): extend it or rotate")
    return KeyHealth(
        fingerprint=primary.fingerprint,
        ok=not problems,
        problems=tuple(dict.fromkeys(problems)),
        warnings=tuple(warnings),
    )


def advertises_aead(gpg: GnuPG, key_data: bytes) -> bool:
    """Whether the (exported) key in `key_data` advertises AEAD in its features or preferences."""
    packets = run_gpg(gpg, ["--list-packets"], key_data).stdout.decode("utf-8", "replace")
    if _AEAD_PREFS.search(packets):
        return True
    return any(int(m.group(1)[:2], 16) & _FEATURE_AEAD for m in _FEATURES.finditer(packets))


def aead_warning(fingerprint: str) -> str:
    """The warning (and its fix) for a key that advertises AEAD."""
    return (
        "the key advertises AEAD (OCB): GnuPG 2.3+ would encrypt with it and imapcrypt refuses that, "
        f"as OpenKeychain and PGPainless cannot read it; fix: gpg --edit-key {fingerprint} "
        "then `setpref AES256 AES192 AES SHA512 SHA384 SHA256 ZLIB ZIP Uncompressed` and `save`"
    )


def check_recipient(gpg: GnuPG, fingerprint: str, now: dt.datetime | None = None) -> KeyHealth:
    """The health of the key `fingerprint` in the home of `gpg` at `now` (default: the current time).

    Never raises for a bad key: an unknown fingerprint, like every other failed check, is a problem in
    the result. Only a malformed fingerprint raises RecipientKeyError.
    """
    fingerprint = normalise_fingerprint(fingerprint)
    listed = [c for c in list_certificates(gpg, (fingerprint,)) if c.fingerprint == fingerprint]
    if not listed:
        return KeyHealth(fingerprint, False, (f"no key {fingerprint} in the GnuPG home {gpg.home}",), ())
    health = assess(listed[0], now)
    exported = run_gpg(gpg, ["--export-options", "export-minimal", "--export", fingerprint]).stdout
    if advertises_aead(gpg, exported):
        health = KeyHealth(
            health.fingerprint, health.ok, health.problems, (*health.warnings, aead_warning(fingerprint))
        )
    return health


def refusal(health: KeyHealth) -> RecipientKeyError:
    """The error that refuses an unhealthy key, naming it and every reason."""
    return RecipientKeyError(
        f"recipient key {health.fingerprint}: {'; '.join(health.problems)}",
        "replace it (imapcrypt keys rotate) or fix it and import it again",
    )


def require_recipients(
    gpg: GnuPG, fingerprints: Sequence[str], now: dt.datetime | None = None
) -> tuple[KeyHealth, ...]:
    """Return the health of every recipient, or raise RecipientKeyError for the first unfit one.

    Called at every run start: the error names the key and the reason. Warnings (expiry within 30 days,
    AEAD preferences) are logged and returned for the caller to show.
    """
    if not fingerprints:
        raise RecipientKeyError("no recipient key configured", "add one with `imapcrypt keys use FPR`")
    results = tuple(check_recipient(gpg, f, now) for f in fingerprints)
    for health in results:
        if not health.ok:
            raise refusal(health)
        for warning in health.warnings:
            log.warning("recipient key %s: %s", health.fingerprint, warning)
    return results
