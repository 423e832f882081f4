"""Rewriting one account's `recipients` list in the user's TOML file, and nothing else.

The user's file is theirs: every byte outside the `recipients = [...]` value of the chosen
`[[account]]` stays as it was, comments included. Inside a multi-line list, the lines of kept
fingerprints (with their comments) are kept too. The new text must pass `parse_config` and give the
account exactly the wanted recipients before it replaces the file, atomically (temp file + rename).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imapcrypt.config.model import Config, parse_config
from imapcrypt.errors import ConfigError
from imapcrypt.openpgp.gnupg import normalise_fingerprint


@dataclass(frozen=True)
class _Entry:
    """A key/value line (`key`, and the span of its value) or a table header (`header`)."""

    header: str | None
    key: str
    value_start: int
    value_end: int


def _skip_string(text: str, i: int) -> int:
    """The index just past the TOML string starting at `i`."""
    for quote in ('"""', "'''"):
        if text.startswith(quote, i):
            j = i + 3
            while True:
                j = text.index(quote, j)
                if quote == '"""' and _escaped(text, j):
                    j += 1
                    continue
                j += 3
                while text.startswith(quote[0], j):  # up to two quotes may close with the delimiter
                    j += 1
                return j
    quote = text[i]
    j = i + 1
    while True:
        if j >= len(text) or text[j] == "\n":
            raise ValueError("unterminated string")
        if text[j] == quote and not (quote == '"' and _escaped(text, j)):
            return j + 1
        j += 1


def _escaped(text: str, j: int) -> bool:
    backslashes = 0
    while j - 1 - backslashes >= 0 and text[j - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _value_end(text: str, i: int) -> int:
    """The index just past the TOML value starting at `i` (a string, array, inline table or scalar)."""
    if text[i] in "\"'":
        return _skip_string(text, i)
    if text[i] in "[{":
        depth = 0
        j = i
        while j < len(text):
            c = text[j]
            if c in "\"'":
                j = _skip_string(text, j)
                continue
            if c == "#":
                j = text.find("\n", j)
                j = len(text) if j < 0 else j
                continue
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        raise ValueError("unterminated array")
    j = i
    while j < len(text) and text[j] not in "#\n":
        j += 1
    return len(text[:j].rstrip())


def _entries(text: str) -> list[_Entry]:
    """Table headers and top-level key/value pairs of a TOML document, with value spans."""
    entries: list[_Entry] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif c == "[":
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            line = text[i:end].split("#", 1)[0].strip()
            entries.append(_Entry(line, "", i, end))
            i = end
        else:
            equals = i
            while text[equals] != "=":
                if text[equals] in "\"'":
                    equals = _skip_string(text, equals)
                    continue
                if text[equals] == "\n":
                    raise ValueError("a line that is neither a key, a table nor a comment")
                equals += 1
            key = text[i:equals].strip().strip("\"'")
            start = equals + 1
            while text[start] in " \t":
                start += 1
            end = _value_end(text, start)
            entries.append(_Entry(None, key, start, end))
            i = end
    return entries


def _recipients_span(text: str, account: str, path: Path) -> tuple[int, int]:
    """The span of the `recipients` value in the `[[account]]` named `account`."""
    try:
        entries = _entries(text)
    except (ValueError, IndexError):
        raise ConfigError(
            f"{path}: cannot find the account tables to edit", "edit the file by hand"
        ) from None
    tables: list[list[_Entry]] = []
    current: list[_Entry] | None = None
    for entry in entries:
        if entry.header is not None:
            current = [] if entry.header.replace(" ", "") == "[[account]]" else None
            if current is not None:
                tables.append(current)
        elif current is not None:
            current.append(entry)
    for table in tables:
        values = {e.key: e for e in table}
        name = values.get("name")
        if name is None or tomllib.loads("v = " + text[name.value_start : name.value_end])["v"] != account:
            continue
        recipients = values.get("recipients")
        if recipients is None or text[recipients.value_start] != "[":
            break
        return recipients.value_start, recipients.value_end
    raise ConfigError(
        f"{path}: no [[account]] named {account!r} with a recipients = [...] list",
        "add the account with `imapcrypt init`, or edit the file by hand",
    )


def _render(old: str, fingerprints: Sequence[str]) -> str:
    """The new array text, in the old one's layout where it can be kept."""
    if "\n" not in old:
        return "[" + ", ".join(f'"{f}"' for f in fingerprints) + "]"
    lines = old.split("\n")
    inner, closing = lines[1:-1], lines[-1]
    kept: dict[str, list[str]] = {}  # fingerprint -> its line, with the comment lines above it
    pending: list[str] = []
    simple = lines[0].split("#", 1)[0].strip() == "[" and closing.strip() == "]"
    for line in inner:
        body = line.split("#", 1)[0].strip().rstrip(",").strip()
        if not body:
            pending.append(line)
            continue
        try:
            value = tomllib.loads("v = " + body)["v"]
            fingerprint = normalise_fingerprint(value) if isinstance(value, str) else ""
        except (tomllib.TOMLDecodeError, ConfigError):
            simple = False
            break
        has_comma = line.split("#", 1)[0].rstrip().endswith(",")
        kept[fingerprint] = [*pending, line if has_comma else _add_comma(line)]
        pending = []
    if not simple:
        indent = "    "
        return "[\n" + "".join(f'{indent}"{f}",\n' for f in fingerprints) + "]"
    indent = next((ln[: len(ln) - len(ln.lstrip())] for ln in inner if ln.strip()), "    ")
    out = [lines[0]]
    for fingerprint in fingerprints:
        out.extend(kept.get(fingerprint, [f'{indent}"{fingerprint}",']))
    out.extend(pending)  # comments after the last item stay at the end
    out.append(closing)
    return "\n".join(out)


def _add_comma(line: str) -> str:
    code, hash_, comment = line.partition("#")
    stripped = code.rstrip()
    return stripped + "," + code[len(stripped) :] + hash_ + comment


def set_recipients(path: Path, account: str, fingerprints: Sequence[str]) -> Config:
    """Make `fingerprints` (in this order) the recipients of `account` in the file at `path`.

    Returns the configuration as read back from the new file. Raises ConfigError, leaving the file
    untouched, if the account or its list cannot be found or the result would not be valid.
    """
    wanted = list(dict.fromkeys(normalise_fingerprint(f) for f in fingerprints))
    if not wanted:
        raise ConfigError("an account needs at least one recipient", "keep or add one")
    try:
        original = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", "check the path") from None
    text = original.decode("utf-8")
    start, end = _recipients_span(text, account, path)
    new_text = text[:start] + _render(text[start:end], wanted) + text[end:]
    config = parse_config(new_text, path)
    if [normalise_fingerprint(r) for r in config.account(account).recipients] != wanted:
        raise ConfigError(f"{path}: editing the recipients went wrong", "edit the file by hand")
    _replace(path, original, new_text.encode("utf-8"))
    return config


def _replace(path: Path, original: bytes, content: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = path.stat().st_mode & 0o777
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        # Someone (an editor, the tray) changed the file meanwhile: theirs wins, ours is not written.
        if path.read_bytes() != original:
            raise ConfigError(f"{path} changed while it was being edited", "run the command again")
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)


def current_recipients(path: Path, account: str) -> list[str]:
    """The account's recipients as the file says them now, normalised."""
    text = path.read_text(encoding="utf-8")
    return [normalise_fingerprint(r) for r in parse_config(text, path).account(account).recipients]


def add_recipient(path: Path, account: str, fingerprint: str) -> Config:
    """Append `fingerprint` to the account's recipients (no change if it is already there)."""
    return set_recipients(path, account, [*current_recipients(path, account), fingerprint])


def remove_recipient(path: Path, account: str, fingerprint: str) -> Config:
    """Remove `fingerprint` from the account's recipients; the last one cannot be removed."""
    fingerprint = normalise_fingerprint(fingerprint)
    current = current_recipients(path, account)
    if fingerprint not in current:
        raise ConfigError(f"{fingerprint} is not a recipient of {account!r}", "check `imapcrypt keys list`")
    if current == [fingerprint]:
        raise ConfigError(
            f"{fingerprint} is the only recipient of {account!r}",
            "add the new key first, or use `imapcrypt keys rotate`",
        )
    return set_recipients(path, account, [f for f in current if f != fingerprint])


def replace_recipient(path: Path, account: str, old: str, new: str) -> Config:
    """Put `new` in the place of `old` among the account's recipients (rotation)."""
    old, new = normalise_fingerprint(old), normalise_fingerprint(new)
    current = current_recipients(path, account)
    if old not in current:
        raise ConfigError(f"{old} is not a recipient of {account!r}", "name one of its recipients")
    return set_recipients(path, account, [new if f == old else f for f in current])
