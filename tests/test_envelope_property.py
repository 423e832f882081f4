"""Properties over generated messages: restore(seal(m)) == m, adversarial bytes included."""

from __future__ import annotations

import email.header
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapcrypt.message import envelope
from imapcrypt.message.envelope import Kind
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.sequoia import assert_sq_opens_like_gpg

SECRET = b"property-installation-secret-0123456789"
WITH_GPG = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

END_OF_LINE = st.sampled_from([b"\r\n", b"\n", b"\r\n", b"\r\n", b""])
NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "References",
        "Content-Type",
        "X-Imapcrypt",
        "Received",
    ]
) | st.from_regex(r"[!-9;-~]{1,12}", fullmatch=True)
# Lines that mean something to MIME or OpenPGP parsers, mixed with raw bytes.
TRICKY_LINES = st.sampled_from(
    [
        b"--",
        b"--=_imapcrypt_",
        b"-----BEGIN PGP MESSAGE-----",
        b"-----END PGP MESSAGE-----",
        b"Content-Type: multipart/encrypted; boundary=x",
        b"X-Imapcrypt: v=1; id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        b"",
        b" ",
        b"\0",
        b"\r",
        b"=?utf-8?b?8J+OiQ==?=",
    ]
)
LINE = TRICKY_LINES | st.binary(max_size=80)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A header field first (or it is no message), then anything a mailbox might hold."""
    fields = draw(st.lists(st.tuples(NAMES, LINE, END_OF_LINE), min_size=1, max_size=8))
    head = b"".join(name.encode() + b": " + value + end for name, value, end in fields)
    body = draw(st.lists(st.tuples(LINE, END_OF_LINE), max_size=20))
    separator = draw(st.sampled_from([b"\r\n", b"\n", b""]))
    return head + separator + b"".join(line + end for line, end in body)


@pytest.fixture(scope="module")
def gpg(gnupg_home: GnupgHome) -> GnuPG:
    return GnuPG(gnupg_home.path)


def assert_wire_format(message: bytes) -> None:
    assert message.count(b"\n") == message.count(b"\r\n") == message.count(b"\r")
    assert b"\0" not in message
    assert max(len(line) for line in message.split(b"\r\n")) <= 998


@WITH_GPG
@given(raw=messages())
def test_generated_messages_round_trip(
    raw: bytes, gpg: GnuPG, gnupg_home: GnupgHome, sq_key_file: Path
) -> None:
    sealed = envelope.seal(raw, gpg, [gnupg_home.fingerprint], SECRET)
    assert_wire_format(sealed.message)
    assert envelope.classify(sealed.message) is Kind.OURS
    assert sealed.id == envelope.message_id(raw, SECRET)
    assert envelope.restore(sealed.message, gpg) == raw
    assert_sq_opens_like_gpg(sealed.message, gpg, sq_key_file)


@WITH_GPG
@given(raw=st.binary(max_size=3000))
def test_any_bytes_round_trip(raw: bytes, gpg: GnuPG, gnupg_home: GnupgHome, sq_key_file: Path) -> None:
    sealed = envelope.seal(raw, gpg, [gnupg_home.fingerprint], SECRET)
    assert_wire_format(sealed.message)
    assert envelope.restore(sealed.message, gpg) == raw
    assert_sq_opens_like_gpg(sealed.message, gpg, sq_key_file)


@settings(max_examples=20, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120))
def test_encoded_subjects_come_back_as_text(
    text: str, gpg: GnuPG, gnupg_home: GnupgHome, sq_key_file: Path
) -> None:
    text = " ".join(text.split())  # header folding does not keep runs of blanks
    encoded = email.header.Header(text, "utf-8", header_name="Subject").encode(linesep="\r\n")
    raw = b"Subject: " + encoded.encode("ascii") + b"\r\n\r\nbody\r\n"
    sealed = envelope.seal(raw, gpg, [gnupg_home.fingerprint], SECRET)
    assert envelope.subject(sealed.message, gpg) == text
    assert_sq_opens_like_gpg(sealed.message, gpg, sq_key_file)


@settings(max_examples=300, deadline=None)
@given(raw=messages() | st.binary(max_size=500) | st.builds(lambda v: b"Content-Type: " + v, st.binary()))
def test_classify_and_marker_id_never_raise(raw: bytes) -> None:
    assert isinstance(envelope.classify(raw), Kind)
    assert envelope.marker_id(raw) is None or envelope.marker_id(raw) == envelope.marker_id(
        raw.decode("latin-1")
    )
