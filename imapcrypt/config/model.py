"""The TOML configuration file (docs/cli.md): where it is, what it may hold, and its typed form.

Unknown keys and invalid values are errors that name the key and the file. Secrets never live here:
passwords come from the OS keyring or a `password_command` (see `secrets`).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import platformdirs

from imapcrypt.errors import ConfigError
from imapcrypt.message.envelope import DEFAULT_OUTER_HEADERS, check_outer_headers

APP_NAME = "imapcrypt"
_STEM_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
Security = Literal["tls", "starttls", "plain"]
OriginalPolicy = Literal["purge", "trash"]
Profile = Literal["auto", "generic", "gmail"]
# How a stored copy is verified (docs/engine.md#verification): "bytes" downloads it and compares it with
# what was sent; "hash" is the earlier name for the same; "size" (an opt-in for servers known to be
# honest) only compares the size and header the server reports.
Verify = Literal["bytes", "hash", "size"]


def default_config_path() -> Path:
    """`IMAPCRYPT_CONFIG` if set, else `<platform config dir>/imapcrypt/config.toml`."""
    env = os.environ.get("IMAPCRYPT_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_data_dir() -> Path:
    """The platform data dir: journals, locks and imapcrypt's own GnuPG home live under it."""
    return Path(platformdirs.user_data_dir(APP_NAME))


def account_file_stem(name: str) -> str:
    """The file name stem of an account's journal and lock: distinct names give distinct stems.

    Letters, digits, ".", "_" and "-" stay; every other byte of the UTF-8 name becomes %XX (and "%"
    itself too), so "my mail" and "my_mail" never share a file and no name reaches outside its folder.
    """
    return "".join(chr(byte) if chr(byte) in _STEM_SAFE else f"%{byte:02X}" for byte in name.encode("utf-8"))


def legacy_file_stem(name: str) -> str:
    """The stem imapcrypt used before `account_file_stem` (lossy: "my mail" and "my_mail" collide)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (the only hosts that may be reached in cleartext)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Account:
    """One IMAP account and the policy imapcrypt applies to it."""

    name: str
    host: str
    username: str
    recipients: tuple[str, ...]
    port: int = 993
    security: Security = "tls"
    password_command: str | None = None
    token_command: str | None = None
    passphrase_command: str | None = None
    folders: tuple[str, ...] = ("INBOX",)
    grace_minutes: float = 0.0
    # Another installation's claim seen unchanged this long is stale (docs/engine.md, many installations).
    claim_lease_minutes: float = 10.0
    original: OriginalPolicy = "purge"
    profile: Profile = "auto"
    verify: Verify = "bytes"
    outer_headers: tuple[str, ...] = DEFAULT_OUTER_HEADERS
    ca_file: Path | None = None
    poll_seconds: float = 60.0
    # A NOOP on each IDLE connection this often (0: IDLE alone): servers whose IDLE pushes late (Cyrus
    # without idled: every 60 s; Courier without FAM) report new mail on NOOP (RFC 3501 §6.1.2).
    idle_noop_seconds: float = 5.0
    batch_size: int = 500  # per header FETCH and claim; bodies go in byte-bounded groups (engine/batches)
    workers: int = 0  # 0: one per CPU core, at most 4
    encrypt_encrypted: bool = False  # also wrap mail the sender already encrypted
    # Bytes APPENDed per day before pausing until the next day; None: the profile's default
    # (Gmail: 450 MB, under its 500 MB/day IMAP upload limit; elsewhere no limit); 0: no limit.
    daily_upload_mb: float | None = None
    max_connections: int = 4  # open IMAP connections per account (Gmail allows 15 across all clients)
    # The most one copy may decrypt to (restore, re-encrypt, the reader): a forged copy that is a
    # compression bomb stops there instead of filling memory.
    max_message_mb: float = 256.0

    @property
    def max_message_bytes(self) -> int:
        """`max_message_mb` in bytes: the decryption output limit for this account's copies."""
        return int(self.max_message_mb * 1024 * 1024)

    @property
    def keyring_user(self) -> str:
        """The name under which the account's password is kept in the OS keyring."""
        return f"{self.username}@{self.host}"


@dataclass(frozen=True)
class Config:
    """The whole configuration file, typed."""

    path: Path
    gnupg_home: Path
    data_dir: Path
    accounts: tuple[Account, ...] = field(default_factory=tuple)

    def account(self, name: str | None) -> Account:
        """The account called `name`, or the only one when `name` is None."""
        if name is None:
            if len(self.accounts) == 1:
                return self.accounts[0]
            if not self.accounts:
                raise ConfigError(f"{self.path}: no [[account]] is configured", "run `imapcrypt init`")
            names = ", ".join(a.name for a in self.accounts)
            raise ConfigError(f"several accounts are configured ({names})", "choose one with --account NAME")
        for account in self.accounts:
            if account.name == name:
                return account
        raise ConfigError(f"{self.path}: no account named {name!r}", "check the name with `imapcrypt status`")


_ACCOUNT_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "host": (str,),
    "port": (int,),
    "security": (str,),
    "username": (str,),
    "password_command": (str,),
    "token_command": (str,),
    "passphrase_command": (str,),
    "folders": (list,),
    "recipients": (list,),
    "grace_minutes": (int, float),
    "claim_lease_minutes": (int, float),
    "original": (str,),
    "profile": (str,),
    "verify": (str,),
    "outer_headers": (list,),
    "ca_file": (str,),
    "poll_seconds": (int, float),
    "idle_noop_seconds": (int, float),
    "batch_size": (int,),
    "workers": (int,),
    "encrypt_encrypted": (bool,),
    "daily_upload_mb": (int, float),
    "max_connections": (int,),
    "max_message_mb": (int, float),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "security": ("tls", "starttls", "plain"),
    "original": ("purge", "trash"),
    "profile": ("auto", "generic", "gmail"),
    "verify": ("bytes", "hash", "size"),
}
_REQUIRED = ("name", "host", "username", "recipients")


def load_config(path: Path | None = None) -> Config:
    """Read and validate the configuration at `path` (default: `default_config_path()`)."""
    path = path or default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no configuration file", "run `imapcrypt init` to create one") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", "check the file's permissions") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate configuration `text` read from `path` and return its typed form."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", "fix the syntax at that line") from None
    _reject_unknown(raw, {"gnupg", "account", "data_dir"}, path, "")
    data_dir = Path(_typed(raw, "data_dir", (str,), path, "") or default_data_dir()).expanduser()
    gnupg = raw.get("gnupg", {})
    if not isinstance(gnupg, dict):
        raise ConfigError(f"{path}: [gnupg] must be a table", "write it as a [gnupg] section")
    _reject_unknown(gnupg, {"home"}, path, "gnupg.")
    home = _typed(gnupg, "home", (str,), path, "gnupg.")
    gnupg_home = Path(home).expanduser() if home else data_dir / "gnupg"
    entries = raw.get("account", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: account must be an array of tables", "write each one as [[account]]")
    accounts = tuple(_account(entry, path, index) for index, entry in enumerate(entries))
    names = [a.name for a in accounts]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: two accounts are named {name!r}", "give each account its own name")
    return Config(path=path, gnupg_home=gnupg_home, data_dir=data_dir, accounts=accounts)


def _account(entry: object, path: Path, index: int) -> Account:
    where = f"account[{index}]."
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: {where[:-1]} must be a table", "write it as [[account]]")
    _reject_unknown(entry, set(_ACCOUNT_TYPES), path, where)
    for key in _REQUIRED:
        if key not in entry:
            raise ConfigError(f"{path}: {where}{key} is missing", f"add `{key} = …` to the account")
    values: dict[str, Any] = {}
    for key, types in _ACCOUNT_TYPES.items():
        if key in entry:
            values[key] = _typed(entry, key, types, path, where)
    for key, choices in _CHOICES.items():
        if key in values and values[key] not in choices:
            raise ConfigError(
                f"{path}: {where}{key} = {values[key]!r} is not one of {', '.join(choices)}",
                f"set {key} to one of those",
            )
    for key in ("folders", "recipients", "outer_headers"):
        if key in values:
            items = values[key]
            if not items or not all(isinstance(item, str) and item for item in items):
                raise ConfigError(
                    f"{path}: {where}{key} must be a non-empty list of strings", f"fix the {key} list"
                )
            values[key] = tuple(items)
    if "ca_file" in values:
        values["ca_file"] = Path(values["ca_file"]).expanduser()
    account = Account(**values)
    _check_account(account, path, where)
    return account


def _check_account(account: Account, path: Path, where: str) -> None:
    try:
        check_outer_headers(account.outer_headers)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {where}outer_headers: {exc.message}", exc.fix) from None
    if not 0 < account.port < 65536:
        raise ConfigError(f"{path}: {where}port = {account.port} is out of range", "use a TCP port number")
    if account.security == "plain" and not is_loopback(account.host):
        raise ConfigError(
            f"{path}: {where}security = 'plain' sends your password in clear to {account.host}",
            "use security = 'tls' or 'starttls'; cleartext is only allowed to a loopback host",
        )
    if (
        account.grace_minutes < 0
        or account.claim_lease_minutes <= 0
        or account.poll_seconds <= 0
        or account.idle_noop_seconds < 0
        or account.batch_size < 1
        or account.workers < 0
    ):
        raise ConfigError(
            f"{path}: {where} grace_minutes, claim_lease_minutes, poll_seconds, idle_noop_seconds, "
            "batch_size or workers is out of range",
            "use grace_minutes >= 0, claim_lease_minutes > 0, poll_seconds > 0, idle_noop_seconds >= 0, "
            "batch_size >= 1, workers >= 0",
        )
    if account.max_message_mb < 1:
        raise ConfigError(f"{path}: {where} max_message_mb is out of range", "use max_message_mb >= 1")
    if (account.daily_upload_mb is not None and account.daily_upload_mb < 0) or account.max_connections < 1:
        raise ConfigError(
            f"{path}: {where} daily_upload_mb or max_connections is out of range",
            "use daily_upload_mb >= 0 (0: no limit) and max_connections >= 1",
        )


def _reject_unknown(table: Mapping[str, object], known: set[str], path: Path, where: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{path}: unknown key {where}{key}",
                f"remove it or correct its spelling (known: {', '.join(sorted(known))})",
            )


def _typed(table: Mapping[str, object], key: str, types: tuple[type, ...], path: Path, where: str) -> Any:
    if key not in table:
        return None
    value = table[key]
    # bool is an int in Python; a port of `true` is still a mistake.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"{path}: {where}{key} must be a {wanted}", f"fix the value of {key}")
    return cast(Any, value)
