"""Many installations, one mailbox (docs/engine.md "Many installations, one mailbox"): per-message
claims keep every original exactly once when laptops, desktops and daemons encrypt the same account."""

from __future__ import annotations

import contextlib
import email.parser
import random
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from imapcrypt.doctor.checks import check_account
from imapcrypt.doctor.devices import SHARE
from imapcrypt.engine import Engine
from imapcrypt.errors import TransientError
from imapcrypt.imap.claims import PREFIX, Mode, claim_keyword, is_claim
from imapcrypt.imap.session import Session
from imapcrypt.journal import Intent
from imapcrypt.message import envelope
from imapcrypt.setup import SetUp, base_config
from tests.fixtures.corpus import varied_seeds
from tests.fixtures.devices import another_installation, cli_process, finish
from tests.fixtures.dovecot import DovecotServer, hide_capabilities
from tests.fixtures.engine import Rig, assert_exactly_once, make_rig, opened
from tests.fixtures.gmail_rig import ALL_MAIL, gmail_account
from tests.fixtures.gnupg_home import GnupgHome
from tests.fixtures.keyrings import MemoryKeyring
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.mailutils import MailutilsServer
from tests.fixtures.processes import daemon_process
from tests.fixtures.proxy import FaultProxy
from tests.fixtures.waiting import wait_for
from tests.test_doctor import by_name

NO_UIDPLUS_NO_CONDSTORE = hide_capabilities("UIDPLUS", "CONDSTORE", "QRESYNC")


def _all_encrypted(rig: Rig) -> bool:
    return all(envelope.classify(m.body) is envelope.Kind.OURS for m in rig.mailbox.state())


def _made_by(rig: Rig, installations: list[Rig], folder: str = "INBOX") -> list[int]:
    """How many of the copies in `folder` each installation made (its keyed id is in the marker)."""
    made = [0] * len(installations)
    state = rig.mailbox.state(folder)
    for message, original in zip(state, opened(state, rig.gpg), strict=True):
        marker = envelope.marker_id(str(_marker(message.body)))
        for index, installation in enumerate(installations):
            made[index] += marker == envelope.message_id(original, installation.id_secret)
    return made


def _marker(body: bytes) -> str | None:
    return email.parser.BytesHeaderParser().parsebytes(body).get(envelope.MARKER_HEADER)


def _claims_on_server(rig: Rig) -> list[bytes]:
    return [f for m in rig.mailbox.state() for f in m.flags if is_claim(f)]


@pytest.fixture
def plain_and_checked(
    request: pytest.FixtureRequest,
    rig_on: Callable[[Any], Rig],
    dovecot_factory: Callable[[str], DovecotServer],
    tmp_path: Path,
) -> Rig:
    """A rig on the full Dovecot (claims by CONDSTORE), on one without UIDPLUS and CONDSTORE (claims
    by add-then-check), or on the Gmail double watching INBOX and All Mail (CONDSTORE, labels)."""
    if request.param == "gmail":
        gmail = make_rig(
            request.getfixturevalue("gmail_mailbox"), request.getfixturevalue("gnupg_home"), tmp_path
        )
        return gmail.with_policy(folders=("INBOX", "\\All"))
    return rig_on(dovecot_factory(request.param))


VARIANTS = pytest.mark.parametrize(
    "plain_and_checked", ["", NO_UIDPLUS_NO_CONDSTORE], ids=["condstore", "add-then-check"], indirect=True
)
WITH_GMAIL = pytest.mark.parametrize(
    "plain_and_checked",
    ["", NO_UIDPLUS_NO_CONDSTORE, "gmail"],
    ids=["condstore", "add-then-check", "gmail"],
    indirect=True,
)


@VARIANTS
def test_each_server_gets_its_mechanism(plain_and_checked: Rig) -> None:
    rig = plain_and_checked
    rig.mailbox.seed(varied_seeds(2, seed=3))
    with rig.engine() as engine:
        engine.encrypt_folder("INBOX")
        expected = Mode.CONDSTORE if engine.session.can_condstore else Mode.CHECK
        assert engine.claims.mode("INBOX") is expected
    assert _all_encrypted(rig)
    assert not _claims_on_server(rig), "a claim was left behind"


@VARIANTS
def test_a_message_claimed_by_another_installation_waits_until_the_claim_is_stale(
    plain_and_checked: Rig,
) -> None:
    rig = plain_and_checked
    seeds = varied_seeds(3, seed=4)
    uids = rig.mailbox.seed(seeds)
    other = another_installation(rig, "desktop")
    with other.engine() as desktop:
        desktop.open_folder("INBOX")
        held = desktop.claims.take("INBOX", {uids[0]: ()})
        assert held == {uids[0]}
        now = [1000.0]
        with rig.engine() as laptop:
            laptop.claims.monotonic = lambda: now[0]
            report = laptop.encrypt_folder("INBOX", backlog=True)
            assert (report.encrypted, report.waiting) == (2, 1)
            now[0] += laptop.claims.lease - 1
            assert laptop.encrypt_folder("INBOX", backlog=True).waiting == 1, "a live claim was taken over"
            now[0] += 1
            # The desktop is gone for a whole lease: its claim is stale and the laptop takes over.
            assert laptop.encrypt_folder("INBOX", backlog=True).encrypted == 1
        # The desktop comes back: its claim is gone, so the message is no longer its to delete.
        ours, lost, gone = desktop.claims.confirm("INBOX", [uids[0]])
        assert (ours, lost, gone) == (set(), set(), {uids[0]})
    assert_exactly_once(rig, seeds)
    assert _all_encrypted(rig)
    assert not _claims_on_server(rig)


@VARIANTS
def test_a_message_taken_over_before_our_delete_keeps_only_the_other_copy(plain_and_checked: Rig) -> None:
    rig = plain_and_checked
    seeds = varied_seeds(2, seed=5)
    rig.mailbox.seed(seeds)
    other = another_installation(rig, "server")
    with rig.engine() as laptop, other.engine() as server:
        server.open_folder("INBOX")
        taken = []
        confirm = laptop.claims.confirm

        def taken_over_first(folder: str, uids: list[int]) -> Any:
            # Between the laptop's APPEND and its delete, the server decides the claims are stale.
            for uid in uids:
                server.session.remove_flags([uid], [laptop.claims.keyword or b""])
                server.session.add_flags([uid], [server.claims.keyword or b""])
                taken.append(uid)
            return confirm(folder, uids)

        laptop.claims.confirm = taken_over_first  # type: ignore[method-assign]
        assert laptop.encrypt_folder("INBOX").encrypted == 0
        assert taken
        # Only the plaintext is left, now the server's to encrypt: no copy of the laptop's.
        assert sorted(m.body for m in rig.mailbox.state()) == sorted(s.raw for s in seeds)
        server.claims.release("INBOX", taken)
        server.encrypt_folder("INBOX")
    assert_exactly_once(rig, seeds)
    assert _all_encrypted(rig)


@pytest.fixture
def behind_proxy(
    plain_and_checked: Rig, fault_proxy_factory: Callable[[int], FaultProxy]
) -> tuple[Rig, FaultProxy]:
    """`plain_and_checked`'s rig, and a FaultProxy in front of its server for its crashes."""
    return plain_and_checked, fault_proxy_factory(plain_and_checked.account.port)


def _crashed_pass(rig: Rig, proxy: FaultProxy, crash: Callable[[Engine], None]) -> None:
    """One pass of `rig`'s installation over INBOX through `proxy`, ended by the lost connection that
    `crash` sets up in its engine."""
    with rig.at_port(proxy.port).engine() as engine:
        crash(engine)
        with pytest.raises(TransientError):
            engine.encrypt_folder("INBOX")


def _before_the_recheck(proxy: FaultProxy) -> Callable[[Engine], None]:
    """A crash as the engine is about to re-check its claims: copies verified, nothing deleted, no
    intent marked deleting yet."""

    def arm(engine: Engine) -> None:
        confirm = engine.claims.confirm

        def crash(folder: str, uids: Sequence[int]) -> tuple[set[int], set[int], set[int]]:
            proxy.cut_all()
            return confirm(folder, uids)

        engine.claims.confirm = crash  # type: ignore[method-assign]

    return arm


def _after_marking(proxy: FaultProxy) -> Callable[[Engine], None]:
    """A crash right after intents were marked deleting: the removal never reaches the server."""

    def arm(engine: Engine) -> None:
        mark = engine.journal.mark_deleting

        def crash(intents: Sequence[Intent]) -> None:
            mark(intents)
            proxy.cut_all()

        engine.journal.mark_deleting = crash  # type: ignore[method-assign]

    return arm


def _after_removing(proxy: FaultProxy) -> Callable[[Engine], None]:
    """A crash right after originals were removed, before their intents complete."""

    def arm(engine: Engine) -> None:
        remove = engine.remover.remove

        def crash(session: Session, folder: str, uids: Sequence[int]) -> None:
            remove(session, folder, uids)
            proxy.cut_all()
            raise TransientError("killed")

        engine.remover.remove = crash  # type: ignore[method-assign]

    return arm


def _finished_by_another_installation(rig: Rig, name: str, count: int) -> Rig:
    """Another installation meets the messages under our (crashed) claims, waits out the lease, takes
    them over and finishes them: its copies stored, the originals deleted."""
    other = another_installation(rig, name)
    now = [0.0]
    with other.engine() as engine:
        engine.claims.monotonic = lambda: now[0]
        assert engine.encrypt_folder("INBOX").waiting == count, "a live claim was not respected"
        now[0] += engine.claims.lease
        assert engine.encrypt_folder("INBOX").encrypted == count
    return other


@WITH_GMAIL
@pytest.mark.parametrize("crash", ["after-append", "before-recheck"])
def test_a_copy_left_by_a_crash_goes_when_another_installation_finished_the_message(
    behind_proxy: tuple[Rig, FaultProxy], crash: str
) -> None:
    # The laptop appends its copies and dies before deleting anything (the copies unverified, or
    # verified), and stays away longer than the claim lease.
    rig, proxy = behind_proxy
    seeds = varied_seeds(2, seed=101)
    rig.mailbox.seed(seeds)
    if crash == "after-append":
        proxy.cut_after("APPEND", 1)
        _crashed_pass(rig, proxy, lambda _: None)
    else:
        _crashed_pass(rig, proxy, _before_the_recheck(proxy))
    assert _made_by(rig, [rig]) != [0], "the laptop stored no copy before it crashed"
    desktop = _finished_by_another_installation(rig, "desktop", len(seeds))
    with rig.engine() as laptop:  # the laptop comes back: its copies of the messages go
        assert laptop.journal.pending("INBOX"), "the crash left no intent to recover"
        assert laptop.encrypt_folder("INBOX").encrypted == 0
        assert laptop.journal.pending("INBOX") == []
    assert_exactly_once(rig, seeds)
    assert _made_by(rig, [rig, desktop]) == [0, len(seeds)]
    assert not _claims_on_server(rig)


@VARIANTS
def test_a_copy_left_by_a_crash_goes_when_the_user_deleted_its_original(
    behind_proxy: tuple[Rig, FaultProxy],
) -> None:
    rig, proxy = behind_proxy
    seeds = varied_seeds(3, seed=102)
    uids = rig.mailbox.seed(seeds)
    _crashed_pass(rig, proxy, _before_the_recheck(proxy))
    assert _made_by(rig, [rig]) == [3]
    with rig.mailbox.client() as client:  # meanwhile, the user deletes one of them in their client
        client.select_folder("INBOX")
        client.delete_messages([uids[0]])
        client.expunge()
    with rig.engine() as laptop:
        assert laptop.encrypt_folder("INBOX").recovered == 3
    assert_exactly_once(rig, seeds[1:])  # not brought back as its copy
    assert _all_encrypted(rig)
    assert not _claims_on_server(rig)


@WITH_GMAIL
@pytest.mark.parametrize("removed", [False, True], ids=["before-removal", "after-removal"])
def test_a_crash_once_the_originals_are_being_deleted_keeps_the_copies(
    behind_proxy: tuple[Rig, FaultProxy], removed: bool
) -> None:
    rig, proxy = behind_proxy
    seeds = varied_seeds(2, seed=103)
    rig.mailbox.seed(seeds)
    _crashed_pass(rig, proxy, _after_removing(proxy) if removed else _after_marking(proxy))
    with rig.engine() as laptop:
        assert [i.deleting for i in laptop.journal.pending("INBOX")] == [True, True]
        laptop.encrypt_folder("INBOX")
        assert laptop.journal.pending("INBOX") == []
    assert_exactly_once(rig, seeds)  # the copies stayed: nothing lost
    assert _made_by(rig, [rig]) == [2]
    assert not _claims_on_server(rig)


def test_a_crash_while_recovery_deletes_the_originals_keeps_the_copies(
    rig: Rig, fault_proxy: FaultProxy
) -> None:
    seeds = varied_seeds(2, seed=104)
    rig.mailbox.seed(seeds)
    _crashed_pass(rig, fault_proxy, _before_the_recheck(fault_proxy))
    _crashed_pass(rig, fault_proxy, _after_removing(fault_proxy))  # in the recovery of the next start
    assert len(rig.mailbox.state()) == 2, "recovery did not remove the originals"
    with rig.engine() as laptop:
        assert laptop.encrypt_folder("INBOX").recovered == 2
    assert_exactly_once(rig, seeds)
    assert _made_by(rig, [rig]) == [2]
    assert not _claims_on_server(rig)


def test_claims_left_by_a_crash_are_released_on_the_next_start(rig: Rig) -> None:
    seeds = varied_seeds(3, seed=6)
    uids = rig.mailbox.seed(seeds)
    with rig.engine() as engine:
        engine.open_folder("INBOX")
        assert engine.claims.take("INBOX", {uid: () for uid in uids}) == set(uids)
    assert len(_claims_on_server(rig)) == 3  # the "crash": the engine went away holding them
    with rig.engine(clock=lambda: 0.0) as engine:  # everything is too young: nothing is encrypted
        engine.encrypt_folder("INBOX")
    assert not _claims_on_server(rig)
    assert_exactly_once(rig, seeds)


def test_the_keyword_is_one_per_installation_and_kept(rig: Rig) -> None:
    first = claim_keyword(rig.data_dir)
    assert first.startswith(PREFIX)
    assert len(first) == len(PREFIX) + 8
    assert claim_keyword(rig.data_dir) == first
    assert (rig.data_dir / "install-id").stat().st_mode & 0o777 == 0o600
    assert claim_keyword(another_installation(rig, "b").data_dir) != first


@pytest.mark.slow
@VARIANTS
@pytest.mark.parametrize("count", [2, 3])
def test_installations_running_backlog_at_once_encrypt_each_message_once(
    plain_and_checked: Rig, count: int, record_property: Callable[[str, object], None]
) -> None:
    rig = plain_and_checked.with_policy(batch_size=25)
    seeds = varied_seeds(300, seed=31)
    rig.mailbox.seed(seeds)
    installations = [rig, *(another_installation(rig, f"n{i}") for i in range(1, count))]
    configs = [str(r.write_config(batch_size="25")) for r in installations]
    processes = [cli_process(config, "backlog") for config in configs]
    outcomes = [finish(process) for process in processes]
    assert [code for code, _ in outcomes] == [0] * count, outcomes
    assert_exactly_once(rig, seeds)
    assert _all_encrypted(rig), [errors[-3000:] for _, errors in outcomes]
    assert not _claims_on_server(rig)
    made = _made_by(rig, installations)
    record_property("copies_by_installation", made)
    assert sum(made) == len(seeds)
    assert sum(1 for n in made if n) >= 2, f"the installations did not run at once: {made}"


@pytest.mark.slow
def test_two_installations_on_gmail_run_backlog_at_once(
    gmail_mailbox: Mailbox, gnupg_home: GnupgHome, tmp_path: Path
) -> None:
    # Gmail offers CONDSTORE and keeps keywords per message, whatever label folder shows it
    # (tests/fixtures/gmail_server.py): a claim made in INBOX is seen in All Mail too.
    rig = make_rig(gmail_mailbox, gnupg_home, tmp_path).with_policy(folders=("INBOX", "\\All"), batch_size=25)
    seeds = varied_seeds(300, seed=41)
    rig.mailbox.seed(seeds)
    installations = [rig, another_installation(rig, "desktop")]
    configs = [str(r.write_config(batch_size="25")) for r in installations]
    processes = [cli_process(config, "backlog") for config in configs]
    outcomes = [finish(process) for process in processes]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    account = gmail_account(rig)
    assert account.plaintext_left() == [], "plaintext left in All Mail or Trash"
    assert account.merges == 0
    assert_exactly_once(rig, seeds, folder=ALL_MAIL)
    assert not [f for m in rig.mailbox.state(ALL_MAIL) for f in m.flags if is_claim(f)]
    made = _made_by(rig, installations, ALL_MAIL)
    assert sum(made) == len(seeds)
    assert all(made), f"the installations did not run at once: {made}"


def test_gmail_gets_claims_by_condstore(
    gmail_mailbox: Mailbox, gnupg_home: GnupgHome, tmp_path: Path
) -> None:
    rig = make_rig(gmail_mailbox, gnupg_home, tmp_path)
    seeds = varied_seeds(3, seed=42)
    uids = rig.mailbox.seed(seeds)
    other = another_installation(rig, "desktop")
    with other.engine() as desktop, rig.engine() as laptop:
        desktop.open_folder("INBOX")
        assert desktop.claims.mode("INBOX") is Mode.CONDSTORE
        assert desktop.claims.take("INBOX", {uids[0]: ()}) == {uids[0]}
        report = laptop.encrypt_folder("INBOX")
        assert (report.encrypted, report.waiting) == (2, 1)
        # A conditional STORE on a message changed since its MODSEQ was read is refused (MODIFIED).
        flags = laptop.session.fetch_flags_modseq([uids[0]])
        since = flags[uids[0]][1] - 1
        assert laptop.session.add_flags_unchanged_since([uids[0]], [b"$Other"], since) == [uids[0]]
        desktop.claims.release("INBOX", [uids[0]])
        assert laptop.encrypt_folder("INBOX").encrypted == 1
    assert_exactly_once(rig, seeds)


def _daemon(rig: Rig, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """`imapcrypt run` for `rig`'s installation, logging to a file in its data dir; once it is idle."""
    log_file = rig.data_dir / f"{name}.log"
    config = rig.write_config(batch_size="20")
    process = daemon_process(config, log_file)
    wait_for(
        lambda: process.poll() is not None or (log_file.exists() and "state=idle" in log_file.read_text()),
        timeout=60,
        what=f"daemon {name} idle",
    )
    assert process.poll() is None, process.communicate()[1].decode()
    return process, log_file


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors.decode()


def _plaintext(rig: Rig) -> int:
    return sum(envelope.classify(m.body) is not envelope.Kind.OURS for m in rig.mailbox.state())


@pytest.mark.slow
@WITH_GMAIL
def test_two_daemons_while_40_messages_arrive(plain_and_checked: Rig) -> None:
    rig = plain_and_checked
    installations = [rig, another_installation(rig, "server")]
    daemons = [_daemon(r, f"daemon{i}")[0] for i, r in enumerate(installations)]
    seeds = varied_seeds(40, seed=51)
    try:
        for start in range(0, 40, 4):  # mail arrives in small bursts, as it does
            rig.mailbox.seed(seeds[start : start + 4])
        wait_for(
            lambda: len(rig.mailbox.state()) == 40 and _plaintext(rig) == 0,
            timeout=120,
            what="every arrival encrypted",
        )
    finally:
        for process in daemons:
            _stop(process)
    assert_exactly_once(rig, seeds)
    assert not _claims_on_server(rig)
    assert sum(_made_by(rig, installations)) == 40


@pytest.mark.slow
@WITH_GMAIL
def test_one_installation_killed_again_and_again_while_another_runs(plain_and_checked: Rig) -> None:
    rig = plain_and_checked.with_policy(batch_size=20)
    seeds = varied_seeds(300, seed=61)
    other = another_installation(rig, "laptop")
    config = str(other.write_config(batch_size="20"))
    daemon, _ = _daemon(rig, "daemon")
    rng = random.Random(9)
    kills = 0
    try:
        for start in range(0, len(seeds), 15):  # mail keeps arriving while the laptop is killed
            rig.mailbox.seed(seeds[start : start + 15])
            process = cli_process(config, "backlog")
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=rng.uniform(0.2, 0.9))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            code, errors = finish(process)
            assert code in (0, -signal.SIGKILL), errors
        # The killed installation starts once more: it finishes or gives back what it held.
        code, errors = finish(cli_process(config, "backlog"))
        assert code == 0, errors
        wait_for(lambda: _plaintext(rig) == 0, timeout=120, what="the daemon finishing the rest")
    finally:
        _stop(daemon)
    assert kills >= 6, "the backlog finished before it could be killed"
    assert_exactly_once(rig, seeds)
    assert not _claims_on_server(rig)


@VARIANTS
def test_a_second_installation_is_told_another_one_is_at_work(
    plain_and_checked: Rig, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    rig = plain_and_checked
    rig.mailbox.seed(varied_seeds(2, seed=71))
    first = by_name(check_account(rig.config(), rig.account))
    mechanism = first["installations"].detail
    assert mechanism in (Mode.CONDSTORE.value, Mode.CHECK.value)
    assert "other installation" not in first, "a fresh account was taken for one encrypted elsewhere"
    with rig.engine() as engine:
        engine.encrypt_folder("INBOX")
    # The laptop is set up later, by `imapcrypt init` or the wizard (both through setup.py).
    job = SetUp(
        base_config(tmp_path / "laptop.toml", tmp_path / "laptop-data", rig.gnupg.path),
        replace(rig.account, password_command=""),
        rig.mailbox.password,
    )
    lines = by_name(list(job.check_server().checks))
    assert lines["installations"].detail == mechanism
    assert lines["other installation"].detail == SHARE
    # Its doctor says the same until its own journal exists, and then still (the other's keyword).
    laptop = another_installation(rig, "laptop")
    assert by_name(check_account(laptop.config(), laptop.account))["other installation"].detail == SHARE
    with laptop.engine() as engine:
        engine.encrypt_folder("INBOX")
    with rig.engine() as engine:  # the first installation claims something later on
        engine.open_folder("INBOX")
        engine.claims.take("INBOX", {uid: () for uid in rig.mailbox.seed(varied_seeds(1, seed=72))})
    assert by_name(check_account(laptop.config(), laptop.account))["other installation"].detail == SHARE


def test_a_claim_that_went_away_and_came_back_is_a_new_one(rig: Rig) -> None:
    other = PREFIX + b"0badcafe"
    [uid] = rig.mailbox.seed(varied_seeds(1, seed=81))
    now = [0.0]
    with rig.engine() as engine:
        engine.open_folder("INBOX")
        claims, session = engine.claims, engine.session
        claims.monotonic = lambda: now[0]
        session.add_flags([uid], [other])
        assert claims.take("INBOX", session.fetch_flags([uid])) == set()
        session.remove_flags([uid], [other])  # the other installation let it go
        now[0] = claims.lease / 2
        assert claims.take("INBOX", session.fetch_flags([uid])) == {uid}
        claims.release("INBOX", [uid])
        session.add_flags([uid], [other])  # and claimed it again: a new claim
        now[0] = claims.lease
        assert claims.take("INBOX", session.fetch_flags([uid])) == set()
        now[0] = claims.lease * 1.5
        assert claims.take("INBOX", session.fetch_flags([uid])) == set(), "a fresh claim was taken over"
        now[0] = claims.lease * 2
        assert claims.take("INBOX", session.fetch_flags([uid])) == {uid}  # now stale: taken over
        assert [f for f in session.fetch_flags([uid])[uid] if is_claim(f)] == [claims.keyword]


@pytest.mark.slow
@pytest.mark.parametrize("imap_server", ["mailutils", "cyrus", "courier"], indirect=True)
def test_other_servers_get_their_mechanism_and_encrypt_as_before(
    server_mailbox: Mailbox, gnupg_home: GnupgHome, tmp_path: Path
) -> None:
    rig = make_rig(server_mailbox, gnupg_home, tmp_path)
    # System flags only: Mailutils refuses keywords in APPEND (and so gets no coordination).
    seeds = [
        replace(s, flags=tuple(f for f in s.flags if f.startswith(b"\\"))) for s in varied_seeds(3, seed=91)
    ]
    rig.mailbox.seed(seeds)
    said = by_name(check_account(rig.config(), rig.account))["installations"].detail
    if isinstance(rig.mailbox.server, MailutilsServer):
        # Its mbox changes what it stores, so nothing is encrypted there (docs/providers.md); and it
        # refuses keywords, so it must not be offered as a place to share the work either.
        assert Mode.NONE.value.startswith(said)
        return
    with rig.engine() as engine:
        engine.encrypt_folder("INBOX")
        mode = engine.claims.mode("INBOX")
    assert _all_encrypted(rig)
    assert_exactly_once(rig, seeds)
    assert not _claims_on_server(rig)
    assert mode.value.startswith(said), "doctor and the engine disagree about the claim mechanism"


def test_a_daemon_and_a_backlog_on_one_machine_do_not_share_the_work(rig: Rig) -> None:
    # One data dir, one install id: claims cannot tell them apart, so the account lock does.
    daemon, _ = _daemon(rig, "daemon")
    try:
        code, errors = finish(cli_process(str(rig.data_dir / "config.toml"), "backlog"))
    finally:
        _stop(daemon)
    assert code == 7, errors
    assert f"PID {daemon.pid}" in errors
