"""One exception tree for imapcrypt.

`ImapcryptError` is everything the program expects to happen: each carries a one-line `message` and a
`fix` the user can act on. Anything else escaping the engine is a bug. `TransientError` marks what a
retry may cure (a dropped connection, a throttling server); nothing else is retried.
Messages never contain secrets, subjects or bodies.
"""

from __future__ import annotations


class ImapcryptError(Exception):
    """An expected failure with a message and the fix for it."""

    exit_code = 1

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class ConfigError(ImapcryptError):
    """The configuration file is missing, malformed, or holds an unknown or invalid key."""

    exit_code = 2


class JournalError(ConfigError):
    """The account's journal cannot be read or trusted (overwritten, cut short, damaged)."""


class CredentialsError(ImapcryptError):
    """No password could be had (keyring empty, password_command failed) or the server refused it."""

    exit_code = 3


class ServerError(ImapcryptError):
    """The IMAP server cannot be reached, refused a command, or lacks something required."""

    exit_code = 4


class TlsError(ServerError):
    """The server's TLS certificate did not verify; `fingerprint` is its SHA-256, for the user."""

    def __init__(self, message: str, fix: str = "", fingerprint: str = "") -> None:
        super().__init__(message, fix)
        self.fingerprint = fingerprint


class TransientError(ServerError):
    """A failure that a later retry may cure: connection lost, throttled, temporarily unavailable."""


class QuotaError(TransientError):
    """The server refused to store a message for lack of space ([OVERQUOTA])."""


class RecipientKeyError(ImapcryptError):
    """A recipient key is unknown, expired, revoked, too weak or cannot encrypt."""

    exit_code = 5


class EnvelopeError(ImapcryptError):
    """Input that is not a message, or an encrypted message that does not decrypt or parse."""

    exit_code = 6


class DecryptError(EnvelopeError):
    """GnuPG could not decrypt (no secret key, wrong passphrase, damaged data)."""


class VerificationError(ServerError):
    """The server did not give back the bytes of a copy that was sent: the copy is not trusted."""


class LockedError(ImapcryptError):
    """Another imapcrypt process works on the same account."""

    exit_code = 7
