"""The session layer without a server: recorded transcripts, and imapclient's failures translated."""

from __future__ import annotations

import datetime as dt
import imaplib
import socket
import ssl

import imapclient.exceptions
import pytest

from imapcrypt.config.model import Account
from imapcrypt.errors import (
    CredentialsError,
    ImapcryptError,
    QuotaError,
    ServerError,
    TlsError,
    TransientError,
)
from imapcrypt.imap.connect import connect
from imapcrypt.imap.session import parse_appenduid, refuses_keywords
from imapcrypt.imap.translate import ThrottledError, translated_errors
from tests.fixtures.transcript import Step, login, replaying


def _account(port: int) -> Account:
    return Account(name="t", host="127.0.0.1", username="u", recipients=("X",), port=port, security="plain")


def _raised(exc: BaseException, what: str = "FETCH") -> BaseException:
    with pytest.raises(ImapcryptError) as caught, translated_errors("mail.example", what):
        raise exc
    return caught.value


def test_a_refused_login_is_a_credentials_error_without_the_servers_words() -> None:
    error = _raised(imapclient.exceptions.LoginError("b'[AUTHENTICATIONFAILED] secret-ish'"), "login")
    assert isinstance(error, CredentialsError)
    assert "secret-ish" not in str(error)


def test_too_many_connections_is_transient_and_imap_turned_off_says_where() -> None:
    busy = _raised(imapclient.exceptions.LoginError("Too many simultaneous connections"), "login")
    assert isinstance(busy, TransientError)
    off = _raised(imapclient.exceptions.LoginError("Your account is not enabled for IMAP use"), "login")
    assert isinstance(off, CredentialsError)
    assert "Forwarding and POP/IMAP" in off.fix


@pytest.mark.parametrize(
    ("said", "kind"),
    [
        (b"NO [OVERQUOTA] mailbox full", QuotaError),
        (b"NO [THROTTLED] slow down", ThrottledError),
        (b"NO [UNAVAILABLE] try later", TransientError),
        (b"NO [SERVERBUG] oops", TransientError),
        (b"NO no such message", ServerError),
    ],
)
def test_a_servers_refusal_is_sorted_by_its_response_code(said: bytes, kind: type[Exception]) -> None:
    error = _raised(imaplib.IMAP4.error(said))
    assert type(error) is kind
    assert "mail.example" in str(error)


def test_a_lost_connection_is_transient_and_an_untrusted_certificate_is_a_tls_error() -> None:
    assert isinstance(_raised(imaplib.IMAP4.abort("socket error: EOF")), TransientError)
    assert isinstance(_raised(ConnectionResetError(104, "reset")), TransientError)
    unreachable = _raised(socket.gaierror(-2, "Name or service not known"), "connect")
    assert isinstance(unreachable, TransientError)
    assert "cannot reach mail.example" in str(unreachable)
    bad = ssl.SSLCertVerificationError(1, "certificate verify failed")
    bad.verify_message = "self-signed certificate"
    assert isinstance(_raised(bad, "connect"), TlsError)


def test_a_long_server_answer_is_cut_short() -> None:
    error = _raised(imaplib.IMAP4.error(b"NO " + b"x" * 5000))
    assert len(str(error)) < 400


def test_appenduid_names_single_uids_and_ranges() -> None:
    assert parse_appenduid(b"[APPENDUID 38505 3955] APPEND completed", 1) == [3955]
    assert parse_appenduid("OK [APPENDUID 1 4:6,9] done", 4) == [4, 5, 6, 9]
    assert parse_appenduid("OK [APPENDUID 1 6:4] done", 3) == [4, 5, 6]
    assert parse_appenduid(b"OK APPEND completed", 1) == []


@pytest.mark.parametrize(
    "text", [b"OK [APPENDUID 7 1:4000000000]", b"OK [APPENDUID 7 0]", b"OK [APPENDUID 7 99999999999]"]
)
def test_appenduid_out_of_range_is_refused_before_any_list_is_built(text: bytes) -> None:
    with pytest.raises(ValueError, match="APPENDUID"):
        parse_appenduid(text, 10)


def test_select_and_fetch_info_read_a_recorded_dovecot_answer() -> None:
    steps = [
        *login(),
        Step(
            r"SELECT ",
            [
                b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
                b"* 2 EXISTS",
                b"* OK [UIDVALIDITY 1700000000] UIDs valid",
                b"* OK [UIDNEXT 12] Predicted next UID",
                b"{tag} OK [READ-WRITE] Select completed.",
            ],
        ),
        Step(
            r"UID FETCH 10[,:]11 ",
            [
                b'* 1 FETCH (UID 10 FLAGS (\\Seen) INTERNALDATE "01-Mar-2024 10:00:00 +0100" '
                b"RFC822.SIZE 120 BODY[HEADER.FIELDS (CONTENT-TYPE)] {26}",
                b"Content-Type: text/plain",
                b")",
                b'* 2 FETCH (UID 11 FLAGS () INTERNALDATE "02-Mar-2024 10:00:00 +0000" '
                b"RFC822.SIZE 99 BODY[HEADER.FIELDS (CONTENT-TYPE)] {2}",
                b"",
                b")",
                b"{tag} OK Fetch completed.",
            ],
        ),
    ]
    with replaying(steps) as server:
        session = connect(_account(server.port), lambda: "pw")
        try:
            status = session.select("INBOX")
            infos = session.fetch_info([10, 11], ["Content-Type"])
        finally:
            session.logout()
    assert server.unexpected == []
    assert (status.uidvalidity, status.uidnext, status.exists) == (1700000000, 12, 2)
    assert infos[10].flags == (b"\\Seen",)
    assert infos[10].size == 120
    assert infos[10].internaldate == dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
    assert infos[10].headers.startswith(b"Content-Type: text/plain")
    assert infos[11].flags == ()
    assert session.can_expunge_uid
    assert session.can_move


def test_an_empty_uid_range_search_is_confirmed_with_search_all_and_then_skipped() -> None:
    """GNU Mailutils answers `UID SEARCH UID n:*` with nothing: the session asks ALL, and from then on
    only ALL. A correct server's empty answer (an empty folder) costs one more SEARCH, nothing else."""
    steps = [
        *login(),
        Step(r"UID SEARCH UID 1:\*", [b"* SEARCH", b"{tag} OK Search completed"]),
        Step(r"UID SEARCH ALL", [b"* SEARCH 3 4", b"{tag} OK Search completed"]),
        Step(r"UID SEARCH ALL", [b"* SEARCH 3 4", b"{tag} OK Search completed"]),
    ]
    with replaying(steps) as server:
        session = connect(_account(server.port), lambda: "pw")
        try:
            assert session.uids_above(0) == [3, 4]
            assert session.uid_range_search_broken
            assert session.uids_above(3) == [4]
        finally:
            session.logout()
    assert server.unexpected == []


def test_a_uid_range_search_that_answers_is_trusted() -> None:
    steps = [*login(), Step(r"UID SEARCH UID 5:\*", [b"* SEARCH 4", b"{tag} OK Search completed"])]
    with replaying(steps) as server:
        session = connect(_account(server.port), lambda: "pw")
        try:
            assert session.uids_above(4) == []  # "5:*" matched the highest UID, 4: nothing above
            assert not session.uid_range_search_broken
        finally:
            session.logout()
    assert server.unexpected == []


@pytest.mark.parametrize(
    ("said", "refused"),
    [
        ("127.0.0.1: APPEND failed: APPEND Unrecognized flag", True),
        ("x: APPEND failed: [CANNOT] keywords are not supported", True),
        ("x: APPEND failed: [TRYCREATE] no such mailbox", False),
    ],
)
def test_a_refused_keyword_is_recognised_in_the_servers_words(said: str, refused: bool) -> None:
    assert refuses_keywords(said) is refused
