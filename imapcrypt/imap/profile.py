"""What kind of server a session talks to, decided once per session and passed down.

Whether the Gmail profile applies changes how originals are deleted (docs/gmail.md): on Gmail a bare
`UID EXPUNGE` only removes a label and the plaintext stays in All Mail. The engine, the removers and
doctor all act on one `ServerProfile` made by `server_profile`, so they can never disagree about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from imapcrypt.config.model import Profile
from imapcrypt.imap.session import Session


@dataclass(frozen=True)
class ServerProfile:
    """The server as the engine treats it.

    `gmail`: the Gmail profile applies (chosen in the config, or detected under "auto").
    `announces_gmail`: the server announces Gmail's extensions (X-GM-EXT-1), whatever the config says.
    """

    gmail: bool
    announces_gmail: bool
    configured: Profile


def server_profile(session: Session, configured: Profile) -> ServerProfile:
    """The profile of `session`'s server under the account's `profile` setting."""
    detected = session.is_gmail
    return ServerProfile(
        gmail=configured == "gmail" or (configured == "auto" and detected),
        announces_gmail=detected,
        configured=configured,
    )
