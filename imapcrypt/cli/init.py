"""`imapcrypt init`: the account and key wizard in the terminal (docs/cli.md).

It asks for what it is not given as an option (with `--yes` it asks nothing and every value must come
from options), and only writes the configuration once the key passed its self-test and the server
accepted the login. It ends with a dry-run count; nothing on the server is changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, cast

from imapcrypt.config import write as config_write
from imapcrypt.config.model import (
    Account,
    Config,
    Security,
    default_config_path,
    default_data_dir,
    load_config,
    parse_config,
)
from imapcrypt.config.providers import preset_for
from imapcrypt.doctor import checks as doctor
from imapcrypt.errors import ConfigError, CredentialsError, RecipientKeyError, ServerError
from imapcrypt.imap.connect import connect
from imapcrypt.keys import manage as keys
from imapcrypt.keys.selftest import confirm_secret_elsewhere, record_self_test, self_test
from imapcrypt.openpgp.gnupg import GnuPG, normalise_fingerprint
from imapcrypt.secrets import account_password, store_account_password
from imapcrypt.wiring import open_account

# Checks that judge the server and the login; the rest (keys, journal) are settled by init itself.
SERVER_CHECKS = ("server", "TLS certificate", "login")


class Prompter(Protocol):
    """How init asks the user (the terminal, or answers given in advance)."""

    def ask(self, question: str, default: str = "") -> str:
        """A line of text; the default when the answer is empty."""

    def secret(self, question: str) -> str:
        """A secret, not echoed."""

    def yes(self, question: str, default: bool) -> bool:
        """A yes/no answer."""


class TerminalPrompter:
    """Asks on the terminal."""

    def ask(self, question: str, default: str = "") -> str:
        """input(), with the default shown in brackets."""
        shown = f" [{default}]" if default else ""
        return input(f"{question}{shown}: ").strip() or default

    def secret(self, question: str) -> str:
        """getpass(): nothing is echoed."""
        return getpass.getpass(f"{question}: ")

    def yes(self, question: str, default: bool) -> bool:
        """y/n, with the default capitalised."""
        answer = input(f"{question} [{'Y/n' if default else 'y/N'}]: ").strip().lower()
        return default if not answer else answer.startswith("y")


class NoPrompter:
    """`--yes`: every question must already be answered by an option."""

    def ask(self, question: str, default: str = "") -> str:
        """The default, or a ConfigError naming what is missing."""
        if default:
            return default
        raise ConfigError(f"init --yes: no answer for {question!r}", "give it as an option (see --help)")

    def secret(self, question: str) -> str:
        """Never: secrets come from commands or --passphrase-fd in scripts."""
        raise CredentialsError(
            f"init --yes cannot ask for {question.lower()}", "use --password-command and --passphrase-fd"
        )

    def yes(self, question: str, default: bool) -> bool:
        """The default."""
        return default


def _read_fd(fd: int) -> str:
    with os.fdopen(fd, encoding="utf-8", closefd=True) as handle:
        return handle.readline().rstrip("\n")


def _new_passphrase(args: argparse.Namespace, prompter: Prompter) -> str:
    if args.passphrase_fd is not None:
        passphrase = _read_fd(args.passphrase_fd)
    else:
        passphrase = prompter.secret("Passphrase for the new secret key")
        if prompter.secret("The same passphrase again") != passphrase:
            raise CredentialsError("the two passphrases differ", "run `imapcrypt init` again")
    if not passphrase:
        raise CredentialsError("an empty passphrase would leave the secret key unprotected", "choose one")
    return passphrase


def _existing(
    args: argparse.Namespace, gpg: GnuPG, fingerprint: str, prompter: Prompter
) -> tuple[str, str | None]:
    key = keys.find_key(gpg, fingerprint)
    if args.passphrase_fd is not None:
        return key.fingerprint, _read_fd(args.passphrase_fd)
    if key.has_secret and not isinstance(prompter, NoPrompter):
        return key.fingerprint, prompter.secret("Passphrase of that key, for the self-test (empty if none)")
    return key.fingerprint, None


def _choose_key(
    args: argparse.Namespace, gpg: GnuPG, prompter: Prompter, say: Callable[[str], None]
) -> tuple[str, str | None]:
    """The key to encrypt to (given, picked from the home, or generated now) and its passphrase if known."""
    if args.key:
        return _existing(args, gpg, args.key, prompter)
    uid = args.generate_key
    if not uid:
        mine = [k for k in keys.list_keys(gpg) if k.can_encrypt]
        for key in mine:
            say(f"  {key.fingerprint}  {', '.join(key.uids)}{'' if key.has_secret else ' (public only)'}")
        choice = prompter.ask(
            "Fingerprint of the key to use, or 'new' for a new one", "new" if not mine else ""
        )
        if choice.lower() != "new":
            return _existing(args, gpg, normalise_fingerprint(choice), prompter)
        uid = prompter.ask("Name and address for the new key, e.g. 'Ann <ann@example.org>'")
    passphrase = _new_passphrase(args, prompter)
    key = keys.generate_key(gpg, uid, passphrase, args.algorithm)
    say(f"New key {key.fingerprint} ({key.algorithm}).")
    revocation = keys.revocation_certificate_path(gpg, key.fingerprint)
    say(f"Revocation certificate: {revocation} (keep a copy offline).")
    backup = args.backup or Path.home() / f"imapcrypt-secret-key-{key.fingerprint[-16:]}.asc"
    if args.backup or prompter.yes(f"Write a backup of the secret key to {backup} now?", True):
        written = keys.backup_secret(gpg, key.fingerprint, Path(backup).expanduser(), passphrase)
        say(f"Backup written to {written} (readable only by you): store it offline, e.g. on a USB stick.")
    return key.fingerprint, passphrase


def _prove_key(
    config: Config, account: Account, gpg: GnuPG, passphrase: str | None, prompter: Prompter
) -> None:
    result = self_test(gpg, account.recipients, passphrase)
    if result.passed:
        record_self_test(config.data_dir, account.name, result)
        return
    if result.needs_confirmation and prompter.yes(
        "The secret key is not on this computer. Does it live on another device you can read mail with?",
        False,
    ):
        confirm_secret_elsewhere(config.data_dir, account.name, list(account.recipients))
        return
    raise RecipientKeyError(
        "the key did not pass the self-test: " + "; ".join(result.problems or ("it did not decrypt",)),
        "check the passphrase, or use a key whose secret part you hold",
    )


def run_init(args: argparse.Namespace, prompter: Prompter, say: Callable[[str], None] = print) -> int:
    """Ask, check, write the account into the configuration, and show what would be encrypted."""
    path: Path = args.config or default_config_path()
    base = (
        load_config(path)
        if path.exists()
        else Config(path=path, gnupg_home=default_data_dir() / "gnupg", data_dir=default_data_dir())
    )
    name = args.name or prompter.ask("Account name", "personal" if not base.accounts else "")
    if any(a.name == name for a in base.accounts):
        raise ConfigError(f"{path}: an account named {name!r} exists already", "choose another name")
    username = args.username or prompter.ask("User name (usually your e-mail address)")
    known = preset_for(username)
    if known:
        say(f"{known[0]}: {known[1].note}")
    host = args.host or prompter.ask("IMAP server", known[1].host if known else "")
    port = args.port or int(prompter.ask("Port", str(known[1].port if known else 993)))
    security = cast(Security, args.security or prompter.ask("Security: tls, starttls or plain", "tls"))
    password_command = args.password_command
    if password_command is None and not isinstance(prompter, NoPrompter):
        password_command = prompter.ask(
            "A command that prints the password (empty: keep it in the OS keyring)"
        )
    password = "" if password_command else prompter.secret(f"Password for {username}")
    base.gnupg_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    gpg = GnuPG(base.gnupg_home)
    fingerprint, passphrase = _choose_key(args, gpg, prompter, say)
    account = Account(
        name=name,
        host=host,
        username=username,
        recipients=(fingerprint,),
        port=port,
        security=security,
        password_command=password_command or None,
        grace_minutes=args.grace_minutes,
        original=args.original,
    )
    config = config_write.with_account(base, account)
    parse_config(config_write.render(config, write_dirs=True), path)  # refuse bad values before connecting
    login = (lambda: password) if password else None
    for check in doctor.check_account(config, account, login):
        if check.name in SERVER_CHECKS:
            say(check.line())
            if check.status == "FAIL":
                raise ServerError(f"{check.name}: {check.detail}", check.fix or "check the server settings")
    account = dataclasses.replace(account, folders=_choose_folders(args, account, password, prompter, say))
    _prove_key(config, account, gpg, passphrase, prompter)
    if password:
        store_account_password(account, password)
    config = config_write.save(config_write.with_account(base, account))
    say(f"Wrote {config.path}.")
    with open_account(config, account) as opened:
        for folder in account.folders:
            report = opened.engine.encrypt_folder(folder, backlog=True, dry_run=True)
            say(
                f"{account.name}/{folder}: {report.would_encrypt:,} would be encrypted, "
                f"{report.already_ours:,} are already encrypted"
            )
    say("Nothing was changed on the server. Next: `imapcrypt backlog` for this mail, then `imapcrypt run`.")
    return 0


def _choose_folders(
    args: argparse.Namespace, account: Account, password: str, prompter: Prompter, say: Callable[[str], None]
) -> tuple[str, ...]:
    if args.folders:
        return tuple(f.strip() for f in args.folders.split(",") if f.strip())
    session = connect(account, (lambda: password) if password else (lambda: account_password(account)))
    try:
        names = session.list_folders()
        default = "INBOX,\\All" if session.is_gmail else "INBOX"
    finally:
        session.logout()
    say("Folders on the server: " + ", ".join(names))
    answer = prompter.ask("Folders to watch, separated by commas", default)
    return tuple(f.strip() for f in answer.split(",") if f.strip())


def cmd_init(args: argparse.Namespace) -> int:
    """`imapcrypt init`: interactive unless --yes."""
    prompter: Prompter = NoPrompter() if args.yes or not sys.stdin.isatty() else TerminalPrompter()
    return run_init(args, prompter)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `init` to the command line."""
    init = subparsers.add_parser("init", help="set up an account and its key (asks what it is not told)")
    init.add_argument("--name", help="the account's name")
    init.add_argument("--username", help="the IMAP user name, usually the address")
    init.add_argument("--host", help="the IMAP server (known providers are suggested from the address)")
    init.add_argument("--port", type=int)
    init.add_argument("--security", choices=("tls", "starttls", "plain"))
    init.add_argument("--password-command", help="a command that prints the password (else the keyring)")
    key = init.add_mutually_exclusive_group()
    key.add_argument("--key", metavar="FPR", help="encrypt to this key (already in the GnuPG home)")
    key.add_argument("--generate-key", metavar="UID", help="generate a new key for this user id")
    init.add_argument("--algorithm", choices=sorted(keys.ALGORITHMS), default="ed25519")
    init.add_argument("--backup", type=Path, help="where to write the new secret key's backup (0600)")
    init.add_argument("--passphrase-fd", type=int, metavar="N", help="read the key's passphrase from fd N")
    init.add_argument("--folders", help="folders to watch, separated by commas (default: asked; INBOX)")
    init.add_argument("--grace-minutes", type=float, default=0.0, help="only encrypt mail older than this")
    init.add_argument(
        "--original", choices=("purge", "trash"), default="purge", help="what happens to plaintext"
    )
    init.add_argument("--yes", action="store_true", help="ask nothing: every value comes from options")
    init.set_defaults(handler=cmd_init)
