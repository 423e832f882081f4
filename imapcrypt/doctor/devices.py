"""Doctor lines about other installations: how this server lets installations share an account, and
whether another installation already encrypts it (docs/engine.md "Many installations, one mailbox").

`imapcrypt init`, the tray's wizard (both through imapcrypt/setup.py) and `imapcrypt doctor` show them.
"""

from __future__ import annotations

from collections.abc import Sequence

from imapcrypt.doctor.check import Check
from imapcrypt.imap.claims import Mode, is_claim, mode_for
from imapcrypt.imap.session import Session
from imapcrypt.message.classify import MARKER_HEADER

SHARE = (
    "another installation already encrypts this account; this one will share the work: "
    "each message is claimed by one installation at a time"
)


def coordination_checks(
    session: Session, folders: Sequence[str], own: bytes | None, new: bool
) -> list[Check]:
    """The claim mechanism this server gets, and whether another installation is at work.

    `own` is this installation's claim keyword (None before it has one); `new` says this installation's
    journal is new, so encrypted copies in a watched folder were made elsewhere. Selects each folder.
    """
    modes: set[Mode] = set()
    others = False
    for folder in folders:
        if not session.folder_exists(folder):
            continue
        session.select(folder)
        modes.add(mode_for(session, session.permanent_flags))
        keywords = {f.lower() for f in session.defined_flags if is_claim(f)} - {(own or b"").lower()}
        copies = bool(session.search_header(MARKER_HEADER, "")) if new else False
        others = others or bool(keywords) or copies
    mode = Mode.NONE if Mode.NONE in modes else (Mode.CHECK if Mode.CHECK in modes else Mode.CONDSTORE)
    checks = [
        Check(
            "installations",
            "OK",
            mode.value,
        )
        if mode is not Mode.NONE
        else Check(
            "installations", "WARN", "no coordination on this server", "run imapcrypt on one computer only"
        )
    ]
    if others:
        checks.append(
            Check("other installation", "OK", SHARE)
            if mode is not Mode.NONE
            else Check(
                "other installation",
                "WARN",
                "another installation already encrypts this account, and this server allows no coordination",
                "stop imapcrypt on the other computer, or do not run it here",
            )
        )
    return checks
