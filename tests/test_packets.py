"""OpenPGP packet framing (openpgp/packets.py) on what real GnuPG writes and on forgeries."""

from __future__ import annotations

import os

import pytest

from imapcrypt.openpgp import packets
from tests.fixtures.gnupg_home import GnupgHome


def _encrypt(home: GnupgHome, data: bytes, *args: str) -> bytes:
    return home.gpg("--trust-model", "always", "--encrypt", *args, input=data)


@pytest.fixture(scope="module")
def real(gnupg_home: GnupgHome) -> bytes:
    return _encrypt(gnupg_home, b"hello", "-r", gnupg_home.fingerprint)


def test_what_gnupg_encrypts_is_an_encrypted_message(real: bytes) -> None:
    assert packets.is_encrypted_message(real)


def test_partial_lengths_of_a_streamed_large_message_are_followed(gnupg_home: GnupgHome) -> None:
    # gpg writes data read from a pipe with partial body lengths; random data defeats compression.
    big = _encrypt(gnupg_home, os.urandom(300_000), "-r", gnupg_home.fingerprint)
    assert packets.is_encrypted_message(big)
    assert not packets.is_encrypted_message(big[:-1])
    assert not packets.is_encrypted_message(big + b"\n")


def test_a_symmetric_message_counts_and_a_stored_one_does_not(gnupg_home: GnupgHome) -> None:
    symmetric = gnupg_home.gpg(
        "--pinentry-mode", "loopback", "--passphrase", "x", "--symmetric", input=b"hello"
    )
    assert packets.is_encrypted_message(symmetric)
    stored = gnupg_home.gpg("--store", input=b"readable by anyone")  # a literal data packet
    assert not packets.is_encrypted_message(stored)


@pytest.mark.parametrize(
    "forged",
    [
        b"",
        b"hello world",
        bytes([0xC1, 0x05, 3, 0, 0, 0, 0]),  # a session-key packet and nothing after it
        bytes([0xD2, 0x02, 1, 0]),  # encrypted data with no session-key packet before it
        bytes([0xC1, 0x02, 9, 0, 0xD2, 0x02, 1, 0]),  # PKESK of an unknown version
        bytes([0xC1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),  # a length of 4 GB in 6 bytes
        bytes([0xC1, 0xE5]) + b"\0" * 10,  # a partial length where none may be
    ],
)
def test_forgeries_are_refused(forged: bytes) -> None:
    assert not packets.is_encrypted_message(forged)


def test_text_after_the_encrypted_packet_is_refused(real: bytes) -> None:
    literal = bytes([0xCB, 0x08]) + b"b\0\0\0\0\0hi"
    assert not packets.is_encrypted_message(real + literal)


def test_recipient_key_ids_are_read_and_hidden_ones_show_as_zero(gnupg_home: GnupgHome, real: bytes) -> None:
    listing = gnupg_home.gpg("--with-colons", "--list-keys", gnupg_home.fingerprint).decode()
    subkey = next(line.split(":")[4] for line in listing.splitlines() if line.startswith("sub:"))
    assert packets.pkesk_key_ids(real) == [subkey]
    hidden = _encrypt(gnupg_home, b"x", "--hidden-recipient", gnupg_home.fingerprint)
    assert packets.pkesk_key_ids(hidden) == ["0" * 16]
    assert packets.is_encrypted_message(hidden)


def test_the_cut_head_of_a_message_still_names_its_data_packet(real: bytes) -> None:
    assert packets.first_data_packet(real[:120]) == (packets.SEIPD, 1)
    assert packets.first_data_packet(b"junk") == (-1, -1)
