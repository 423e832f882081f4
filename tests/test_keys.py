"""Keys (DESIGN §5) with real GnuPG: generation without AEAD, the recipient checks, import, backup,
revocation and the self-test.

Unfit keys are made once per session in a "factory" home with the gpg command line (gpg refuses to
make some of them through imapcrypt, which is the point) and exported; each test imports what it
needs into a fresh home.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imapcrypt import keys
from imapcrypt.errors import CredentialsError, ImapcryptError, RecipientKeyError
from imapcrypt.keycheck import check_recipient, require_recipients
from imapcrypt.openpgp import GnuPG
from imapcrypt.selftest import self_test

PASSPHRASE = "correct horse battery staple"
NOW = dt.datetime.now(dt.UTC)


def make_home(prefix: str = "ick-") -> GnuPG:
    """A short-pathed empty GnuPG home (agent sockets must fit in 108 bytes).

    The agent protects secret keys with fewer S2K rounds than its calibrated default: the same code
    path, a hundred times faster (about 1.3 s per protected key otherwise).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o700)
    (path / "gpg-agent.conf").write_text("s2k-count 65536\n")
    return GnuPG(path)


def remove_home(gpg: GnuPG) -> None:
    """Stop the home's agent and delete it."""
    subprocess.run(
        ["gpgconf", "--kill", "all"],
        check=False,
        capture_output=True,
        env={**os.environ, "GNUPGHOME": str(gpg.home)},
    )
    shutil.rmtree(gpg.home, ignore_errors=True)


def forget_cached_passphrases(gpg: GnuPG) -> None:
    """Make the agent forget passphrases it cached, so a wrong one is really tried."""
    subprocess.run(
        ["gpgconf", "--reload", "gpg-agent"],
        check=True,
        capture_output=True,
        env={**os.environ, "GNUPGHOME": str(gpg.home)},
    )


def gpg_cli(gpg: GnuPG, *args: str, data: bytes = b"") -> bytes:
    """The gpg command line in a home, for what tests set up behind imapcrypt's back."""
    done = subprocess.run(
        ["gpg", "--homedir", str(gpg.home), "--batch", "--yes", "--passphrase", "", *args],
        input=data,
        capture_output=True,
        check=True,
    )
    return done.stdout


def fingerprint_of(gpg: GnuPG, uid: str) -> str:
    listing = gpg_cli(gpg, "--with-colons", "--list-keys", uid).decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@dataclass(frozen=True)
class Specimen:
    """An exported key made to fail (or pass) one check."""

    fingerprint: str
    public: bytes
    secret: bytes


def make_specimens(gpg: GnuPG) -> dict[str, Specimen]:
    """Keys that fail exactly one check each, and a good one, made in `gpg` and exported."""
    made: dict[str, Specimen] = {}

    def gen(name: str, *args: str, algo: str = "", faked: str = "") -> str:
        options = ["--default-new-key-algo", algo] if algo else []
        options += ["--faked-system-time", faked] if faked else []
        gpg_cli(gpg, *options, "--quick-gen-key", f"{name} <{name}@example.org>", *args)
        return fingerprint_of(gpg, f"{name}@example.org")

    def keep(name: str, fingerprint: str) -> None:
        made[name] = Specimen(
            fingerprint,
            gpg_cli(gpg, "--armor", "--export", fingerprint),
            gpg_cli(gpg, "--pinentry-mode", "loopback", "--armor", "--export-secret-keys", fingerprint),
        )

    keep("good", gen("good", "future-default", "default", "never"))
    keep("weak", gen("weak", "default", "default", "never", algo="rsa1024/cert,sign+rsa1024/encr"))
    keep("signonly", gen("signonly", "ed25519", "sign", "never"))
    dsa = gen("dsa", "dsa1024", "sign", "never")
    gpg_cli(gpg, "--quick-add-key", dsa, "elg2048", "encr", "never")
    keep("dsa", dsa)
    elg = gen("elg", "dsa2048", "sign", "never")
    gpg_cli(gpg, "--quick-add-key", elg, "elg1024", "encr", "never")
    keep("elg", elg)
    keep("soon", gen("soon", "future-default", "default", "10d"))
    # Expired for real: made in 2020 with a validity of one day.
    keep("expired", gen("expired", "future-default", "default", "1d", faked="20200101T000000!"))
    revoked = gen("revoked", "future-default", "default", "never")
    keep("before-revocation", revoked)
    certificate = (gpg.home / "openpgp-revocs.d" / f"{revoked}.rev").read_bytes()
    gpg_cli(gpg, "--import", data=certificate.replace(b":-----BEGIN", b"-----BEGIN"))
    keep("revoked", revoked)
    sub_expired = gen("subexpired", "ed25519", "cert,sign", "never", faked="20200101T000000!")
    gpg_cli(
        gpg,
        "--faked-system-time",
        "20200101T000000!",
        "--quick-add-key",
        sub_expired,
        "cv25519",
        "encr",
        "1d",
    )
    keep("subexpired", sub_expired)
    return made


@pytest.fixture(scope="session")
def factory() -> Iterator[dict[str, Specimen]]:
    """The specimens, made once per session in a scratch home."""
    gpg = make_home("ickf-")
    try:
        yield make_specimens(gpg)
    finally:  # also when making them failed: no agent left running
        remove_home(gpg)


@pytest.fixture
def home() -> Iterator[GnuPG]:
    """A fresh, empty GnuPG home."""
    gpg = make_home()
    yield gpg
    remove_home(gpg)


@pytest.fixture(scope="session")
def generated() -> Iterator[tuple[GnuPG, keys.KeyInfo]]:
    """A home with one key generated by imapcrypt, protected by PASSPHRASE (shared: do not revoke)."""
    gpg = make_home("ickg-")
    try:
        yield gpg, keys.generate_key(gpg, "Alice <alice@example.org>", PASSPHRASE)
    finally:
        remove_home(gpg)


def packets(gpg: GnuPG, data: bytes) -> str:
    return gpg_cli(gpg, "--list-only", "--list-packets", data=data).decode()


# -- generation -------------------------------------------------------------------------------------


def test_generated_key_is_ed25519_with_cv25519_subkey_and_a_revocation_certificate(
    generated: tuple[GnuPG, keys.KeyInfo],
) -> None:
    gpg, info = generated
    assert info.algorithm == "ed25519"
    assert info.encryption_algorithm == "cv25519"
    assert info.uids == ("Alice <alice@example.org>",)
    assert info.has_secret
    assert info.can_encrypt
    assert not info.revoked
    assert info.expires is None
    certificate = keys.revocation_certificate_path(gpg, info.fingerprint)
    # GnuPG's own file: an explanation, then the certificate guarded by a colon against import.
    assert b"\n:-----BEGIN PGP PUBLIC KEY BLOCK" in certificate.read_bytes()
    assert check_recipient(gpg, info.fingerprint).ok


def test_generated_key_preferences_and_mail_to_it_have_no_aead(generated: tuple[GnuPG, keys.KeyInfo]) -> None:
    gpg, info = generated
    key_packets = packets(gpg, keys.export_public(gpg, info.fingerprint))
    assert "pref-sym-algos: 9 8 7" in key_packets  # AES256 AES192 AES: our list, not gpg's default
    assert "pref-aead-algos" not in key_packets
    assert "subpkt 34 " not in key_packets
    features = [line for line in key_packets.splitlines() if "(features:" in line]
    assert features
    assert all(int(line.rsplit(": ", 1)[1].rstrip(")")[:2], 16) & 0x02 == 0 for line in features)
    message = packets(gpg, gpg.encrypt(b"hello", [info.fingerprint]))
    assert ":encrypted data packet:" in message
    assert "mdc_method: 2" in message
    assert "aead" not in message.lower()


def test_rsa3072_generation(home: GnuPG) -> None:
    info = keys.generate_key(home, "Bob <bob@example.org>", "", algorithm="rsa3072")
    assert (info.algorithm, info.bits, info.encryption_algorithm) == ("rsa3072", 3072, "rsa3072")
    assert check_recipient(home, info.fingerprint).ok


def test_unknown_algorithm_is_refused_before_gpg_runs(home: GnuPG) -> None:
    with pytest.raises(ImapcryptError, match="unknown key algorithm 'dsa'"):
        keys.generate_key(home, "C <c@example.org>", "", algorithm="dsa")
    assert keys.list_keys(home) == []


# -- checks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("weak", "rsa1024: RSA below 2048 bits is too weak"),
        ("signonly", "cannot encrypt (sign-only: it has no encryption subkey)"),
        ("dsa", "primary key dsa1024: DSA below 2048 bits is too weak"),
        ("elg", "encryption subkey elg1024: ElGamal below 2048 bits is too weak"),
        ("expired", "the key expired on 2020-01-02"),
        ("revoked", "the key is revoked"),
        ("subexpired", "every encryption subkey is expired"),
    ],
)
def test_unfit_key_is_refused_at_import_with_its_reason(
    home: GnuPG, factory: dict[str, Specimen], name: str, reason: str
) -> None:
    specimen = factory[name]
    with pytest.raises(RecipientKeyError, match=re.escape(reason)) as caught:
        keys.import_keys(home, specimen.public)
    assert specimen.fingerprint in caught.value.message
    assert keys.list_keys(home) == []  # nothing left behind to encrypt to


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("weak", "RSA below 2048 bits"),
        ("signonly", "cannot encrypt"),
        ("dsa", "DSA below 2048 bits"),
        ("expired", "expired on 2020-01-02"),
        ("revoked", "is revoked"),
    ],
)
def test_unfit_key_already_in_the_home_is_refused_at_run_start(
    home: GnuPG, factory: dict[str, Specimen], name: str, reason: str
) -> None:
    specimen = factory[name]
    keys.import_keys(home, factory["good"].public)
    gpg_cli(home, "--import", data=specimen.public)  # behind imapcrypt's back
    health = check_recipient(home, specimen.fingerprint)
    assert not health.ok
    assert any(reason in problem for problem in health.problems)
    with pytest.raises(RecipientKeyError, match=f"{specimen.fingerprint}: .*{reason}"):
        require_recipients(home, [factory["good"].fingerprint, specimen.fingerprint])


def test_expiry_is_judged_at_the_given_time(home: GnuPG, factory: dict[str, Specimen]) -> None:
    soon = factory["soon"]
    keys.import_keys(home, soon.public)
    today = check_recipient(home, soon.fingerprint, now=NOW)
    assert today.ok
    assert any("expires on" in w and "extend it or rotate" in w for w in today.warnings)
    in_a_month = check_recipient(home, soon.fingerprint, now=NOW + dt.timedelta(days=31))
    assert not in_a_month.ok
    assert any(p.startswith("the key expired on") for p in in_a_month.problems)
    long_ago = check_recipient(home, soon.fingerprint, now=NOW - dt.timedelta(days=60))
    assert long_ago.ok
    assert long_ago.warnings == ()


def test_good_key_imports_public_only_and_passes(home: GnuPG, factory: dict[str, Specimen]) -> None:
    good = factory["good"]
    [info] = keys.import_keys(home, good.secret, public_only=True)
    assert info.fingerprint == good.fingerprint
    assert not info.has_secret
    assert info.can_encrypt
    assert require_recipients(home, [good.fingerprint])[0].ok
    result = self_test(home, [good.fingerprint], None)
    assert not result.passed
    assert result.needs_confirmation


def test_unknown_and_missing_recipients_are_refused(home: GnuPG, factory: dict[str, Specimen]) -> None:
    with pytest.raises(RecipientKeyError, match=r"no key .* in the GnuPG home"):
        require_recipients(home, [factory["good"].fingerprint])
    with pytest.raises(RecipientKeyError, match="no recipient key configured"):
        require_recipients(home, [])
    with pytest.raises(RecipientKeyError, match="not a full key fingerprint"):
        check_recipient(home, "ABCD")


def test_one_unfit_key_refuses_the_whole_import(home: GnuPG, factory: dict[str, Specimen]) -> None:
    with pytest.raises(RecipientKeyError, match="DSA below"):
        keys.import_keys(home, factory["good"].public + factory["dsa"].public)
    assert keys.list_keys(home) == []


def test_revocation_of_a_present_key_is_applied_even_though_the_import_is_refused(
    home: GnuPG, factory: dict[str, Specimen]
) -> None:
    revoked = factory["revoked"]
    keys.import_keys(home, factory["before-revocation"].public)
    assert check_recipient(home, revoked.fingerprint).ok
    with pytest.raises(RecipientKeyError, match="revoked"):
        keys.import_keys(home, revoked.public)
    assert keys.find_key(home, revoked.fingerprint).revoked


def test_expired_secret_key_imports_for_reading_but_never_as_recipient(
    home: GnuPG, factory: dict[str, Specimen]
) -> None:
    expired = factory["expired"]
    with pytest.raises(RecipientKeyError, match="expired"):
        keys.import_keys(home, expired.secret)
    [info] = keys.import_keys(home, expired.secret, for_reading=True)
    assert info.has_secret
    assert not info.can_encrypt
    with pytest.raises(RecipientKeyError, match="expired"):
        require_recipients(home, [expired.fingerprint])


def test_garbage_is_not_a_key(home: GnuPG) -> None:
    with pytest.raises(RecipientKeyError, match="no OpenPGP key found"):
        keys.import_keys(home, b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n")


# -- export, backup, revoke -------------------------------------------------------------------------


def test_backup_is_0600_needs_the_passphrase_and_never_overwrites(
    generated: tuple[GnuPG, keys.KeyInfo], tmp_path: Path
) -> None:
    gpg, info = generated
    forget_cached_passphrases(gpg)
    with pytest.raises(CredentialsError, match="passphrase was refused"):
        keys.backup_secret(gpg, info.fingerprint, tmp_path / "wrong.asc", "not the passphrase")
    assert not (tmp_path / "wrong.asc").exists()
    path = keys.backup_secret(gpg, info.fingerprint, tmp_path / "alice.asc", PASSPHRASE)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert [p.name for p in tmp_path.iterdir()] == ["alice.asc"]  # no temp file left
    with pytest.raises(ImapcryptError, match="already exists"):
        keys.backup_secret(gpg, info.fingerprint, path, PASSPHRASE)
    # The backup restores into an empty home and still needs its passphrase to decrypt.
    restored = make_home()
    try:
        [back] = keys.import_keys(restored, path.read_bytes())
        assert back.has_secret
        sealed = gpg.encrypt(b"probe", [info.fingerprint])
        assert restored.decrypt(sealed, PASSPHRASE) == b"probe"
    finally:
        remove_home(restored)


def test_revoke_uses_the_kept_certificate_and_returns_the_revoked_key(home: GnuPG) -> None:
    info = keys.generate_key(home, "Carol <carol@example.org>", "")
    sealed = home.encrypt(b"old mail", [info.fingerprint])
    published = keys.revoke(home, info.fingerprint)
    assert published.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "sigclass 0x20" in packets(home, published)
    assert keys.find_key(home, info.fingerprint).revoked
    assert check_recipient(home, info.fingerprint).problems == ("the key is revoked",)
    assert home.decrypt(sealed, "") == b"old mail"  # old mail stays readable


def test_revoke_without_certificate_makes_one_from_the_secret_key(home: GnuPG) -> None:
    info = keys.generate_key(home, "Dan <dan@example.org>", PASSPHRASE)
    keys.revocation_certificate_path(home, info.fingerprint).unlink()
    keys.revoke(home, info.fingerprint, passphrase=PASSPHRASE)
    assert keys.find_key(home, info.fingerprint).revoked


def test_revoke_public_only_key_needs_a_certificate(home: GnuPG, factory: dict[str, Specimen]) -> None:
    keys.import_keys(home, factory["good"].public)
    with pytest.raises(RecipientKeyError, match="no revocation certificate"):
        keys.revoke(home, factory["good"].fingerprint)


# -- self-test --------------------------------------------------------------------------------------


def test_self_test_decrypts_with_the_passphrase_and_fails_without(
    generated: tuple[GnuPG, keys.KeyInfo],
) -> None:
    gpg, info = generated
    forget_cached_passphrases(gpg)
    wrong = self_test(gpg, [info.fingerprint], "not the passphrase")
    assert not wrong.passed
    assert not wrong.needs_confirmation
    assert wrong.outcomes[0].encrypted
    assert wrong.outcomes[0].decrypted is False
    right = self_test(gpg, [info.fingerprint], PASSPHRASE)
    assert right.passed
    assert right.decrypted == (info.fingerprint,)


def test_self_test_reports_a_recipient_that_cannot_encrypt(home: GnuPG, factory: dict[str, Specimen]) -> None:
    gpg_cli(home, "--import", data=factory["signonly"].public)
    keys.import_keys(home, factory["good"].secret)
    result = self_test(home, [factory["good"].fingerprint, factory["signonly"].fingerprint], "")
    assert not result.passed
    assert result.decrypted == (factory["good"].fingerprint,)
    assert [p.split(":")[0] for p in result.problems] == [factory["signonly"].fingerprint]
