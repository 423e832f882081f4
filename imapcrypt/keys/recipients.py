"""Which keys an account encrypts to: use, add, remove, rotate (docs/keys.md).

Every key that becomes a recipient passes `keycheck` first; the account's `recipients` list in the
configuration file is rewritten by `config_edit`. No key is ever deleted from the GnuPG home here:
after a rotation the old key stays, so old mail stays readable (`reencrypt` moves it to the new key).
"""

from __future__ import annotations

from pathlib import Path

from imapcrypt.config import edit as config_edit
from imapcrypt.config.model import Config
from imapcrypt.errors import ConfigError
from imapcrypt.keys.fitness import check_recipient, refusal
from imapcrypt.openpgp.gnupg import GnuPG, normalise_fingerprint


def _require_fit(gpg: GnuPG, fingerprint: str) -> str:
    health = check_recipient(gpg, fingerprint)
    if not health.ok:
        raise refusal(health)
    return health.fingerprint


def use_key(gpg: GnuPG, config_path: Path, account: str, fingerprint: str) -> Config:
    """Make the key the account's only recipient (the first key of a new account)."""
    return config_edit.set_recipients(config_path, account, [_require_fit(gpg, fingerprint)])


def add_recipient(gpg: GnuPG, config_path: Path, account: str, fingerprint: str) -> Config:
    """Also encrypt the account's mail to this key (another device, an escrow or recovery key)."""
    return config_edit.add_recipient(config_path, account, _require_fit(gpg, fingerprint))


def remove_recipient(config_path: Path, account: str, fingerprint: str) -> Config:
    """Stop encrypting to this key; it stays in the GnuPG home. The last recipient cannot go."""
    return config_edit.remove_recipient(config_path, account, fingerprint)


def rotate(gpg: GnuPG, config_path: Path, account: str, new: str, old: str | None = None) -> Config:
    """Encrypt new mail to `new` instead of `old` (default: the account's only recipient).

    Other recipients (escrow, other devices) stay. The old key stays in the home for reading.
    """
    new = _require_fit(gpg, new)
    current = config_edit.current_recipients(config_path, account)
    if old is None:
        if len(current) != 1:
            raise ConfigError(
                f"account {account!r} has {len(current)} recipients",
                "say which one to replace with --replace FPR",
            )
        old = current[0]
    old = normalise_fingerprint(old)
    if old == new:
        raise ConfigError(f"{new} is already the recipient it would replace", "rotate to a new key")
    return config_edit.replace_recipient(config_path, account, old, new)
