"""pymap's session, login and settings for `imapcrypt serve` (docs/serve.md): pymap speaks IMAP to the
local client; the folders it works on are serve/folder.py's.

pymap's `BaseSession` does the protocol bookkeeping (sequence numbers, untagged updates, IDLE); the
session here batches what BaseSession does one message at a time (flags, copy, move) into one
provider command, answers SEARCH from the index, passes the provider's SPECIAL-USE attributes on, and
asks the provider afresh on NOOP. Who may log in is `LocalLogin`'s business.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from pymap.backend.session import BaseSession
from pymap.concurrent import Event
from pymap.config import BackendCapability, IMAPConfig
from pymap.exceptions import (
    AuthorizationFailure,
    InvalidAuth,
    MailboxNotFound,
    MailboxReadOnly,
    NotAllowedError,
)
from pymap.flags import FlagOp
from pymap.interfaces.login import IdentityInterface, LoginInterface
from pymap.parsing.response.code import CopyUid
from pymap.parsing.specials import FetchRequirement, SearchKey, SequenceSet
from pymap.parsing.specials.flag import Flag, Seen
from pymap.search import SearchCriteriaSet, SearchParams
from pymap.selected import SelectedMailbox
from pymap.token import AllTokens
from pymap.user import UserMetadata
from pysasl.creds.server import ServerCredentials
from pysasl.identity import ClearIdentity

from imapcrypt.serve.folder import ContentCache, FolderData, FolderSet, ServedMessage, off_loop
from imapcrypt.serve.index import COLUMNS
from imapcrypt.serve.provider import Provider


class ServeConfig(IMAPConfig):
    """pymap's settings for `imapcrypt serve`."""

    @property
    def backend_capability(self) -> BackendCapability:
        """IDLE (polled from the provider); no OBJECTID; MULTIAPPEND is pymap's own loop; the
        provider's SPECIAL-USE attributes are passed on."""
        return BackendCapability(idle=True, object_id=False, multi_append=True, custom=[b"SPECIAL-USE"])

    @property
    def greeting(self) -> bytes:
        """The greeting: pymap's default looks the machine's name up in DNS at every connection."""
        return b"imapcrypt serve ready"


class ServeSession(BaseSession[ServedMessage]):
    """One local client's session over its own provider connection."""

    def __init__(self, owner: str, config: ServeConfig, folders: FolderSet) -> None:
        super().__init__(owner)
        self._config = config
        self._folders = folders

    @property
    def config(self) -> ServeConfig:
        """pymap's settings."""
        return self._config

    @property
    def mailbox_set(self) -> FolderSet:
        """The provider's folders."""
        return self._folders

    async def _folder_of(self, selected: SelectedMailbox) -> FolderData:
        return await self.mailbox_set.get_mailbox(selected.lookup)

    async def _destination(self, name: str) -> FolderData:
        try:
            return await self.mailbox_set.get_mailbox(name)
        except KeyError as exc:
            raise MailboxNotFound(name, try_create=True) from exc

    async def list_mailboxes(
        self, ref_name: str, filter_: str, subscribed: bool = False, selected: SelectedMailbox | None = None
    ) -> tuple[Iterable[tuple[str, str | None, Sequence[bytes]]], SelectedMailbox | None]:
        """LIST, with the provider's SPECIAL-USE attributes: a client files drafts and sent mail in the
        provider's Drafts and Sent folders, where they arrive encrypted."""
        listing, updates = await super().list_mailboxes(ref_name, filter_, subscribed, selected)
        uses = await off_loop(self._folders.provider.special_uses) if filter_ else {}
        # pymap writes attributes without their backslash.
        return [
            (name, delimiter, [*attributes, *(use.lstrip(b"\\") for use in uses.get(name, ()))])
            for name, delimiter, attributes in listing
        ], updates

    async def check_mailbox(
        self, selected: SelectedMailbox, *, wait_on: Event | None = None, housekeeping: bool = False
    ) -> SelectedMailbox:
        """NOOP and CHECK ask the provider afresh (clients poll with them); IDLE (`wait_on`) polls."""
        folder = await self._folder_of(selected)
        if wait_on is None:
            await folder.refresh(force=True)
        return await folder.update_selected(selected, wait_on=wait_on)

    async def fetch_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, set_seen: bool
    ) -> tuple[Iterable[tuple[int, ServedMessage]], SelectedMailbox]:
        """The messages of `sequence_set`; content is decrypted ahead along them, \\Seen set in one STORE."""
        folder = await self._folder_of(selected)
        found = list(selected.messages.get_all(sequence_set))
        folder.read_ahead([cached.uid for _, cached in found])
        if set_seen:
            unseen = [cached.uid for _, cached in found if Seen not in cached.permanent_flags]
            await folder.update_many(unseen, frozenset({Seen}), FlagOp.ADD)
        messages = [(seq, await folder.get(cached.uid, cached)) for seq, cached in found]
        return messages, await folder.update_selected(selected)

    async def search_mailbox(
        self, selected: SelectedMailbox, keys: frozenset[SearchKey]
    ) -> tuple[Iterable[tuple[int, ServedMessage]], SelectedMailbox]:
        """SEARCH: text keys (subject, from, to, cc, body, text) from the search index when it covers
        the folder, the other keys by pymap on those candidates; without an index, pymap on the
        decrypted messages."""
        folder = await self._folder_of(selected)
        answerable = frozenset(
            k for k in keys if k.value in COLUMNS and not k.inverse and isinstance(k.filter, str)
        )
        terms = [(k.value, k.filter_str) for k in answerable]
        candidates = await folder.indexed_matches(terms) if terms else None
        if candidates is None:
            return await super().search_mailbox(selected, keys)
        rest = keys - answerable
        search = SearchCriteriaSet(rest, SearchParams(selected, disabled=self.config.disable_search_keys))
        requirement = FetchRequirement.reduce(key.requirement for key in rest)
        found = [(seq, c) for seq, c in selected.messages.get_all(search.sequence_set) if c.uid in candidates]
        folder.read_ahead([cached.uid for _, cached in found])
        messages: list[tuple[int, ServedMessage]] = []
        for seq, cached in found:
            message = await folder.get(cached.uid, cached)
            if search.matches(seq, message, await message.load_content(requirement)):
                messages.append((seq, message))
        return messages, await folder.update_selected(selected)

    async def update_flags(
        self,
        selected: SelectedMailbox,
        sequence_set: SequenceSet,
        flag_set: frozenset[Flag],
        mode: FlagOp = FlagOp.REPLACE,
    ) -> tuple[Iterable[tuple[int, ServedMessage]], SelectedMailbox]:
        """STORE on the provider's copies, all of them in one command."""
        if selected.readonly:
            raise MailboxReadOnly()
        folder = await self._folder_of(selected)
        found = list(selected.messages.get_all(sequence_set))
        await folder.update_many(
            [cached.uid for _, cached in found], selected.permanent_flags & flag_set, mode
        )
        messages: list[tuple[int, ServedMessage]] = []
        for seq, cached in found:
            message = await folder.get(cached.uid, cached)
            if not message.expunged:
                selected.session_flags.update(cached.uid, flag_set, mode)
            messages.append((seq, message))
        return messages, await folder.update_selected(selected)

    async def copy_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str
    ) -> tuple[CopyUid | None, SelectedMailbox]:
        """COPY the provider's copies in one command (no COPYUID: the provider's answer is not read)."""
        folder = await self._folder_of(selected)
        destination = await self._destination(mailbox)
        await folder.copy_many([uid for _, uid in selected.messages.get_uids(sequence_set)], destination.name)
        return None, await folder.update_selected(selected)

    async def move_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str
    ) -> tuple[CopyUid | None, SelectedMailbox]:
        """MOVE the provider's copies in one command."""
        if selected.readonly:
            raise MailboxReadOnly()
        folder = await self._folder_of(selected)
        destination = await self._destination(mailbox)
        await folder.move_many([uid for _, uid in selected.messages.get_uids(sequence_set)], destination.name)
        return None, await folder.update_selected(selected)


# Opens a provider connection for an account name, and closes one.
ProviderOpener = tuple[Callable[[str], Provider], Callable[[Provider], None]]


class LocalLogin(LoginInterface):
    """Who may log in: an account's name (or its user name) with the local password, nothing else."""

    def __init__(
        self,
        config: ServeConfig,
        names: dict[str, str],
        password: str,
        opener: ProviderOpener,
        *,
        poll_seconds: float,
        cache: ContentCache,
    ) -> None:
        self.config = config
        self._cache = cache
        self._names = names  # login name -> account name
        self._password = password
        self._opener = opener
        self._poll_seconds = poll_seconds
        self._tokens = AllTokens(config)

    @property
    def tokens(self) -> AllTokens:
        """pymap's token support (unused: there are no tokens to give)."""
        return self._tokens

    async def authenticate(self, credentials: ServerCredentials) -> LocalIdentity:
        """The account behind `credentials`; InvalidAuth for an unknown name or a wrong password."""
        account = self._names.get(credentials.authcid)
        if account is None or not credentials.verify(ClearIdentity(credentials.authcid, self._password)):
            await asyncio.sleep(self.config.invalid_user_sleep)
            raise InvalidAuth()
        return LocalIdentity(account, self)

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> IdentityInterface:
        """No one acts for anyone else."""
        if authzid and authzid not in (authenticated.name, *self._names_of(authenticated.name)):
            raise AuthorizationFailure()
        return authenticated

    def _names_of(self, account: str) -> list[str]:
        return [login for login, name in self._names.items() if name == account]

    @asynccontextmanager
    async def session_for(self, account: str) -> AsyncIterator[ServeSession]:
        """A session over a new provider connection of `account`, closed with the session."""
        opener, closer = self._opener
        provider = await off_loop(opener, account)
        try:
            delimiter, _ = await off_loop(provider.folders)
            yield ServeSession(
                account, self.config, FolderSet(provider, delimiter, self._poll_seconds, self._cache)
            )
        finally:
            await asyncio.to_thread(closer, provider)


class LocalIdentity(IdentityInterface):
    """A logged-in local client: the account it reads."""

    def __init__(self, account: str, login: LocalLogin) -> None:
        self._account = account
        self._login = login

    @property
    def name(self) -> str:
        """The account's name."""
        return self._account

    @property
    def roles(self) -> frozenset[str]:
        """No roles: nobody administers this server."""
        return frozenset()

    def new_session(self) -> AbstractAsyncContextManager[ServeSession]:
        """A session over a fresh provider connection."""
        return self._login.session_for(self._account)

    async def new_token(self, *, expiration: dt.datetime | None = None) -> str | None:
        """No tokens are given out."""
        return None

    async def get(self) -> UserMetadata:
        """The identity's metadata (its name)."""
        return UserMetadata(self._login.config, self._account)

    async def set(self, metadata: UserMetadata) -> int | None:
        """Users are the configured accounts: none is changed from here."""
        raise NotAllowedError()

    async def delete(self) -> None:
        """Users are the configured accounts: none is deleted from here."""
        raise NotAllowedError()
