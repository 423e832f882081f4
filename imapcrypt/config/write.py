"""Writing a whole configuration as TOML (docs/cli.md): for `imapcrypt init`, the tray's wizard and Settings.

Only values that differ from the defaults are written, so the file stays short and readable. The
text must pass `parse_config` and give back the same accounts before it replaces the file,
atomically (temp file + rename). Settings rewrites the file whole: comments a user added by hand are
not kept (the `keys` commands edit recipients in place instead; see imapcrypt.config.edit).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from imapcrypt.config.model import Account, Config, default_data_dir, parse_config
from imapcrypt.errors import ConfigError

_DEFAULTS = Account(name="", host="", username="", recipients=())
_ORDER = ("name", "host", "port", "security", "username")


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(str(value), ensure_ascii=False)


def render(config: Config, write_dirs: bool) -> str:
    """The TOML text of `config`; `write_dirs` also writes data_dir and the GnuPG home."""
    lines = ["# imapcrypt configuration (docs/cli.md lists every key).", ""]
    if write_dirs:
        lines += [
            f"data_dir = {_value(config.data_dir)}",
            "",
            "[gnupg]",
            f"home = {_value(config.gnupg_home)}",
        ]
    elif config.gnupg_home != config.data_dir / "gnupg":
        lines += ["[gnupg]", f"home = {_value(config.gnupg_home)}"]
    for account in config.accounts:
        lines += ["", "[[account]]"]
        names = [*_ORDER, *(f.name for f in dataclasses.fields(Account) if f.name not in _ORDER)]
        for name in names:
            value = getattr(account, name)
            always = name in {"name", "host", "username", "recipients", "folders"}
            if value is not None and (always or value != getattr(_DEFAULTS, name)):
                lines.append(f"{name} = {_value(value)}")
    return "\n".join(lines) + "\n"


def save(config: Config) -> Config:
    """Write `config` to `config.path` and return it as read back. ConfigError leaves the file as it was."""
    write_dirs = config.data_dir != default_data_dir()
    text = render(config, write_dirs)
    parsed = parse_config(text, config.path)
    if parsed.accounts != config.accounts:
        raise ConfigError(f"{config.path}: the settings could not be written faithfully", "report this bug")
    config.path.parent.mkdir(parents=True, exist_ok=True)
    temp = config.path.with_name(f".{config.path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(config.path)
    finally:
        temp.unlink(missing_ok=True)
    return parsed


def with_account(config: Config, account: Account) -> Config:
    """`config` with `account` added, or replacing the account of the same name."""
    others = tuple(a for a in config.accounts if a.name != account.name)
    return dataclasses.replace(config, accounts=(*others, account))
