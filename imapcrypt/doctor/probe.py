"""`imapcrypt doctor`'s probe: how the server treats a message, measured in a scratch folder.

A tiny probe message is APPENDed to a folder the check creates (and deletes again, with the probe):
how long IDLE takes to push it to a second connection (the real delay before the daemon hears of new
mail), whether the appending session sees it before a NOOP, and whether the server gives back the
exact bytes it was given (a server that adds headers can never have a copy verified). No other
folder or message is touched.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable

from imapcrypt.config.model import Account
from imapcrypt.doctor.check import Check
from imapcrypt.errors import ImapcryptError
from imapcrypt.imap.session import PushTiming, Session

PUSH_WAIT_SECONDS = 20.0  # how long doctor waits for IDLE to push the probe (servers that poll: 30-60 s)
PROMPT_PUSH_SECONDS = 2.0  # a push within this is "within seconds"


def _probe_message(token: str) -> bytes:
    return (
        "From: imapcrypt doctor <doctor@imapcrypt.invalid>\r\n"
        "Subject: imapcrypt doctor probe (deleted at once)\r\n"
        "Date: Thu, 01 Jan 2020 00:00:00 +0000\r\n"
        f"Message-ID: <{token}@imapcrypt.invalid>\r\n"
        "\r\n"
        "This message measures how the server stores mail. It is deleted with its folder.\r\n"
    ).encode()


def probe_checks(
    account: Account,
    session: Session,
    connect_again: Callable[[], Session],
    push_wait: float = PUSH_WAIT_SECONDS,
) -> list[Check]:
    """The push delay, late APPEND and byte-exact storage checks, from a probe in a scratch folder."""
    token = secrets.token_hex(6)
    folder = session.personal_folder(f"imapcrypt-doctor-{token}")
    probe = _probe_message(token)
    try:
        session.create_folder(folder)
    except ImapcryptError as exc:
        return [Check("probe", "WARN", f"no scratch folder for the probe: {exc.message}", "nothing to do")]
    try:
        session.select(folder)
        appended: list[int | None] = []

        def append() -> None:
            appended.append(session.append(folder, probe, (), dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))

        timing: PushTiming | None = None
        if session.can_idle:
            watcher = connect_again()
            try:
                watcher.examine(folder)
                timing = watcher.wait_for_push(push_wait, append)
            finally:
                watcher.logout()
        else:
            append()
        uid = appended[0] if appended else None
        seen_at_once = uid is not None and bool(session.fetch_info([uid], ["Message-ID"]))
        # Read back from a fresh session once this one let go of the folder: an mbox server writes
        # its own headers when it saves the folder, and the next session sees them.
        session.examine("INBOX")
        reader = connect_again()
        try:
            reader.examine(folder)
            stored = list(reader.fetch_bodies(reader.uids_above(0)).values())
        finally:
            reader.logout()
        checks = [_push_check(account, timing, push_wait)]
        if uid is not None:
            checks.append(_append_check(seen_at_once))
        checks.append(_stored_check(probe, stored))
        return checks
    finally:
        session.delete_folder(folder)


def _push_check(account: Account, timing: PushTiming | None, waited: float) -> Check:
    if timing is None:
        return Check(
            "push delay",
            "WARN",
            f"no IDLE: new mail waits up to poll_seconds = {account.poll_seconds:g}s",
            "lower poll_seconds",
        )
    noop = account.idle_noop_seconds
    delay = timing.pushed
    if delay is not None and delay <= PROMPT_PUSH_SECONDS:
        return Check("push delay", "OK", f"IDLE pushed new mail after {delay:.1f}s")
    measured = (
        f"IDLE pushed new mail after {delay:.0f}s"
        if delay is not None
        else (f"IDLE did not push new mail within {waited:.0f}s")
    )
    if not timing.shown_by_noop_or_push:
        return Check(
            "push delay",
            "WARN",
            f"{measured}, and a NOOP did not show it either: new mail waits until the server notices it",
            "tell your provider; imapcrypt's next pass (a reconnect, Encrypt now) finds it",
        )
    if noop:
        return Check(
            "push delay",
            "OK",
            f"{measured}; the daemon asks with a NOOP every {noop:g}s, so new mail stays plaintext "
            f"about {noop:g}s plus the time to encrypt it",
        )
    return Check(
        "push delay",
        "WARN",
        f"{measured}, and idle_noop_seconds = 0: new mail stays plaintext that long",
        "set idle_noop_seconds = 5 in the account",
    )


def _append_check(seen_at_once: bool) -> Check:
    if seen_at_once:
        return Check("own APPEND", "OK", "a stored copy is visible at once")
    return Check(
        "own APPEND",
        "OK",
        "a stored copy shows only after a NOOP (RFC 3501 allows it): imapcrypt asks again before "
        "concluding a copy is missing",
    )


def _stored_check(probe: bytes, stored: list[bytes]) -> Check:
    if stored == [probe]:
        return Check("stored as sent", "OK", "the server gives back the exact bytes it was given")
    if len(stored) == 1 and len(stored[0]) > len(probe):
        what = f"it added {len(stored[0]) - len(probe)} bytes (headers of its own)"
    else:
        what = "what it gave back differs from what it was given"
    return Check(
        "stored as sent",
        "FAIL",
        f"the server changes the messages it stores: {what}; no encrypted copy can ever be verified, "
        "so imapcrypt deletes nothing and the mail stays plaintext",
        "use a server or folder format that stores mail as sent (Maildir, not mbox); see docs/providers.md",
    )
