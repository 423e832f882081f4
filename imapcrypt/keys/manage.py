"""Recipient keys (docs/keys.md): generate, import, list, export, back up and revoke.

Keys live in imapcrypt's own GnuPG home (or the user's). Encrypting needs only public keys: the
secret key is needed to read or restore, and it may live on another machine entirely. Whether a key
is fit to be a recipient is `keycheck`'s question; account recipient lists are edited by
`recipients`. Passphrases go to gpg over a private pipe and never into a log or an error message.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imapcrypt.errors import CredentialsError, ImapcryptError, RecipientKeyError
from imapcrypt.keys.fitness import assess, encryption_key, refusal
from imapcrypt.openpgp.gnupg import GnuPG, normalise_fingerprint
from imapcrypt.openpgp.listing import ListedCertificate, list_certificates, show_certificates
from imapcrypt.openpgp.run import GpgOutput, run_gpg

# What each algorithm choice means to gpg (`--default-new-key-algo`): a signing/certifying primary key
# and a separate encryption subkey, so the encryption key can be replaced without a new identity.
ALGORITHMS = {
    "ed25519": "ed25519/cert,sign+cv25519/encr",
    "rsa3072": "rsa3072/cert,sign+rsa3072/encr",
    "rsa4096": "rsa4096/cert,sign+rsa4096/encr",
}
# Preferences without AEAD (OCB/EAX): GnuPG 2.4 advertises OCB by default, and mail encrypted with
# OCB cannot be read by OpenKeychain or PGPainless (docs/format.md). Listing no AEAD algorithm also keeps
# the AEAD feature flag off.
PREFERENCES = "AES256 AES192 AES SHA512 SHA384 SHA256 SHA224 ZLIB BZIP2 ZIP Uncompressed"
REVOCATIONS_DIR = "openpgp-revocs.d"
_PASSPHRASE_ERRORS = {11, 177}  # libgpg-error codes: bad passphrase, no passphrase


@dataclass(frozen=True)
class KeyInfo:
    """A key in the GnuPG home, as `keys list` shows it."""

    fingerprint: str
    uids: tuple[str, ...]
    algorithm: str  # the primary key's, as gpg names it: "ed25519", "rsa3072", "dsa1024"
    bits: int
    created: dt.datetime
    expires: dt.datetime | None
    revoked: bool
    can_encrypt: bool  # it has an encryption (sub)key usable now
    has_secret: bool
    encryption_algorithm: str = ""  # of the (sub)key gpg encrypts to, "" when there is none


def key_info(certificate: ListedCertificate, now: dt.datetime | None = None) -> KeyInfo:
    """The KeyInfo of a listed certificate at `now`."""
    now = now or dt.datetime.now(dt.UTC)
    primary = certificate.primary
    chosen = encryption_key(certificate, now)
    usable = chosen is not None and not primary.revoked and not primary.expired_at(now)
    return KeyInfo(
        fingerprint=primary.fingerprint,
        uids=certificate.uids,
        algorithm=primary.algorithm,
        bits=primary.bits,
        created=primary.created,
        expires=primary.expires,
        revoked=primary.revoked,
        can_encrypt=usable,
        has_secret=certificate.has_secret,
        encryption_algorithm=chosen.algorithm if chosen is not None else "",
    )


def list_keys(gpg: GnuPG) -> list[KeyInfo]:
    """Every key in the home, public and secret, in gpg's order."""
    return [key_info(c) for c in list_certificates(gpg)]


def find_key(gpg: GnuPG, fingerprint: str) -> KeyInfo:
    """The key `fingerprint` in the home, or RecipientKeyError saying it is not there."""
    fingerprint = normalise_fingerprint(fingerprint)
    for certificate in list_certificates(gpg, (fingerprint,)):
        if certificate.fingerprint == fingerprint:
            return key_info(certificate)
    raise RecipientKeyError(
        f"no key {fingerprint} in the GnuPG home {gpg.home}", "import it with `imapcrypt keys import FILE`"
    )


def encryption_key_ids(gpg: GnuPG, fingerprints: Sequence[str]) -> frozenset[str]:
    """The key IDs of every encryption-capable (sub)key of the given certificates (upper-case hex)."""
    wanted = {normalise_fingerprint(f) for f in fingerprints}
    return frozenset(
        key.fingerprint[-16:].upper()
        for certificate in list_certificates(gpg, tuple(wanted))
        if certificate.fingerprint in wanted
        for key in (certificate.primary, *certificate.subkeys)
        if "e" in key.capabilities
    )


def _failure(output: GpgOutput, what: str) -> ImapcryptError:
    """An error for a failed gpg call, from its status keywords (never its data or a passphrase)."""
    keywords = {line.split(" ", 1)[0] for line in output.status}
    # gpg 2.2 in loopback mode reports a wrong or missing passphrase only as an error code:
    # ERROR <where> <source << 24 | code>, code 11 = BAD_PASSPHRASE, 177 = NO_PASSPHRASE.
    codes = {int(line.split()[-1]) & 0xFFFF for line in output.keyword("ERROR") if line.split()[-1].isdigit()}
    if keywords & {"BAD_PASSPHRASE", "MISSING_PASSPHRASE"} or codes & _PASSPHRASE_ERRORS:
        return CredentialsError(f"{what}: the passphrase was refused", "type the key's passphrase again")
    detail = next((line for line in output.status if line.startswith(("ERROR", "FAILURE"))), "")
    return ImapcryptError(f"{what}: gpg failed (exit {output.returncode}) {detail}".rstrip(), "")


def revocation_certificate_path(gpg: GnuPG, fingerprint: str) -> Path:
    """Where GnuPG keeps the key's revocation certificate (it may not exist for an imported key)."""
    return gpg.home / REVOCATIONS_DIR / f"{normalise_fingerprint(fingerprint)}.rev"


def generate_key(
    gpg: GnuPG, uid: str, passphrase: str, algorithm: str = "ed25519", expires: str = "never"
) -> KeyInfo:
    """Generate a key pair for `uid` protected by `passphrase`, with preferences free of AEAD.

    `algorithm` is "ed25519" (ed25519 signing key, cv25519 encryption subkey), "rsa3072" or "rsa4096";
    `expires` is what gpg accepts ("never", "2y", an ISO date). The revocation certificate is in
    `revocation_certificate_path` afterwards (GnuPG writes it; this makes sure it exists).
    """
    if algorithm not in ALGORITHMS:
        raise ImapcryptError(f"unknown key algorithm {algorithm!r}", f"use one of {', '.join(ALGORITHMS)}")
    gpg.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    output = run_gpg(
        gpg,
        [
            "--default-new-key-algo",
            ALGORITHMS[algorithm],
            "--default-preference-list",
            PREFERENCES,
            "--yes",  # a second key for the same user id is what rotation means
            "--quick-generate-key",
            uid,
            "default",
            "default",
            expires,
        ],
        passphrase=passphrase,
    )
    created = output.keyword("KEY_CREATED")
    if not output.ok or not created:
        raise _failure(output, "key generation")
    fingerprint = created[-1].split()[1]
    if not revocation_certificate_path(gpg, fingerprint).exists():
        write_revocation_certificate(gpg, fingerprint, passphrase)
    return find_key(gpg, fingerprint)


def write_revocation_certificate(gpg: GnuPG, fingerprint: str, passphrase: str | None) -> Path:
    """Make a revocation certificate for a key whose secret part is here, where GnuPG keeps them.

    Like GnuPG's own, the file starts with a colon so that importing it by accident does not revoke
    the key: `revoke` removes it.
    """
    fingerprint = normalise_fingerprint(fingerprint)
    path = revocation_certificate_path(gpg, fingerprint)
    # gpg asks its questions even with answers at hand unless it reads them from --command-fd.
    answers = b"y\n0\nimapcrypt revocation certificate, kept in case the key is lost\n\ny\n"
    output = run_gpg(
        gpg,
        ["--command-fd", "0", "--armor", "--generate-revocation", fingerprint],
        data=answers,
        passphrase=passphrase,
        batch=False,
    )
    if not output.ok or b"BEGIN PGP PUBLIC KEY BLOCK" not in output.stdout:
        raise _failure(output, "making the revocation certificate")
    guarded = output.stdout.replace(
        b"-----BEGIN PGP PUBLIC KEY BLOCK", b":-----BEGIN PGP PUBLIC KEY BLOCK", 1
    )
    path.parent.mkdir(mode=0o700, exist_ok=True)
    _write_new_file(path, guarded, overwrite=True)
    return path


def import_keys(
    gpg: GnuPG, data: bytes, public_only: bool = False, for_reading: bool = False
) -> list[KeyInfo]:
    """Import the keys in `data` after checking each one; return what the home now holds for them.

    Any unfit key refuses the whole import with RecipientKeyError naming each key and reason, and
    nothing is imported, except that a revocation of a key already in the home is applied (it only
    takes that key out of use). `public_only` drops secret parts. `for_reading` accepts unfit keys that
    carry their secret part: an old or expired key restored to read old mail (it still cannot become a
    recipient: `keys use` and every run start check again).
    """
    certificates = show_certificates(gpg, data)
    if not certificates:
        raise RecipientKeyError("no OpenPGP key found in the data", "give an exported key (.asc or .gpg)")
    present = {c.fingerprint for c in list_certificates(gpg)}
    unfit = [
        health
        for certificate in certificates
        if not (health := assess(certificate)).ok and not (for_reading and certificate.has_secret)
    ]
    if unfit:
        for certificate in certificates:
            if certificate.primary.revoked and certificate.fingerprint in present:
                _import(gpg, _public_part(gpg, data))
        error = refusal(unfit[0])
        if len(unfit) > 1:
            error = RecipientKeyError(
                "; ".join(refusal(h).message for h in unfit), "import only keys that pass these checks"
            )
        raise error
    _import(gpg, _public_part(gpg, data) if public_only else data)
    return [find_key(gpg, c.fingerprint) for c in certificates]


def _public_part(gpg: GnuPG, data: bytes) -> bytes:
    """`data` without secret key material, made in a throw-away home (gpg cannot strip secret parts
    of keys it does not hold). Nothing reaches the home of `gpg`."""
    # /tmp keeps the path short: gpg-agent's socket path must fit in 108 bytes. mkdtemp makes it 0700.
    short = "/tmp" if Path("/tmp").is_dir() else None  # noqa: S108
    scratch = Path(tempfile.mkdtemp(prefix="imapcrypt-", dir=short))
    try:
        scratch.chmod(0o700)
        other = GnuPG(scratch, binary=gpg.gpg.gpgbinary)
        _import(other, data)
        fingerprints = [c.fingerprint for c in show_certificates(gpg, data)]
        output = run_gpg(other, ["--export", *fingerprints])
        if not output.ok or not output.stdout:
            raise _failure(output, "reading the public keys")
        return output.stdout
    finally:
        # Its agent holds the secret keys we just imported: stop it before deleting its home.
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            check=False,
            capture_output=True,
            env={**os.environ, "GNUPGHOME": str(scratch)},
        )
        shutil.rmtree(scratch, ignore_errors=True)


def _import(gpg: GnuPG, data: bytes) -> None:
    gpg.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    output = run_gpg(gpg, ["--import"], data)
    if not output.ok or not output.keyword("IMPORT_OK"):
        raise _failure(output, "key import")


def export_public(gpg: GnuPG, fingerprint: str) -> bytes:
    """The ASCII-armored public key, for other devices, correspondents or a key server."""
    fingerprint = find_key(gpg, fingerprint).fingerprint
    output = run_gpg(gpg, ["--armor", "--export", fingerprint])
    if not output.ok or not output.stdout:
        raise _failure(output, "public key export")
    return output.stdout


def backup_secret(gpg: GnuPG, fingerprint: str, path: Path, passphrase: str | None) -> Path:
    """Write the ASCII-armored secret key to a new file `path`, readable only by its owner (0600).

    The secret key inside stays protected by its passphrase. An existing file is never overwritten.
    """
    key = find_key(gpg, fingerprint)
    if not key.has_secret:
        raise RecipientKeyError(
            f"the secret key of {key.fingerprint} is not in {gpg.home}", "back it up where it lives"
        )
    if path.exists():
        raise ImapcryptError(f"{path} already exists", "choose a new file name; nothing was written")
    output = run_gpg(gpg, ["--armor", "--export-secret-keys", key.fingerprint], passphrase=passphrase or "")
    if not output.ok or b"BEGIN PGP PRIVATE KEY BLOCK" not in output.stdout:
        raise _failure(output, "secret key export")
    _write_new_file(path, output.stdout, overwrite=False)
    return path


def _write_new_file(path: Path, content: bytes, overwrite: bool) -> None:
    """Write `content` whole (temp file, fsync, then link or rename) with mode 0600."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            temp.replace(path)
        else:
            try:
                os.link(temp, path)  # fails if `path` appeared meanwhile: never overwrite a backup
            except FileExistsError:
                raise ImapcryptError(f"{path} already exists", "choose a new file name") from None
    finally:
        temp.unlink(missing_ok=True)


def revoke(
    gpg: GnuPG, fingerprint: str, certificate: bytes | None = None, passphrase: str | None = None
) -> bytes:
    """Revoke the key and return its revoked public key (armored) to publish.

    Uses `certificate` if given, else the one GnuPG keeps in openpgp-revocs.d, else makes one (which
    needs the secret key and its `passphrase`). The key stays in the home, so old mail stays readable.
    """
    key = find_key(gpg, fingerprint)
    if certificate is None:
        path = revocation_certificate_path(gpg, key.fingerprint)
        if not path.exists():
            if not key.has_secret:
                raise RecipientKeyError(
                    f"no revocation certificate for {key.fingerprint} and no secret key to make one",
                    "give the revocation certificate you kept: --certificate FILE",
                )
            write_revocation_certificate(gpg, key.fingerprint, passphrase)
        certificate = path.read_bytes()
    # GnuPG guards stored certificates with a leading colon against accidental import.
    certificate = certificate.replace(b":-----BEGIN PGP PUBLIC KEY BLOCK", b"-----BEGIN PGP PUBLIC KEY BLOCK")
    output = run_gpg(gpg, ["--import"], certificate)
    if not find_key(gpg, key.fingerprint).revoked:
        raise RecipientKeyError(
            f"the revocation certificate did not revoke {key.fingerprint} (gpg exit {output.returncode})",
            "check that the certificate belongs to this key",
        )
    return export_public(gpg, key.fingerprint)
