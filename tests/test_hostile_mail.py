"""Mail nobody here wrote: non-textbook messages and hostile senders, against the real Dovecot.

Every readable message ends up encrypted and comes back byte-exact ("exact" to what Dovecot serves:
NUL as 0x80, bare LF as CRLF); only mail whose content proves sender encryption is left alone
(docs/format.md "What is left alone").
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imapcrypt.errors import ImapcryptError
from imapcrypt.events import NoEvents
from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.corpus import Seed, varied_seeds
from tests.fixtures.engine import Rig
from tests.fixtures.gnupg_home import GnupgHome
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


# -- bounded cost: decompression bombs and quadratic headers under a 2 GiB address-space limit -----
GIB = 1 << 30


def _zeros_encrypted(rig_home: GnupgHome, size: int, level: str, algo: str = "zlib") -> bytes:
    """Binary OpenPGP of `size` zero bytes, compressed: a few MB (zlib) or KB (bzip2) that decrypt
    to `size` (gpg --compress-algo, as anyone with the public key can)."""
    script = f"head -c {size} /dev/zero | gpg --homedir {rig_home.path} --batch -q --trust-model always "
    script += f"--compress-algo {algo} --compress-level {level} -r {rig_home.fingerprint} -e"
    return subprocess.run(["sh", "-c", script], check=True, capture_output=True).stdout


def _armored(binary: bytes) -> bytes:
    lines = [base64.b64encode(binary[i : i + 48]) for i in range(0, len(binary), 48)]
    return b"-----BEGIN PGP MESSAGE-----\r\n\r\n" + b"\r\n".join(lines) + b"\r\n-----END PGP MESSAGE-----"


@pytest.fixture(scope="module")
def forged_bomb(gnupg_home: GnupgHome) -> bytes:
    """A forged "imapcrypt copy" (anyone with the public key can make one) whose body decrypts to
    1 GiB and whose subject to 256 MiB (zlib: quick to make)."""
    return _forged_bomb(gnupg_home, "zlib")


def _forged_bomb(gnupg_home: GnupgHome, algo: str) -> bytes:
    gpg = GnuPG(gnupg_home.path)
    sealed = envelope.seal(b"Subject: bait\r\n\r\nbody\r\n", gpg, [gnupg_home.fingerprint], b"s" * 32).message
    start = sealed.index(b"-----BEGIN PGP MESSAGE-----")
    end = sealed.index(b"-----END PGP MESSAGE-----") + len(b"-----END PGP MESSAGE-----")
    forged = sealed[:start] + _armored(_zeros_encrypted(gnupg_home, GIB, "1", algo)) + sealed[end:]
    subject = base64.b64encode(_zeros_encrypted(gnupg_home, GIB // 4, "9", algo))
    folded = b"\r\n ".join(subject[i : i + 76] for i in range(0, len(subject), 76))
    return re.sub(
        rb"X-Imapcrypt-Subject: [^\r]*(\r\n [^\r]*)*", lambda _: b"X-Imapcrypt-Subject: " + folded, forged
    )


def _encoded_words_subject(size: int) -> bytes:
    words = b" ".join([b"=?utf-8?q?caf=C3=A9?="] * (size // 21))
    return b"From: a@example.org\r\nSubject: " + words + b"\r\n\r\n" + SECRET + b"\r\n"


LIMITED = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from pathlib import Path
from imapcrypt import reader
from imapcrypt.imap.session import MessageInfo
from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import GnuPG, OutputLimitError
home, fingerprint, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
gpg = GnuPG(Path(home))
forged = (folder / "forged").read_bytes()
started = time.monotonic()
out = {}
for name, call in [
    ("subject", lambda: envelope.subject(forged, gpg)),
    ("restore", lambda: envelope.restore(forged, gpg)),
]:
    try:
        call()
        out[name] = "returned"
    except OutputLimitError:
        out[name] = "limited"
sealed = {}
for size in (100_000, 1_000_000):
    raw = (folder / f"subject-{size}").read_bytes()
    out[f"classify-{size}"] = envelope.classify(raw).value
    sealed[size] = envelope.seal(raw, gpg, [fingerprint], b"s" * 32).message
    out[f"subject-{size}"] = len(envelope.subject(sealed[size], gpg))
def info(uid, headers):
    return MessageInfo(uid, (), __import__("datetime").datetime.now(), 1, headers)
parens = b"From: " + b"(" * 5000 + b"\\r\\nSubject: hi\\r\\n\\r\\n"
head = lambda raw: raw.split(b"\\r\\n\\r\\n")[0] + b"\\r\\n\\r\\n"
infos = [head(forged), parens, (folder / "subject-1000000").read_bytes(), head(sealed[1_000_000])]
lines = reader.summarise([info(uid, h) for uid, h in enumerate(infos, 1)], gpg, "")
out["summaries"] = [(s.uid, s.subject is None, len(s.sender)) for s in lines]
out["parsed-parens"] = reader.parse_message(parens + b"body\\r\\n").subject
out["seconds"] = time.monotonic() - started
print(json.dumps(out))
"""


@pytest.mark.parametrize("algo", ["zlib", pytest.param("bzip2", marks=pytest.mark.slow)])
def test_hostile_sender_set_runs_in_seconds_under_a_2_gib_limit(
    algo: str, forged_bomb: bytes, gnupg_home: GnupgHome, tmp_path: Path
) -> None:
    (tmp_path / "forged").write_bytes(forged_bomb if algo == "zlib" else _forged_bomb(gnupg_home, algo))
    for size in (100_000, 1_000_000):
        (tmp_path / f"subject-{size}").write_bytes(_encoded_words_subject(size))
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, str(gnupg_home.path), gnupg_home.fingerprint, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["subject"] == out["restore"] == "limited"
    assert out["classify-100000"] == out["classify-1000000"] == "plaintext"
    assert 0 < out["subject-100000"] <= envelope.MAX_SUBJECT_CHARS
    assert 0 < out["subject-1000000"] <= envelope.MAX_SUBJECT_CHARS
    # Newest first: the real copy's subject decrypts, the forged one stays locked, none raised.
    assert [(uid, locked) for uid, locked, _ in out["summaries"]] == [
        (4, False), (3, False), (2, False), (1, True)
    ]  # fmt: skip
    assert out["parsed-parens"] == "hi"
    assert out["seconds"] < 60


def test_one_forged_copy_does_not_stop_a_restore(rig: Rig, forged_bomb: bytes) -> None:
    seeds = varied_seeds(2)
    rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        engine.encrypt_folder("INBOX", backlog=True)
    rig.mailbox.append(forged_bomb, when=WHEN)
    errors: list[ImapcryptError] = []
    small = rig.with_policy(max_message_mb=8)
    with small.engine(events=_Errors(errors)) as engine:
        report = engine.restore_folder("INBOX")
    assert (report.restored, report.failed) == (2, 1)
    assert len(errors) == 1
    assert "skipped" in str(errors[0])
    assert forged_bomb in [m.body for m in rig.mailbox.state()]
    assert sorted(s.raw for s in seeds) == sorted(
        m.body for m in rig.mailbox.state() if m.body != forged_bomb
    )


class _Errors(NoEvents):
    def __init__(self, into: list[ImapcryptError]) -> None:
        self.into = into

    def on_error(self, error: ImapcryptError) -> None:
        self.into.append(error)
