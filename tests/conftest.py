"""Session-wide test setup: real Dovecot, real GnuPG, Qt offscreen (docs/design.md#test-harness)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.fixtures.dovecot import DovecotServer, start_dovecot
from tests.fixtures.gnupg_home import GnupgHome, make_gnupg_home, remove_gnupg_home
from tests.fixtures.mailbox import Mailbox

pytest_plugins = [
    "tests.fixtures.proxy",
    "tests.fixtures.tls",
    "tests.fixtures.engine",
    "tests.fixtures.keys",
    "tests.fixtures.keyrings",
    "tests.fixtures.gmail_server",
    "tests.fixtures.servers",
    "tests.fixtures.sequoia",
]

# Qt widgets are real but need no screen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never the developer's own keyring: without a backend imapcrypt uses its documented fallbacks, and
# tests that need a keyring choose one explicitly.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

_servers_by_item: dict[str, list[DovecotServer]] = {}


@pytest.fixture(scope="session")
def dovecot_factory() -> Iterator[Callable[[str], DovecotServer]]:
    """Start Dovecot variants by configuration text; each distinct variant starts once a session."""
    started: dict[str, DovecotServer] = {}

    def get(extra_config: str = "") -> DovecotServer:
        if extra_config not in started:
            started[extra_config] = start_dovecot(extra_config)
        return started[extra_config]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture(scope="session")
def dovecot(dovecot_factory: Callable[[str], DovecotServer]) -> DovecotServer:
    """The plain Dovecot: IMAP4rev1 with UIDPLUS, MOVE, IDLE, SPECIAL-USE, MULTIAPPEND, LITERAL+."""
    return dovecot_factory("")


def _new_mailbox(server: DovecotServer, request: pytest.FixtureRequest) -> Mailbox:
    user, password = server.new_user()
    _servers_by_item.setdefault(request.node.nodeid, []).append(server)
    request.node.stash[_log_offsets_key] = {
        **request.node.stash.get(_log_offsets_key, {}),
        id(server): server.log_size(),
    }
    return Mailbox(server=server, user=user, password=password)


@pytest.fixture
def mailbox(dovecot: DovecotServer, request: pytest.FixtureRequest) -> Mailbox:
    """A fresh user on the plain Dovecot."""
    return _new_mailbox(dovecot, request)


@pytest.fixture
def mailbox_on(request: pytest.FixtureRequest) -> Callable[[DovecotServer], Mailbox]:
    """Make a fresh user on a given (variant) Dovecot."""
    return lambda server: _new_mailbox(server, request)


@pytest.fixture(scope="session")
def gnupg_home() -> Iterator[GnupgHome]:
    """A session-wide GNUPGHOME with one ed25519/cv25519 key pair, no passphrase."""
    home = make_gnupg_home()
    yield home
    remove_gnupg_home(home)


_log_offsets_key = pytest.StashKey[dict[int, int]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None] | pytest.TestReport:
    """Attach the Dovecot log lines written during a failing test to its report."""
    report: pytest.TestReport = yield
    if report.failed:
        offsets = item.stash.get(_log_offsets_key, {})
        for server in _servers_by_item.get(item.nodeid, []):
            text = server.log_since(offsets.get(id(server), 0))
            if text:
                report.sections.append((f"dovecot log ({server.root})", text))
    if report.when == "teardown":
        _servers_by_item.pop(item.nodeid, None)
    return report
