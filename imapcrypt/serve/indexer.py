"""Building the search index in the background (docs/serve.md#search): every folder of every account,
the messages not yet indexed decrypted a group at a time, then again every few minutes for new mail.

It uses provider connections of its own (never a client's) and leaves the memory cache alone. Its
progress is counted per folder, for `serve` and the tray to show; it logs counts, never text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from imapcrypt.errors import ImapcryptError
from imapcrypt.serve.index import SearchIndex
from imapcrypt.serve.provider import Provider

log = logging.getLogger(__name__)

GROUP = 48  # messages fetched and decrypted at once
BUSY_PAUSE = 0.5  # how often a waiting indexer looks whether clients are done


@dataclass(frozen=True)
class FolderProgress:
    """How much of one folder is indexed."""

    indexed: int
    total: int

    @property
    def complete(self) -> bool:
        """Every message of the folder is indexed."""
        return self.indexed >= self.total


class Indexer:
    """A thread that keeps the index up to date with every account's folders."""

    def __init__(
        self,
        index: SearchIndex,
        accounts: list[str],
        providers: tuple[Callable[[str], Provider], Callable[[Provider], None]],
        every: float,
        *,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.index = index
        self._busy = busy
        self.accounts = accounts
        self._open, self._close = providers
        self.every = every
        self.progress: dict[tuple[str, str], FolderProgress] = {}
        self.passes = 0  # complete passes over every account (for tests and the tray)
        self.stopping = threading.Event()
        self.pass_done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start building in the background."""
        self._thread = threading.Thread(target=self._run, name="imapcrypt-serve-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the group in hand, and wait for the thread."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(60)
        self._thread = None

    def _run(self) -> None:
        while not self.stopping.is_set():
            for account in self.accounts:
                try:
                    self._account(account)
                except ImapcryptError as exc:  # the provider is away: try again next pass
                    log.warning("%s: search index not updated: %s", account, exc)
            self.passes += 1
            self.pass_done.set()
            self.stopping.wait(self.every)

    def _account(self, account: str) -> None:
        provider = self._open(account)
        try:
            _, folders = provider.folders()
            for folder in folders:
                if self.stopping.is_set():
                    return
                self.folder(provider, folder)
        finally:
            self._close(provider)

    def folder(self, provider: Provider, folder: str) -> FolderProgress:
        """Index what of `folder` is not indexed yet and forget what left it; its progress."""
        account = provider.account.name
        view = provider.view(folder)
        where = (account, folder, view.uidvalidity)
        self.index.forget_other_validities(*where)
        have = self.index.indexed(*where)
        uids = [entry.uid for entry in view.entries]
        self.index.forget(*where, have - set(uids))
        missing = [uid for uid in uids if uid not in have]
        done = len(uids) - len(missing)
        self.progress[account, folder] = FolderProgress(done, len(uids))
        for start in range(0, len(missing), GROUP):
            # Clients first: while one has mail decrypted, wait (it indexes what it reads anyway).
            while self._busy() and not self.stopping.wait(BUSY_PAUSE):
                pass
            if self.stopping.is_set():
                break
            chunk = missing[start : start + GROUP]
            indexed_meanwhile = self.index.indexed(*where)
            group = [uid for uid in chunk if uid not in indexed_meanwhile]
            done += len(chunk) - len(group)  # a client had these decrypted meanwhile
            # originals() queues what it decrypts for the index (and leaves the clients' cache alone).
            done += len(provider.originals(folder, view.uidvalidity, group))
            self.index.flush()
            self.progress[account, folder] = FolderProgress(done, len(uids))
        if missing:
            log.info("%s: indexed %d of %d messages in %s", account, done, len(uids), folder)
        return self.progress[account, folder]
