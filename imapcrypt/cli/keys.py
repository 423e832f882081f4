"""`imapcrypt keys …`: generate, import, list, export, back up, revoke and rotate recipient keys.

Passphrases come from `--passphrase-fd N` (scripts, tests), the account's `passphrase_command`, the
OS keyring (only if the user once said `--remember`) or a prompt that never echoes. They are never
printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from imapcrypt.config.model import Account, Config, default_config_path, default_data_dir, load_config
from imapcrypt.errors import CredentialsError, ImapcryptError, RecipientKeyError
from imapcrypt.keys import manage as keys
from imapcrypt.keys import recipients, selftest
from imapcrypt.keys.fitness import check_recipient
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.secrets import (
    forget_passphrase,
    remember_passphrase,
    remembered_passphrase,
    run_secret_command,
)

BACKUP_ADVICE = """\
This file is your secret key, still locked by its passphrase. Without it (or another copy of the
secret key) nobody can read your encrypted mail, not even you. Keep it offline: a USB stick in a
drawer, a printout (paperkey), a password manager. Never mail it or leave it in a synced folder.
To restore: imapcrypt keys import {path}"""
REVOCATION_ADVICE = """\
Revocation certificate: {path}
It retires the key if the secret key is lost or stolen (imapcrypt keys revoke). Keep a copy apart
from the backup: whoever holds it can revoke your key, but cannot read your mail."""


# -- shared helpers ---------------------------------------------------------------------------------


def _config(args: argparse.Namespace, required: bool) -> Config | None:
    path: Path = args.config or default_config_path()
    if not required and not path.exists():
        return None
    return load_config(args.config)


def _gnupg(config: Config | None) -> GnuPG:
    home = config.gnupg_home if config else default_data_dir() / "gnupg"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return GnuPG(home)


def _account(args: argparse.Namespace, config: Config) -> Account:
    # --account may come from this command or, if the main parser grows one, from there.
    return config.account(getattr(args, "account", None))


def _read_fd(fd: int) -> str:
    with open(fd, "rb", closefd=False) as stream:
        line = stream.readline()
    return line.decode("utf-8").rstrip("\r\n")


def _passphrase(args: argparse.Namespace, account: Account | None, fingerprint: str | None) -> str:
    """The passphrase of an existing key: fd, passphrase_command, remembered, or asked once."""
    if args.passphrase_fd is not None:
        return _read_fd(args.passphrase_fd)
    if account is not None and account.passphrase_command:
        return run_secret_command(account.passphrase_command, "passphrase_command")
    if fingerprint is not None:
        remembered = remembered_passphrase(fingerprint)
        if remembered is not None:
            return remembered
    if not sys.stdin.isatty():
        raise CredentialsError("the key's passphrase is needed", "give it with --passphrase-fd N")
    return getpass.getpass("Passphrase of the secret key: ")


def _new_passphrase(args: argparse.Namespace, account: Account | None) -> str:
    """A new key's passphrase: fd or passphrase_command, or typed twice."""
    if args.passphrase_fd is not None:
        passphrase = _read_fd(args.passphrase_fd)
    elif account is not None and account.passphrase_command:
        passphrase = run_secret_command(account.passphrase_command, "passphrase_command")
    elif not sys.stdin.isatty():
        raise CredentialsError("a passphrase for the new key is needed", "give it with --passphrase-fd N")
    else:
        passphrase = getpass.getpass("Passphrase for the new secret key: ")
        if getpass.getpass("The same passphrase again: ") != passphrase:
            raise CredentialsError("the two passphrases differ", "run the command again")
    if not passphrase:
        raise CredentialsError(
            "an empty passphrase would leave the secret key unprotected", "choose a passphrase"
        )
    return passphrase


def _ask(question: str) -> bool:
    return sys.stdin.isatty() and input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _describe(key: keys.KeyInfo) -> str:
    flags = [key.algorithm + (f"/{key.encryption_algorithm}" if key.encryption_algorithm else "")]
    flags += ["secret key here" if key.has_secret else "public only"]
    flags += ["REVOKED"] if key.revoked else []
    flags += [f"expires {key.expires:%Y-%m-%d}"] if key.expires else []
    flags += [] if key.can_encrypt or key.revoked else ["cannot encrypt"]
    return f"{key.fingerprint}  {', '.join(flags)}\n    {'; '.join(key.uids) or '(no user id)'}"


def _print_health(gpg: GnuPG, fingerprint: str) -> bool:
    health = check_recipient(gpg, fingerprint)
    for problem in health.problems:
        print(f"  FAIL {fingerprint}: {problem}")
    for warning in health.warnings:
        print(f"  WARN {fingerprint}: {warning}")
    return health.ok


def _offer_backup(args: argparse.Namespace, gpg: GnuPG, key: keys.KeyInfo, passphrase: str) -> None:
    path: Path | None = args.backup
    if path is None and not args.no_backup and sys.stdin.isatty():
        default = Path.home() / f"imapcrypt-secret-key-{key.fingerprint[-16:]}.asc"
        if _ask(f"Write a backup of the secret key to {default} now?"):
            path = default
    if path is None:
        print(f"No backup written. Make one soon: imapcrypt keys backup {key.fingerprint} FILE")
        return
    written = keys.backup_secret(gpg, key.fingerprint, path.expanduser(), passphrase)
    print(f"Backup written to {written} (readable only by you).")
    print(BACKUP_ADVICE.format(path=written))


def _prove(config: Config, account: Account, gpg: GnuPG, fingerprint: str, passphrase: str | None) -> None:
    """Self-test one new recipient and record it; raise if its secret key is here and fails."""
    result = selftest.self_test(gpg, [fingerprint], passphrase)
    if result.passed:
        selftest.record_self_test(config.data_dir, account.name, result)
        print(f"Self-test passed: {fingerprint} encrypts and decrypts ({result.seconds:.2f}s).")
    elif result.problems:
        raise RecipientKeyError("self-test failed: " + "; ".join(result.problems), "fix the key first")
    else:
        print(
            "The secret key is not here, so the self-test could only encrypt. Once you checked that "
            "it lives elsewhere: imapcrypt keys self-test --secret-elsewhere"
        )


# -- handlers ---------------------------------------------------------------------------------------


def _generate_key(args: argparse.Namespace, config: Config | None, account: Account | None) -> keys.KeyInfo:
    passphrase = _new_passphrase(args, account)
    print(f"Generating a {args.algorithm} key for {args.uid} …")
    key = keys.generate_key(_gnupg(config), args.uid, passphrase, args.algorithm, args.expires)
    gpg = _gnupg(config)
    print(_describe(key))
    print(REVOCATION_ADVICE.format(path=keys.revocation_certificate_path(gpg, key.fingerprint)))
    _offer_backup(args, gpg, key, passphrase)
    if args.remember:
        remember_passphrase(key.fingerprint, passphrase)
        print("The passphrase is now in the OS keyring (imapcrypt keys forget-passphrase to remove it).")
    if config is not None and account is not None:
        _prove(config, account, gpg, key.fingerprint, passphrase)
    return key


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate a key pair; with --use it becomes the account's recipient."""
    config = _config(args, required=args.use)
    account = _account(args, config) if config is not None and args.use else None
    key = _generate_key(args, config, account)
    if config is not None and account is not None:
        recipients.use_key(_gnupg(config), config.path, account.name, key.fingerprint)
        print(f"Account {account.name!r} now encrypts to {key.fingerprint}.")
    return 0


def _read_input(path: Path) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.expanduser().read_bytes()
    except OSError as exc:
        raise ImapcryptError(f"{path}: cannot read: {exc.strerror}", "check the path") from None


def cmd_import(args: argparse.Namespace) -> int:
    """Import keys after checking them."""
    gpg = _gnupg(_config(args, required=False))
    imported = keys.import_keys(gpg, _read_input(args.file), args.public_only, args.for_reading)
    for key in imported:
        print(f"Imported {_describe(key)}")
        if key.can_encrypt:
            _print_health(gpg, key.fingerprint)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List the keys in the GnuPG home and which accounts encrypt to them."""
    config = _config(args, required=False)
    gpg = _gnupg(config)
    found = keys.list_keys(gpg)
    if not found:
        print(f"No keys in {gpg.home}. Make one: imapcrypt keys generate 'Your Name <you@example.org>'")
    for key in found:
        print(_describe(key))
        users = [a.name for a in (config.accounts if config else ()) if key.fingerprint in a.recipients]
        if users:
            print(f"    recipient of: {', '.join(users)}")
            _print_health(gpg, key.fingerprint)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the armored public key to stdout or a file."""
    data = keys.export_public(_gnupg(_config(args, required=False)), args.fingerprint)
    if args.output:
        args.output.write_bytes(data)
        print(f"Public key written to {args.output}.")
    else:
        sys.stdout.buffer.write(data)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """Write the armored secret key to a new 0600 file."""
    config = _config(args, required=False)
    account = _account(args, config) if config and config.accounts else None
    gpg = _gnupg(config)
    key = keys.find_key(gpg, args.fingerprint)
    passphrase = _passphrase(args, account, key.fingerprint)
    written = keys.backup_secret(gpg, key.fingerprint, args.file.expanduser(), passphrase)
    if args.remember:
        remember_passphrase(key.fingerprint, passphrase)
    print(f"Backup written to {written} (readable only by you).")
    print(BACKUP_ADVICE.format(path=written))
    print(REVOCATION_ADVICE.format(path=keys.revocation_certificate_path(gpg, key.fingerprint)))
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    """Make the key the account's only recipient."""
    config = load_config(args.config)
    account = _account(args, config)
    gpg = _gnupg(config)
    recipients.use_key(gpg, config.path, account.name, args.fingerprint)
    print(
        f"Account {account.name!r} now encrypts to {keys.find_key(gpg, args.fingerprint).fingerprint} only."
    )
    _report_self_test_state(config, account.name, args.fingerprint)
    return 0


def _report_self_test_state(config: Config, account: str, fingerprint: str) -> None:
    key = keys.find_key(_gnupg(config), fingerprint)
    if key.fingerprint not in selftest.proven_keys(config.data_dir, account):
        print("Before the first run: imapcrypt keys self-test (or --secret-elsewhere).")


def cmd_add_recipient(args: argparse.Namespace) -> int:
    """Also encrypt to another key."""
    config = load_config(args.config)
    account = _account(args, config)
    new = recipients.add_recipient(_gnupg(config), config.path, account.name, args.fingerprint)
    print(f"Account {account.name!r} encrypts to: {', '.join(new.account(account.name).recipients)}")
    return 0


def cmd_remove_recipient(args: argparse.Namespace) -> int:
    """Stop encrypting to a key (it stays in the GnuPG home)."""
    config = load_config(args.config)
    account = _account(args, config)
    new = recipients.remove_recipient(config.path, account.name, args.fingerprint)
    print(f"Account {account.name!r} encrypts to: {', '.join(new.account(account.name).recipients)}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a key with its revocation certificate; print or write the revoked public key."""
    config = _config(args, required=False)
    gpg = _gnupg(config)
    key = keys.find_key(gpg, args.fingerprint)
    if not args.yes and not _ask(
        f"Revoke {key.fingerprint} for good? Nobody should encrypt to it afterwards."
    ):
        raise ImapcryptError("not revoked", "confirm with --yes")
    certificate = _read_input(args.certificate) if args.certificate else None
    needs_passphrase = (
        certificate is None and not keys.revocation_certificate_path(gpg, key.fingerprint).exists()
    )
    passphrase = _passphrase(args, None, key.fingerprint) if needs_passphrase else None
    published = keys.revoke(gpg, key.fingerprint, certificate, passphrase)
    if args.output:
        args.output.write_bytes(published)
    print(f"{key.fingerprint} is revoked; it stays here, so mail encrypted to it stays readable.")
    where = args.output or "imapcrypt keys export"
    print(f"Publish the revoked key (to key servers, your correspondents): {where}")
    for account in config.accounts if config else ():
        if key.fingerprint in account.recipients:
            print(
                f"Account {account.name!r} still encrypts to it and will refuse to run: imapcrypt keys rotate"
            )
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    """Make a new key (generated, imported or already here) the account's recipient in place of the old."""
    config = load_config(args.config)
    account = _account(args, config)
    gpg = _gnupg(config)
    passphrase: str | None = None
    if args.generate:
        args.uid = args.generate
        passphrase = _new_passphrase(args, account)
        key = keys.generate_key(gpg, args.uid, passphrase, args.algorithm, args.expires)
        print(_describe(key))
        print(REVOCATION_ADVICE.format(path=keys.revocation_certificate_path(gpg, key.fingerprint)))
        _offer_backup(args, gpg, key, passphrase)
    elif args.import_file:
        [key] = keys.import_keys(gpg, _read_input(args.import_file))
    else:
        key = keys.find_key(gpg, args.to)
    if key.has_secret and passphrase is None:
        passphrase = _passphrase(args, account, key.fingerprint)
    _prove(config, account, gpg, key.fingerprint, passphrase)
    if args.secret_elsewhere and not key.has_secret:
        selftest.confirm_secret_elsewhere(config.data_dir, account.name, [key.fingerprint])
    new = recipients.rotate(gpg, config.path, account.name, key.fingerprint, args.replace)
    now_to = ", ".join(new.account(account.name).recipients)
    print(f"Account {account.name!r} now encrypts new mail to: {now_to}")
    print("The old key stays in the GnuPG home: mail already encrypted to it stays readable.")
    return 0


def cmd_self_test(args: argparse.Namespace) -> int:
    """Encrypt a probe to every recipient of the account and decrypt it where the secret key is here."""
    config = load_config(args.config)
    account = _account(args, config)
    gpg = _gnupg(config)
    with_secret = [f for f in account.recipients if keys.find_key(gpg, f).has_secret]
    passphrase = _passphrase(args, account, with_secret[0]) if with_secret else None
    result = selftest.self_test(gpg, account.recipients, passphrase)
    for outcome in result.outcomes:
        state = {True: "decrypted", False: "did NOT decrypt", None: "secret key not here"}[outcome.decrypted]
        print(f"  {outcome.fingerprint}: {'encrypted' if outcome.encrypted else 'did NOT encrypt'}, {state}")
    if result.passed:
        selftest.record_self_test(config.data_dir, account.name, result)
        print(f"Self-test passed ({result.seconds:.2f}s); account {account.name!r} may encrypt.")
        return 0
    if result.needs_confirmation and (
        args.secret_elsewhere or _ask("Does the secret key live on another device, and did you check it?")
    ):
        selftest.confirm_secret_elsewhere(config.data_dir, account.name, account.recipients)
        print(f"Noted: the secret keys live elsewhere; account {account.name!r} may encrypt.")
        return 0
    raise RecipientKeyError(
        "self-test did not pass: " + ("; ".join(result.problems) or "no secret key here to decrypt with"),
        "fix the key, or run with --secret-elsewhere if the secret key is on another device",
    )


def cmd_forget_passphrase(args: argparse.Namespace) -> int:
    """Remove a remembered passphrase from the OS keyring."""
    if forget_passphrase(args.fingerprint):
        print("The passphrase is no longer in the OS keyring.")
    else:
        print("No passphrase was stored for that key.")
    return 0


# -- parser -----------------------------------------------------------------------------------------


def _passphrase_options(parser: argparse.ArgumentParser, remember: bool = True) -> None:
    parser.add_argument(
        "--passphrase-fd", type=int, metavar="N", help="read the passphrase from file descriptor N (scripts)"
    )
    if remember:
        parser.add_argument(
            "--remember", action="store_true", help="keep the passphrase in the OS keyring (off by default)"
        )


def _new_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algorithm", choices=sorted(keys.ALGORITHMS), default="ed25519")
    parser.add_argument("--expires", default="never", help="never (default), 2y, or a date YYYY-MM-DD")
    backup = parser.add_mutually_exclusive_group()
    backup.add_argument("--backup", type=Path, metavar="FILE", help="write a secret key backup (mode 0600)")
    backup.add_argument("--no-backup", action="store_true", help="do not offer a backup now")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys` and its subcommands to the imapcrypt command line."""
    parser = subparsers.add_parser("keys", help="manage recipient keys (generate, import, rotate, …)")
    sub = parser.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)
    _register_key_commands(sub)
    _register_account_commands(sub)
    for command in sub.choices.values():
        # SUPPRESS: an --account given before `keys` (should the main parser offer one) is not reset.
        command.add_argument(
            "--account", default=argparse.SUPPRESS, help="the account (default: the only one)"
        )


def _register_key_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("generate", help="make a new key pair (ed25519/cv25519 by default)")
    p.add_argument("uid", help="'Your Name <you@example.org>'")
    p.add_argument("--use", action="store_true", help="make it the account's recipient")
    _new_key_options(p)
    _passphrase_options(p)
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("import", help="import a key (public, or with its secret part) after checking it")
    p.add_argument("file", type=Path, help="key file, or - for standard input")
    p.add_argument("--public-only", action="store_true", help="leave any secret key part out")
    p.add_argument(
        "--for-reading", action="store_true", help="accept an old/expired secret key to read old mail"
    )
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("list", help="the keys in the GnuPG home and their health")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("export", help="the public key, armored")
    p.add_argument("fingerprint")
    p.add_argument("-o", "--output", type=Path)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("backup", help="write the secret key to a file only you can read")
    p.add_argument("fingerprint")
    p.add_argument("file", type=Path)
    _passphrase_options(p)
    p.set_defaults(handler=cmd_backup)


def _register_account_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, handler, text in (
        ("use", cmd_use, "make this key the account's only recipient"),
        ("add-recipient", cmd_add_recipient, "also encrypt to this key (other device, escrow, recovery)"),
        ("remove-recipient", cmd_remove_recipient, "stop encrypting to this key"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("fingerprint")
        p.set_defaults(handler=handler)

    p = sub.add_parser("revoke", help="revoke a key with its revocation certificate")
    p.add_argument("fingerprint")
    p.add_argument("--certificate", type=Path, metavar="FILE", help="the revocation certificate you kept")
    p.add_argument("-o", "--output", type=Path, help="write the revoked public key here")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _passphrase_options(p, remember=False)
    p.set_defaults(handler=cmd_revoke)

    p = sub.add_parser("rotate", help="encrypt new mail to a new key; the old one stays for reading")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--generate", metavar="UID", help="generate the new key for this user id")
    source.add_argument("--import", dest="import_file", type=Path, metavar="FILE", help="import the new key")
    source.add_argument("--to", metavar="FPR", help="a key already in the GnuPG home")
    p.add_argument("--replace", metavar="FPR", help="the recipient to replace (default: the only one)")
    p.add_argument(
        "--secret-elsewhere", action="store_true", help="the new secret key lives on another device"
    )
    _new_key_options(p)
    _passphrase_options(p, remember=False)
    p.set_defaults(handler=cmd_rotate)

    p = sub.add_parser("self-test", help="encrypt and decrypt a probe with the account's recipients")
    p.add_argument(
        "--secret-elsewhere", action="store_true", help="confirm the secret key is on another device"
    )
    _passphrase_options(p, remember=False)
    p.set_defaults(handler=cmd_self_test)

    p = sub.add_parser("forget-passphrase", help="remove a remembered passphrase from the OS keyring")
    p.add_argument("fingerprint")
    p.set_defaults(handler=cmd_forget_passphrase)
