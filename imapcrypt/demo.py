"""`imapcrypt demo`: the whole flow on an embedded IMAP server, with sample mail and a throwaway key.

No account, no root, no system package: the server is pymap's in-memory backend (a dependency of
imapcrypt, pure Python) listening on a free loopback port in a thread of this process; the key lives in a
temporary GnuPG home; the configuration and the journal in a temporary directory. All of it is gone
when the demo ends. The tray app's "Try the demo" uses `start_demo` and keeps the demo running
until it quits.

pymap offers UIDPLUS, MOVE, MULTIAPPEND, LITERAL+, IDLE and HEADER search, so the engine takes its
generic path (UID EXPUNGE); it has no SPECIAL-USE Trash, which the default "purge" policy does not need.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import imapclient

from imapcrypt.config.model import Account, Config, load_config
from imapcrypt.errors import ConfigError, ImapcryptError
from imapcrypt.keys import manage as keys
from imapcrypt.keys.selftest import record_self_test, self_test
from imapcrypt.loopback import LOOPBACK, Handler, LoopbackThread
from imapcrypt.openpgp.gnupg import GnuPG

DEMO_ACCOUNT = "demo"
DEMO_USER = "demo@imapcrypt.invalid"
DEMO_PASSPHRASE = "demo"  # noqa: S105 - shown to the user: the key is thrown away with the demo
DEMO_UID = "imapcrypt demo <demo@imapcrypt.invalid>"
DEFAULT_MESSAGES = 24
INSTALL_FIX = "reinstall imapcrypt: pymap is one of its dependencies (or `make run`)"


@dataclass(frozen=True)
class SampleMessage:
    """A sample message, with the flags and INTERNALDATE it is stored with."""

    raw: bytes
    flags: tuple[bytes, ...]
    when: dt.datetime


_SENDERS = (
    ("Ada Lovelace", "ada@analytical.example"),
    ("Grace Hopper", "grace@cobol.example"),
    ("Bank of Examples", "noreply@bank.example"),
    ("Linus", "linus@kernel.example"),
    ("The Weekly Letter", "news@letter.example"),
    ("Margaret Hamilton", "margaret@apollo.example"),
)
_SUBJECTS = (
    "Dinner on Friday?",
    "Your statement for {month} is ready",
    "Re: the draft chapter",
    "Photos from the trip",
    "This week: ten things worth reading",
    "Meeting notes, {month}",
    "Flight confirmation ABC{n:03d}",
    "Invoice {n:04d}",
)


def _head(index: int, sender: tuple[str, str], subject: str, when: dt.datetime, to: str) -> str:
    """A sample message's header fields, up to (not including) MIME-Version."""
    return (
        f"From: {sender[0]} <{sender[1]}>\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
        f"Message-ID: <demo{index}@imapcrypt.invalid>\r\n"
    )


def _plain(index: int, sender: tuple[str, str], subject: str, when: dt.datetime) -> bytes:
    return (
        _head(index, sender, subject, when, f"You <{DEMO_USER}>") + "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Hello,\r\n\r\nthis is sample message {index} of the imapcrypt demo.\r\n"
        "On the server it is now an OpenPGP message; only your key opens it.\r\n\r\n-- \r\n"
        f"{sender[0]}\r\n"
    ).encode()


def _html(index: int, sender: tuple[str, str], subject: str, when: dt.datetime) -> bytes:
    # The remote image is a tracking pixel: the reader must never fetch it.
    html = (
        "<html><body><h2>This week</h2><p>Ten things worth reading, picked for you.</p>"
        '<img src="https://tracker.letter.example/open.gif?u=demo" width="1" height="1">'
        '<p><a href="https://letter.example/read">Read online</a></p>'
        "<script>alert('never runs')</script></body></html>"
    )
    return (
        _head(index, sender, subject, when, DEMO_USER)
        + 'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTen things worth reading.\r\n"
        f"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--alt--\r\n"
    ).encode()


def _with_attachment(index: int, sender: tuple[str, str], subject: str, when: dt.datetime) -> bytes:
    table = "date,amount\r\n2024-01-31,12.50\r\n2024-02-29,7.25\r\n"
    return (
        _head(index, sender, subject, when, DEMO_USER)
        + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="mix"\r\n\r\n'
        "--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe figures are attached.\r\n"
        '--mix\r\nContent-Type: text/csv; name="figures.csv"\r\n'
        'Content-Disposition: attachment; filename="figures.csv"\r\n\r\n'
        f"{table}--mix--\r\n"
    ).encode()


# Mail its sender already encrypted: imapcrypt leaves it as it is (docs/format.md).
_SENDER_ENCRYPTED = (
    b"From: Alice <alice@pgp.example>\r\nTo: demo@imapcrypt.invalid\r\nSubject: (encrypted by Alice)\r\n"
    b"Date: Mon, 01 Jan 2024 09:00:00 +0000\r\nMessage-ID: <alice1@pgp.example>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="x"\r\n\r\n'
    b"--x\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--x\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n"
    # A session-key packet and an encrypted data packet of invented bytes: framed as ciphertext,
    # which is what classify checks (no key opens it).
    b"wVwDREVNT0tFWSESKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdIMGRlZmdoaWprbG1ub3BxcnN0dXZ3\r\n"
    b"eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk9I9AQswVXqfxOkOM1h9osfsETZbgKXK7xQ5XoOozfIXPGGGq9D1\r\n"
    b"Gj9kia7T+B1CZ4yx1vsgRWqPtNn+I0htkg==\r\n"
    b"-----END PGP MESSAGE-----\r\n--x--\r\n"
)


def sample_messages(count: int = DEFAULT_MESSAGES, now: dt.datetime | None = None) -> list[SampleMessage]:
    """`count` varied sample messages (plain, HTML with a remote image, an attachment, and one the
    sender encrypted), dated over the last weeks; invented people and domains only."""
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    messages: list[SampleMessage] = []
    for index in range(count):
        when = now - dt.timedelta(days=count - index, hours=index % 7)
        sender = _SENDERS[index % len(_SENDERS)]
        subject = _SUBJECTS[index % len(_SUBJECTS)].format(month=when.strftime("%B"), n=index)
        flags: tuple[bytes, ...] = (b"\\Seen",) if index % 3 else ()
        if index == 1:
            raw = _SENDER_ENCRYPTED
        elif index % len(_SUBJECTS) == 4:
            raw = _html(index, sender, subject, when)
        elif index % 5 == 3:
            raw = _with_attachment(index, sender, subject, when)
        else:
            raw = _plain(index, sender, subject, when)
        messages.append(SampleMessage(raw, flags, when))
    return messages


def new_mail(index: int) -> SampleMessage:
    """A message that "arrives" while the demo runs."""
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    raw = _plain(index, ("Ada Lovelace", "ada@analytical.example"), "Just arrived: are you free?", when)
    return SampleMessage(raw, (), when)


class EmbeddedServer:
    """pymap's in-memory IMAP server on 127.0.0.1, run by an asyncio loop in a thread of this process.

    One user, `user` / `password`; everything it stores is lost when it stops.
    """

    def __init__(self, user: str = DEMO_USER, password: str | None = None) -> None:
        self.user = user
        # Random, though nothing but this process can reach it: a habit worth showing.
        self.password = password or secrets.token_urlsafe(12)
        self.port = 0
        self._server = LoopbackThread("imapcrypt-demo-server")

    def start(self, timeout: float = 15.0) -> EmbeddedServer:
        """Start the server; return once it accepts connections. ConfigError if pymap is missing."""
        try:
            import pymap.backend.dict  # noqa: F401, PLC0415 - imported only when a demo starts
        except ImportError:
            raise ConfigError("the demo needs pymap, which is not installed", INSTALL_FIX) from None
        try:
            self.port = self._server.start(self._prepare, 0, timeout)
        except Exception as exc:
            raise ImapcryptError(f"the demo IMAP server did not start: {exc}", INSTALL_FIX) from exc
        return self

    async def _prepare(self, stack: AsyncExitStack) -> Handler:
        # Imported only when a demo starts. This mirrors pymap's IMAPService.start, but the server
        # listens on port 0 so the kernel picks a free port with no race.
        from proxyprotocol.reader import ProxyProtocolReader  # noqa: PLC0415
        from pymap.backend.dict import DictBackend  # noqa: PLC0415
        from pymap.imap import IMAPServer  # noqa: PLC0415

        args = argparse.Namespace(
            debug=False,
            demo_data=False,
            demo_user=self.user,
            demo_password=self.password,
            passlib_cfg=None,
            host=[LOOPBACK],
            port=0,
            cert=None,
            key=None,
            tls=False,
            proxy_protocol=None,
            inherited_sockets=None,
        )
        # reject_dnsbl off: a loopback server has no one to look up, and looking up is network.
        backend, config = await DictBackend.init(args, invalid_user_sleep=0.0, reject_dnsbl=False)
        config.apply_context()
        await backend.start(stack)
        return ProxyProtocolReader(config.proxy_protocol).get_callback(IMAPServer(backend.login, config))

    def stop(self) -> None:
        """Stop the server and wait for its thread; what it stored is gone."""
        self._server.stop()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> imapclient.IMAPClient:
        """A logged-in client (the caller logs out)."""
        client = imapclient.IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.normalise_times = False
        client.login(self.user, self.password)
        return client

    def deliver(self, messages: Sequence[SampleMessage], folder: str = "INBOX") -> None:
        """Store `messages` as if they had arrived (one connection)."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for message in messages:
                client.append(folder, message.raw, message.flags, message.when)
        finally:
            client.logout()


@dataclass
class Demo:
    """A running demo: its server, key, configuration and directories. `close` removes all of it."""

    server: EmbeddedServer
    root: Path
    gnupg_home: Path
    config: Config
    fingerprint: str
    passphrase: str = DEMO_PASSPHRASE
    delivered: list[SampleMessage] = field(default_factory=list)
    keep: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def account(self) -> Account:
        """The demo's only account."""
        return self.config.accounts[0]

    def close(self) -> None:
        """Stop the server and the key's gpg-agent, and delete the demo's files (unless kept)."""
        self.server.stop()
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            check=False,
            capture_output=True,
            env={**os.environ, "GNUPGHOME": str(self.gnupg_home)},
        )
        if not self.keep:
            shutil.rmtree(self.gnupg_home, ignore_errors=True)
            shutil.rmtree(self.root, ignore_errors=True)


def _write_config(root: Path, gnupg_home: Path, server: EmbeddedServer, fingerprint: str) -> Path:
    path = root / "config.toml"
    # The password of a throwaway in-memory server may sit in the config; a real account's never does.
    path.write_text(
        textwrap.dedent(f"""\
            # imapcrypt demo: an in-memory IMAP server on this machine and a throwaway key.
            data_dir = "{root / "data"}"

            [gnupg]
            home = "{gnupg_home}"

            [[account]]
            name = "{DEMO_ACCOUNT}"
            host = "127.0.0.1"
            port = {server.port}
            security = "plain"
            username = "{server.user}"
            password_command = "echo {server.password}"
            folders = ["INBOX"]
            recipients = ["{fingerprint}"]
            poll_seconds = 2
            """),
        encoding="utf-8",
    )
    return path


def start_demo(messages: int = DEFAULT_MESSAGES, keep: bool = False) -> Demo:
    """Start the embedded server with `messages` sample messages, make a throwaway key (passphrase
    DEMO_PASSPHRASE) that passed the self-test, and write a configuration that points at both."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    server = EmbeddedServer().start()
    timings["server"] = time.monotonic() - started
    # /tmp keeps the GnuPG home's path short: gpg-agent's socket path must fit in 108 bytes.
    short = "/tmp" if Path("/tmp").is_dir() else None  # noqa: S108
    root = Path(tempfile.mkdtemp(prefix="imapcrypt-demo-"))
    gnupg_home = Path(tempfile.mkdtemp(prefix="icdemo-", dir=short))
    try:
        gnupg_home.chmod(0o700)
        # A throwaway key needs no costly passphrase hashing: keep the demo quick.
        (gnupg_home / "gpg-agent.conf").write_text("s2k-count 65536\n")
        step = time.monotonic()
        sample = sample_messages(messages)
        server.deliver(sample)
        timings["mail"] = time.monotonic() - step
        step = time.monotonic()
        gpg = GnuPG(gnupg_home)
        key = keys.generate_key(gpg, DEMO_UID, DEMO_PASSPHRASE)
        timings["key"] = time.monotonic() - step
        config = load_config(_write_config(root, gnupg_home, server, key.fingerprint))
        record_self_test(config.data_dir, DEMO_ACCOUNT, self_test(gpg, [key.fingerprint], DEMO_PASSPHRASE))
    except BaseException:
        Demo(server, root, gnupg_home, Config(root, gnupg_home, root), "").close()
        raise
    return Demo(
        server, root, gnupg_home, config, key.fingerprint, delivered=sample, keep=keep, timings=timings
    )
