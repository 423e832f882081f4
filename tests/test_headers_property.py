"""The quick readers in message/headers.py give exactly what Python's `email` package gives.

Content-Type parameters and subjects without encoded words are read without the `email` package
(it was about a third of what classifying and sealing a message cost outside zlib and the
cryptography); these properties hold that shortcut to the package's results on hostile values, and
check that the shortcut serves the values writers produce.
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
from collections.abc import Callable

from hypothesis import example, given, settings
from hypothesis import strategies as st

from imapcrypt.message import headers
from imapcrypt.message.headers import MAX_PARSE_CHARS, ContentType, decode_words, parameters

MANY = settings(max_examples=3000, deadline=None)

# Everything the `email` package's parameter reader treats specially, and what str.strip strips.
TRICKY = [*" \t\r\n;=\"\\<>*/%'()[],:?@{}", "\x00", "\x0b", "\x1c", "\x7f", "\x85", "\xa0", "\u2028"]
ODD = ["é", "\ud800", "\udce9", "=?", "''", "*0*", "*0", "*", "\\\\", '\\"', '"\\"']
PIECES = [*TRICKY, *ODD, "a", "B", "9", "-", ".", "_", "text/plain", "charset", "boundary"]
HOSTILE = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)

BLANKS = st.sampled_from(["", "", " ", "\t", "  ", "\xa0", "\x0b"])
TOKEN = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]{1,10}", fullmatch=True)
NAME = st.sampled_from(["boundary", "charset", "Name", "protocol", "smime-type", "format", "NAME*", "name*0"])
QUOTED_TEXT = st.lists(st.sampled_from([*TRICKY, *ODD, "a", "b", "é"]), max_size=20).map("".join)


@st.composite
def writer_like(draw: st.DrawFn, tricky: bool) -> str:
    """A Content-Type as writers produce it; with `tricky`, bent where the email package is quirky."""
    blank = BLANKS if tricky else st.sampled_from(["", " ", "\t"])
    name = NAME if tricky else st.sampled_from(["boundary", "charset", "Name", "protocol", "format"])
    quoted = QUOTED_TEXT if tricky else st.text(st.sampled_from(list("ab =_.:/é'(),?+-")), max_size=20)
    head = draw(TOKEN) + "/" + draw(TOKEN)
    value = draw(blank) + (head.upper() if draw(st.booleans()) else head) + draw(blank)
    for _ in range(draw(st.integers(0, 4))):
        item = draw(TOKEN) if draw(st.booleans()) else '"' + draw(quoted) + '"'
        value += ";" + draw(blank) + draw(name) + draw(blank) + "=" + draw(blank) + item + draw(blank)
    if tricky and draw(st.booleans()):
        value += draw(st.sampled_from([";", "; ", ";;", " (comment)", '"', "\\", "=x"]))
    return value


def email_reads(name: str, value: str) -> tuple[str, dict[str, str]]:
    """What the `email` package reads from the field `name: value`, cut as headers.py cuts it."""
    holder = email.message.Message()
    holder[name] = value[:MAX_PARSE_CHARS].replace("\r", " ").replace("\n", " ")
    params: dict[str, str] = {}
    for key, item in holder.get_params(failobj=[], header=name)[1:]:
        params.setdefault(key.lower(), email.utils.collapse_rfc2231_value(item).strip())
    return holder.get_content_type(), params


def outcome(read: Callable[[], object]) -> object:
    """What `read` returns, or the type of what it raises (lone surrogates make the package raise)."""
    try:
        return read()
    except Exception as exc:  # whatever it is, both readers must agree on it
        return type(exc)


@MANY
@given(st.one_of(HOSTILE, writer_like(tricky=True)))
@example("")
@example(" \t ")
@example("text/plain;")
@example("text/plain;; a=b")
@example('text/plain; name="<a>"')
@example('text/plain; name="a\\\\b"')
@example('text/plain; a="x\\"; b=c')
@example('text/plain; name="\xa0a\x85"')
@example("text / plain")
@example("attachment; filename=a.txt")
@example("multipart/mixed; boundary=" + "b" * (2 * MAX_PARSE_CHARS))
def test_content_type_is_read_as_the_email_package_reads_it(value: str) -> None:
    expected = outcome(lambda: ContentType(*email_reads("Content-Type", value)))
    assert outcome(lambda: ContentType.parse(value)) == expected
    disposition = outcome(lambda: email_reads("Content-Disposition", value)[1])
    assert outcome(lambda: parameters("Content-Disposition", value)) == disposition


@MANY
@given(writer_like(tricky=False))
@example('multipart/encrypted; protocol="application/pgp-encrypted"; boundary="=_imapcrypt_0f"')
@example('text/plain; charset="utf-8"; format=flowed')
def test_values_writers_produce_are_read_without_the_email_package(value: str) -> None:
    assert headers._simple_parameters(value) is not None
    assert ContentType.parse(value) == ContentType(*email_reads("Content-Type", value))


def email_decodes(value: str) -> str:
    """The subject as the `email` package decodes it (or as written when it cannot)."""
    try:
        return str(email.policy.default.header_factory("subject", value))
    except Exception:  # the same refusal decode_words answers with the raw text
        return value


@MANY
@given(st.one_of(HOSTILE, st.text(max_size=40)))
@example("=?utf-8?q?caf=C3=A9?=")
@example("Re:  two  spaces\tand a tab ")
@example("\udce9t\udce9")
def test_subjects_are_decoded_as_the_email_package_decodes_them(value: str) -> None:
    assert decode_words(value) == email_decodes(value)
