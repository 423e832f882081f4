"""`imapcrypt demo`: print what the demo does, step by step (the demo itself is imapcrypt/demo.py)."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from imapcrypt import reader
from imapcrypt.demo import DEFAULT_MESSAGES, DEMO_PASSPHRASE, Demo, new_mail, start_demo
from imapcrypt.engine import Engine
from imapcrypt.errors import ConfigError, ImapcryptError
from imapcrypt.imap.connect import connect
from imapcrypt.imap.session import Session
from imapcrypt.message import envelope
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.wiring import open_journal


def _count(kinds: Sequence[envelope.Kind], kind: envelope.Kind) -> int:
    return sum(1 for k in kinds if k is kind)


def _tour(demo: Demo, session: Session, engine: Engine, gpg: GnuPG, out: TextIO) -> None:
    """Dry run, existing mail, new mail, the reader and the way out, each said in a line."""
    dry = engine.encrypt_folder("INBOX", backlog=True, dry_run=True)
    # Headers alone cannot prove sender encryption: the dry run counts it among the candidates.
    out.write(
        f"  dry run: up to {dry.would_encrypt:,} would be encrypted (mail its sender encrypted "
        f"is left alone once its body is read), {dry.already_ours:,} already encrypted by imapcrypt\n"
    )
    step = time.monotonic()
    backlog = engine.encrypt_folder("INBOX", backlog=True)
    took = time.monotonic() - step
    rate = backlog.encrypted / took if took > 0 else 0.0
    out.write(
        f"  existing mail: {backlog.encrypted} encrypted in {took:.2f}s ({rate:.0f} msg/s), "
        f"{backlog.sender_encrypted} left as the sender encrypted it\n"
    )
    arrived = new_mail(len(demo.delivered))
    demo.server.deliver([arrived])
    demo.delivered.append(arrived)
    step = time.monotonic()
    fresh = engine.encrypt_folder("INBOX")
    out.write(
        f"  new mail: 1 message arrived; the next pass encrypted {fresh.encrypted} "
        f"in {time.monotonic() - step:.2f}s\n"
    )
    listing = reader.list_messages(session, "INBOX", gpg, DEMO_PASSPHRASE)
    kinds = [s.kind for s in listing]
    out.write(
        f"  on the server now: {len(listing)} messages: "
        f"{_count(kinds, envelope.Kind.OURS)} encrypted by imapcrypt, "
        # From headers alone sender encryption is unproven: the backlog pass read the bodies.
        f"{backlog.sender_encrypted} encrypted by their sender, "
        f"{len(kinds) - _count(kinds, envelope.Kind.OURS) - backlog.sender_encrypted} plaintext\n"
    )
    shown = [s for s in listing if s.encrypted_by_us and s.subject][:3]
    out.write("  reader (subjects decrypted from X-Imapcrypt-Subject headers alone):\n")
    for line in shown:
        out.write(f"    {line.uid:>4}  {line.sender[:28]:<28}  {line.subject}\n")
    original = reader.fetch_original(session, "INBOX", shown[0].uid, gpg, DEMO_PASSPHRASE)
    parsed = reader.parse_message(original)
    out.write(
        f"  opened message {shown[0].uid}: {len(original)} bytes decrypted in memory, "
        f"{len((parsed.text or '').splitlines())} lines of text\n"
    )
    step = time.monotonic()
    restored = engine.restore_folder("INBOX", DEMO_PASSPHRASE)
    took = time.monotonic() - step
    sent = sorted(m.raw for m in demo.delivered)
    exact = sorted(session.fetch_bodies(session.uids_above(0)).values()) == sent
    out.write(
        f"  the way out: restore gave back {restored.restored} originals in {took:.2f}s; "
        f"the folder {'holds exactly' if exact else 'DIFFERS FROM'} the mail that arrived, "
        "byte for byte\n"
    )
    if not exact:
        raise ImapcryptError("the demo's restored mail differs from what arrived", "report this bug")


def run_demo(out: TextIO, messages: int = DEFAULT_MESSAGES, keep: bool = False) -> int:
    """Run the whole flow once and say what happened: dry run, backlog, new mail, reader, restore."""
    started = time.monotonic()
    demo = start_demo(messages, keep)
    try:
        account, config = demo.account, demo.config
        out.write(
            f"imapcrypt demo: in-memory IMAP server (pymap) on 127.0.0.1:{demo.server.port}, "
            f"started in {demo.timings['server']:.2f}s\n"
            f"  key: {demo.fingerprint} (ed25519/cv25519, passphrase {DEMO_PASSPHRASE!r}, "
            f"made in {demo.timings['key']:.2f}s)\n"
            f"  mailbox: {len(demo.delivered)} sample messages in INBOX\n"
        )
        gpg = GnuPG(config.gnupg_home)
        session = connect(account, lambda: demo.server.password)
        journal = open_journal(config, account)
        # An in-memory id secret: the demo must not write into the user's OS keyring.
        engine = Engine(account, session, gpg, journal, secrets.token_bytes(32))
        try:
            _tour(demo, session, engine, gpg, out)
        finally:
            engine.close()
            session.logout()
            journal.close()
    finally:
        demo.close()
    where = f"kept in {demo.root} and {demo.gnupg_home}" if keep else "removed"
    out.write(f"done in {time.monotonic() - started:.2f}s; the demo's server, key and files are {where}.\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`imapcrypt demo`: run the demo and print what it did."""
    if args.messages < 2:
        raise ConfigError("the demo needs at least 2 messages", "use --messages 2 or more")
    return run_demo(sys.stdout, args.messages, args.keep)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `demo` to the imapcrypt command line."""
    parser = subparsers.add_parser(
        "demo", help="try imapcrypt on an embedded IMAP server with sample mail and a throwaway key"
    )
    parser.add_argument(
        "--messages", type=int, default=DEFAULT_MESSAGES, help="how many sample messages (default: 24)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the demo's configuration and key")
    parser.set_defaults(handler=cmd_demo)
