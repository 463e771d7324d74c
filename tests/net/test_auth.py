"""LOGIN and AUTHENTICATE PLAIN handlers (RFC 3501 §6.2.2/§6.2.3, RFC 4616,
RFC 4959), run directly with an in-memory context and a task.Clock."""

from __future__ import annotations

import base64

import pytest
from twisted.python.failure import Failure

from imapd.imap.commands import catalogue
from imapd.imap.commands.auth import (
    decode_sasl_base64, handle_authenticate, handle_login, parse_plain_message,
)
from imapd.core.config import Limits
from imapd.core.errors import ErrorKind, ImapError
from imapd.core.model import Secret
from imapd.imap.session.state import State
from imapd.accounts.users import UserDatabase
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Continuation, ResponseCode
from imapd.imap.wire.values import Atom
from tests.support import capabilities as caps
from tests.support.context import make_context, result_of, start

# The written-out list (tests/support/capabilities.py); this context's
# session is neither local nor encrypted, so no COMPRESS=DEFLATE.
LOGGED_IN_CODE = ResponseCode("CAPABILITY", tuple(
    Atom(name.decode()) for name in caps.POST_LOGIN_NO_COMPRESS.split()))


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_login_success_changes_state_and_returns_capabilities(users: UserDatabase) -> None:
    ctx, rec, _ = make_context(users)
    completion = result_of(handle_login(c.Login("a", "alice", Secret(b"wonderland")), ctx))
    assert completion.text == catalogue.OK_LOGGED_IN
    assert completion.code == LOGGED_IN_CODE  # no AUTH= once authenticated
    assert ctx.session.state is State.AUTHENTICATED and ctx.session.user == "alice"
    assert rec.sent == []


@pytest.mark.parametrize("username,password", [("alice", b"wrong"), ("mallory", b"wonderland")])
def test_failed_login_answers_only_after_the_delay(
    users: UserDatabase, username: str, password: bytes
) -> None:
    ctx, _, clock = make_context(users, limits=Limits(failed_login_delay=2.0))
    d = start(handle_login(c.Login("a", username, Secret(password)), ctx))
    failures: list[ImapError] = []

    def failed(failure: Failure) -> None:
        assert isinstance(failure.value, ImapError)
        failures.append(failure.value)

    d.addErrback(failed)
    clock.advance(1.9)
    assert failures == []
    clock.advance(0.1)
    assert len(failures) == 1
    error = failures[0]
    assert (error.kind, error.code, error.text) == (
        ErrorKind.NO, "AUTHENTICATIONFAILED", catalogue.NO_AUTHENTICATION_FAILED)
    assert ctx.session.state is State.NOT_AUTHENTICATED and ctx.session.user is None


def test_plain_with_initial_response(users: UserDatabase) -> None:
    ctx, rec, _ = make_context(users)
    cmd = c.Authenticate("a", "PLAIN", b64(b"\0bob\0builder"))
    assert result_of(handle_authenticate(cmd, ctx)).code == LOGGED_IN_CODE
    assert ctx.session.user == "bob"
    assert rec.prompts == []


def test_plain_with_continuation_and_matching_authzid(users: UserDatabase) -> None:
    ctx, rec, _ = make_context(users, client_lines=[b64(b"alice\0alice\0wonderland")])
    result_of(handle_authenticate(c.Authenticate("a", "plain"), ctx))
    assert rec.prompts == [Continuation(text="", data=b"")]
    assert ctx.session.user == "alice"


def run_failing(users: UserDatabase, cmd: c.Authenticate, lines: list[bytes | None] = []) -> ImapError:
    ctx, _, clock = make_context(users, limits=Limits(failed_login_delay=0.5), client_lines=lines)
    d = start(handle_authenticate(cmd, ctx))
    clock.advance(0.5)
    with pytest.raises(ImapError) as info:
        result_of(d)
    assert ctx.session.state is State.NOT_AUTHENTICATED
    return info.value


def test_plain_cancel_with_star_is_bad(users: UserDatabase) -> None:
    error = run_failing(users, c.Authenticate("a", "PLAIN"), [b"*"])
    assert (error.kind, error.text) == (ErrorKind.BAD, catalogue.BAD_AUTH_CANCELLED)


@pytest.mark.parametrize("initial,kind,text_or_code", [
    (b"!!!", ErrorKind.BAD, catalogue.BAD_INVALID_BASE64),
    (b"AGJvYgBidWlsZGVy=", ErrorKind.BAD, catalogue.BAD_INVALID_BASE64),  # bad padding
    (b"AGJvYgBidWlsZGV", ErrorKind.BAD, catalogue.BAD_INVALID_BASE64),  # truncated
    (b"AGJv YgBi", ErrorKind.BAD, catalogue.BAD_INVALID_BASE64),
    (b"=", ErrorKind.BAD, catalogue.BAD_MALFORMED_PLAIN),
    (b64(b"bob\0builder"), ErrorKind.BAD, catalogue.BAD_MALFORMED_PLAIN),
    (b64(b"\0\0builder"), ErrorKind.BAD, catalogue.BAD_MALFORMED_PLAIN),
    (b64(b"alice\0bob\0builder"), ErrorKind.NO, "AUTHORIZATIONFAILED"),
    (b64(b"\0bob\0wrong"), ErrorKind.NO, "AUTHENTICATIONFAILED"),
    (b64(b"\0nobody\0builder"), ErrorKind.NO, "AUTHENTICATIONFAILED"),
])
def test_plain_failures(users: UserDatabase, initial: bytes, kind: ErrorKind, text_or_code: str) -> None:
    error = run_failing(users, c.Authenticate("a", "PLAIN", initial))
    assert error.kind is kind
    assert text_or_code in (error.text, error.code)


def test_unknown_mechanism_is_no(users: UserDatabase) -> None:
    error = run_failing(users, c.Authenticate("a", "CRAM-MD5"))
    assert (error.kind, error.text) == (ErrorKind.NO, catalogue.NO_UNSUPPORTED_MECHANISM)


def test_plain_message_parsing() -> None:
    name, secret = parse_plain_message(b"\0j\xc3\xbcrgen\0p\xc3\xa4ss")
    assert (name, secret.value) == ("jürgen", b"p\xc3\xa4ss")
    assert decode_sasl_base64(b"=") == b""
    with pytest.raises(ImapError):
        parse_plain_message(b"\0\xff\0x")
