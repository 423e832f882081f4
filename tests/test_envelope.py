"""The encrypted message (docs/format.md): byte-exact round trips, the structure of E, ids, threads."""

from __future__ import annotations

import base64
import email
import email.policy
import os
import re
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import pytest

from imapcrypt.errors import ConfigError
from imapcrypt.message import envelope
from imapcrypt.message.envelope import Kind, Sealed
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.sequoia import assert_sq_opens_like_gpg
from tests.samples import NAMES, load

SECRET = b"test-installation-secret-0123456789"


@pytest.fixture(scope="module")
def gpg(gnupg_home: GnupgHome) -> GnuPG:
    return GnuPG(gnupg_home.path)


def seal(
    raw: bytes,
    gpg: GnuPG,
    home: GnupgHome,
    *,
    outer_headers: tuple[str, ...] = envelope.DEFAULT_OUTER_HEADERS,
    replace_message_id: bool = False,
) -> Sealed:
    return envelope.seal(
        raw,
        gpg,
        [home.fingerprint],
        SECRET,
        outer_headers=outer_headers,
        replace_message_id=replace_message_id,
    )


def assert_wire_format(message: bytes) -> None:
    """What an IMAP APPEND needs: CRLF only, no NUL, no line over 998 octets."""
    assert message.count(b"\n") == message.count(b"\r\n") == message.count(b"\r")
    assert b"\0" not in message
    assert max(len(line) for line in message.split(b"\r\n")) <= 998


def header_lines(message: bytes) -> list[bytes]:
    """The unfolded header fields of a CRLF message."""
    head = message.split(b"\r\n\r\n", 1)[0]
    return re.sub(rb"\r\n(?=[ \t])", b"", head).split(b"\r\n")


def inner_entity(sealed: bytes, gpg: GnuPG) -> bytes:
    start = sealed.index(b"-----BEGIN PGP MESSAGE-----")
    return gpg.decrypt(sealed[start:])


# -- byte-exact round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "bare-lf"])
@pytest.mark.parametrize("name", NAMES)
def test_every_sample_round_trips_byte_exact(
    name: str, crlf: bool, gpg: GnuPG, gnupg_home: GnupgHome, sq_key_file: Path
) -> None:
    raw = load(name, crlf=crlf)
    sealed = seal(raw, gpg, gnupg_home)
    assert_wire_format(sealed.message)
    assert envelope.classify(sealed.message) is Kind.OURS
    assert envelope.restore(sealed.message, gpg) == raw
    assert_sq_opens_like_gpg(sealed.message, gpg, sq_key_file)


GENERATED = {
    "no final newline": b"From: a@example.org\r\nSubject: x\r\n\r\nno newline at the end",
    "header without newline": b"Subject: just this",
    "nul bytes": b"From: a@example.org\r\nSubject: nul\0inside\r\n\r\nbody\0with\0\0NULs\r\n\0",
    "bare cr": b"From: a@example.org\r\nSubject: cr\rinside\r\n\r\nold mac\rline\rendings\r",
    "mixed endings": b"From: a@example.org\nSubject: mixed\r\n\nbody\r\nmore\nend\r\n",
    "trailing blank lines": b"Subject: blanks\r\n\r\nbody\r\n\r\n\r\n\r\n",
    "crlf then delimiter": b"Subject: x\r\n\r\nbody\r\n\r\n--\r\n",
    "8bit part": (
        b"Subject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "Ünïcödé ✓ 東京\r\n".encode()
    ),
    "binary part": (
        b'Subject: binary\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        + bytes(range(256)) * 4
        + b"\r\n--b--\r\n"
    ),
    "armor and delimiter lookalikes": (
        b"Subject: tricky\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n--=_imapcrypt_\r\n"
        b"-----END PGP MESSAGE-----\r\n\r\n--\r\n--=_imapcrypt_--\r\n"
    ),
}


@pytest.mark.parametrize("raw", GENERATED.values(), ids=GENERATED.keys())
def test_edge_cases_round_trip_byte_exact(
    raw: bytes, gpg: GnuPG, gnupg_home: GnupgHome, sq_key_file: Path
) -> None:
    sealed = seal(raw, gpg, gnupg_home)
    assert_wire_format(sealed.message)
    assert envelope.restore(sealed.message, gpg) == raw
    assert_sq_opens_like_gpg(sealed.message, gpg, sq_key_file)


def test_a_25_mb_attachment_round_trips(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    attachment = base64.encodebytes(os.urandom(18_750_000)).replace(b"\n", b"\r\n")
    raw = (
        b"From: a@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n--b\r\n"
        b"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + attachment
        + b"--b--\r\n"
    )
    assert len(raw) > 25_000_000
    sealed = seal(raw, gpg, gnupg_home)
    assert envelope.restore(sealed.message, gpg) == raw


# -- the structure of E --------------------------------------------------------------------------------


def test_python_email_sees_multipart_encrypted_with_two_parts(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    sealed = seal(load("simple"), gpg, gnupg_home)
    parsed = email.message_from_bytes(sealed.message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/encrypted"
    assert parsed.get_param("protocol") == "application/pgp-encrypted"
    control, data = parsed.iter_parts()
    assert len(list(parsed.iter_parts())) == 2
    assert control.get_content_type() == "application/pgp-encrypted"
    version, armored = control.get_payload(), data.get_payload()
    assert isinstance(version, str)
    assert isinstance(armored, str)
    assert version.strip() == "Version: 1"
    assert data.get_content_type() == "application/octet-stream"
    assert armored.startswith("-----BEGIN PGP MESSAGE-----")
    assert armored.rstrip().endswith("-----END PGP MESSAGE-----")
    assert parsed.defects == []


def test_outer_header_copies_hidden_subject_and_marker(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    raw = load("simple")
    sealed = seal(raw, gpg, gnupg_home)
    outer = header_lines(sealed.message)
    original = header_lines(raw)
    for name in envelope.DEFAULT_OUTER_HEADERS:
        copies = [line for line in original if line.lower().startswith(name.lower().encode() + b":")]
        assert copies, name
        assert all(line in outer for line in copies), name
    assert b"Subject: [...]" in outer
    assert not any(b"Lunch" in line for line in outer)
    assert not any(line.startswith((b"Received:", b"DKIM-Signature:", b"Return-Path:")) for line in outer)
    assert b"MIME-Version: 1.0" in outer
    marker = next(line for line in outer if line.startswith(b"X-Imapcrypt:"))
    assert envelope.marker_id(marker.split(b":", 1)[1]) == sealed.id == envelope.message_id(raw, SECRET)
    assert sealed.message.index(b"\r\n\r\n") < sealed.message.index(b"-----BEGIN PGP MESSAGE-----")


def test_inner_entity_carries_protected_headers_and_the_original(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    raw = load("simple")
    sealed = seal(raw, gpg, gnupg_home)
    inner = inner_entity(sealed.message, gpg)
    head = header_lines(inner)
    assert head[0].startswith(b"Content-Type: multipart/mixed;")
    assert b'protected-headers="v1"' in head[0]
    assert b'hp="cipher"' in head[0]
    assert b"Subject: Lunch on Thursday?" in head
    assert b"From: Alice Example <alice@example.org>" in head
    hp_outer = {line[len(b"HP-Outer: ") :] for line in head if line.startswith(b"HP-Outer: ")}
    outer = header_lines(sealed.message)
    structural = (b"Content-Type:", b"MIME-Version:")
    assert hp_outer == {line for line in outer if not line.startswith(structural)}
    assert raw in inner


def test_subject_comes_from_the_subject_header_alone(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    sealed = seal(load("long_folded"), gpg, gnupg_home)
    headers_only = sealed.message.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    expected = (
        "A long subject that is encoded and folded over several lines so that the header parser has "
        "to join encoded words ✓ and switch charsets mid-way über alles"
    )
    assert envelope.subject(headers_only, gpg) == expected


SUBJECTS = {
    "=?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?=": "Grüße aus Köln",
    "=?UTF-8?B?8J+OiSBQYXJ0eQ==?=": "🎉 Party",
    "=?koi8-r?b?8NLJ18XU?=": "Привет",
    "=?shift_jis?B?k/qWe4zq?=": "日本語",
    "=?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=": "日本語",
    "=?gb2312?B?1tDOxA==?=": "中文",
    "=?windows-1252?q?=93quoted=94_=80?=": "“quoted” €",
    "=?iso-8859-7?q?=E3=E5=E9=DC?= and =?utf-8?q?more?=": "γειά and more",
    "plain ascii": "plain ascii",
    "": "",
}


@pytest.mark.parametrize(("encoded", "decoded"), SUBJECTS.items(), ids=list(SUBJECTS.values()))
def test_rfc2047_subjects_in_several_charsets(
    encoded: str, decoded: str, gpg: GnuPG, gnupg_home: GnupgHome
) -> None:
    raw = f"From: a@example.org\r\nSubject: {encoded}\r\n\r\nbody\r\n".encode("ascii")
    sealed = seal(raw, gpg, gnupg_home)
    assert envelope.subject(sealed.message, gpg) == decoded
    assert envelope.restore(sealed.message, gpg) == raw


def test_raw_8bit_subjects(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    utf8 = seal(load("rfc6532_utf8"), gpg, gnupg_home)
    assert envelope.subject(utf8.message, gpg) == "Grüße aus Köln — 東京で会いましょう"
    assert "From: Zoë Ångström <zoë@exämple.org>".encode() in header_lines(utf8.message)
    # Bare Latin-1 bytes are no valid header: the subject is read as Latin-1 and the inner copy
    # is written as an encoded word instead of the raw bytes.
    latin1 = b"From: a@example.org\r\nSubject: Gr\xfc\xdfe\r\n\r\nbody\r\n"
    sealed = seal(latin1, gpg, gnupg_home)
    assert envelope.subject(sealed.message, gpg) == "Grüße"
    inner = email.message_from_bytes(inner_entity(sealed.message, gpg), policy=email.policy.default)
    assert inner["Subject"] == "Grüße"
    assert envelope.restore(sealed.message, gpg) == latin1


def test_missing_doubled_and_huge_subjects(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    assert envelope.subject(seal(load("no_subject"), gpg, gnupg_home).message, gpg) == ""
    assert envelope.subject(seal(load("two_subjects"), gpg, gnupg_home).message, gpg) == "The first subject"
    raw = b"Subject: " + b"spam " * 20_000 + b"\r\n\r\nbody\r\n"
    sealed = seal(raw, gpg, gnupg_home)
    assert envelope.subject(sealed.message, gpg) == ("spam " * 400)[: envelope.MAX_SUBJECT_CHARS]
    assert len(sealed.message.split(b"\r\n\r\n", 1)[0]) < 10_000
    assert envelope.restore(sealed.message, gpg) == raw


def test_unsafe_fields_stay_inside(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    raw = (
        b"From: a@example.org\r\nTo: nul\0@example.org\r\nCc: " + b"c" * 1000 + b"@example.org\r\n"
        b"Date: Tue, 02 Jan 2024 10:00:00 +0100\r\n\r\nbody\r\n"
    )
    sealed = seal(raw, gpg, gnupg_home)
    outer = header_lines(sealed.message)
    assert b"From: a@example.org" in outer
    assert not any(line.startswith((b"To:", b"Cc:")) for line in outer)
    assert envelope.restore(sealed.message, gpg) == raw


def test_bare_lf_input_keeps_its_bytes_inside_and_gets_crlf_outside(
    gpg: GnuPG, gnupg_home: GnupgHome
) -> None:
    raw = load("simple", crlf=False)
    sealed = seal(raw, gpg, gnupg_home)
    assert_wire_format(sealed.message)
    assert b"From: Alice Example <alice@example.org>\r\n" in sealed.message
    inner = inner_entity(sealed.message, gpg)
    found = re.search(rb'boundary="([^"]+)"', inner)
    assert found
    boundary = found.group(1)
    body = inner.split(b"\r\n\r\n", 1)[1]
    assert body == b"--" + boundary + b"\r\n" + raw + b"\r\n--" + boundary + b"--\r\n"


# -- configuration: which headers stay outside, Gmail's Message-ID ------------------------------------------


def test_outer_headers_are_configurable(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    sealed = seal(load("simple"), gpg, gnupg_home, outer_headers=("from", "Date"))
    outer = header_lines(sealed.message)
    assert b"From: Alice Example <alice@example.org>" in outer
    assert b"Date: Tue, 02 Jan 2024 10:00:00 +0100" in outer
    assert not any(line.startswith((b"To:", b"Cc:", b"Message-ID:")) for line in outer)


@pytest.mark.parametrize("name", ["Subject", "Content-Type", "MIME-Version", "X-Imapcrypt", "Bad Name:"])
def test_headers_that_cannot_go_outside_are_a_config_error(
    name: str, gpg: GnuPG, gnupg_home: GnupgHome
) -> None:
    with pytest.raises(ConfigError, match="cannot be copied"):
        seal(load("simple"), gpg, gnupg_home, outer_headers=("From", name))


def test_replace_message_id_keeps_the_original_inside(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    raw = load("simple")
    first = seal(raw, gpg, gnupg_home, replace_message_id=True)
    second = seal(raw, gpg, gnupg_home, replace_message_id=True)
    ids = [
        [line for line in header_lines(s.message) if line.startswith(b"Message-ID:")] for s in (first, second)
    ]
    assert len(ids[0]) == len(ids[1]) == 1
    assert ids[0] != ids[1]
    assert b"20240102100000.1234@example.org" not in ids[0][0]
    assert first.id == second.id
    assert b"Message-ID: <20240102100000.1234@example.org>" in header_lines(inner_entity(first.message, gpg))
    assert envelope.restore(first.message, gpg) == raw


# -- ids --------------------------------------------------------------------------------------------------


def test_message_id_is_stable_keyed_and_base32() -> None:
    raw = load("simple")
    ident = envelope.message_id(raw, SECRET)
    assert re.fullmatch(r"[a-z2-7]{32}", ident)
    assert envelope.message_id(raw, SECRET) == ident
    assert envelope.message_id(raw, SECRET + b"x") != ident
    assert envelope.message_id(raw + b"\r\n", SECRET) != ident
    with pytest.raises(ValueError, match="at least 16 bytes"):
        envelope.message_id(raw, b"short")


def test_sealing_twice_gives_the_same_id_and_different_ciphertext(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    raw = load("simple")
    first, second = seal(raw, gpg, gnupg_home), seal(raw, gpg, gnupg_home)
    assert first.id == second.id
    assert first.message != second.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("v=1; id=abcdefghijklmnopqrstuvwxyz234567", "abcdefghijklmnopqrstuvwxyz234567"),
        (b"v=1; id=abcdefghijklmnopqrstuvwxyz234567", "abcdefghijklmnopqrstuvwxyz234567"),
        ("  id=abcdefghijklmnopqrstuvwxyz234567 ;V=1\r\n", "abcdefghijklmnopqrstuvwxyz234567"),
        ("v=1;\r\n id=abcdefghijklmnopqrstuvwxyz234567", "abcdefghijklmnopqrstuvwxyz234567"),
        ("v=2; id=abcdefghijklmnopqrstuvwxyz234567", None),
        ("id=abcdefghijklmnopqrstuvwxyz234567", None),
        ("v=1; id=ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", None),
        ("v=1; id=short", None),
        ("v=1; id=abcdefghijklmnopqrstuvwxyz01", None),
        ("", None),
        (b"\xff\xfe garbage", None),
    ],
)
def test_marker_id_reads_only_v1_markers(value: str | bytes, expected: str | None) -> None:
    assert envelope.marker_id(value) == expected


def test_marker_value_round_trips() -> None:
    ident = envelope.message_id(b"Subject: x\r\n\r\n", SECRET)
    assert envelope.marker_id(envelope.marker_value(ident)) == ident


# -- threads ----------------------------------------------------------------------------------------------


def test_seal_and_restore_from_many_threads_at_once(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    originals = [load(NAMES[i % len(NAMES)]) + f"\r\n{i}".encode() for i in range(32)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        sealed = list(pool.map(lambda raw: seal(raw, gpg, gnupg_home), originals))
        restored = list(pool.map(lambda s: envelope.restore(s.message, gpg), sealed))
    assert restored == originals
    assert [s.id for s in sealed] == [envelope.message_id(raw, SECRET) for raw in originals]
