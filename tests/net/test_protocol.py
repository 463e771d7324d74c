"""Byte-exact transcripts of the server protocol over StringTransport with a
task.Clock (RFC 3501 §2.2 pipelining, §3 states, §5.4 autologout, §6.1–6.2
commands, §7.5 continuations)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs

from imapd.imap.commands import catalogue
from imapd.imap.commands.context import ANY_STATE, CommandContext, CommandSpec, Completion
from imapd.imap.commands.registry import ALL_SPECS, Registry
from imapd.core.config import Config, Limits
from imapd.net.imap_factory import ImapServerFactory
from imapd.net.runtime import InlineRuntime
from imapd.accounts.users import UserDatabase
from imapd.imap.wire import commands as c
from imapd.imap.wire import responses as r
from tests.support import capabilities as caps
from tests.support.context import FakeView
from tests.support.transcript import Conversation

# Written out in tests/support/capabilities.py (never built from
# imapd.imap.capabilities); COMPRESS=DEFLATE after login on this loopback connection.
PRE_CAPS = caps.PRE_LOGIN
POST_CAPS = caps.POST_LOGIN
GREETING = b"* OK [CAPABILITY " + PRE_CAPS + b"] imapd ready\r\n"
LOGGED_IN = b"OK [CAPABILITY " + POST_CAPS + b"] Logged in\r\n"
AUTH_FAILED = b"NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
DELAY = Limits().failed_login_delay


def connect(users: UserDatabase, **limits: float) -> Conversation:
    config = Limits(**limits)  # type: ignore[arg-type]
    conv = Conversation(users, config)
    # RFC 7889: APPENDLIMIT= advertises the configured literal limit.
    assert conv.read() == GREETING.replace(caps.DEFAULT_APPENDLIMIT, b"APPENDLIMIT=%d" % config.max_literal)
    return conv


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_greeting_capability_noop(users: UserDatabase) -> None:
    conv = connect(users)
    assert conv.exchange(b"a1 CAPABILITY\r\n") == (
        b"* CAPABILITY " + PRE_CAPS + b"\r\na1 OK CAPABILITY completed\r\n")
    assert conv.exchange(b"a2 NOOP\r\n") == b"a2 OK NOOP completed\r\n"
    assert not conv.closing


def test_login_then_capability_changes_and_login_again_is_wrong_state(users: UserDatabase) -> None:
    conv = connect(users)
    assert conv.exchange(b'a LOGIN alice "wonderland"\r\n') == b"a " + LOGGED_IN
    assert conv.exchange(b"b CAPABILITY\r\n") == (
        b"* CAPABILITY " + POST_CAPS + b"\r\nb OK CAPABILITY completed\r\n")
    assert conv.exchange(b"c LOGIN bob builder\r\n") == (
        b"c BAD " + catalogue.BAD_WRONG_STATE.encode() + b"\r\n")
    assert conv.exchange(b"d AUTHENTICATE PLAIN " + b64(b"\0bob\0builder") + b"\r\n") == (
        b"d BAD " + catalogue.BAD_WRONG_STATE.encode() + b"\r\n")


@pytest.mark.parametrize("user,password", [(b"alice", b"wrong"), (b"nobody", b"wonderland")])
def test_failed_login_is_delayed_and_identical(users: UserDatabase, user: bytes, password: bytes) -> None:
    conv = connect(users, auth_penalty_initial=0.0)  # brute-force penalty: tests/security
    assert conv.exchange(b"a LOGIN " + user + b" " + password + b"\r\n") == b""
    conv.clock.advance(DELAY - 0.01)
    assert conv.read() == b""
    conv.clock.advance(0.01)
    assert conv.read() == b"a " + AUTH_FAILED
    assert conv.exchange(b"b LOGIN alice wonderland\r\n") == b"b " + LOGGED_IN


def test_authenticate_plain_with_initial_response(users: UserDatabase) -> None:
    conv = connect(users)
    line = b"a AUTHENTICATE PLAIN " + b64(b"\0alice\0wonderland") + b"\r\n"
    assert conv.exchange(line) == b"a " + LOGGED_IN


def test_authenticate_plain_with_continuation(users: UserDatabase) -> None:
    conv = connect(users)
    assert conv.exchange(b"a AUTHENTICATE PLAIN\r\n") == b"+ \r\n"
    assert conv.exchange(b64(b"\0bob\0builder") + b"\r\n") == b"a " + LOGGED_IN


def test_authenticate_response_in_the_same_packet(users: UserDatabase) -> None:
    conv = connect(users)
    data = b"a AUTHENTICATE PLAIN\r\n" + b64(b"\0bob\0builder") + b"\r\nb NOOP\r\n"
    assert conv.exchange(data) == b"+ \r\na " + LOGGED_IN + b"b OK NOOP completed\r\n"


def test_authenticate_cancel_and_failures(users: UserDatabase) -> None:
    conv = connect(users)
    assert conv.exchange(b"a AUTHENTICATE PLAIN\r\n") == b"+ \r\n"
    assert conv.exchange(b"*\r\n") == b"a BAD AUTHENTICATE cancelled\r\n"
    assert conv.exchange(b"b AUTHENTICATE PLAIN " + b64(b"\0bob\0x") + b"\r\n") == b""
    conv.clock.advance(DELAY)
    assert conv.read() == b"b " + AUTH_FAILED
    assert conv.exchange(b"c AUTHENTICATE CRAM-MD5\r\n") == (
        b"c NO Unsupported authentication mechanism\r\n")
    assert conv.exchange(b"d AUTHENTICATE PLAIN\r\n") == b"+ \r\n"
    assert conv.exchange(b"not base64!\r\n") == b"d BAD Invalid base64 data\r\n"


def test_authenticate_overlong_response_is_bad_and_session_survives(users: UserDatabase) -> None:
    conv = connect(users, max_line=200)
    assert conv.exchange(b"a AUTHENTICATE PLAIN\r\n") == b"+ \r\n"
    reply = conv.exchange(b"A" * 400 + b"\r\n")
    assert reply.startswith(b"a BAD ")
    assert conv.exchange(b"b NOOP\r\n") == b"b OK NOOP completed\r\n"


def test_connection_lost_during_authenticate_is_quiet(users: UserDatabase) -> None:
    conv = connect(users)
    assert conv.exchange(b"a AUTHENTICATE PLAIN\r\n") == b"+ \r\n"
    with capturedLogs() as events:
        conv.disconnect()
    assert [e for e in events if "log_failure" in e] == []
    assert conv.factory.connections == set()


def test_syntax_errors_and_unregistered_commands_are_bad(users: UserDatabase) -> None:
    registry = Registry([s for s in ALL_SPECS if s.command_type is not c.Select])
    conv = Conversation(users, factory=make_factory(users, registry=registry))
    conv.read()
    assert conv.exchange(b"a FROBNICATE\r\n").startswith(b"a BAD ")
    assert conv.exchange(b"b LOGIN alice\r\n").startswith(b"b BAD ")
    assert conv.exchange(b"c LOGIN alice wonderland\r\n") == b"c " + LOGGED_IN
    assert conv.exchange(b"d SELECT INBOX\r\n") == (
        b"d BAD " + catalogue.BAD_UNKNOWN_COMMAND.encode() + b"\r\n")
    assert conv.exchange(b"e NOOP\r\n") == b"e OK NOOP completed\r\n"


def test_pipelined_commands_answer_in_order_one_at_a_time(users: UserDatabase) -> None:
    conv = connect(users, auth_penalty_initial=0.0)  # brute-force penalty: tests/security
    data = b"a NOOP\r\nb LOGIN alice wrong\r\nc CAPABILITY\r\nd LOGIN alice wonderland\r\n"
    assert conv.exchange(data) == b"a OK NOOP completed\r\n"  # b is waiting
    conv.clock.advance(DELAY)
    assert conv.read() == (
        b"b " + AUTH_FAILED
        + b"* CAPABILITY " + PRE_CAPS + b"\r\nc OK CAPABILITY completed\r\n"
        + b"d " + LOGGED_IN)


def test_bad_command_budget_ends_in_bye(users: UserDatabase) -> None:
    conv = connect(users, max_bad_commands=3)
    out = conv.exchange(b"a FOO\r\nb BAR\r\nc NOOP\r\nd FOO\r\ne FOO\r\n")
    assert out.count(b" BAD ") == 4 and not conv.closing  # c reset the count
    out = conv.exchange(b"f FOO\r\ng NOOP\r\n")
    assert out.startswith(b"f BAD ")
    assert out.endswith(b"* BYE " + catalogue.BYE_TOO_MANY_BAD.encode() + b"\r\n")
    assert b"g OK" not in out and conv.closing


def test_preauth_timeout(users: UserDatabase) -> None:
    conv = connect(users)
    conv.clock.advance(30)
    assert conv.exchange(b"a NOOP\r\n") == b"a OK NOOP completed\r\n"
    conv.clock.advance(59.9)  # the NOOP restarted the timer
    assert conv.read() == b"" and not conv.closing
    conv.clock.advance(0.1)
    assert conv.read() == b"* BYE Autologout; idle for too long\r\n"
    assert conv.closing


def test_preauth_timeout_is_not_reset_by_a_trickle_of_bytes(users: UserDatabase) -> None:
    conv = connect(users)
    for _ in range(60):
        conv.send(b"x")
        conv.clock.advance(1)
    assert conv.read() == b"* BYE Autologout; idle for too long\r\n"


def test_authenticated_timeout_is_thirty_minutes(users: UserDatabase) -> None:
    conv = connect(users)
    assert conv.exchange(b"a LOGIN alice wonderland\r\n") == b"a " + LOGGED_IN
    conv.clock.advance(30 * 60 - 1)
    assert conv.read() == b"" and not conv.closing
    conv.clock.advance(1)
    assert conv.read() == b"* BYE Autologout; idle for too long\r\n"


def test_synchronizing_and_non_synchronizing_literals(users: UserDatabase) -> None:
    conv = connect(users)
    assert conv.exchange(b"a LOGIN {5}\r\n") == b"+ Ready for literal data\r\n"
    assert conv.exchange(b"alice {10}\r\n") == b"+ Ready for literal data\r\n"
    assert conv.exchange(b"wonderland\r\n") == b"a " + LOGGED_IN
    conv = connect(users)
    assert conv.exchange(b"b LOGIN {3+}\r\nbob {7+}\r\nbuilder\r\n") == b"b " + LOGGED_IN


def test_oversize_line_is_bad_and_connection_survives(users: UserDatabase) -> None:
    conv = connect(users, max_line=100)
    reply = conv.exchange(b"a NOOP " + b"x" * 300 + b"\r\nb NOOP\r\n")
    assert reply.startswith(b"a BAD ")
    assert reply.endswith(b"\r\nb OK NOOP completed\r\n") and reply.count(b"\r\n") == 2
    assert not conv.closing


def test_oversize_literal_is_refused_before_continuation(users: UserDatabase) -> None:
    conv = connect(users, max_literal=10)
    reply = conv.exchange(b"a LOGIN alice {100}\r\n")
    assert reply.startswith(b"a NO [TOOBIG] ") and b"+ " not in reply
    assert conv.exchange(b"b NOOP\r\n") == b"b OK NOOP completed\r\n"


def test_huge_non_synchronizing_literal_is_fatal(users: UserDatabase) -> None:
    conv = connect(users)
    reply = conv.exchange(b"a LOGIN alice {99999999999+}\r\n")
    assert reply.endswith(b"* BYE " + catalogue.BYE_FATAL_FRAME.encode() + b"\r\n")
    assert conv.closing
    assert conv.exchange(b"b NOOP\r\n") == b""


def test_logout_says_bye_then_ok_then_closes(users: UserDatabase) -> None:
    conv = connect(users)
    assert conv.exchange(b"a LOGOUT\r\nb NOOP\r\n") == (
        b"* BYE IMAP4rev1 Server logging out\r\na OK LOGOUT completed\r\n")
    assert conv.closing


async def exploding(cmd: c.Noop, ctx: CommandContext) -> Completion:
    raise RuntimeError("boom")


def make_factory(users: UserDatabase, mail: object = None, **kwargs: object) -> ImapServerFactory:
    from twisted.internet.task import Clock

    clock = Clock()
    return ImapServerFactory(
        Config(data_dir=users.path.parent, limits=kwargs.pop("limits", Limits())),  # type: ignore[arg-type]
        users, mail, clock=clock, runtime=InlineRuntime(clock), **kwargs,  # type: ignore[arg-type]
    )


def test_handler_crash_is_serverbug_and_session_goes_on(users: UserDatabase) -> None:
    specs = [s for s in ALL_SPECS if s.command_type is not c.Noop]
    registry = Registry([*specs, CommandSpec(c.Noop, exploding, ANY_STATE)])
    conv = Conversation(users, factory=make_factory(users, registry=registry))
    conv.read()
    with capturedLogs() as events:
        assert conv.exchange(b"a NOOP\r\n") == (
            b"a NO [SERVERBUG] " + catalogue.NO_SERVERBUG.encode() + b"\r\n")
    assert any("log_failure" in e for e in events)
    assert conv.exchange(b"b CAPABILITY\r\n").endswith(b"b OK CAPABILITY completed\r\n")


def test_pending_view_updates_are_drained_before_the_tagged_reply(users: UserDatabase) -> None:
    conv = connect(users)
    conv.exchange(b"a LOGIN alice wonderland\r\n")
    view = FakeView([r.Exists(4), r.Expunge(2)])
    conv.protocol.session.selected = view
    assert conv.exchange(b"b NOOP\r\n") == b"* 4 EXISTS\r\n* 2 EXPUNGE\r\nb OK NOOP completed\r\n"
    conv.disconnect()
    assert view.closed


def test_too_many_pipelined_commands_pause_reading(users: UserDatabase) -> None:
    conv = connect(users, max_pipelined=4)
    conv.send(b"a LOGIN alice wrong\r\n" + b"n NOOP\r\n" * 5)
    assert conv.transport.producerState == "paused"
    conv.clock.advance(DELAY)
    assert conv.read().count(b"n OK NOOP completed\r\n") == 5
    assert conv.transport.producerState == "producing"


def test_connection_limit_and_shutdown_bye(users: UserDatabase) -> None:
    factory = make_factory(users, limits=Limits(max_connections=1))
    first = Conversation(users, factory=factory)
    assert first.read() == GREETING
    second = Conversation(users, factory=factory)
    assert second.read() == b"* BYE " + catalogue.BYE_TOO_MANY_CONNECTIONS.encode() + b"\r\n"
    assert second.closing
    factory.shutdown_connections()
    assert first.read() == b"* BYE Server shutting down\r\n" and first.closing


def test_capabilities_need_handlers(users: UserDatabase) -> None:
    from imapd.imap.capabilities import CapabilityError

    without_auth = Registry([s for s in ALL_SPECS if s.command_type is not c.Authenticate])
    with pytest.raises(CapabilityError, match="Authenticate"):
        make_factory(users, registry=without_auth)


def test_deferred_handlers_really_wait(users: UserDatabase) -> None:
    """A handler that awaits a Deferred holds the queue until it fires."""
    gate: Deferred[None] = Deferred()

    async def slow(cmd: c.Noop, ctx: CommandContext) -> Completion:
        await gate
        return Completion("slow done")

    specs = [s for s in ALL_SPECS if s.command_type is not c.Noop]
    registry = Registry([*specs, CommandSpec(c.Noop, slow, ANY_STATE)])
    conv = Conversation(users, factory=make_factory(users, registry=registry))
    conv.read()
    assert conv.exchange(b"a NOOP\r\nb CAPABILITY\r\n") == b""
    gate.callback(None)
    assert conv.read() == (
        b"a OK slow done\r\n* CAPABILITY " + PRE_CAPS + b"\r\nb OK CAPABILITY completed\r\n")


def test_a_parser_bug_answers_bad_and_the_connection_goes_on(
    users: UserDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imapd.imap.wire.parse import parse_command as real_parse

    conv = connect(users)

    def exploding_parse(frame: bytes, max_nesting: int = 32) -> object:
        if frame.startswith(b"boom"):
            raise RuntimeError("simulated parser bug")
        return real_parse(frame, max_nesting)

    monkeypatch.setattr("imapd.net.imap_connection.parse_command", exploding_parse)
    with capturedLogs() as events:
        reply = conv.exchange(b"boom NOOP\r\na2 NOOP\r\n")
    assert reply == b"* BAD Unparseable command\r\na2 OK NOOP completed\r\n"
    assert any("parser error" in str(e.get("log_format", "")) for e in events)
    assert not conv.closing


def test_invalid_modified_utf7_name_is_no_not_bad_and_costs_no_budget(users: UserDatabase) -> None:
    """A name that is not valid modified UTF-7 names no mailbox that can
    exist: NO [CANNOT] (as Dovecot answers; imaptest's ``atoms`` script),
    and it does not count as a bad command."""
    conv = connect(users, max_bad_commands=1)
    conv.exchange(b"a LOGIN alice wonderland\r\n")
    assert conv.exchange(b"b SELECT &Jjo\r\n") == (
        b"b NO [CANNOT] Invalid mailbox name: unterminated '&' in mailbox name\r\n")
    assert conv.exchange(b"c NOOP\r\n") == b"c OK NOOP completed\r\n"
    assert not conv.closing
