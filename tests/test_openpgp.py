"""GnuPG as imapcrypt uses it: typed recipient errors, the packet policy, decryption failures, threads."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from imapcrypt.errors import DecryptError, EnvelopeError, RecipientKeyError
from imapcrypt.message import envelope
from imapcrypt.openpgp import packets
from imapcrypt.openpgp.gnupg import (
    AeadKeyError,
    Compression,
    EncryptError,
    ExpiredKeyError,
    GnuPG,
    NotEncryptionKeyError,
    RevokedKeyError,
    UnknownKeyError,
    _dearmor_head,
    _require_seipd_v1,
    normalise_fingerprint,
)
from tests.fixtures.gnupg_home import GnupgHome

PASSPHRASE = "correct horse battery staple"
PAST = ("--faked-system-time", "20200101T000000")


@dataclass(frozen=True)
class Keys:
    """A GnuPG home holding keys in every state a recipient can be in."""

    home: Path
    good: str
    passphrase: str
    sign_only: str
    expired: str
    revoked: str
    expired_subkey: str

    def gpg(self, *args: str, input: bytes | None = None) -> bytes:
        done = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--yes", *args],
            input=input,
            capture_output=True,
            check=True,
        )
        return done.stdout


def _new_key(home: Path, uid: str, *args: str, passphrase: str = "", before: tuple[str, ...] = ()) -> str:
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase,
         *before, "--quick-gen-key", uid, *args],
        check=True, capture_output=True,
    )  # fmt: skip
    listing = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--with-colons", "--list-keys", uid],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def _kill_agent(home: Path) -> None:
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)


@pytest.fixture(scope="module")
def keys() -> Iterator[Keys]:
    home = Path(tempfile.mkdtemp(prefix="icgpg-"))  # short: gpg-agent's socket path is limited
    home.chmod(0o700)
    try:
        good = _new_key(home, "Good <good@example.org>", "future-default", "default", "never")
        revoked = _new_key(home, "Revoked <revoked@example.org>", "future-default", "default", "never")
        certificate = (home / "openpgp-revocs.d" / f"{revoked}.rev").read_bytes()
        subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--import"],
            input=certificate.replace(b":-----BEGIN", b"-----BEGIN"),
            check=True,
            capture_output=True,
        )
        expired_subkey = _new_key(
            home, "Old subkey <sub@example.org>", "ed25519", "sign", "never", before=PAST
        )
        subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--passphrase", "", *PAST,
             "--quick-add-key", expired_subkey, "cv25519", "encr", "1d"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield Keys(
            home=home,
            good=good,
            passphrase=_new_key(
                home,
                "Locked <locked@example.org>",
                "future-default",
                "default",
                "never",
                passphrase=PASSPHRASE,
            ),
            sign_only=_new_key(home, "Signer <sign@example.org>", "ed25519", "sign", "never"),
            expired=_new_key(
                home, "Expired <expired@example.org>", "future-default", "default", "1d", before=PAST
            ),
            revoked=revoked,
            expired_subkey=expired_subkey,
        )
    finally:
        _kill_agent(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def gpg(keys: Keys) -> GnuPG:
    return GnuPG(keys.home)


# -- recipients ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("unknown", UnknownKeyError, "no public key"),
        ("sign_only", NotEncryptionKeyError, "cannot encrypt"),
        ("expired", ExpiredKeyError, "has expired"),
        ("expired_subkey", ExpiredKeyError, "every encryption subkey"),
        ("revoked", RevokedKeyError, "is revoked"),
    ],
)
def test_unusable_recipients_raise_a_typed_error_that_says_what_to_do(
    which: str, error: type[RecipientKeyError], words: str, keys: Keys, gpg: GnuPG
) -> None:
    fingerprint = "0123456789ABCDEF0123456789ABCDEF01234567" if which == "unknown" else getattr(keys, which)
    with pytest.raises(error, match=words) as raised:
        gpg.encrypt(b"data", [keys.good, fingerprint])
    assert raised.value.fix
    assert fingerprint in raised.value.message
    with pytest.raises(error):
        gpg.check_recipients([fingerprint])
    with pytest.raises(error):  # seal stops at the same check and returns nothing
        envelope.seal(b"Subject: x\r\n\r\nbody\r\n", gpg, [fingerprint], b"s" * 32)


def test_usable_recipients_pass_the_check(keys: Keys, gpg: GnuPG) -> None:
    gpg.check_recipients([keys.good, keys.passphrase.lower()])


@pytest.mark.parametrize("value", ["", "not hex", "F412D09CE91287C5", "0x12345"])
def test_anything_but_a_full_fingerprint_is_refused(value: str, gpg: GnuPG) -> None:
    with pytest.raises(RecipientKeyError, match="fingerprint"):
        gpg.encrypt(b"data", [value])


def test_no_recipient_is_refused(gpg: GnuPG) -> None:
    with pytest.raises(RecipientKeyError, match="no recipient"):
        gpg.encrypt(b"data", [])


def test_fingerprints_are_normalised() -> None:
    assert normalise_fingerprint("0x71fa 25de 679e a552 6dcc  91c1 f412 d09c e912 87c5") == (
        "71FA25DE679EA5526DCC91C1F412D09CE91287C5"
    )


# -- what gpg writes ------------------------------------------------------------------------------------


def test_bytes_round_trip_exactly(keys: Keys, gpg: GnuPG) -> None:
    data = bytes(range(256)) * 64 + b"\r\n\n\r\0"
    assert gpg.decrypt(gpg.encrypt(data, [keys.good])) == data
    assert gpg.decrypt(gpg.encrypt(data, [keys.good], armor=False)) == data


def test_a_users_gpg_conf_cannot_change_the_packets(keys: Keys) -> None:
    # The user's own GNUPGHOME may ask for text mode or extra recipients; imapcrypt overrides both.
    home = Path(tempfile.mkdtemp(prefix="icgpg-"))
    home.chmod(0o700)
    try:
        mine = _new_key(home, "Mine <mine@example.org>", "future-default", "default", "never")
        extra = _new_key(home, "Extra <extra@example.org>", "future-default", "default", "never")
        (home / "gpg.conf").write_text(f"textmode\nencrypt-to {extra}\ncompress-algo bzip2\n")
        armored = GnuPG(home).encrypt(b"line\r\n", [mine])
        listing = subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--list-packets"],
            input=armored, capture_output=True, check=True, text=False,
        ).stdout.decode()  # fmt: skip
        assert listing.count(":pubkey enc packet:") == 1
        assert "mode b " in listing
        assert "compressed packet: algo=2" in listing  # zlib, not the bzip2 of gpg.conf
    finally:
        _kill_agent(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize(
    ("compression", "packet"),
    [(Compression.NONE, None), (Compression.ZLIB_FAST, "algo=2"), (Compression.ZLIB, "algo=2")],
)
def test_compression_is_what_was_chosen(compression: Compression, packet: str | None, keys: Keys) -> None:
    text = b"the same line of text again and again\r\n" * 2000
    armored = GnuPG(keys.home, compression=compression).encrypt(text, [keys.good])
    listing = keys.gpg("--list-packets", input=armored).decode()
    if packet is None:
        assert "compressed packet" not in listing
        assert len(armored) > len(text)
    else:
        assert f"compressed packet: {packet}" in listing
        assert len(armored) < len(text) / 10


def _packet(tag: int, body: bytes) -> bytes:
    return bytes([0xC0 | tag, len(body)]) + body


PKESK = _packet(1, b"\x03" + b"\0" * 20)
OLD_FORMAT_PKESK = bytes([0x80 | (1 << 2), 21]) + b"\x03" + b"\0" * 20


@pytest.mark.parametrize(
    ("packets", "error"),
    [
        (PKESK + _packet(18, b"\x01" + b"\0" * 30), None),
        (OLD_FORMAT_PKESK + PKESK + bytes([0xD2, 0xE0]) + b"\x01", None),  # partial body length
        (PKESK + _packet(20, b"\x01\x09\x02\x10" + b"\0" * 30), AeadKeyError),  # OCB (LibrePGP)
        (PKESK + _packet(18, b"\x02\x09\x02\x10" + b"\0" * 30), AeadKeyError),  # SEIPD v2 (RFC 9580)
        (PKESK + _packet(9, b"\0" * 30), EncryptError),  # no integrity protection at all
        (_packet(8, b"\x01" + b"\0" * 10), EncryptError),  # compressed, not encrypted
        (b"", EncryptError),
    ],
)
def test_only_seipd_v1_is_accepted(packets: bytes, error: type[Exception] | None) -> None:
    # gpg 2.2 never writes AEAD; 2.4 does when every recipient key advertises it. The check is what
    # guards against that, so it is tested on packets made by hand.
    if error is None:
        _require_seipd_v1(packets)
    else:
        with pytest.raises(error):
            _require_seipd_v1(packets)


# -- decryption -------------------------------------------------------------------------------------------


def test_decrypting_without_the_secret_key_says_so(gnupg_home: GnupgHome, gpg: GnuPG) -> None:
    foreign = GnuPG(gnupg_home.path).encrypt(b"not for this home", [gnupg_home.fingerprint])
    with pytest.raises(DecryptError, match="no secret key"):
        gpg.decrypt(foreign)


def test_damaged_ciphertext_gives_no_output(keys: Keys, gpg: GnuPG) -> None:
    binary = bytearray(gpg.encrypt(b"x" * 100_000, [keys.good], armor=False))
    binary[len(binary) // 2] ^= 0xFF
    with pytest.raises(DecryptError, match="damaged"):
        gpg.decrypt(bytes(binary))
    with pytest.raises(DecryptError):
        gpg.decrypt(b"not an OpenPGP message")


def test_a_passphrase_protected_key(keys: Keys, gpg: GnuPG) -> None:
    cipher = gpg.encrypt(b"locked", [keys.passphrase])
    with pytest.raises(DecryptError, match="passphrase for the secret key is wrong"):
        gpg.decrypt(cipher, passphrase="wrong")  # first: the agent caches the right one
    with pytest.raises(DecryptError, match="line break"):
        gpg.decrypt(cipher, passphrase="two\nlines")
    assert gpg.decrypt(cipher, passphrase=PASSPHRASE) == b"locked"


def test_restore_and_subject_raise_typed_errors(keys: Keys, gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    with pytest.raises(EnvelopeError, match="not a message imapcrypt encrypted"):
        envelope.restore(b"Subject: plain\r\n\r\nbody\r\n", gpg)
    sealed = envelope.seal(b"Subject: x\r\n\r\nbody\r\n", gpg, [keys.good], b"s" * 32).message
    with pytest.raises(DecryptError):
        envelope.restore(sealed, GnuPG(gnupg_home.path))
    with pytest.raises(DecryptError):
        envelope.subject(sealed, GnuPG(gnupg_home.path))
    cut = sealed[: sealed.index(b"-----END PGP MESSAGE-----") - 200] + sealed[-100:]
    with pytest.raises(DecryptError):
        envelope.restore(cut, gpg)
    with pytest.raises(EnvelopeError, match="no X-Imapcrypt-Subject"):
        envelope.subject(b"Subject: x\r\n\r\n", gpg)
    with pytest.raises(EnvelopeError, match="damaged"):
        envelope.subject(b"X-Imapcrypt-Subject: !!notbase64!!\r\n\r\n", gpg)


def test_a_foreign_entity_inside_our_envelope_is_refused(keys: Keys, gpg: GnuPG) -> None:
    sealed = envelope.seal(b"Subject: x\r\n\r\nbody\r\n", gpg, [keys.good], b"s" * 32).message
    start, end = sealed.index(b"-----BEGIN PGP"), sealed.index(b"-----END PGP MESSAGE-----\r\n") + 27
    for inner in (b"Content-Type: text/plain\r\n\r\nhello\r\n", b"", b"\0" * 10):
        forged = sealed[:start] + gpg.encrypt(inner, [keys.good]).replace(b"\n", b"\r\n") + sealed[end:]
        with pytest.raises(EnvelopeError, match="not an imapcrypt v1 entity"):
            envelope.restore(forged, gpg)


@pytest.mark.parametrize(
    "raw", [b"", b"\r\n\r\nbody", b"no colon on this line\r\n\r\n", b" folded: first\r\n"]
)
def test_input_that_is_not_a_message_is_sealed_and_restored(raw: bytes, keys: Keys, gpg: GnuPG) -> None:
    sealed = envelope.seal(raw, gpg, [keys.good], b"s" * 32)
    assert envelope.restore(sealed.message, gpg) == raw


# -- threads -----------------------------------------------------------------------------------------------


def test_encrypt_and_decrypt_in_parallel(keys: Keys, gpg: GnuPG) -> None:
    payloads = [os.urandom(1000 + i * 997) for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        ciphertexts = list(pool.map(lambda data: gpg.encrypt(data, [keys.good]), payloads))
        assert list(pool.map(gpg.decrypt, ciphertexts)) == payloads


# -- the home's gpg.conf cannot add recipients -------------------------------------------------------------


def test_recipient_lines_in_gpg_conf_add_nobody(keys: Keys, gpg: GnuPG) -> None:
    eve = keys.passphrase  # another valid encryption key in the same home
    conf = keys.home / "gpg.conf"
    conf.write_text(
        f"recipient {eve}\nhidden-recipient {eve}\ndefault-recipient {eve}\nencrypt-to {eve}\n"
        f"hidden-encrypt-to {eve}\ngroup {keys.good}={eve}\ntrust-model always\n"
    )
    try:
        # The configuration is live: plain gpg obeys it (the group even replaces the recipient).
        good = _encryption_subkey(keys, keys.good)
        by_hand = keys.gpg("--encrypt", "-r", keys.good, input=b"x")
        assert packets.pkesk_key_ids(by_hand) != [good]
        for armor in (True, False):
            data = gpg.encrypt(b"hello", [keys.good], armor=armor)
            head = _dearmor_head(data) if armor else data
            assert packets.pkesk_key_ids(head) == [good]
            assert gpg.decrypt(data) == b"hello"
    finally:
        conf.unlink()


def _encryption_subkey(keys: Keys, fingerprint: str) -> str:
    listing = keys.gpg("--with-colons", "--list-keys", fingerprint).decode()
    return next(
        f.split(":")[4] for f in listing.splitlines() if f.startswith("sub:") and "e" in f.split(":")[11]
    )


def test_a_ciphertext_for_anyone_else_is_refused(keys: Keys, gpg: GnuPG) -> None:
    good = _encryption_subkey(keys, keys.good)
    extra = keys.gpg(
        "--trust-model", "always", "--encrypt", "-r", keys.good, "-r", keys.passphrase, input=b"x"
    )
    hidden = keys.gpg("--trust-model", "always", "--encrypt", "--hidden-recipient", keys.good, input=b"x")
    gpg._require_recipients(
        keys.gpg("--trust-model", "always", "--encrypt", "-r", keys.good, input=b"x"), [keys.good]
    )
    for ciphertext in (extra, hidden):
        with pytest.raises(EncryptError, match="other keys than the configured recipients"):
            gpg._require_recipients(ciphertext, [keys.good])
    with pytest.raises(EncryptError, match="left out"):
        gpg._require_recipients(extra, [keys.good, keys.passphrase, keys.sign_only])
    assert good in packets.pkesk_key_ids(extra)
