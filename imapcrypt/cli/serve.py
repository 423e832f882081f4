"""`imapcrypt serve`: the mailbox decrypted, for any mail client, on 127.0.0.1 (docs/serve.md); and
`imapcrypt search`, which looks in serve's search index."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from imapcrypt.config.model import load_config
from imapcrypt.errors import ConfigError
from imapcrypt.secrets import serve_password
from imapcrypt.serve import DEFAULT_CACHE_MB, DEFAULT_PORT


def cmd_serve(args: argparse.Namespace) -> int:
    """Print the local password (`--show-password`), drop the search index (`--drop-index`), or serve
    until SIGTERM or Ctrl-C."""
    config = load_config(args.config)
    password, file = serve_password(config.data_dir)
    if args.show_password:
        print(password)
        return 0
    # pymap loads only for these commands: every other imapcrypt command starts without it.
    from imapcrypt.serve.index import drop_index  # noqa: PLC0415
    from imapcrypt.serve.server import LocalServer, ServeSettings  # noqa: PLC0415

    if args.drop_index:
        print("search index dropped" if drop_index(config.data_dir) else "there was no search index")
        return 0
    settings = ServeSettings(
        port=args.port,
        starttls=args.starttls,
        index=not args.no_index,
        cache_bytes=args.cache_mb * 1024 * 1024,
    )
    server = LocalServer(config, password, settings).start()
    if server.index is not None:
        print(f"search index: {server.index.path}, kept up to date in the background")
    elif server.index_problem:
        print(f"imapcrypt: no search index: {server.index_problem}")
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
    parser.add_argument(
        "--cache-mb",
        type=int,
        default=DEFAULT_CACHE_MB,
        help=f"memory for decrypted messages, in MB (default {DEFAULT_CACHE_MB}); never written to disk",
    )
    parser.add_argument("--no-index", action="store_true", help="keep no search index (SEARCH then decrypts)")
    parser.add_argument(
        "--drop-index", action="store_true", help="delete the search index and its key, and exit"
    )
    parser.set_defaults(handler=cmd_serve)
    search = subparsers.add_parser("search", help="find words in decrypted mail, from serve's search index")
    search.add_argument("words", help="what to look for: a case-insensitive substring of the text")
    search.add_argument("--account", default=None, help="only this account")
    search.add_argument("--folder", default=None, help="only this folder")
    search.set_defaults(handler=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    """Print one line per indexed message whose text contains the words; exit 1 if none does."""
    config = load_config(args.config)
    from imapcrypt.serve.index import open_index  # noqa: PLC0415

    index = open_index(config.data_dir, create=False)
    if index is None:
        raise ConfigError("there is no search index yet", "run `imapcrypt serve`: it builds the index")
    try:
        hits = index.find(args.words, args.account, args.folder)
    finally:
        index.close()
    for hit in hits:
        print(f"{hit.account}/{hit.folder} uid {hit.uid}: {hit.sender} | {hit.subject}")
    print(f"{len(hits)} found", file=sys.stderr)
    return 0 if hits else 1
