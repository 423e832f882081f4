"""gpg's machine-readable key listing (`--with-colons`), parsed into typed records.

One parser serves both the keys in a GnuPG home (`--list-keys`) and keys in data not yet imported
(`--show-keys`), so the checks in `keycheck` judge both the same way. Field meanings: GnuPG's
doc/DETAILS.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.openpgp.run import run_gpg

# OpenPGP public-key algorithm ids (RFC 4880 §9.1, RFC 6637, RFC 9580) and how gpg names them.
ALGORITHM_NAMES = {
    1: "rsa",
    2: "rsa",  # RSA encrypt-only (deprecated)
    3: "rsa",  # RSA sign-only (deprecated)
    16: "elg",
    17: "dsa",
    18: "ecdh",
    19: "ecdsa",
    20: "elg",  # ElGamal encrypt-or-sign (withdrawn)
    22: "eddsa",
}
ECC_ALGORITHMS = (18, 19, 22)


@dataclass(frozen=True)
class ListedKey:
    """One primary key or subkey line of a listing."""

    fingerprint: str
    validity: str  # gpg's letter: "r" revoked, "e" expired, "i" invalid, "u"/"f"/"-"... usable
    algorithm_id: int
    bits: int
    curve: str  # e.g. "ed25519", "cv25519", "nistp256"; "" for RSA/DSA/ElGamal
    created: dt.datetime
    expires: dt.datetime | None
    capabilities: str  # this (sub)key's own usage letters, lower case: "e", "sc", ...
    has_secret: bool

    @property
    def algorithm(self) -> str:
        """How gpg shows the algorithm: "ed25519", "cv25519", "rsa3072", "dsa1024", "elg2048"."""
        if self.algorithm_id in ECC_ALGORITHMS and self.curve:
            return self.curve
        return f"{ALGORITHM_NAMES.get(self.algorithm_id, f'algo{self.algorithm_id}')}{self.bits}"

    @property
    def revoked(self) -> bool:
        """gpg saw a valid revocation for this (sub)key."""
        return self.validity == "r"

    def expired_at(self, now: dt.datetime) -> bool:
        """Whether the (sub)key's expiry lies at or before `now`."""
        return self.expires is not None and self.expires <= now


@dataclass(frozen=True)
class ListedCertificate:
    """A primary key with its user ids and subkeys, as one listing shows it."""

    primary: ListedKey
    uids: tuple[str, ...]
    subkeys: tuple[ListedKey, ...]

    @property
    def fingerprint(self) -> str:
        """The primary key's fingerprint."""
        return self.primary.fingerprint

    @property
    def has_secret(self) -> bool:
        """The secret part of the primary key or of any subkey is in the home (or in the data)."""
        return self.primary.has_secret or any(s.has_secret for s in self.subkeys)


def _time(field: str) -> dt.datetime | None:
    if not field:
        return None
    if "T" in field:  # ISO 8601 basic, as some gpg versions print with --fixed-list-mode off
        return dt.datetime.strptime(field, "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(int(field), dt.UTC)


def _unescape(text: str) -> str:
    """gpg escapes ':' and control characters in user ids as \\xNN; the rest is UTF-8."""
    raw = bytearray()
    index = 0
    data = text.encode("utf-8", "surrogateescape")
    while index < len(data):
        if data[index : index + 2] == b"\\x" and index + 4 <= len(data):
            raw.append(int(data[index + 2 : index + 4], 16))
            index += 4
        else:
            raw.append(data[index])
            index += 1
    return raw.decode("utf-8", "replace")


def parse_listing(text: str) -> list[ListedCertificate]:
    """Every certificate in a `--with-colons --fixed-list-mode` listing, in order."""
    certificates: list[ListedCertificate] = []
    pending: list[list[str]] = []  # the "pub"/"sub" line whose "fpr" line comes next
    primary: ListedKey | None = None
    uids: list[tuple[str, bool]] = []  # (user id, revoked)
    subkeys: list[ListedKey] = []

    def close() -> None:
        if primary is not None:
            # A revoked key's user ids are all revoked too; they still say whose key it was.
            shown = [u for u, revoked in uids if not revoked] or [u for u, _ in uids]
            certificates.append(ListedCertificate(primary, tuple(shown), tuple(subkeys)))

    for line in text.splitlines():
        fields = line.split(":")
        kind = fields[0]
        if kind in ("pub", "sec"):
            close()
            primary, uids, subkeys = None, [], []
            pending = [fields]
        elif kind in ("sub", "ssb"):
            pending = [fields]
        elif kind == "fpr" and pending:
            key = _key(pending[0], fields[9])
            pending = []
            if primary is None:
                primary = key
            else:
                subkeys.append(key)
        elif kind == "uid" and primary is not None:
            uids.append((_unescape(fields[9]), fields[1] == "r"))
    close()
    return certificates


def _key(fields: list[str], fingerprint: str) -> ListedKey:
    fields = fields + [""] * (20 - len(fields))
    return ListedKey(
        fingerprint=fingerprint.upper(),
        validity=fields[1],
        algorithm_id=int(fields[3] or 0),
        bits=int(fields[2] or 0),
        curve=fields[16],
        created=_time(fields[5]) or dt.datetime.fromtimestamp(0, dt.UTC),
        expires=_time(fields[6]),
        capabilities="".join(c for c in fields[11] if c.islower()),
        # "sec"/"ssb" lines, or "+" in the token field with --with-secret ("#" is a stub: no secret).
        has_secret=fields[0] in ("sec", "ssb") or fields[14].startswith("+") or fields[14].isalnum(),
    )


def list_certificates(gpg: GnuPG, fingerprints: tuple[str, ...] = ()) -> list[ListedCertificate]:
    """The certificates in the home (all, or those named), with whether their secret part is there."""
    output = run_gpg(
        gpg, ["--with-colons", "--fixed-list-mode", "--with-secret", "--list-keys", "--", *fingerprints]
    )
    # gpg exits 2 when a named key is unknown: the listing of the others is still right.
    return parse_listing(output.stdout.decode("utf-8", "replace"))


def show_certificates(gpg: GnuPG, data: bytes) -> list[ListedCertificate]:
    """The certificates in `data` (keys being imported), without importing them."""
    output = run_gpg(gpg, ["--with-colons", "--fixed-list-mode", "--show-keys"], data)
    return parse_listing(output.stdout.decode("utf-8", "replace"))
