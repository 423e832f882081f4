"""`imapcrypt doctor`: what the provider may keep of a deleted original (docs/providers.md).

imapcrypt deletes a plaintext original from the folder, but some servers keep deleted mail where no
IMAP client can purge it. The server is recognised by its ID answer (RFC 2971), its greeting and its
capabilities, never guessed from the host name.
"""

from __future__ import annotations

from imapcrypt.doctor.check import Check
from imapcrypt.imap.session import Session

PROVIDERS_DOC = "see docs/providers.md"


def provider_check(session: Session) -> Check:
    """One line: which server this is and what it is known to keep after a delete."""
    ident = session.server_id()
    name = ident.get("name", "")
    named = f"{name} {ident.get('version', '')}".strip()
    said = f"{name} {ident.get('vendor', '')} {session.greeting}".lower()
    if session.is_gmail:
        return Check(
            "deleted mail",
            "OK",
            "Gmail: originals go through [Gmail]/Trash, which imapcrypt empties of them; Google's own "
            "backups are beyond any client",
            PROVIDERS_DOC,
        )
    if "cyrus" in said:
        return Check(
            "deleted mail",
            "WARN",
            f"{named or 'Cyrus IMAP'}: an expunged original can stay in the server's spool, restorable "
            "by the provider, until its expiry (expunge_mode: delayed is Debian's default; Fastmail "
            "restores deleted mail for days)",
            f"ask your provider how long; {PROVIDERS_DOC}",
        )
    if "exchange" in said or "outlook" in said or "microsoft" in said:
        return Check(
            "deleted mail",
            "WARN",
            "Microsoft Exchange/Outlook: deleted mail stays in Recoverable Items (14 days by default, "
            "up to 30; longer under a hold)",
            f"ask your administrator about retention; {PROVIDERS_DOC}",
        )
    if "courier" in said:
        return Check(
            "deleted mail",
            "OK",
            "Courier-IMAP: an expunged original is removed from the Maildir; the provider's backups aside",
            PROVIDERS_DOC,
        )
    if "dovecot" in said:
        return Check(
            "deleted mail",
            "OK",
            f"{named or 'Dovecot'}: an expunged original is gone unless the provider runs lazy_expunge "
            "or keeps backups",
            PROVIDERS_DOC,
        )
    return Check(
        "deleted mail",
        "OK",
        f"{named or 'the server does not say what it is'}: what it keeps after a delete is unknown",
        PROVIDERS_DOC,
    )
