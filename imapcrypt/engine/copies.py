"""Finding our copies on the server and proving them: only the bytes decide (docs/engine.md,
"Verification"). A copy counts as stored when the server gives back exactly what was sent, and
recovery trusts a copy only when its bytes match the digest journalled when it was sent."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from imapcrypt.engine.batches import VERIFY_BYTES, Prepared, by_bytes, chunks
from imapcrypt.imap.session import Session
from imapcrypt.journal import Intent
from imapcrypt.message import copy, envelope

VERIFY_FIELDS = (copy.MARKER_HEADER, "Content-Type")


class CopyFinder:
    """Looks for copies in the selected folder of one session and compares them with what was sent."""

    def __init__(self, session: Session, id_secret: bytes) -> None:
        self.session = session
        self.id_secret = id_secret

    def on_server(self) -> dict[str, list[int]]:
        """Marker id -> UIDs of every message in the selected folder that claims to be our copy."""
        uids = self.session.search_header(copy.MARKER_HEADER, "id=")
        found: dict[str, list[int]] = {}
        for batch in chunks(uids, 1000):
            for uid, info in sorted(self.session.fetch_info(batch, VERIFY_FIELDS).items()):
                ident = copy.copy_id(info.headers)
                if ident is not None:
                    found.setdefault(ident, []).append(uid)
        return found

    def find(self, intent: Intent) -> tuple[list[int], list[int]]:
        """The copies of an intent's message on the server, lowest UID first: those whose bytes match
        the digest recorded when it was sent, and those that claim to be its copy but do not match.

        Only the bytes decide: the header facts (message/copy.py) are what anyone can write, and a
        server may report a size that is not the size of what it stores. The copies of a restore
        cannot claim anything, so for a restore only matches are found.
        """
        if intent.direction == "encrypt":
            candidates = self.session.search_header(copy.MARKER_HEADER, intent.seal_id)
        else:
            candidates = self.session.uids_above(intent.uidnext - 1)
        good: list[int] = []
        bad: list[int] = []
        for uid, body in self.stored([uid for uid in candidates if uid != intent.src_uid]):
            if intent.digest and copy.digest(body, self.id_secret) == intent.digest:
                good.append(uid)
            elif intent.direction == "restore" and not intent.digest:
                # A restore journalled before schema 3: its keyed id is of the exact bytes, as good.
                if envelope.message_id(body, self.id_secret) == intent.seal_id:
                    good.append(uid)
            elif intent.direction == "encrypt" and copy.copy_id(body) == intent.seal_id:
                bad.append(uid)
        return sorted(good), sorted(bad)

    def stored(self, uids: Sequence[int]) -> Iterator[tuple[int, bytes]]:
        """The bytes the server stores for `uids`, downloaded a few megabytes at a time."""
        infos = self.session.fetch_info(uids, ["Message-ID"])
        for group in by_bytes([infos[uid] for uid in sorted(infos)], VERIFY_BYTES):
            bodies = self.session.fetch_bodies([info.uid for info in group])
            yield from sorted(bodies.items())

    def compare_bytes(
        self, copies: dict[int, Prepared], claimed: dict[int, int], unnamed: list[int]
    ) -> tuple[dict[int, int], dict[int, tuple[list[int], str]]]:
        """Download each claimed copy and compare it with what was sent; a UID the server does not
        list goes to `unnamed`, to be looked for."""
        verified: dict[int, int] = {}
        failed: dict[int, tuple[list[int], str]] = {}
        for group in by_bytes([p.info for p in copies.values()], VERIFY_BYTES):
            wanted = [claimed[info.uid] for info in group]
            stored = self.session.fetch_bodies(wanted)
            late = [uid for uid in wanted if uid not in stored]
            if late and self.session.fetch_info_settled(late, ["Message-ID"]):
                stored.update(self.session.fetch_bodies(late))  # shown after the server settled
            for info in group:
                uid = claimed[info.uid]
                body = stored.get(uid)
                if body == copies[info.uid].copy:
                    verified[info.uid] = uid
                elif body is None:
                    unnamed.append(info.uid)
                else:
                    failed[info.uid] = ([uid], "the server gave back other bytes than were sent")
        return verified, failed

    def compare_sizes(
        self, copies: dict[int, Prepared], claimed: dict[int, int], unnamed: list[int]
    ) -> tuple[dict[int, int], dict[int, tuple[list[int], str]]]:
        """`verify = "size"`: one FETCH compares each claimed copy's size and id with what was sent."""
        verified: dict[int, int] = {}
        failed: dict[int, tuple[list[int], str]] = {}
        infos = self.session.fetch_info_settled(sorted(claimed.values()), VERIFY_FIELDS)
        for src, uid in claimed.items():
            info = infos.get(uid)
            sent = copies[src]
            if info is None:
                unnamed.append(src)
            elif info.size != len(sent.copy) or copy.copy_id(info.headers) != sent.seal_id:
                failed[src] = ([uid], "the server reports another size or header than were sent")
            else:
                verified[src] = uid
        return verified, failed
