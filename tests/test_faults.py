"""Injected faults: after any of them and one recovery run, every original exists exactly once.

A proxy between engine and Dovecot cuts the connection right after the server answered (or right
before it receives) the N-th FETCH, APPEND, STORE, EXPUNGE, MOVE or SEARCH, for every N a clean run
issues; the CLI is SIGKILLed at random moments of a 300-message backlog.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests.fixtures.corpus import Seed, varied_seeds
from tests.fixtures.dovecot import DovecotServer, hide_capabilities
from tests.fixtures.engine import Rig, assert_exactly_once
from tests.fixtures.faults import (
    all_encrypted,
    backlog_process,
    cut_during_restore,
    cut_every_command_of_a_run,
    kill_backlogs,
)
from tests.fixtures.proxy import FaultProxy

pytestmark = pytest.mark.slow  # long fault-injection runs: `make test-fast` leaves them out

SEEDS = varied_seeds(6, seed=11)
VARIANTS = {
    "uidplus-multiappend": "",
    "uidplus-single-append": hide_capabilities("MULTIAPPEND"),
    "no-uidplus-with-move": hide_capabilities("UIDPLUS"),
    "no-uidplus-no-move": hide_capabilities("UIDPLUS", "MOVE"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("mode", ["after", "before"])
def test_a_cut_at_every_command_loses_and_duplicates_nothing(
    variant: str,
    mode: str,
    dovecot_factory: Callable[[str], DovecotServer],
    rig_on: Callable[[DovecotServer], Rig],
    fault_proxy_factory: Callable[[int], FaultProxy],
    record_property: Callable[[str, object], None],
) -> None:
    server = dovecot_factory(VARIANTS[variant])
    proxy = fault_proxy_factory(server.port)
    fresh = lambda: rig_on(server).with_policy(batch_size=3)  # noqa: E731 - a factory, named for reading
    record_property("faults_injected", cut_every_command_of_a_run(proxy, fresh, SEEDS, mode))


def test_a_cut_during_restore_loses_and_duplicates_nothing(
    rig: Rig, fault_proxy_factory: Callable[[int], FaultProxy]
) -> None:
    rig.mailbox.seed(SEEDS)
    cut_during_restore(rig, fault_proxy_factory(rig.account.port), SEEDS)


def test_sigkill_at_random_moments_of_a_300_message_backlog(
    rig: Rig, record_property: Callable[[str, object], None]
) -> None:
    seeds: list[Seed] = varied_seeds(300, seed=21)
    rig = rig.with_policy(batch_size=25)
    rig.mailbox.seed(seeds)
    config = str(rig.write_config(batch_size="25"))

    def encrypted_once() -> None:
        assert_exactly_once(rig, seeds)
        assert all_encrypted(rig)

    done = kill_backlogs(
        rig, config, 20, random.Random(7), lambda: assert_exactly_once(rig, seeds), encrypted_once
    )
    final = backlog_process(config)
    _, final_errors = final.communicate(timeout=300)
    assert final.returncode == 0, final_errors.decode()
    encrypted_once()
    assert done.kills >= 20
    assert done.mid_protocol >= 3, "too few kills landed between an intent and its completion"
    record_property("faults_injected", done.kills)
    record_property("kills_mid_protocol", done.mid_protocol)
