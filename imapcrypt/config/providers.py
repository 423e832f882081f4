"""Known mail providers: their IMAP servers and what a user must know to log in.

Shared by `imapcrypt init` and the tray's wizard.
"""

from __future__ import annotations

from dataclasses import dataclass

from imapcrypt.config.model import Security


@dataclass(frozen=True)
class Preset:
    """A provider's IMAP server and what the user must know to log in."""

    host: str
    port: int
    security: Security
    note: str


PRESETS: dict[str, Preset] = {
    "Gmail": Preset(
        "imap.gmail.com",
        993,
        "tls",
        "Gmail needs an app password: Google Account → Security → 2-Step Verification → App passwords. "
        "Your normal password will be refused.",
    ),
    "Fastmail": Preset(
        "imap.fastmail.com",
        993,
        "tls",
        "Fastmail needs an app password: Settings → Privacy & Security → Manage app passwords.",
    ),
    "Outlook": Preset(
        "outlook.office365.com",
        993,
        "tls",
        "Outlook.com and Microsoft 365 often allow IMAP only with OAuth2: where app passwords are "
        "allowed, create one (Security → Advanced security options); otherwise set a token command.",
    ),
    "iCloud": Preset(
        "imap.mail.me.com",
        993,
        "tls",
        "iCloud needs an app-specific password: appleid.apple.com → Sign-In and Security. "
        "The user name is your iCloud address.",
    ),
    "Yahoo": Preset(
        "imap.mail.yahoo.com",
        993,
        "tls",
        "Yahoo needs an app password: Account info → Account security → Generate app password.",
    ),
}

# Which preset an address's domain suggests.
DOMAINS: dict[str, str] = {
    "gmail.com": "Gmail",
    "googlemail.com": "Gmail",
    "fastmail.com": "Fastmail",
    "fastmail.fm": "Fastmail",
    "outlook.com": "Outlook",
    "hotmail.com": "Outlook",
    "live.com": "Outlook",
    "icloud.com": "iCloud",
    "me.com": "iCloud",
    "mac.com": "iCloud",
    "yahoo.com": "Yahoo",
}


def preset_for(address: str) -> tuple[str, Preset] | None:
    """The provider an e-mail address belongs to, by its domain, if it is a known one."""
    name = DOMAINS.get(address.rpartition("@")[2].lower())
    return (name, PRESETS[name]) if name else None
