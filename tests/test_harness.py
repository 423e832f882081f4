"""The test harness itself: real Dovecot and GnuPG behave as the other tests assume."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable

from tests.fixtures.dovecot import DovecotServer, hide_capabilities, start_dovecot
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.mailbox import Mailbox


def _processes_using(path: str) -> str:
    return subprocess.run(["pgrep", "-af", path], check=False, capture_output=True, text=True).stdout


def test_dovecot_starts_and_stops_cleanly() -> None:
    server = start_dovecot()
    try:
        assert _processes_using(str(server.config_path))
        assert server.startup_seconds < 15
    finally:
        server.stop()
    assert _processes_using(str(server.config_path)) == ""
    shutil.rmtree(server.root)


def test_appended_message_reads_back_identical(mailbox: Mailbox) -> None:
    raw = (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
        b"Date: Mon, 2 Jan 2023 10:00:00 +0100\r\n\r\nbody line\r\n\x01binary\xff\xfe\r\n"
    )
    when = dt.datetime(2023, 1, 2, 10, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    mailbox.append(raw, flags=[b"\\Seen", b"$Forwarded", b"\\Flagged"], when=when)
    [stored] = mailbox.state()
    assert stored.body == raw
    assert stored.flags == {b"\\Seen", b"$Forwarded", b"\\Flagged"}
    # Aware datetimes compare as instants. Maildir keeps INTERNALDATE as the file's mtime, so
    # Dovecot answers in its own zone: the instant survives, the sender's offset cannot.
    assert stored.internaldate == when


def test_dovecot_serves_nul_bytes_as_0x80(mailbox: Mailbox) -> None:
    # RFC 3501 literals may not carry NUL; Dovecot substitutes 0x80 in BODY[]. imapcrypt seals
    # what BODY.PEEK[] returns, so "byte-exact" means exact to what the server serves
    # (docs/format.md).
    mailbox.append(b"Subject: nul\r\n\r\na\x00b\r\n")
    [stored] = mailbox.state()
    assert stored.body == b"Subject: nul\r\n\r\na\x80b\r\n"


def test_each_test_gets_an_empty_mailbox(mailbox: Mailbox) -> None:
    assert mailbox.state() == []


def test_gnupg_home_encrypts_and_decrypts(gnupg_home: GnupgHome) -> None:
    blob = bytes(range(256)) * 4
    sealed = gnupg_home.gpg("--encrypt", "--recipient", gnupg_home.fingerprint, input=blob)
    assert blob not in sealed
    assert gnupg_home.gpg("--decrypt", input=sealed) == blob


def test_variant_without_uidplus_really_lacks_it(
    dovecot_factory: Callable[[str], DovecotServer],
    mailbox_on: Callable[[DovecotServer], Mailbox],
    mailbox: Mailbox,
) -> None:
    plain_caps = mailbox.capabilities()
    assert b"UIDPLUS" in plain_caps
    variant = mailbox_on(dovecot_factory(hide_capabilities("UIDPLUS", "MOVE")))
    caps = variant.capabilities()
    assert b"UIDPLUS" not in caps
    assert b"MOVE" not in caps
    assert b"IDLE" in caps
