"""Injected faults on Gmail (docs/design.md#the-invariant, docs/gmail.md): the fault tests of
tests/test_faults.py against the Gmail double. After any cut and one recovery run every original
exists exactly once in All Mail, as itself or as its encrypted copy, with its labels, and no
plaintext is left in All Mail or Trash."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from imapcrypt.message import envelope
from tests.fixtures.corpus import Seed, varied_seeds
from tests.fixtures.engine import Rig, assert_exactly_once, make_rig
from tests.fixtures.faults import backlog_process, cut_at_every_command, encrypt_inbox, kill_backlogs
from tests.fixtures.gmail_rig import ALL_MAIL, gmail_account, label
from tests.fixtures.gmail_server import GmailServer, gmail_mailbox_on
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.proxy import FaultProxy

pytestmark = pytest.mark.slow  # long fault-injection runs: `make test-fast` leaves them out

SEEDS = varied_seeds(6, seed=41)
# Everything the Gmail remover sends, SELECT and LIST included: each is a point a crash can hit.
FAULT_COMMANDS = (
    "UID FETCH",
    "APPEND",
    "UID STORE",
    "UID EXPUNGE",
    "UID MOVE",
    "UID SEARCH",
    "SELECT",
    "LIST",
)
# A cut before a command that only reads leaves the server as a cut after the one before it did:
# "before" is worth running only where the server's state would change.
CHANGING = ("APPEND", "UID STORE", "UID EXPUNGE", "UID MOVE")


def _seed(rig: Rig) -> dict[bytes, frozenset[str]]:
    uids = rig.mailbox.seed(SEEDS)
    label(rig, "INBOX", uids[:2], ["Work", "\\Important"])
    return {s.raw: s.labels for s in gmail_account(rig).in_all_mail()}


def _check(rig: Rig, labels: dict[bytes, frozenset[str]], what: str) -> None:
    account = gmail_account(rig)
    assert_exactly_once(rig, SEEDS, folder=ALL_MAIL)
    assert account.plaintext_left() == [], f"plaintext left after {what}"
    assert account.in_trash() == [], f"something left in Trash after {what}"
    assert account.merges == 0
    stored = account.in_all_mail()
    assert all(envelope.classify(s.raw) is envelope.Kind.OURS for s in stored), f"not all encrypted: {what}"
    assert sorted(map(sorted, (s.labels for s in stored))) == sorted(map(sorted, labels.values())), (
        f"labels lost after {what}"
    )


@pytest.mark.parametrize("mode", ["after", "before"])
def test_a_cut_at_every_command_on_gmail_loses_duplicates_and_leaks_nothing(
    mode: str,
    gmail_server: GmailServer,
    gnupg_home: GnupgHome,
    tmp_path: Path,
    fault_proxy_factory: Callable[[int], FaultProxy],
) -> None:
    proxy = fault_proxy_factory(gmail_server.port)

    def new_rig() -> Rig:
        return make_rig(gmail_mailbox_on(gmail_server), gnupg_home, tmp_path).with_policy(batch_size=3)

    first = new_rig()
    labels = _seed(first)
    proxy.reset_counts()
    encrypt_inbox(first.at_port(proxy.port))
    _check(first, labels, "a clean run")
    counts = {name: n for name, n in proxy.counts().items() if name in FAULT_COMMANDS}
    assert counts.get("UID MOVE", 0) == 2, counts  # one per batch: the originals go to Trash
    chosen = {c: n for c, n in counts.items() if mode == "after" or c in CHANGING}
    injected = cut_at_every_command(proxy, chosen, mode, new_rig, _seed, _check)
    assert injected >= sum(n for c, n in counts.items() if mode == "after" or c in CHANGING)


def test_sigkill_at_random_moments_of_a_gmail_backlog(
    gmail_server: GmailServer, gnupg_home: GnupgHome, tmp_path: Path
) -> None:
    seeds: list[Seed] = varied_seeds(60, seed=42)
    rig = make_rig(gmail_mailbox_on(gmail_server), gnupg_home, tmp_path).with_policy(
        batch_size=10, folders=("INBOX",)
    )
    rig.mailbox.seed(seeds)
    config = str(rig.write_config(batch_size="10"))
    account = gmail_account(rig)

    def nothing_left() -> None:
        assert_exactly_once(rig, seeds, folder=ALL_MAIL)
        assert account.plaintext_left() == []
        assert account.in_trash() == []

    done = kill_backlogs(
        rig,
        config,
        6,
        random.Random(5),
        lambda: assert_exactly_once(rig, seeds, folder=ALL_MAIL),
        nothing_left,
    )
    final = backlog_process(config)
    _, final_errors = final.communicate(timeout=120)
    assert final.returncode == 0, final_errors.decode()
    nothing_left()
    assert done.mid_protocol >= 1, "no kill landed between an intent and its completion"
