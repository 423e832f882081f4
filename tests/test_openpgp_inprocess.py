"""Encryption in process writes what gpg writes, to the keys gpg chooses, and gpg and sq open it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from pysequoia.packet import PacketPile, Tag

from imapcrypt.config.model import Account
from imapcrypt.doctor.checks import check_encryption_path
from imapcrypt.openpgp import writer
from imapcrypt.openpgp.gnupg import Compression, GnuPG, session_key_ids
from imapcrypt.openpgp.inprocess import InProcessEncryptor, Plan, encryptor
from imapcrypt.openpgp.listing import list_certificates

TEXT = b"".join(b"Line %d of a mail message that compresses the way mail does.\r\n" % i for i in range(130))
NOW = ()
PAST_2019 = ("--faked-system-time", "20190101T000000!")
PAST_2020 = ("--faked-system-time", "20200101T000000!")


@dataclass(frozen=True)
class Home:
    """A GnuPG home with keys of every kind the fast path meets, and their secrets for sq."""

    gpg: GnuPG
    keys: dict[str, str]  # name: fingerprint
    skipped: dict[str, str]  # name: key ID of an encryption subkey gpg must not use
    secrets: Path

    def cli(self, *args: str, data: bytes = b"") -> bytes:
        done = subprocess.run(
            ["gpg", "--homedir", str(self.gpg.home), "--batch", "--yes", *args],
            input=data,
            capture_output=True,
            check=True,
        )
        return done.stdout


def _gpg(home: Path, *args: str, data: bytes = b"") -> bytes:
    command = ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback"]
    done = subprocess.run([*command, "--passphrase", "", *args], input=data, capture_output=True, check=True)
    return done.stdout


def _generate(home: Path, name: str, algo: str, usage: str, when: tuple[str, ...] = NOW) -> str:
    _gpg(home, *when, "--quick-gen-key", f"{name} <{name}@example.org>", algo, usage, "never")
    listing = _gpg(home, "--with-colons", "--list-keys", f"<{name}@example.org>").decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def _add_subkey(home: Path, fingerprint: str, algo: str, expiry: str, when: tuple[str, ...] = NOW) -> str:
    _gpg(home, *when, "--quick-add-key", fingerprint, algo, "encr", expiry)
    listing = _gpg(home, "--with-colons", "--list-keys", fingerprint).decode()
    subs = [line.split(":") for line in listing.splitlines() if line.startswith("sub:")]
    return max(subs, key=lambda fields: int(fields[5]))[4]  # the newest subkey's key ID


def _revoke_newest_subkey(home: Path, fingerprint: str, count: int) -> None:
    answers = f"key {count}\nrevkey\ny\n0\n\ny\nsave\n".encode()
    _gpg(home, "--command-fd", "0", "--edit-key", fingerprint, data=answers)


def make_home() -> Home:
    """Every key in one home; the newest encryption subkey of some is expired or revoked."""
    path = Path(tempfile.mkdtemp(prefix="icfast-"))
    path.chmod(0o700)
    keys = {
        "cv25519": _generate(path, "cv", "future-default", "default"),
        "rsa-primary": _generate(path, "rsa", "rsa3072", "cert,sign,encr"),
        "nistp256": _generate(path, "nist", "nistp256", "cert,sign"),
        "expired-newest": _generate(path, "exp", "ed25519", "cert,sign", PAST_2019),
        "revoked-newest": _generate(path, "rev", "ed25519", "cert,sign", PAST_2019),
        "two-valid": _generate(path, "two", "ed25519", "cert,sign", PAST_2019),
        "brainpool": _generate(path, "bp", "brainpoolP256r1", "cert,sign"),
    }
    _add_subkey(path, keys["nistp256"], "nistp256", "never")
    _add_subkey(path, keys["brainpool"], "brainpoolP256r1", "never")
    skipped = {}
    _add_subkey(path, keys["expired-newest"], "rsa2048", "never", PAST_2019)
    skipped["expired-newest"] = _add_subkey(path, keys["expired-newest"], "cv25519", "1d", PAST_2020)
    _add_subkey(path, keys["revoked-newest"], "cv25519", "never", PAST_2019)
    skipped["revoked-newest"] = _add_subkey(path, keys["revoked-newest"], "cv25519", "never")
    _revoke_newest_subkey(path, keys["revoked-newest"], 2)
    skipped["two-valid"] = _add_subkey(path, keys["two-valid"], "cv25519", "never", PAST_2019)
    _add_subkey(path, keys["two-valid"], "cv25519", "never")
    secrets = path / "secrets.pgp"
    secrets.write_bytes(_gpg(path, "--export-secret-keys"))
    return Home(GnuPG(path), keys, skipped, secrets)


@pytest.fixture(scope="module")
def home() -> Iterator[Home]:
    made = make_home()
    yield made
    subprocess.run(["gpgconf", "--homedir", str(made.gpg.home), "--kill", "all"], check=False)
    shutil.rmtree(made.gpg.home, ignore_errors=True)


def written_in_process(binary: bytes) -> bool:
    """gpg writes its PKESK packets in the old format (0x84, 0x85); this path in the new one (0xC1)."""
    return binary[0] == 0xC1


def packet_kinds(home: Home, binary: bytes) -> tuple[list[str], list[str]]:
    """The session-key packets (sorted) and the data packets (in order), as `gpg --list-packets` sees them.

    Lengths, dates and the format of packet headers are left out: they are not what the profile fixes.
    """
    listing = home.cli("--list-packets", data=binary).decode()
    session_keys: list[str] = []
    data: list[str] = []
    for block in re.split(r"^# off=.*$", listing, flags=re.MULTILINE)[1:]:
        lines = [line.strip() for line in block.strip().splitlines()]
        head = lines[0]
        if head.startswith(":pubkey enc packet:"):
            session_keys.append(head)
        else:
            kept = [line for line in lines[1:] if line.startswith(("mdc_method", "mode"))]
            data.append(" ".join([head, *(re.sub(r",? created \d+.*", "", k) for k in kept)]))
    return sorted(session_keys), data


def cipher_info(home: Home, binary: bytes) -> list[str]:
    """gpg's DECRYPTION_INFO (MDC method, cipher, AEAD algorithm) after decrypting `binary`."""
    status = home.cli("--status-fd", "1", "--decrypt", "--output", os.devnull, data=binary).decode()
    return [line for line in status.splitlines() if line.startswith("[GNUPG:] DECRYPTION_INFO")]


def sq_decrypt(home: Home, message: bytes) -> bytes:
    done = subprocess.run(
        ["sq", "decrypt", "--recipient-key", str(home.secrets)],
        input=message,
        capture_output=True,
        check=True,
    )
    return done.stdout


CASES = {
    "Curve25519": ["cv25519"],
    "RSA primary key": ["rsa-primary"],
    "NIST P-256": ["nistp256"],
    "newest subkey expired": ["expired-newest"],
    "newest subkey revoked": ["revoked-newest"],
    "two valid subkeys": ["two-valid"],
    "several recipients": ["cv25519", "rsa-primary", "nistp256", "revoked-newest"],
}


@pytest.mark.parametrize("names", CASES.values(), ids=CASES.keys())
def test_same_packets_as_gpg_and_both_implementations_open_it(home: Home, names: list[str]) -> None:
    recipients = [home.keys[name] for name in names]
    fast = InProcessEncryptor(home.gpg)
    assert isinstance(fast.plan(recipients), Plan)
    ours = fast.encrypt(TEXT, recipients, armor=False)
    theirs = home.gpg.encrypt(TEXT, recipients, armor=False)
    assert written_in_process(ours)
    assert not written_in_process(theirs)
    session_keys, data = packet_kinds(home, ours)
    assert (session_keys, data) == packet_kinds(home, theirs)
    assert len(session_keys) == len(recipients)
    assert cipher_info(home, ours) == cipher_info(home, theirs) == ["[GNUPG:] DECRYPTION_INFO 2 9 0"]
    assert data == [
        ":encrypted data packet: mdc_method: 2",
        ":compressed packet: algo=2",
        ":literal data packet: mode b (62)",
    ]
    for name in names:
        assert home.skipped.get(name, "none") not in " ".join(session_keys)
    armored = fast.encrypt(TEXT, recipients)
    assert armored.startswith(b"-----BEGIN PGP MESSAGE-----\n")
    assert home.cli("--decrypt", data=armored) == TEXT
    assert sq_decrypt(home, armored) == TEXT
    assert sq_decrypt(home, ours) == home.cli("--decrypt", data=ours) == TEXT


def test_the_armor_carries_a_crc24_checksum(home: Home) -> None:
    armored = InProcessEncryptor(home.gpg).encrypt(b"x", [home.keys["cv25519"]])
    assert re.search(rb"\n=[A-Za-z0-9+/]{4}\n-----END PGP MESSAGE-----\n$", armored)


@pytest.mark.parametrize(
    ("data", "limit"), [(TEXT, 0.5), (os.urandom(64 * 1024), 1.07)], ids=["text", "incompressible"]
)
def test_copies_are_compressed_like_gpg_does(home: Home, data: bytes, limit: float) -> None:
    recipients = [home.keys["cv25519"]]
    ours = InProcessEncryptor(home.gpg).encrypt(data, recipients, armor=False)
    theirs = home.gpg.encrypt(data, recipients, armor=False)
    assert len(ours) <= limit * len(data)
    assert abs(len(ours) - len(theirs)) <= 0.01 * len(data) + 16
    # 64 KB of random bytes needs five-octet packet lengths: both readers must take them.
    assert sq_decrypt(home, ours) == home.cli("--decrypt", data=ours) == data


def test_an_unsupported_key_goes_through_gpg_and_doctor_says_so(home: Home) -> None:
    recipients = [home.keys["cv25519"], home.keys["brainpool"]]
    fast = InProcessEncryptor(home.gpg)
    reason = fast.plan(recipients)
    assert isinstance(reason, str)
    assert "2b2403030208010107" in reason  # brainpoolP256r1's OID
    message = fast.encrypt(TEXT, recipients, armor=False)
    assert not written_in_process(message)
    assert home.cli("--decrypt", data=message) == TEXT
    account = Account("a", "localhost", "u", tuple(recipients))
    check = check_encryption_path(home.gpg, account)
    assert check.status == "WARN"
    assert check.detail.startswith("GnuPG, one process per message")
    assert (
        check_encryption_path(home.gpg, Account("a", "localhost", "u", (home.keys["cv25519"],))).status
        == "OK"
    )


def test_large_messages_go_through_gpg(home: Home) -> None:
    fast = InProcessEncryptor(home.gpg, max_bytes=len(TEXT) - 1)
    recipients = [home.keys["cv25519"]]
    assert not written_in_process(fast.encrypt(TEXT, recipients, armor=False))
    assert written_in_process(fast.encrypt(TEXT[:-1], recipients, armor=False))


def test_the_plan_follows_the_keyring() -> None:
    made = Path(tempfile.mkdtemp(prefix="icfast-"))
    made.chmod(0o700)
    try:
        fingerprint = _generate(made, "k", "ed25519", "cert,sign", PAST_2019)
        first = _add_subkey(made, fingerprint, "cv25519", "never", PAST_2019)
        fast = InProcessEncryptor(GnuPG(made))
        assert session_key_ids(fast.encrypt(b"x", [fingerprint])) == {first}
        second = _add_subkey(made, fingerprint, "cv25519", "never")  # a newer subkey: gpg moves to it
        assert session_key_ids(fast.encrypt(b"x", [fingerprint])) == {second}
        _revoke_newest_subkey(made, fingerprint, 2)  # revoked: gpg goes back to the first
        assert session_key_ids(fast.encrypt(b"x", [fingerprint])) == {first}
    finally:
        subprocess.run(["gpgconf", "--homedir", str(made), "--kill", "all"], check=False)
        shutil.rmtree(made, ignore_errors=True)


def test_the_plan_ends_when_a_chosen_key_expires() -> None:
    made = Path(tempfile.mkdtemp(prefix="icfast-"))
    made.chmod(0o700)
    try:
        fingerprint = _generate(made, "k", "ed25519", "cert,sign")
        _add_subkey(made, fingerprint, "cv25519", "10d")
        gpg = GnuPG(made)
        plan = InProcessEncryptor(gpg).plan([fingerprint])
        assert isinstance(plan, Plan)
        (certificate,) = list_certificates(gpg, (fingerprint,))
        expires = certificate.subkeys[0].expires
        assert expires is not None
        assert plan.valid_until == expires.timestamp()
    finally:
        subprocess.run(["gpgconf", "--homedir", str(made), "--kill", "all"], check=False)
        shutil.rmtree(made, ignore_errors=True)


def test_threads_share_one_encryptor(home: Home) -> None:
    fast = InProcessEncryptor(home.gpg)
    recipient_sets = [[home.keys["cv25519"]], [home.keys["rsa-primary"], home.keys["nistp256"]]]
    jobs = [(b"message %d" % i, recipient_sets[i % 2]) for i in range(24)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda job: fast.encrypt(job[0], job[1], armor=False), jobs))
    assert all(written_in_process(r) for r in results)
    assert [home.cli("--decrypt", data=r) for r in results[:6]] == [job[0] for job in jobs[:6]]
    assert len({r for r in results}) == len(results)  # fresh session keys and prefixes each time


def subkey_body(home: Home, name: str) -> bytes:
    """The body of the (newest) encryption subkey packet of key `name`, as gpg exports it."""
    exported = home.cli("--export", home.keys[name])
    bodies = [p.body for p in PacketPile.from_bytes(exported) if p.tag == Tag.PublicSubkey]
    return bodies[-1]


def test_key_packets_parse_to_the_key_ids_gpg_lists(home: Home) -> None:
    for name in ("cv25519", "nistp256"):
        key = writer.RecipientKey.parse(subkey_body(home, name))
        (certificate,) = list_certificates(home.gpg, (home.keys[name],))
        assert key.fingerprint.hex().upper() == certificate.subkeys[-1].fingerprint


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda body: body[:20], "cut short"),
        (lambda body: b"\x05" + body[1:], "version 4"),
        (lambda body: body[:-40] + bytes(32) + body[-8:], "not valid"),  # a point that is not on P-256
    ],
    ids=["cut short", "version 5", "point off the curve"],
)
def test_a_damaged_key_packet_is_refused_when_parsed(
    home: Home, damage: Callable[[bytes], bytes], reason: str
) -> None:
    with pytest.raises(writer.UnsupportedKeyError, match=reason):
        writer.RecipientKey.parse(damage(subkey_body(home, "nistp256")))


def test_one_encryptor_per_home_whatever_the_gnupg_object(home: Home) -> None:
    first, again = encryptor(GnuPG(home.gpg.home)), encryptor(GnuPG(home.gpg.home))
    assert first is again
    assert encryptor(GnuPG(home.gpg.home, compression=Compression.NONE)) is not first


def test_without_compression_both_paths_write_no_compressed_packet(home: Home) -> None:
    gpg = GnuPG(home.gpg.home, compression=Compression.NONE)
    recipients = [home.keys["cv25519"]]
    ours = InProcessEncryptor(gpg).encrypt(TEXT, recipients, armor=False)
    theirs = gpg.encrypt(TEXT, recipients, armor=False)
    assert written_in_process(ours)
    assert packet_kinds(home, ours) == packet_kinds(home, theirs)
    assert packet_kinds(home, ours)[1] == [
        ":encrypted data packet: mdc_method: 2",
        ":literal data packet: mode b (62)",
    ]
    assert sq_decrypt(home, ours) == TEXT


def test_the_plan_is_made_once_while_the_keyring_stays_the_same(home: Home) -> None:
    fast = InProcessEncryptor(home.gpg)
    recipients = [home.keys["cv25519"], home.keys["rsa-primary"]]
    plan = fast.plan(recipients)
    for _ in range(3):  # gpg's own runs (the probe, the listing) must not look like a keyring change
        fast.encrypt(b"x", recipients)
    home.cli("--list-keys")
    assert fast.plan(recipients) is plan


def test_without_pysequoia_gpg_encrypts_and_says_why(home: Home) -> None:
    script = f"""
import sys
sys.modules["pysequoia"] = None  # as on a platform without its wheel
from pathlib import Path
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.openpgp.inprocess import encryptor
fast = encryptor(GnuPG(Path({str(home.gpg.home)!r})))
print(fast.describe([{home.keys["cv25519"]!r}]))
sys.stdout.flush()
sys.stdout.buffer.write(fast.encrypt(b"no sequoia here", [{home.keys["cv25519"]!r}], armor=False))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    described, message = done.stdout.split(b"\n", 1)
    assert described == b"GnuPG, one process per message (pysequoia is not installed)"
    assert not written_in_process(message)
    assert home.cli("--decrypt", data=message) == b"no sequoia here"


# Literal lengths at the edges of one-, two- and five-octet packet lengths (RFC 4880 §4.2.2), and the
# SEIPD packet around them crossing the same edges a few octets later.
EDGES = [0, 1, 150, 185, 186, 187, 200, 8300, 8377, 8378, 8379, 8400]


@pytest.mark.parametrize("size", EDGES)
def test_every_length_opens_in_both_readers(home: Home, size: int) -> None:
    data = os.urandom(size)
    for compression in (Compression.NONE, Compression.ZLIB_FAST):
        gpg = GnuPG(home.gpg.home, compression=compression)
        message = InProcessEncryptor(gpg).encrypt(data, [home.keys["cv25519"]], armor=False)
        assert written_in_process(message)
        assert sq_decrypt(home, message) == home.cli("--decrypt", data=message) == data


def test_a_curve25519_point_of_low_order_is_refused_when_parsed(home: Home) -> None:
    body = subkey_body(home, "cv25519")
    assert body[19] == 0x40  # version, time, algorithm, OID (1 + 10 octets), MPI bit count, then 0x40
    with pytest.raises(writer.UnsupportedKeyError, match="not valid"):
        writer.RecipientKey.parse(body[:20] + bytes(32) + body[52:])
