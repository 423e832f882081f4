"""How one account's parts are wired together, for the engine's callers (CLI, daemon, doctor, tray).

`open_account` wires one account's parts together (GnuPG home, journal, id secret, a logged-in
session, the engine) and closes them all again; callers never build those pieces by hand.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from imapcrypt.config.model import Account, Config
from imapcrypt.engine import Engine
from imapcrypt.events import EngineEvents
from imapcrypt.imap.connect import connect
from imapcrypt.imap.session import Session
from imapcrypt.journal import Journal
from imapcrypt.keys.fitness import require_recipients
from imapcrypt.keys.selftest import require_self_test
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.private import private_dir, private_file
from imapcrypt.secrets import account_password, id_secret, remembered_passphrase, run_secret_command


def journal_path(config: Config, account: Account) -> Path:
    """Where the account's journal lives: one SQLite file per account in the data dir."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", account.name)
    return config.data_dir / "journals" / f"{safe}.sqlite3"


def open_journal(config: Config, account: Account) -> Journal:
    """The account's journal, created on first use, in directories and a file only its owner reads."""
    path = journal_path(config, account)
    private_dir(config.data_dir)
    private_dir(path.parent)
    journal = Journal(path)
    private_file(path)  # SQLite gives its -wal and -journal files the database file's mode
    return journal


def open_session(account: Account, password: Callable[[], str] | None = None) -> Session:
    """A logged-in session for `account`: XOAUTH2 through its token_command if it has one, else the
    password from `password` if given (a wizard that has not saved it yet), else the keyring or
    password_command."""
    if account.token_command:
        command: str = account.token_command
        return connect(account, lambda: "", lambda: run_secret_command(command, "token_command"))
    return connect(account, password or (lambda: account_password(account)))


def account_passphrase(account: Account) -> str | None:
    """The secret key's passphrase: `passphrase_command`, else one the user asked the keyring to
    remember for a recipient key; None lets gpg-agent ask (pinentry)."""
    if account.passphrase_command:
        return run_secret_command(account.passphrase_command, "passphrase_command")
    for recipient in account.recipients:
        remembered = remembered_passphrase(recipient)
        if remembered is not None:
            return remembered
    return None


def ready_to_encrypt(config: Config, account: Account) -> None:
    """Refuse to encrypt for `account` until every recipient key is fit (usable, unexpired, unrevoked,
    strong enough) and one of them passed the self-test or the user confirmed its secret lives elsewhere.

    Raises RecipientKeyError naming the key and the reason.
    """
    require_recipients(GnuPG(config.gnupg_home), account.recipients)
    require_self_test(config.data_dir, account)


@dataclass
class OpenAccount:
    """One account's engine with everything it holds open."""

    account: Account
    engine: Engine
    session: Session
    journal: Journal
    gpg: GnuPG


@contextmanager
def open_account(
    config: Config,
    account: Account,
    events: EngineEvents | None = None,
    *,
    password: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Iterator[OpenAccount]:
    """Connect and log in, open the journal and the GnuPG home; close all of it on exit.

    `password` and `clock` replace the account's password source and the wall clock (see open_session).
    """
    with ExitStack() as stack:
        gpg = GnuPG(config.gnupg_home)
        journal = open_journal(config, account)
        stack.callback(journal.close)
        secret = id_secret(config.data_dir)
        session = open_session(account, password)
        stack.callback(session.logout)
        engine = Engine(account, session, gpg, journal, secret, events=events, clock=clock)
        stack.callback(engine.close)
        yield OpenAccount(account, engine, session, journal, gpg)
