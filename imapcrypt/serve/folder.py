"""One provider folder as a local client session sees it (pymap's MailboxDataInterface and
MailboxSetInterface over the provider): the provider's view refreshed as commands come, originals
decrypted ahead of the client and kept parsed in the memory cache, changes passed to the provider's
copies in one command per range, IDLE as a NOOP poll, and the search index asked first. Provider calls
block, so they run in worker threads; an imapcrypt error becomes a NO to the client, never a dropped
connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import ParamSpec, TypeVar

from pymap.backend.mailbox import MailboxDataInterface, MailboxSetInterface
from pymap.concurrent import Event
from pymap.exceptions import (
    TemporaryFailure,
)
from pymap.flags import FlagOp
from pymap.interfaces.message import CachedMessage
from pymap.listtree import ListTree
from pymap.mailbox import MailboxSnapshot
from pymap.message import BaseMessage
from pymap.mime import MessageContent
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials import FetchRequirement, ObjectId, SequenceSet
from pymap.parsing.specials.flag import Flag, Recent, Wildcard, get_system_flags
from pymap.selected import SelectedMailbox, SelectedSet

from imapcrypt.errors import ImapcryptError
from imapcrypt.serve.cache import OriginalCache
from imapcrypt.serve.index import uids_matching
from imapcrypt.serve.provider import FolderView, Provider
from imapcrypt.serve.structure import LoadedOriginal

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

# Messages decrypted in one go when a client starts reading a range (a folder's list): enough to keep
# the decrypting threads busy, bounded in bytes so a range of large messages does not fill memory.
READ_AHEAD_MESSAGES = 48
READ_AHEAD_BYTES = 16 * 1024 * 1024
# Looking at a large folder's state is not free (10,000 messages: about a second), so commands in a burst
# share one look. NOOP, CHECK, IDLE and our own changes always look afresh.
FRESH_SECONDS = 5.0
# While a client idles, the folder's whole state is fetched at least every this many polls (a NOOP may
# miss news the provider sent while another command ran on the connection).
IDLE_FULL_LOOK_EVERY = 6
# New mail a search decrypts and indexes on the spot; more than this, and the index is still being built.
INDEX_CATCH_UP = 200
_FLAG_MODES = {FlagOp.ADD: "add", FlagOp.DELETE: "remove", FlagOp.REPLACE: "replace"}


async def off_loop(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking provider call in a worker thread; an imapcrypt error is a NO for the client."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except ImapcryptError as exc:
        raise TemporaryFailure(exc.message) from exc


class ServedMessage(BaseMessage):
    """One provider message; its content (the original) is loaded from the folder only when asked for."""

    __slots__ = ["_folder"]

    def __init__(
        self,
        uid: int,
        internal_date: dt.datetime,
        flags: Iterable[Flag],
        *,
        folder: FolderData,
        expunged: bool = False,
    ) -> None:
        super().__init__(uid, internal_date, flags, expunged=expunged)
        self._folder = folder

    async def load_content(self, requirement: FetchRequirement) -> LoadedOriginal:
        """The original's parsed content when the fetch needs header or body; metadata needs none."""
        content = None
        if not requirement.has_none(FetchRequirement.CONTENT):
            content = await self._folder.content(self.uid)
        return LoadedOriginal(self, requirement, content)


def _flags(raw: Iterable[bytes]) -> frozenset[Flag]:
    return frozenset(Flag(f) for f in raw)


class FolderData(MailboxDataInterface[ServedMessage]):
    """One provider folder as one local session sees it: the provider's view, refreshed as commands
    come, and the UIDs the client last fetched (to decrypt ahead of it)."""

    def __init__(self, name: str, provider: Provider, poll_seconds: float, cache: ContentCache) -> None:
        self.name = name
        self._provider = provider
        self._cache = cache
        self.poll_seconds = poll_seconds
        self._mailbox_id = ObjectId.random_mailbox_id()
        self._selected_set = SelectedSet()
        self._view = FolderView(name, 0, 1, ())
        self._messages: dict[int, ServedMessage] = {}
        self._refreshed = 0.0
        self._changed_by_us = True
        self._window: list[int] = []
        self._away = False

    @property
    def mailbox_id(self) -> ObjectId:
        """This session's id for the folder."""
        return self._mailbox_id

    @property
    def readonly(self) -> bool:
        """Folders are writable: changes pass through to the provider."""
        return False

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        """The system flags and any keyword (\\*): the provider keeps keywords, and clients use them."""
        return (get_system_flags() - {Recent}) | {Wildcard}

    @property
    def uid_validity(self) -> int:
        """The provider's UIDVALIDITY."""
        return self._view.uidvalidity

    @property
    def selected_set(self) -> SelectedSet:
        """The sessions that have this folder selected."""
        return self._selected_set

    async def refresh(self, *, force: bool = False) -> bool:
        """Ask the provider for the folder's state unless a fresh one is at hand; whether it changed."""
        if not force and not self._changed_by_us and time.monotonic() - self._refreshed < FRESH_SECONDS:
            return False
        view = await off_loop(self._provider.view, self.name)
        self._refreshed = time.monotonic()
        self._changed_by_us = False
        if view == self._view:
            return False
        self._view = view
        self._messages = {
            e.uid: ServedMessage(e.uid, e.internaldate, _flags(e.flags), folder=self) for e in view.entries
        }
        return True

    async def update_selected(
        self, selected: SelectedMailbox, *, wait_on: Event | None = None
    ) -> SelectedMailbox:
        """Bring `selected` up to the provider's state; with `wait_on` (IDLE), poll the provider until
        something changes or the client ends IDLE."""
        if wait_on is None:
            await self.refresh()
        else:
            polls = 0
            while not wait_on.is_set():
                polls += 1
                try:
                    # A NOOP first: the folder's whole state is fetched only when the provider says
                    # something changed, or every few polls.
                    news = polls % IDLE_FULL_LOOK_EVERY == 0 or await off_loop(
                        self._provider.has_news, self.name
                    )
                    changed = news and await self.refresh(force=True)
                except TemporaryFailure:  # the provider is away for now: keep idling, ask again
                    self._note_away(True)
                    changed = False
                else:
                    self._note_away(False)
                if changed:
                    break
                await wait_on.wait(timeout=self.poll_seconds)
        selected.set_messages([self._messages[uid] for uid in sorted(self._messages)])
        return selected

    async def indexed_matches(self, terms: Sequence[tuple[bytes, str]]) -> set[int] | None:
        """UIDs whose text matches every (search key, words) of `terms`, from the search index; None
        when there is no index or it is still being built for this folder. A few messages not yet
        indexed (new mail) are decrypted and indexed first."""
        index = self._provider.index
        if index is None:
            return None
        where = (self._provider.account.name, self.name, self._view.uidvalidity)
        missing = sorted(set(self._messages) - await off_loop(index.indexed, *where))
        if len(missing) > INDEX_CATCH_UP:
            return None
        if missing:
            await off_loop(self._provider.originals, self.name, self._view.uidvalidity, missing)
        await off_loop(index.flush)
        return await off_loop(uids_matching, index, where, terms)

    def _note_away(self, away: bool) -> None:
        # Logged when it changes, not at every poll.
        if away != self._away:
            self._away = away
            log.warning("%s: the provider is %s while a client idles", self.name, "away" if away else "back")

    def read_ahead(self, uids: Sequence[int]) -> None:
        """The UIDs a client is about to read, in order: content is decrypted in groups along them."""
        self._window = list(uids)

    async def content(self, uid: int) -> MessageContent:
        """The original of `uid`, parsed, from the memory cache or decrypted with the next few the
        client is about to read (an expunged message's content is empty)."""
        uidvalidity = self._view.uidvalidity
        held = self._cache.get(self._key(uidvalidity, uid))
        if held is not None:
            return held
        group = [
            u for u in self._group_from(uid) if u == uid or self._cache.get(self._key(uidvalidity, u)) is None
        ]
        loaded = await off_loop(self._load, uidvalidity, group)
        return loaded.get(uid) or MessageContent.parse(b"")

    def _key(self, uidvalidity: int, uid: int) -> tuple[str, str, int, int]:
        return (self._provider.account.name, self.name, uidvalidity, uid)

    def _load(self, uidvalidity: int, uids: list[int]) -> dict[int, MessageContent]:
        # In a worker thread: decrypting waits on gpg, parsing takes CPU; neither on the event loop.
        loaded: dict[int, MessageContent] = {}
        for uid, original in self._provider.originals(self.name, uidvalidity, uids).items():
            loaded[uid] = MessageContent.parse(original)
            self._cache.put(self._key(uidvalidity, uid), loaded[uid], len(original))
        return loaded

    def _group_from(self, uid: int) -> list[int]:
        if uid not in self._window:
            return [uid]
        sizes = {e.uid: e.size for e in self._view.entries}
        group: list[int] = []
        total = 0
        for next_uid in self._window[self._window.index(uid) :]:
            if group and (
                len(group) >= READ_AHEAD_MESSAGES or total + sizes.get(next_uid, 0) > READ_AHEAD_BYTES
            ):
                break
            group.append(next_uid)
            total += sizes.get(next_uid, 0)
        return group

    async def append(self, append_msg: AppendMessage, *, recent: bool = False) -> ServedMessage:
        """Seal the client's message and store it at the provider (docs/serve.md)."""
        when = append_msg.when or dt.datetime.now(dt.UTC)
        flags = [bytes(f) for f in append_msg.flag_set]
        uid = await off_loop(self._provider.append, self.name, append_msg.literal, flags, when)
        self._changed_by_us = True
        if uid is None:  # no APPENDUID: the newest message is ours, as far as anyone can tell
            await self.refresh(force=True)
            uid = max(self._messages, default=0)
        return ServedMessage(uid, when, append_msg.flag_set, folder=self)

    async def copy(self, uid: int, destination: FolderData, *, recent: bool = False) -> int | None:
        """Copy one message's stored copy; its new UID is not known (no COPYUID is promised)."""
        await self.copy_many([uid], destination.name)
        return None

    async def copy_many(self, uids: Sequence[int], destination: str) -> None:
        """Copy the provider's `uids` to `destination`."""
        if uids:
            await off_loop(self._provider.copy, self.name, uids, destination)

    async def move(self, uid: int, destination: FolderData, *, recent: bool = False) -> int | None:
        """Move one message's stored copy."""
        await self.move_many([uid], destination.name)
        return None

    async def move_many(self, uids: Sequence[int], destination: str) -> None:
        """Move the provider's `uids` to `destination`."""
        if uids:
            await off_loop(self._provider.move, self.name, uids, destination)
            self._changed_by_us = True

    async def find(
        self, seq_set: SequenceSet, selected: SelectedMailbox
    ) -> AsyncIterator[tuple[int, ServedMessage]]:
        """The messages of `seq_set`; a SEARCH that needs their content decrypts ahead along them."""
        found = list(selected.messages.get_all(seq_set))
        self.read_ahead([cached.uid for _, cached in found])
        for seq, cached in found:
            yield seq, await self.get(cached.uid, cached)

    async def get(self, uid: int, cached_msg: CachedMessage) -> ServedMessage:
        """The message `uid` as last seen at the provider, or marked expunged if it is gone."""
        found = self._messages.get(uid)
        if found is not None:
            return found
        return ServedMessage(
            uid, cached_msg.internal_date, cached_msg.permanent_flags, folder=self, expunged=True
        )

    async def update(
        self, uid: int, cached_msg: CachedMessage, flag_set: frozenset[Flag], mode: FlagOp
    ) -> ServedMessage:
        """Change one message's flags at the provider."""
        await self.update_many([uid], flag_set, mode)
        return await self.get(uid, cached_msg)

    async def update_many(self, uids: Sequence[int], flag_set: frozenset[Flag], mode: FlagOp) -> None:
        """Change the flags of `uids` at the provider in one STORE, and take the flags it reports."""
        present = [uid for uid in uids if uid in self._messages]
        if not present or (mode is not FlagOp.REPLACE and not flag_set):
            return
        answer = await off_loop(
            self._provider.store, self.name, present, [bytes(f) for f in flag_set], _FLAG_MODES[mode]
        )
        self._changed_by_us = True
        for uid, flags in answer.items():
            old = self._messages.get(uid)
            if old is not None:
                self._messages[uid] = ServedMessage(uid, old.internal_date, _flags(flags), folder=self)

    async def delete(self, uids: Iterable[int]) -> None:
        """Expunge `uids` at the provider."""
        wanted = sorted(uids)
        if wanted:
            await off_loop(self._provider.expunge, self.name, wanted)
            self._changed_by_us = True

    async def claim_recent(self, selected: SelectedMailbox) -> None:
        """\\Recent is not passed through: the provider's own sessions own it."""

    async def cleanup(self) -> None:
        """Nothing to clean: the provider keeps the messages."""

    async def snapshot(self) -> MailboxSnapshot:
        """EXISTS, UNSEEN, UIDVALIDITY and UIDNEXT as the provider reports them."""
        entries = self._view.entries
        unseen = [i for i, e in enumerate(entries, 1) if b"\\Seen" not in e.flags]
        return MailboxSnapshot(
            self.mailbox_id,
            self.readonly,
            self.uid_validity,
            self.permanent_flags,
            self.session_flags,
            len(entries),
            0,
            len(unseen),
            unseen[0] if unseen else None,
            self._view.uidnext,
        )


class FolderSet(MailboxSetInterface[FolderData]):
    """The provider's folders. Subscriptions are not kept: every folder counts as subscribed."""

    def __init__(self, provider: Provider, delimiter: str, poll_seconds: float, cache: ContentCache) -> None:
        self._provider = provider
        self._cache = cache
        self._delimiter = delimiter
        self._poll_seconds = poll_seconds
        self._folders: dict[str, FolderData] = {}

    @property
    def provider(self) -> Provider:
        """The provider connection the folders come from."""
        return self._provider

    @property
    def delimiter(self) -> str:
        """The provider's hierarchy delimiter."""
        return self._delimiter

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        """Accepted and forgotten: every folder is listed as subscribed."""

    async def list_subscribed(self) -> ListTree:
        """Every folder."""
        return await self.list_mailboxes()

    async def list_mailboxes(self) -> ListTree:
        """The provider's selectable folders."""
        _, names = await off_loop(self._provider.folders)
        return ListTree(self.delimiter).update("INBOX", *names)

    async def get_mailbox(self, name: str) -> FolderData:
        """The folder `name`, refreshed from the provider; KeyError if the provider has no such folder."""
        if name.upper() == "INBOX":
            name = "INBOX"
        folder = self._folders.get(name)
        if folder is None:
            folder = FolderData(name, self._provider, self._poll_seconds, self._cache)
        try:
            await folder.refresh()
        except TemporaryFailure as exc:
            raise KeyError(name) from exc
        self._folders[name] = folder
        return folder

    async def add_mailbox(self, name: str) -> ObjectId:
        """CREATE at the provider; ValueError (the name is taken) if it refuses."""
        try:
            await off_loop(self._provider.create, name)
        except TemporaryFailure as exc:
            raise ValueError(name) from exc
        return ObjectId.random_mailbox_id()

    async def delete_mailbox(self, name: str) -> None:
        """DELETE at the provider; KeyError if it refuses."""
        try:
            await off_loop(self._provider.delete, name)
        except TemporaryFailure as exc:
            raise KeyError(name) from exc
        self._folders.pop(name, None)

    async def rename_mailbox(self, before: str, after: str) -> None:
        """RENAME at the provider; KeyError if it refuses."""
        try:
            await off_loop(self._provider.rename, before, after)
        except TemporaryFailure as exc:
            raise KeyError(before) from exc
        self._folders.pop(before, None)


ContentCache = OriginalCache[MessageContent]
