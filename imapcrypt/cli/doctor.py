"""`imapcrypt doctor`: print every check, one line each, and exit 1 if any failed."""

from __future__ import annotations

import argparse

from imapcrypt.config.model import load_config
from imapcrypt.doctor.check import Check
from imapcrypt.doctor.checks import check_account, check_gpg, check_keyring


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the checks of every (or the chosen) account; exit 1 if any FAILed."""
    config = load_config(args.config)
    name = getattr(args, "account", None)
    accounts = [config.account(name)] if name else list(config.accounts)
    checks: list[Check] = []
    for account in accounts:
        print(f"account {account.name} ({account.username} at {account.host}:{account.port})")
        found = check_account(config, account)
        for check in found:
            print(f"  {check.line()}")
        checks += found
    for once in (check_gpg(), check_keyring()):
        print(once.line())
        checks.append(once)
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "WARN" for c in checks)
    print(f"{failed} FAIL, {warned} WARN, {len(checks) - failed - warned} OK")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `doctor` to the imapcrypt command line."""
    parser = subparsers.add_parser("doctor", help="check server, TLS, login, capabilities, keys, keyring")
    parser.add_argument(
        "--account", default=argparse.SUPPRESS, help="only this account (default: every account)"
    )
    parser.set_defaults(handler=cmd_doctor)
