"""classify(): plaintext, ours, or already encrypted by the sender (docs/format.md)."""

from __future__ import annotations

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
def test_header_fields_alone_give_the_same_answer_except_inline_pgp(name: str) -> None:
    expected = EXPECTED.get(name, Kind.PLAINTEXT)
    from_headers = envelope.classify(header_fields(load(name)))
    assert from_headers is (Kind.PLAINTEXT if expected is Kind.INLINE_PGP else expected)


def test_our_copy_is_ours_from_whole_message_and_from_headers(gpg: GnuPG, gnupg_home: GnupgHome) -> None:
    sealed = envelope.seal(load("simple"), gpg, [gnupg_home.fingerprint], b"s" * 32)
    assert envelope.classify(sealed.message) is Kind.OURS
    assert envelope.classify(header_fields(sealed.message)) is Kind.OURS


def test_a_forged_marker_on_plaintext_does_not_stop_encryption() -> None:
    raw = b"X-Imapcrypt: v=1; id=abcdefghijklmnopqrstuvwxyz234567\r\nSubject: x\r\n\r\nplain\r\n"
    assert envelope.classify(raw) is Kind.PLAINTEXT


def test_an_unknown_marker_version_on_encrypted_mail_is_left_alone() -> None:
    raw = (
        b"X-Imapcrypt: v=2; id=abcdefghijklmnopqrstuvwxyz234567\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b\r\n\r\n'
    )
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
