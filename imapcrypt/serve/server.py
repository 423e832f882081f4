"""Running `imapcrypt serve`: pymap's IMAP server on 127.0.0.1 only, in an asyncio loop of its own thread.

Each configured account is a login name (its `name`, or its `username`) with the one local password.
Every client session opens its own provider connection and closes it when the client logs out.
Loopback is not a setting: a client on another interface cannot reach the server at all.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

from proxyprotocol.reader import ProxyProtocolReader
from pymap.imap import IMAPServer
from pymap.mime import MessageContent

from imapcrypt.config.model import Account, Config
from imapcrypt.errors import ConfigError, CredentialsError, ImapcryptError
from imapcrypt.loopback import LOOPBACK, Handler, LoopbackThread
from imapcrypt.openpgp.gnupg import GnuPG
from imapcrypt.secrets import id_secret
from imapcrypt.serve import DEFAULT_PORT
from imapcrypt.serve.backend import LocalLogin, ServeConfig
from imapcrypt.serve.cache import DEFAULT_CACHE_BYTES, OriginalCache
from imapcrypt.serve.index import SearchIndex, open_index
from imapcrypt.serve.indexer import Indexer
from imapcrypt.serve.provider import Provider
from imapcrypt.serve.tls import server_context
from imapcrypt.wiring import account_passphrase, open_session, ready_to_encrypt

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 10.0
# A wrong password costs the guesser a second; the only one who knows the right one is local anyway.
WRONG_PASSWORD_PAUSE = 1.0
# How often the search index looks for mail it has not indexed yet (mail a client reads is indexed at once).
DEFAULT_INDEX_SECONDS = 300.0
# The indexer waits until clients have had nothing decrypted for this long.
CLIENT_QUIET_SECONDS = 2.0


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs: its port (0: any free one), how often IDLE asks the provider, the memory
    kept for decrypted messages, the pause after a wrong password, whether STARTTLS is offered (with the
    local certificate, serve/tls.py), and whether (and how often) the search index is kept up to date."""

    port: int = DEFAULT_PORT
    poll_seconds: float = DEFAULT_POLL_SECONDS
    cache_bytes: int = DEFAULT_CACHE_BYTES
    wrong_password_pause: float = WRONG_PASSWORD_PAUSE
    starttls: bool = False
    index: bool = True  # keep the search index (needs an OS keyring for its key)
    index_seconds: float = DEFAULT_INDEX_SECONDS


def login_names(accounts: tuple[Account, ...]) -> dict[str, str]:
    """Login name -> account name: each account's name, and its user name where that is unambiguous."""
    names = {a.name: a.name for a in accounts}
    usernames = [a.username for a in accounts]
    for account in accounts:
        if usernames.count(account.username) == 1:
            names.setdefault(account.username, account.name)
    return names


class LocalServer:
    """`imapcrypt serve` for every account of `config`, with the local `password`."""

    def __init__(self, config: Config, password: str, settings: ServeSettings | None = None) -> None:
        if not config.accounts:
            raise ConfigError("there is no account to serve", "add one with `imapcrypt init`")
        self.config = config
        self.settings = settings or ServeSettings()
        self.password = password
        self.port = 0
        self.addresses: list[tuple[str, int]] = []  # where it listens: for `serve` to print, tests to check
        self.cache: OriginalCache[MessageContent] = OriginalCache(self.settings.cache_bytes)
        self._accounts = {a.name: a for a in config.accounts}
        self._gpg = GnuPG(config.gnupg_home)
        self._id_secret = b""
        self._server = LoopbackThread("imapcrypt-serve")
        self.index: SearchIndex | None = None
        self.index_problem: str | None = None  # why there is no index, for `serve` to say
        self.indexer: Indexer | None = None
        # Provider connections of clients still connected: closed at stop() whatever the loop did.
        self._providers: set[Provider] = set()
        self._providers_lock = threading.Lock()
        self._last_client_decrypt = -CLIENT_QUIET_SECONDS

    def open_provider(self, name: str, *, for_client: bool = True) -> Provider:
        """A new provider connection for the account `name` (runs in a worker thread). What a client's
        connection decrypts makes the indexer wait (clients first: the two would decrypt the same mail)."""
        account = self._accounts[name]
        provider = Provider(
            account,
            lambda: open_session(account),
            self._gpg,
            self._id_secret,
            passphrase=lambda: account_passphrase(account),
            index=self.index,
            on_decrypt=self._client_decrypted if for_client else None,
        )
        with self._providers_lock:
            self._providers.add(provider)
        return provider

    def _client_decrypted(self) -> None:
        self._last_client_decrypt = time.monotonic()

    def clients_busy(self) -> bool:
        """A client had messages decrypted in the last few seconds (the indexer waits meanwhile)."""
        return time.monotonic() - self._last_client_decrypt < CLIENT_QUIET_SECONDS

    def close_provider(self, provider: Provider) -> None:
        """Log out of a provider connection whose client is gone (runs in a worker thread)."""
        with self._providers_lock:
            if provider not in self._providers:
                return
            self._providers.discard(provider)
        provider.close()

    def start(self, timeout: float = 30.0) -> LocalServer:
        """Check every account can seal (as `run` does), then listen; return once it accepts clients."""
        for account in self.config.accounts:
            ready_to_encrypt(self.config, account)
        # pymap logs every protocol line at DEBUG: the local password and decrypted mail. Never.
        logging.getLogger("pymap").setLevel(logging.INFO)
        self._id_secret = id_secret(self.config.data_dir)
        if self.settings.index:
            try:
                self.index = open_index(self.config.data_dir, create=True)
            except (CredentialsError, ConfigError) as exc:  # no keyring, or no sqlcipher3
                self.index_problem = str(exc)
                log.warning("no search index: %s", exc)
        try:
            self.port = self._server.start(self._prepare, self.settings.port, timeout)
        except Exception as exc:
            self.stop()
            if isinstance(exc, ImapcryptError):
                raise
            raise ImapcryptError(
                f"the local IMAP server did not start: {exc}", "choose another port with --port"
            ) from exc
        self.addresses = self._server.addresses
        log.info("serving on %s:%d", LOOPBACK, self.port)
        if self.index is not None:
            self.indexer = Indexer(
                self.index,
                [a.name for a in self.config.accounts],
                (lambda name: self.open_provider(name, for_client=False), self.close_provider),
                self.settings.index_seconds,
                busy=self.clients_busy,
            )
            self.indexer.start()
        return self

    def _pymap_config(self) -> ServeConfig:
        # pymap reads these from its own command line; only the ones it looks at are given.
        args = argparse.Namespace(passlib_cfg=None, proxy_protocol=None, debug=False)
        return ServeConfig(
            args,
            host=LOOPBACK,
            port=self.settings.port,
            # Without STARTTLS a loopback LOGIN in the clear is what local clients expect; with it,
            # pymap refuses LOGIN until the client has started TLS.
            tls_enabled=self.settings.starttls,
            ssl_context=server_context(self.config.data_dir) if self.settings.starttls else None,
            invalid_user_sleep=self.settings.wrong_password_pause,
            reject_dnsbl=False,
            admin_key=secrets.token_bytes(32),
        )

    async def _prepare(self, _stack: AsyncExitStack) -> Handler:
        config = self._pymap_config()
        config.apply_context()
        login = LocalLogin(
            config,
            login_names(self.config.accounts),
            self.password,
            (self.open_provider, self.close_provider),
            poll_seconds=self.settings.poll_seconds,
            cache=self.cache,
        )
        return ProxyProtocolReader(config.proxy_protocol).get_callback(IMAPServer(login, config))

    def stop(self) -> None:
        """Stop the indexer, stop listening and wait for the server's thread (again: nothing to do)."""
        if self.indexer is not None:
            self.indexer.stop()
            self.indexer = None
        self._server.stop()
        with self._providers_lock:
            left = list(self._providers)
        for provider in left:
            self.close_provider(provider)
        if self.index is not None:
            self.index.close()
            self.index = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
