"""The `imapcrypt` command line (DESIGN §8): one entry point, one subcommand per task."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from imapcrypt import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every `imapcrypt` subcommand."""
    parser = argparse.ArgumentParser(
        prog="imapcrypt",
        description="Keep an IMAP mailbox OpenPGP-encrypted at rest on your provider's disk.",
    )
    parser.add_argument("--version", action="version", version=f"imapcrypt {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
