"""`imapcrypt serve`: the mailbox decrypted, for any mail client, on 127.0.0.1 (docs/serve.md)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from imapcrypt.config.model import load_config
from imapcrypt.errors import ConfigError
from imapcrypt.secrets import serve_password
from imapcrypt.serve import DEFAULT_PORT

INSTALL_FIX = "install the serve extra: pip install 'imapcrypt[serve]'"


def cmd_serve(args: argparse.Namespace) -> int:
    """Print the local password (`--show-password`), or serve until SIGTERM or Ctrl-C."""
    config = load_config(args.config)
    password, file = serve_password(config.data_dir)
    if args.show_password:
        print(password)
        return 0
    try:  # pymap (the extra `serve`) is imported only here: the rest of the command line works without it
        from imapcrypt.serve.server import LocalServer, ServeSettings  # noqa: PLC0415
    except ImportError:
        raise ConfigError("imapcrypt serve needs pymap, which is not installed", INSTALL_FIX) from None

    server = LocalServer(config, password, ServeSettings(port=args.port, starttls=args.starttls)).start()
    if args.starttls:
        certificate = config.data_dir / "serve-tls.pem"
        print(f"STARTTLS offered with the certificate {certificate} (let the mail client trust it)")
    if file is not None:
        print(f"imapcrypt: no OS keyring: the local password is kept in {file} (readable only by you)")
    names = ", ".join(a.name for a in config.accounts)
    print(
        f"serving {names} on imap://127.0.0.1:{server.port}/ (user: the account's name; password: "
        "`imapcrypt serve --show-password`); Ctrl-C stops",
        flush=True,
    )
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping.wait(1.0):  # short waits keep the main thread responsive to signals
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("imapcrypt: stopped serving", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` to the imapcrypt command line."""
    parser = subparsers.add_parser(
        "serve", help="show the mailbox decrypted to any mail client: an IMAP server on 127.0.0.1"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--starttls",
        action="store_true",
        help="also offer STARTTLS, with a certificate for 127.0.0.1 made once (<data dir>/serve-tls.pem)",
    )
    parser.add_argument(
        "--show-password", action="store_true", help="print the local password for the mail client and exit"
    )
    parser.set_defaults(handler=cmd_serve)
