"""The header section of a raw message, read without re-serialising anything.

`HeaderSection.parse` splits a message's bytes into header fields exactly as written (folding, line
endings and 8-bit bytes kept), so the envelope can copy fields as bytes and hand single field values to
Python's `email` package for *reading* only. The original message is never rebuilt from a parse.
Content-Type values in the form writers use and subjects without encoded words are read here without
the `email` package, with the same results (tests/test_headers_property.py): it was about a third of
what classifying and sealing a message cost outside zlib and the cryptography.
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

# RFC 5322 field name: printable US-ASCII except colon; obsolete syntax allows blanks before the colon.
_FIELD_START = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
# Lines are split on LF only: a lone CR is data, not a line end (it stays inside its line).
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
# What a field must avoid to be copied into a header we write: NUL, lone CR and other controls.
_UNSAFE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Header values are cut to this many characters before the `email` package reads them: its parsers
# cost about the square of a value's length, and some recurse on nested comments (docs/format.md).
MAX_DECODE_CHARS = 16_000
MAX_PARSE_CHARS = 8_000
# RFC 5322 §2.1.1 allows 998 octets a line; a copy also appears after "HP-Outer: " (10 octets).
MAX_LINE = 988
# Surrogate escapes (8-bit bytes read by the email package) are replaced when a header is decoded.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# The Content-Type values mail writers produce: `type/subtype` and `name=token` or `name="text"`
# parameters, with no backslash, no `<`, `>` or `;` in a quoted string and no RFC 2231 `*` in a name.
# For those `_simple_parameters` gives exactly what the email package gives, at a third of its cost
# (tests/test_headers_property.py holds it to that); anything else goes to the email package.
# _ATOM is RFC 2045's token: printable US-ASCII but blanks and tspecials.
_ATOM = r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]+"
_NAME = r"[A-Za-z0-9!#$%&'+.^_`{|}~-]+"
_QUOTED = r'"[^"\\;<>\x00-\x1f\x7f\ud800-\udfff]*"'
_PARAM = rf";[ \t]*({_NAME})[ \t]*=[ \t]*({_ATOM}|{_QUOTED})[ \t]*"
_SIMPLE = re.compile(rf"[ \t]*({_ATOM}(?:/{_ATOM})?)[ \t]*((?:{_PARAM})*)")
_SIMPLE_PARAM = re.compile(_PARAM)


@dataclass(frozen=True)
class Field:
    """One header field as written: `lines` are its physical lines without their line endings."""

    name: str
    lines: tuple[bytes, ...]

    @property
    def key(self) -> str:
        """The name in lower case, for case-insensitive matching."""
        return self.name.lower()

    @property
    def value(self) -> bytes:
        """The unfolded value: line ends removed (continuation blanks kept), outer blanks stripped."""
        first = self.lines[0].split(b":", 1)[1]
        return b"".join((first, *self.lines[1:])).strip(b" \t")

    def text(self) -> str:
        """The unfolded value as text: UTF-8 (RFC 6532) if it is valid, else Latin-1 (never fails)."""
        try:
            return self.value.decode("utf-8")
        except UnicodeDecodeError:
            return self.value.decode("latin-1")

    def crlf(self) -> bytes:
        """The field with every line ending written as CRLF, ready to go into a header we build."""
        return b"".join(line + b"\r\n" for line in self.lines)

    def is_copyable(self) -> bool:
        """True if the field can be copied verbatim into a header imapcrypt writes.

        That excludes fields that hold NUL, lone CR or other control bytes, lines over 998 octets,
        blank continuation lines (some software reads them as the end of the header) and bytes that
        are not UTF-8: a copy must never make the written message malformed.
        """
        for line in self.lines:
            if len(line) > MAX_LINE or _UNSAFE.search(line):
                return False
        if any(not line.strip(b" \t") for line in self.lines[1:]):
            return False
        try:
            b"".join(self.lines).decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


@dataclass(frozen=True)
class HeaderSection:
    """The header fields of a message and where its body starts."""

    fields: tuple[Field, ...]
    body_start: int
    starts_with_field: bool

    @classmethod
    def parse(cls, raw: bytes) -> HeaderSection:
        """Split `raw` at the first empty line (CRLF or LF); works on header bytes alone too.

        Lines that are neither a field nor a continuation are skipped (they stay in the message, which
        is never rewritten). `starts_with_field` says whether the very first line is a header field.
        """
        fields: list[Field] = []
        current: list[bytes] = []
        name = ""
        offset = 0
        starts_with_field = False
        for match in _LINE.finditer(raw):
            line = match.group()
            offset = match.end()
            content = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
            if not content:  # the empty line that ends the header section
                break
            if content[:1] in (b" ", b"\t") and current:
                current.append(content)
                continue
            if current:
                fields.append(Field(name, tuple(current)))
                current = []
            start = _FIELD_START.match(content)
            if start:
                name = start.group(1).decode("ascii")
                current = [content]
                starts_with_field = starts_with_field or match.start() == 0
        else:
            offset = len(raw)
        if current:
            fields.append(Field(name, tuple(current)))
        return cls(tuple(fields), offset, starts_with_field)

    def all(self, name: str) -> Iterator[Field]:
        """Every field called `name` (any case), in order."""
        key = name.lower()
        return (f for f in self.fields if f.key == key)

    def first(self, name: str) -> Field | None:
        """The first field called `name` (any case), or None."""
        return next(self.all(name), None)

    @functools.cached_property
    def content_type(self) -> ContentType:
        """The first Content-Type of the section, or RFC 2045's default text/plain; parsed once."""
        found = self.first("Content-Type")
        return ContentType.parse(found.text() if found else "")


@dataclass(frozen=True)
class ContentType:
    """A parsed Content-Type: the lower-case `type/subtype` and its parameters (names in lower case)."""

    mime_type: str
    params: dict[str, str]

    @staticmethod
    def of(section: HeaderSection) -> ContentType:
        """The first Content-Type of `section`, or RFC 2045's default text/plain."""
        return section.content_type

    @classmethod
    def parse(cls, value: str) -> ContentType:
        """Parse one Content-Type value as the `email` package reads it (reading only)."""
        simple = _simple_parameters(_cut(value))
        if simple is not None:
            head, params = simple
            return cls(head.lower() if head.count("/") == 1 else "text/plain", params)
        holder = _holder("Content-Type", value)
        return cls(holder.get_content_type(), _email_parameters("Content-Type", value))


def parameters(name: str, value: str) -> dict[str, str]:
    """The parameters of a structured field value (Content-Type, Content-Disposition), names lower case."""
    simple = _simple_parameters(_cut(value))
    return _email_parameters(name, value) if simple is None else simple[1]


def _email_parameters(name: str, value: str) -> dict[str, str]:
    holder = _holder(name, value)
    params: dict[str, str] = {}
    for key, item in holder.get_params(failobj=[], header=name)[1:]:
        params.setdefault(key.lower(), email.utils.collapse_rfc2231_value(item).strip())
    return params


def _cut(value: str) -> str:
    # A structured value longer than MAX_PARSE_CHARS is not one any writer produces; its head is
    # all that is read (a boundary is at most 70 characters).
    return value[:MAX_PARSE_CHARS].replace("\r", " ").replace("\n", " ")


def _holder(name: str, value: str) -> email.message.Message:
    holder = email.message.Message()
    holder[name] = _cut(value)
    return holder


def _simple_parameters(value: str) -> tuple[str, dict[str, str]] | None:
    """The head (`type/subtype` or a token) and the parameters of a value in the `_SIMPLE` form,
    exactly as the email package reads them; None for any other value."""
    if not value.strip(" \t"):
        return "", {}
    match = _SIMPLE.fullmatch(value)
    if match is None:
        return None
    params: dict[str, str] = {}
    for param in _SIMPLE_PARAM.finditer(match.group(2)):
        item = param.group(2)
        # The email package strips a value's quotes, then its blanks (str.strip: Unicode ones too).
        params.setdefault(param.group(1).lower(), (item[1:-1] if item[:1] == '"' else item).strip())
    return match.group(1), params


def decode_words(value: str, limit: int = MAX_DECODE_CHARS) -> str:
    """`value` with RFC 2047 encoded words decoded; undecodable words are kept as they are.

    Only the first `limit` characters are decoded: the `email` package's cost grows about with the
    square of a value's length (a 1 MB subject of encoded words needs gigabytes), and decoding never
    makes text longer, so a caller that shows `limit` characters or fewer loses nothing. A word cut
    at the limit stays as written.
    """
    value = value[:limit]
    if "=?" not in value and not _SURROGATE.search(value):
        return value  # no encoded word: the email package gives the value back as it is
    try:
        return str(email.policy.default.header_factory("subject", value))
    except Exception:  # the email package raises assorted errors on adversarial words; keep raw text
        return value


def has_crlf_only(data: bytes) -> bool:
    """True if every LF in `data` is preceded by CR and there is no lone CR (IMAP line endings)."""
    return data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")
