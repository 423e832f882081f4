"""Hostile or broken server responses: a clean ServerError naming the server, and nothing lost.

A response-rewriting proxy (tests/fixtures/proxy.py) in front of the real Dovecot plays the server
that omits FLAGS or UIDVALIDITY, sends a bad RFC822.SIZE or INTERNALDATE, announces a literal of
100 GB, or claims four billion UIDs in APPENDUID.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from imapcrypt.errors import ServerError
from imapcrypt.imap.connect import connect
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.engine import Rig, assert_exactly_once
from tests.fixtures.proxy import FaultProxy


def _in_fetch(pattern: bytes, replacement: bytes) -> Callable[[bytes], bytes]:
    def rewrite(line: bytes) -> bytes:
        if line.startswith(b"* ") and b" FETCH (" in line:
            return re.sub(pattern, replacement, line)
        return line

    return rewrite


def _drop_uidvalidity(line: bytes) -> bytes:
    return b"" if b"[UIDVALIDITY " in line else line


def _huge_appenduid(line: bytes) -> bytes:
    return re.sub(rb"\[APPENDUID (\d+) [\d:,]+\]", rb"[APPENDUID \1 1:4000000000]", line)


HOSTILE = {
    "fetch-without-flags": (_in_fetch(rb"FLAGS \([^)]*\) ?", b""), "FLAGS"),
    "select-without-uidvalidity": (_drop_uidvalidity, "UIDVALIDITY"),
    "bad-size": (_in_fetch(rb"RFC822\.SIZE \d+", b"RFC822.SIZE -12"), "RFC822.SIZE"),
    "size-not-a-number": (_in_fetch(rb"RFC822\.SIZE \d+", b"RFC822.SIZE huge"), "RFC822.SIZE"),
    "bad-internaldate": (
        _in_fetch(rb'INTERNALDATE "[^"]*"', b'INTERNALDATE "99-Foo-2020 99:99:99 +9999"'),
        "INTERNALDATE",
    ),
    "huge-literal": (_in_fetch(rb"\{\d+\}\r\n$", b"{99999999999}\r\n"), "literal"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_response_is_a_clean_server_error_and_nothing_is_lost(
    case: str, rig: Rig, fault_proxy: FaultProxy
) -> None:
    rewrite, named = HOSTILE[case]
    seeds = varied_seeds(3)
    rig.mailbox.seed(seeds)
    through = rig.at_port(fault_proxy.port)
    fault_proxy.rewrite_responses(rewrite)
    with pytest.raises(ServerError) as raised, through.engine() as engine:
        engine.encrypt_folder("INBOX", backlog=True)
    assert rig.account.host in raised.value.message
    assert named in raised.value.message
    fault_proxy.rewrite_responses(None)
    assert_exactly_once(rig, seeds)
    with through.engine() as engine:  # the honest server again: the run completes
        engine.encrypt_folder("INBOX", backlog=True)
    assert_exactly_once(rig, seeds)


def test_a_huge_appenduid_counts_as_unsaid_and_the_copy_is_found_by_its_id(
    rig: Rig, fault_proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    seeds = varied_seeds(3)
    rig.mailbox.seed(seeds)
    fault_proxy.rewrite_responses(_huge_appenduid)
    with rig.at_port(fault_proxy.port).engine() as engine:
        report = engine.encrypt_folder("INBOX", backlog=True)
    assert report.encrypted == len(seeds)
    assert "malformed APPENDUID" in caplog.text
    state = assert_exactly_once(rig, seeds)
    assert len(state) == len(seeds)


def test_a_huge_literal_during_login_is_refused_before_it_is_read(rig: Rig, fault_proxy: FaultProxy) -> None:
    fault_proxy.rewrite_responses(
        lambda line: b"* OK {99999999999}\r\n" + line if b"Logged in" in line else line
    )
    with pytest.raises(ServerError, match="literal of 99,999,999,999 bytes"):
        connect(rig.at_port(fault_proxy.port).account, lambda: rig.mailbox.password)
