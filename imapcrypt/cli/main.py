"""The `imapcrypt` command line (docs/cli.md): one entry point, one subcommand per task.

Every failure the user can fix ends as one line on stderr, "imapcrypt: <what> (<fix>)", and the
exit code of its kind (see EXIT_CODES). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from imapcrypt import __version__
from imapcrypt.cli import demo, doctor, init, keys, mail, serve
from imapcrypt.errors import ImapcryptError
from imapcrypt.logs import default_log_file, setup_logging

EXIT_CODES = """\
exit codes:
  0  success
  1  failure (see the message)
  2  configuration problem
  3  credentials missing or refused
  4  server unreachable, refused a command, or lacks what is needed
  5  recipient key problem
  6  a message could not be encrypted or decrypted
  7  another imapcrypt process holds the account
  130 interrupted
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every `imapcrypt` subcommand."""
    parser = argparse.ArgumentParser(
        prog="imapcrypt",
        description="Keep an IMAP mailbox OpenPGP-encrypted at rest on your provider's disk.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"imapcrypt {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        help="the configuration file (default: $IMAPCRYPT_CONFIG or ~/.config/imapcrypt/config.toml)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log each step to stderr")
    parser.add_argument("--daemon", action="store_true", help="run headless: the same as `imapcrypt run`")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    parser.add_argument(
        "--log-file", type=Path, help="also log to this file (`run` logs to the platform log dir by default)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Each command module adds its subcommands here ("register" them); keep this list in sync.
    init.register(subparsers)
    mail.register(subparsers)
    keys.register(subparsers)
    doctor.register(subparsers)
    demo.register(subparsers)
    serve.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.daemon and args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "run"])
    if args.command is None:
        parser.print_help()
        return 0
    watching = args.command == "run" and not args.once
    setup_logging(args.verbose, args.log_json, args.log_file or (default_log_file() if watching else None))
    try:
        code: int = args.handler(args)
    except ImapcryptError as exc:
        print(f"imapcrypt: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("imapcrypt: interrupted; the next run finishes what was in flight", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
