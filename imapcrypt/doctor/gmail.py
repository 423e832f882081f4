"""`imapcrypt doctor` on Gmail (docs/gmail.md): what the Gmail profile needs, checked from IMAP.

Reaching these checks means the login worked, so IMAP is enabled (a disabled account fails the login
with a fix that says where to turn it on). Then: the \\Trash and \\All folders are shown to IMAP,
All Mail is watched, labels can be read, and how Gmail's "auto-expunge" setting behaves. That last one
cannot be read over IMAP, only seen: doctor puts a tiny probe message into Trash, marks it deleted,
looks whether it left at once, and deletes it for good - the one write doctor makes, and it leaves
nothing behind.
"""

from __future__ import annotations

import datetime as dt
import uuid

from imapcrypt.config.model import Account
from imapcrypt.doctor.check import Check
from imapcrypt.errors import ImapcryptError
from imapcrypt.imap.gmail import find_by_gmail_id
from imapcrypt.imap.session import ALL_MAIL, TRASH, Session

SHOW_IN_IMAP = "in Gmail: Settings > See all settings > Labels, tick 'Show in IMAP' for {}"


def _probe_message() -> bytes:
    return (
        "From: imapcrypt doctor <doctor@imapcrypt.invalid>\r\n"
        "Subject: imapcrypt doctor probe (deleted at once)\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@imapcrypt.invalid>\r\n\r\nprobe\r\n"
    ).encode("ascii")


def auto_expunge(session: Session, trash: str) -> bool | None:
    """Whether Gmail expunges a message as soon as it is marked deleted (seen with a probe in Trash,
    which is then deleted for good); None when the probe could not be placed."""
    uid = session.append(trash, _probe_message(), (), dt.datetime.now(dt.UTC))
    session.select(trash)
    if uid is None:
        return None
    gmail_id = session.gmail_ids([uid]).get(uid)
    session.mark_deleted([uid])
    still_there = bool(find_by_gmail_id(session, [gmail_id])) if gmail_id is not None else True
    session.delete_uids([uid])
    return not still_there


def gmail_checks(account: Account, session: Session) -> list[Check]:
    """The Gmail profile's checks, in order: IMAP, Trash, All Mail, labels, auto-expunge."""

    checks = [Check("Gmail IMAP", "OK", "IMAP is enabled for this account")]
    trash = session.special_folder(TRASH)
    checks.append(
        Check("Gmail Trash", "OK", f"{trash} (\\Trash): originals are moved there and purged")
        if trash
        else Check("Gmail Trash", "FAIL", "no folder shows the \\Trash use", SHOW_IN_IMAP.format("Trash"))
    )
    every = session.special_folder(ALL_MAIL)
    if every is None:
        checks.append(
            Check("Gmail All Mail", "FAIL", "no folder shows the \\All use", SHOW_IN_IMAP.format("All Mail"))
        )
    elif "\\All" not in account.folders and every not in account.folders:
        checks.append(
            Check(
                "Gmail All Mail",
                "WARN",
                f"{every} is not watched: archived and filtered mail stays plaintext",
                'add "\\\\All" to folders (see docs/gmail.md)',
            )
        )
    else:
        checks.append(Check("Gmail All Mail", "OK", f"{every} (\\All) is watched: every message once"))
    try:
        session.select("INBOX")
        newest = session.uids_above(0)[-1:]
        labels = session.gmail_labels(newest)
        detail = (
            f"readable ({len(labels[newest[0]])} on the newest INBOX message)"
            if newest
            else "INBOX is empty: nothing to read"
        )
        checks.append(Check("Gmail labels", "OK", detail))
    except ImapcryptError as exc:
        checks.append(Check("Gmail labels", "FAIL", f"X-GM-LABELS cannot be read: {exc.message}"))
    if trash:
        try:
            expunges = auto_expunge(session, trash)
        except ImapcryptError as exc:
            checks.append(Check("Gmail auto-expunge", "WARN", f"not probed: {exc.message}"))
        else:
            detail = {
                True: "on (Gmail's default): a message marked deleted leaves the folder at once",
                False: "off: messages marked deleted wait for EXPUNGE; imapcrypt expunges its own by UID",
                None: "not probed: Gmail did not name the probe's UID",
            }[expunges]
            checks.append(Check("Gmail auto-expunge", "OK", detail))
    return checks
