"""Other OpenPGP software reads what seal() writes, without imapcrypt's code on the reading side."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.sequoia import sq_decrypt
from tests.samples import load

SECRET = b"interop-installation-secret-0123456789"


@pytest.fixture(scope="module", params=["in process", "gpg process"])
def sealed(gnupg_home: GnupgHome, request: pytest.FixtureRequest) -> bytes:
    """E sealed by each OpenPGP path: every test here holds both to the same readers."""
    gpg = GnuPG(gnupg_home.path)
    path = gpg if request.param == "gpg process" else None
    message = envelope.seal(load("simple"), gpg, [gnupg_home.fingerprint], SECRET, encrypt_with=path).message
    # gpg writes its session-key packets in the old packet format, the in-process path in the new one.
    first = base64.b64decode(re.split(rb"\r?\n\r?\n", armored_part(message))[1][:4])[0]
    assert (first == 0xC1) == (request.param == "in process")
    return message


def armored_part(message: bytes) -> bytes:
    """The second part of the multipart/encrypted, found by Python's email parser (not by imapcrypt)."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    parts = list(parsed.iter_parts())
    assert len(parts) == 2
    payload = parts[1].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def unfolded_header(entity: bytes) -> list[bytes]:
    head = re.split(rb"\r?\n\r?\n", entity, maxsplit=1)[0]
    return re.sub(rb"\r?\n(?=[ \t])", b"", head).splitlines()


def test_gpg_command_line_decrypts_to_the_inner_entity(sealed: bytes, gnupg_home: GnupgHome) -> None:
    inner = gnupg_home.gpg("--decrypt", input=armored_part(sealed))
    head = unfolded_header(inner)
    assert head[0].startswith(b"Content-Type: multipart/mixed;")
    assert b'protected-headers="v1"' in head[0]
    assert b'hp="cipher"' in head[0]
    assert b"Subject: Lunch on Thursday?" in head
    outer = unfolded_header(sealed)
    hp_outer = [line.removeprefix(b"HP-Outer: ") for line in head if line.startswith(b"HP-Outer: ")]
    assert b"Subject: [...]" in hp_outer
    assert set(hp_outer) == {
        line for line in outer if not line.startswith((b"Content-Type:", b"MIME-Version:"))
    }
    parsed = email.message_from_bytes(inner, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    (child,) = parsed.iter_parts()
    assert child.get_content_type() == "text/plain"
    assert load("simple") in inner


def test_sequoia_decrypts_to_the_same_inner_entity(
    sealed: bytes, gnupg_home: GnupgHome, sq_key_file: Path
) -> None:
    inner = sq_decrypt(armored_part(sealed), sq_key_file)
    assert inner == gnupg_home.gpg("--decrypt", input=armored_part(sealed))
    assert load("simple") in inner


def test_packets_are_seipd_with_mdc_binary_literal_and_never_aead(
    sealed: bytes, gnupg_home: GnupgHome
) -> None:
    listing = gnupg_home.gpg("--list-packets", input=armored_part(sealed)).decode()
    assert ":encrypted data packet:" in listing
    assert "mdc_method: 2" in listing
    assert "aead" not in listing.lower()
    assert re.search(r":literal data packet:\n\s+mode b ", listing)


def test_subject_header_decrypts_with_gpg_command_line(sealed: bytes, gnupg_home: GnupgHome) -> None:
    parsed = email.message_from_bytes(sealed, policy=email.policy.compat32)
    value = "".join(str(parsed[envelope.SUBJECT_HEADER]).split())
    assert gnupg_home.gpg("--decrypt", input=base64.b64decode(value)) == b"Lunch on Thursday?"


def test_a_pgp_signature_still_verifies_after_restore(gnupg_home: GnupgHome, tmp_path: Path) -> None:
    # RFC 3156 §5: the signature covers the first part, headers included, without the CRLF before the
    # delimiter. Sealing must not change one byte of it.
    signed_part = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned words.\r\n"
    signature = gnupg_home.gpg("--armor", "--detach-sign", input=signed_part).replace(b"\n", b"\r\n")
    raw = (
        b"From: t@example.org\r\nSubject: signed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; "
        b'micalg=pgp-sha512; protocol="application/pgp-signature"; boundary="s"\r\n\r\n'
        b"--s\r\n"
        + signed_part
        + b"\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\n"
        + signature
        + b"\r\n--s--\r\n"
    )
    gpg = GnuPG(gnupg_home.path)
    assert envelope.classify(raw) is envelope.Kind.PLAINTEXT
    restored = envelope.restore(envelope.seal(raw, gpg, [gnupg_home.fingerprint], SECRET).message, gpg)
    part = restored.split(b"--s\r\n")[1].removesuffix(b"\r\n")
    detached = restored.split(b"pgp-signature\r\n\r\n")[1].split(b"\r\n--s--")[0]
    (tmp_path / "part").write_bytes(part)
    (tmp_path / "part.asc").write_bytes(detached)
    gnupg_home.gpg("--verify", str(tmp_path / "part.asc"), str(tmp_path / "part"))  # raises if bad
