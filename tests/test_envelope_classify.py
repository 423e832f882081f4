"""classify(): plaintext, ours, or already encrypted by the sender (docs/format.md)."""

from __future__ import annotations

import base64

import pytest

from imapcrypt.message import envelope
from imapcrypt.message.envelope import CLASSIFY_HEADERS, Kind
from imapcrypt.message.headers import HeaderSection
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.gnupg_home import GnupgHome
from tests.samples import NAMES, load

EXPECTED = {
    "encrypted_pgp_mime": Kind.PGP_MIME,
    "encrypted_inline": Kind.INLINE_PGP,
    "encrypted_inline_base64": Kind.INLINE_PGP,
    "encrypted_inline_multipart": Kind.INLINE_PGP,
    "encrypted_smime": Kind.SMIME,
    "encrypted_smime_legacy": Kind.SMIME,
    "encrypted_smime_octet": Kind.SMIME,
}
SIGNED_ONLY = ["signed_pgp_mime", "signed_pgp_inline", "signed_smime", "signed_smime_opaque"]


@pytest.fixture(scope="module")
def gpg(gnupg_home: GnupgHome) -> GnuPG:
    return GnuPG(gnupg_home.path)


def header_fields(raw: bytes, names: tuple[str, ...] = CLASSIFY_HEADERS) -> bytes:
    """What BODY.PEEK[HEADER.FIELDS (names)] returns: the named fields, then an empty line."""
    wanted = {n.lower() for n in names}
    fields = [f.crlf() for f in HeaderSection.parse(raw).fields if f.key in wanted]
    return b"".join(fields) + b"\r\n"


@pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "bare-lf"])
@pytest.mark.parametrize("name", NAMES)
def test_every_sample_is_classified(name: str, crlf: bool) -> None:
    assert envelope.classify(load(name, crlf=crlf)) is EXPECTED.get(name, Kind.PLAINTEXT)


@pytest.mark.parametrize("name", SIGNED_ONLY)
def test_signed_only_mail_is_plaintext(name: str) -> None:
    assert envelope.classify(load(name)) is Kind.PLAINTEXT


@pytest.mark.parametrize("name", NAMES)
def test_header_fields_alone_never_prove_sender_encryption(name: str) -> None:
    assert envelope.classify(header_fields(load(name))) is Kind.PLAINTEXT


def test_our_copy_is_ours_from_whole_message_and_from_headers(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    sealed = envelope.seal(load("simple"), gpg, [gnupg_home.fingerprint], b"s" * 32)
    assert envelope.classify(sealed.message) is Kind.OURS
    assert envelope.classify(header_fields(sealed.message)) is Kind.OURS


def test_a_forged_marker_on_plaintext_does_not_stop_encryption() -> None:
    raw = b"X-Imapcrypt: v=1; id=abcdefghijklmnopqrstuvwxyz234567\r\nSubject: x\r\n\r\nplain\r\n"
    assert envelope.classify(raw) is Kind.PLAINTEXT


def test_an_unknown_marker_version_on_encrypted_mail_is_left_alone() -> None:
    raw = b"X-Imapcrypt: v=2; id=abcdefghijklmnopqrstuvwxyz234567\r\n" + load("encrypted_pgp_mime")
    assert envelope.classify(raw) is Kind.PGP_MIME


def test_an_armor_block_that_does_not_open_the_text_is_plaintext() -> None:
    assert envelope.classify(load("boundary_lookalikes")) is Kind.PLAINTEXT
    raw = b"Subject: x\r\n\r\nAs promised, the output:\r\n-----BEGIN PGP MESSAGE-----\r\nabc\r\n"
    assert envelope.classify(raw + b"-----END PGP MESSAGE-----\r\n") is Kind.PLAINTEXT


def test_an_armor_attachment_after_an_html_body_is_plaintext() -> None:
    raw = (
        b'Subject: x\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"-----BEGIN PGP MESSAGE-----\r\nabc\r\n-----END PGP MESSAGE-----\r\n--b--\r\n"
    )
    assert envelope.classify(raw) is Kind.PLAINTEXT


@pytest.mark.parametrize(
    "raw",
    [b"", b"\r\n", b"\r\n\r\nbody", b"no header here", b"\0\xff\xfe", b"Content-Type: multipart/encrypted"],
)
def test_classify_never_raises_on_odd_input(raw: bytes) -> None:
    assert isinstance(envelope.classify(raw), Kind)


def test_classify_headers_name_every_field_classify_reads() -> None:
    assert {"content-type", "x-imapcrypt"} <= {n.lower() for n in CLASSIFY_HEADERS}


# -- the hostile sender: headers that claim encryption around readable text (docs/format.md) --------
def _armor(raw: bytes) -> bytes:
    start = raw.index(b"-----BEGIN PGP MESSAGE-----")
    end = raw.index(b"-----END PGP MESSAGE-----") + len(b"-----END PGP MESSAGE-----")
    return raw[start:end]


ARMOR = _armor(load("encrypted_pgp_mime"))
PGP_HEAD = (
    b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\r\n\r\n'
)
VERSION_PART = b"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"


def _pgp_mime(data: bytes, *, preamble: bytes = b"", extra: bytes = b"", epilogue: bytes = b"") -> bytes:
    return (
        PGP_HEAD + preamble + VERSION_PART
        + b"--b\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        + extra + b"--b--\r\n" + epilogue
    )  # fmt: skip


def test_a_well_formed_pgp_mime_message_is_left_alone() -> None:
    assert envelope.classify(_pgp_mime(ARMOR)) is Kind.PGP_MIME
    preamble = b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
    assert envelope.classify(_pgp_mime(ARMOR, preamble=preamble)) is Kind.PGP_MIME


HOSTILE_PGP_MIME = {
    "plaintext-in-the-data-part": _pgp_mime(b"Meet me at 10, the code is 1234"),
    "armor-of-plaintext": _pgp_mime(
        b"-----BEGIN PGP MESSAGE-----\r\n\r\nVGhlIGNvZGUgaXMgMTIzNA==\r\n-----END PGP MESSAGE-----"
    ),
    "text-after-the-armor": _pgp_mime(ARMOR + b"\r\nthe code is 1234"),
    "text-in-an-armor-header": _pgp_mime(
        ARMOR.replace(b"-----\r\n", b"-----\r\nSubject: the code is 1234\r\n", 1)
    ),
    "a-third-part": _pgp_mime(ARMOR, extra=b"--b\r\nContent-Type: text/plain\r\n\r\nthe code is 1234\r\n"),
    "text-in-the-preamble": _pgp_mime(ARMOR, preamble=b"the code is 1234\r\n"),
    "text-in-the-epilogue": _pgp_mime(ARMOR, epilogue=b"the code is 1234\r\n"),
    "no-version-part": PGP_HEAD + b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n",
}


@pytest.mark.parametrize("name", HOSTILE_PGP_MIME)
def test_fake_pgp_mime_is_plaintext(name: str) -> None:
    assert envelope.classify(HOSTILE_PGP_MIME[name]) is Kind.PLAINTEXT


def test_a_literal_data_packet_dressed_as_pgp_mime_is_plaintext(gnupg_home: GnupgHome) -> None:
    stored = gnupg_home.gpg("--store", "--armor", input=b"the code is 1234")
    assert envelope.classify(_pgp_mime(stored.replace(b"\n", b"\r\n").strip())) is Kind.PLAINTEXT


def _smime(content_type: bytes, body: bytes) -> bytes:
    return (
        b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: " + content_type
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(body)
    )  # fmt: skip


DER = base64.b64decode(load("encrypted_smime").split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize(
    "content_type",
    [b"application/pkcs7-mime", b"application/pkcs7-mime; smime-type=enveloped-data"],
    ids=["no-smime-type", "fake-smime-type"],
)
def test_fake_smime_is_plaintext(content_type: bytes) -> None:
    assert envelope.classify(_smime(content_type, b"the code is 1234")) is Kind.PLAINTEXT
    assert envelope.classify(_smime(content_type, DER + b"the code is 1234")) is Kind.PLAINTEXT
    assert envelope.classify(_smime(content_type, DER)) is Kind.SMIME


def test_smime_declared_as_signed_data_is_plaintext() -> None:
    raw = _smime(b"application/pkcs7-mime; smime-type=signed-data", DER)
    assert envelope.classify(raw) is Kind.PLAINTEXT


def test_a_der_signed_data_without_smime_type_is_plaintext() -> None:
    # ContentInfo with signedData (1.2.840.113549.1.7.2): readable by anyone.
    signed = bytearray(DER)
    at = signed.index(bytes.fromhex("2a864886f70d010703"))
    signed[at + 8] = 2
    assert envelope.classify(_smime(b"application/pkcs7-mime", bytes(signed))) is Kind.PLAINTEXT


def test_inline_armor_with_text_beside_it_is_plaintext() -> None:
    inline = load("encrypted_inline")
    assert envelope.classify(inline) is Kind.INLINE_PGP
    assert envelope.classify(inline + b"\r\nthe code is 1234\r\n") is Kind.PLAINTEXT
    head, body = inline.split(b"\r\n\r\n", 1)
    assert envelope.classify(head + b"\r\n\r\nthe code is 1234\r\n" + body) is Kind.PLAINTEXT


def test_armor_inside_an_attached_message_is_plaintext() -> None:
    inline = load("encrypted_inline")
    raw = (
        b'Subject: fwd\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
        b"Content-Type: message/rfc822\r\n\r\n" + inline + b"\r\n--m--\r\n"
    )
    assert envelope.classify(raw) is Kind.PLAINTEXT


def test_inline_armor_next_to_a_readable_attachment_is_plaintext() -> None:
    raw = load("encrypted_inline_multipart").replace(
        b'Content-Type: application/octet-stream; name="report.pdf.pgp"', b"Content-Type: text/html"
    )
    assert envelope.classify(raw) is Kind.PLAINTEXT


def test_mail_without_a_header_or_after_an_mbox_line_is_plaintext() -> None:
    pgp = load("encrypted_pgp_mime")
    assert envelope.classify(b"From alice@example.org Tue Jan  2 10:00:00 2024\r\n" + pgp) is Kind.PLAINTEXT
    assert envelope.classify(pgp.split(b"\r\n\r\n", 1)[1]) is Kind.PLAINTEXT


def test_deeply_nested_mime_is_plaintext_and_fast() -> None:
    nest = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(1000)
    )
    raw = b"Subject: x\r\n" + nest + ARMOR + b"\r\n"
    assert envelope.classify(raw) is Kind.PLAINTEXT
