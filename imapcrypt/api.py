"""The front ends' one door into the core (docs/architecture.md): what the tray app may use.

The UI imports from the core only this module, `imapcrypt.setup`, `imapcrypt.events` and
`imapcrypt.errors` (tests/test_layering.py holds it to that). Everything here blocks on IMAP or GnuPG
unless it says otherwise: the tray calls it through `run_task`, never on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from imapcrypt import __version__, autostart, reader
from imapcrypt.config import write as config_write
from imapcrypt.config.model import (
    Account,
    Config,
    Security,
    default_config_path,
    default_data_dir,
    load_config,
)
from imapcrypt.config.providers import PRESETS, Preset
from imapcrypt.daemon import AccountWorker, DaemonEvents, StateChange, WorkerState
from imapcrypt.errors import ConfigError
from imapcrypt.keys.unlock import check_passphrase, forget_passphrases
from imapcrypt.openpgp.binary import find_gpg, gpg_version, install_gpg_hint
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.reader import Attachment, ParsedMessage, Summary
from imapcrypt.secrets import serve_password, store_account_password
from imapcrypt.serve import DEFAULT_PORT as DEFAULT_SERVE_PORT
from imapcrypt.setup import order_folders
from imapcrypt.wiring import account_passphrase, open_session

if TYPE_CHECKING:
    from imapcrypt.demo import Demo
    from imapcrypt.serve.index import Hit

__all__ = [
    "DEFAULT_SERVE_PORT",
    "PRESETS",
    "Account",
    "AccountWorker",
    "Attachment",
    "Config",
    "DaemonEvents",
    "ParsedMessage",
    "Preset",
    "RunningServer",
    "Security",
    "StateChange",
    "Summary",
    "WorkerState",
    "__version__",
    "autostart_enabled",
    "default_config_path",
    "default_data_dir",
    "gnupg_description",
    "list_folder",
    "load_config",
    "local_server_password",
    "lock",
    "open_message",
    "save_account",
    "search_index",
    "server_folders",
    "set_autostart",
    "start_demo",
    "start_local_server",
    "stored_passphrase",
    "summaries_of",
    "unlock",
]


def save_account(config: Config, account: Account, password: str = "") -> Config:
    """Write `account` into the configuration (replacing its namesake); a new `password` goes to the
    OS keyring. Returns the configuration as written."""
    saved = config_write.save(config_write.with_account(config, account))
    if password:
        store_account_password(account, password)
    return saved


def gnupg_description() -> str:
    """Which gpg imapcrypt runs and its version, or how to install one (runs `gpg --version`)."""
    gpg = find_gpg()
    if not gpg:
        return f"not found: {install_gpg_hint()}"
    try:
        return f"{gpg}, {gpg_version(gpg)}"
    except OSError as exc:
        return f"{gpg} does not run ({exc}): {install_gpg_hint()}"


def autostart_enabled() -> bool:
    """Whether the tray app starts at login (fast: reads a file)."""
    return autostart.is_enabled()


def set_autostart(enabled: bool) -> None:
    """Start the tray app at login, or stop doing so (OSError if the entry cannot be written)."""
    if enabled:
        autostart.enable()
    else:
        autostart.disable()


def list_folder(config: Config, account: Account, folder: str, passphrase: str | None) -> list[Summary]:
    """The newest messages of `folder`; subjects decrypted when `passphrase` is given (unlocked)."""
    gpg = GnuPG(config.gnupg_home) if passphrase is not None else None
    session = open_session(account)
    try:
        return reader.list_messages(session, folder, gpg, passphrase)
    finally:
        session.logout()


def summaries_of(
    config: Config, account: Account, folder: str, uids: Sequence[int], passphrase: str | None
) -> dict[int, Summary]:
    """The list lines of these `uids` of `folder` (those still there), by UID."""
    gpg = GnuPG(config.gnupg_home) if passphrase is not None else None
    session = open_session(account)
    try:
        return reader.summaries_of(session, folder, uids, gpg, passphrase)
    finally:
        session.logout()


def open_message(
    config: Config, account: Account, folder: str, uid: int, passphrase: str | None
) -> ParsedMessage:
    """Fetch message `uid` (nothing is marked \\Seen), decrypt it in memory and split it for showing."""
    gpg = GnuPG(config.gnupg_home)
    session = open_session(account)
    try:
        original = reader.fetch_original(
            session, folder, uid, gpg, passphrase, max_bytes=account.max_message_bytes
        )
        return reader.parse_message(original)
    finally:
        session.logout()


def server_folders(account: Account) -> tuple[str, ...]:
    """The account's folders on the server, INBOX first, then by name."""
    session = open_session(account)
    try:
        return order_folders(session.list_folders())
    finally:
        session.logout()


def stored_passphrase(account: Account) -> str | None:
    """The passphrase from `passphrase_command` or the keyring (`keys ... --remember`), else None."""
    return account_passphrase(account)


def unlock(config: Config, account: Account, passphrase: str) -> str:
    """Check `passphrase` against the account's secret key itself, whatever gpg-agent has cached.

    Returns the fingerprint it opens; CredentialsError if it is wrong
    (docs/keys.md#gpg-agent-caches-passphrases).
    """
    return check_passphrase(GnuPG(config.gnupg_home), account.recipients, passphrase)


def lock(config: Config, account: Account) -> None:
    """Make gpg-agent forget the passphrase of the account's keys: the next read must ask again."""
    if config.gnupg_home.is_dir():
        forget_passphrases(GnuPG(config.gnupg_home), account.recipients)


def start_demo() -> Demo:
    """Start the built-in demo server with sample mail and a throwaway key (docs/tray.md#demo)."""
    from imapcrypt import demo  # noqa: PLC0415 - its server is loaded only when someone asks for it

    return demo.start_demo()


def local_server_password(config: Config) -> str:
    """The password a mail client gives the local IMAP server (`imapcrypt serve --show-password`)."""
    return serve_password(config.data_dir)[0]


class RunningServer(Protocol):
    """The local IMAP server while it runs: where it listens, and how to stop it."""

    port: int

    def stop(self) -> None:
        """Stop serving and close the provider connections it holds (blocks until done)."""


def start_local_server(config: Config, port: int) -> RunningServer:
    """Start the local IMAP server of `imapcrypt serve` for `config`'s accounts on 127.0.0.1:`port`
    (0: any free port) inside this process; returns once it listens. Stop it with its `stop()`."""
    # pymap loads only when the server is asked for: the tray starts without it.
    from imapcrypt.serve.server import LocalServer, ServeSettings  # noqa: PLC0415

    return LocalServer(config, local_server_password(config), ServeSettings(port=port)).start()


def search_index(config: Config, words: str, account: str, folder: str) -> list[Hit]:
    """The messages of `account`'s `folder` whose decrypted text contains `words` (ignoring case), from
    the encrypted search index the local IMAP server keeps; nothing is decrypted. ConfigError (with the
    fix) while there is no index yet."""
    from imapcrypt.serve.index import open_index  # noqa: PLC0415 - the index's libraries load only here

    index = open_index(config.data_dir, create=False)
    if index is None:
        raise ConfigError(
            "there is no search index yet",
            "turn on the Local IMAP server in the tray menu (or run `imapcrypt serve`): it builds the index",
        )
    try:
        return index.find(words, account, folder)
    finally:
        index.close()
