"""Mail nobody here wrote: non-textbook messages and hostile senders, against the real Dovecot.

Every readable message ends up encrypted and comes back byte-exact ("exact" to what Dovecot serves:
NUL as 0x80, bare LF as CRLF); only mail whose content proves sender encryption is left alone
(docs/format.md "What is left alone").
"""

from __future__ import annotations

import base64
import datetime as dt
import os

import pytest

from imapcrypt.message import envelope
from tests.fixtures.corpus import Seed
from tests.fixtures.engine import Rig
from tests.samples import load

WHEN = dt.datetime(2020, 5, 1, 12, 0, tzinfo=dt.UTC)
SECRET = b"the code is 1234"


def _nested(depth: int) -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\r\n--n%d--\r\n" % i for i in reversed(range(depth)))
    return b"Subject: nested\r\n" + opening + b"Content-Type: text/plain\r\n\r\n" + SECRET + closing


NON_TEXTBOOK = {
    "mbox-from-line": b"From alice@example.org Tue Jan  2 10:00:00 2024\r\nFrom: a@example.org\r\n"
    b"Subject: mbox\r\n\r\n" + SECRET + b"\r\n",
    "no-header": SECRET + b"\r\nand more body text\r\n",
    "body-text-with-colon": b"Note: " + SECRET + b"\r\n\r\nmore\r\n",
    "bare-lf": b"From: a@example.org\nSubject: lf\n\n" + SECRET + b"\n",
    "nul": b"From: a@example.org\r\nSubject: nul\r\n\r\n" + SECRET + b"\0\0 after\r\n",
    "eight-bit-junk": b"From: \xff\xfe a@example.org\r\nSubject: \x80\x81\xc3\r\n\r\n\xff" + SECRET + b"\r\n",
    "duplicate-content-type": b"From: a@example.org\r\nContent-Type: multipart/encrypted; boundary=x\r\n"
    b"Content-Type: text/plain\r\n\r\n" + SECRET + b"\r\n",
    "nested-1000": _nested(1000),
    "no-final-newline": b"Subject: x\r\n\r\n" + SECRET,
}


def _fake_pgp_mime() -> bytes:
    return (
        b"From: a@example.org\r\nSubject: fake\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n\r\n" + SECRET + b"\r\n--b--\r\n"
    )


def _fake_smime(smime_type: bytes) -> bytes:
    return (
        b"From: a@example.org\r\nSubject: fake\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pkcs7-mime" + smime_type
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(SECRET).replace(b"\n", b"\r\n")
    )  # fmt: skip


HOSTILE = {
    "fake-pgp-mime": _fake_pgp_mime(),
    "fake-smime-no-type": _fake_smime(b""),
    "fake-smime-enveloped": _fake_smime(b"; smime-type=enveloped-data"),
    "armor-with-text-beside": load("encrypted_inline") + b"\r\n" + SECRET + b"\r\n",
}


def _served(rig: Rig, raws: list[bytes]) -> dict[bytes, bytes]:
    """Seed `raws` and return what the server serves for each (the originals to compare against)."""
    rig.mailbox.seed([Seed(raw, (b"\\Seen",), WHEN) for raw in raws])
    served = [m.body for m in rig.mailbox.state()]
    assert len(served) == len(raws)
    return dict(zip(raws, served, strict=True))


def _encrypt_then_restore(rig: Rig, served: list[bytes]) -> None:
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
    assert (report.encrypted, report.failed) == (len(served), 0)
    state = rig.mailbox.state()
    assert all(envelope.classify(m.body) is envelope.Kind.OURS for m in state)
    for message in state:
        assert SECRET not in message.body  # nothing readable left on the server
    with rig.engine() as engine:
        restored = engine.restore_folder("INBOX")
    assert (restored.restored, restored.failed) == (len(served), 0)
    assert sorted(m.body for m in rig.mailbox.state()) == sorted(served)


def test_non_textbook_messages_are_encrypted_and_restored_byte_exact(rig: Rig) -> None:
    served = _served(rig, list(NON_TEXTBOOK.values()))
    assert served[NON_TEXTBOOK["nul"]].count(b"\x80") == 2  # Dovecot's NUL (docs/format.md)
    _encrypt_then_restore(rig, list(served.values()))


@pytest.mark.slow
def test_a_30_mb_attachment_is_encrypted_and_restored_byte_exact(rig: Rig) -> None:
    blob = base64.encodebytes(os.urandom(22 * 1024 * 1024)).replace(b"\n", b"\r\n")
    raw = (
        b'Subject: big\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
        b"Content-Type: text/plain\r\n\r\n" + SECRET + b"\r\n--m\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + blob + b"\r\n--m--\r\n"
    )  # fmt: skip
    assert len(raw) > 30_000_000
    served = _served(rig, [raw])
    _encrypt_then_restore(rig, list(served.values()))


def test_hostile_senders_are_encrypted_and_real_sender_encryption_is_left_alone(rig: Rig) -> None:
    real = [load("encrypted_pgp_mime"), load("encrypted_smime"), load("encrypted_inline")]
    served = _served(rig, [*HOSTILE.values(), *real])
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
    assert (report.encrypted, report.sender_encrypted, report.failed) == (len(HOSTILE), len(real), 0)
    state = rig.mailbox.state()
    left = [m.body for m in state if envelope.classify(m.body) is not envelope.Kind.OURS]
    assert sorted(left) == sorted(served[raw] for raw in real)
    assert not [m for m in state if SECRET in m.body]


def test_sender_encrypted_mail_is_wrapped_when_the_account_asks(rig: Rig) -> None:
    served = _served(rig, [load("encrypted_pgp_mime")])
    rig = rig.with_policy(encrypt_encrypted=True)
    with rig.engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
    assert (report.encrypted, report.sender_encrypted) == (1, 0)
    with rig.engine() as engine:
        engine.restore_folder("INBOX")
    assert [m.body for m in rig.mailbox.state()] == list(served.values())
