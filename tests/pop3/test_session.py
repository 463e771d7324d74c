"""POP3 sessions as byte-exact transcripts (RFC 1939, RFC 2449, RFC 3206,
RFC 5034) over a real mail service: every command in every state, the
UPDATE state's effect on the store, and bad input that leaves the
session usable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import scramp  # type: ignore[import-untyped]

from imapd.accounts.users import UserDatabase
from imapd.mail.errors import Unavailable
from tests.pop3.support import Rig, make_rig

ONE = b"From: a@example.org\r\nSubject: one\r\n\r\n.dot first\r\nline 2\r\n..two dots\r\nlast\r\n"
TWO = b"Subject: two\r\n\r\nshort\r\n"


@pytest.fixture
def rig(tmp_path: Path, users: UserDatabase) -> Rig:
    return make_rig(tmp_path, users)


def logged_in(rig: Rig) -> list[int]:
    uids = rig.put("alice", ONE, TWO)
    assert rig.login() == b"+OK Logged in, 2 messages (%d octets)\r\n" % (len(ONE) + len(TWO))
    return uids


# --- AUTHORIZATION ------------------------------------------------------------------


def test_greeting_and_capa_before_login_on_a_local_link(rig: Rig) -> None:
    assert rig.session.greeting() == b"+OK POP3 server ready\r\n"
    assert rig.say(b"CAPA\r\n") == (
        b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
        b"AUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN SCRAM-SHA-256\r\nIMPLEMENTATION imapd\r\n.\r\n")


def test_capa_on_a_remote_plaintext_link_offers_stls_and_no_passwords(rig: Rig) -> None:
    rig.link.is_local = False
    rig.link.tls = True
    rig.new_session(expire="NEVER", login_delay=60)
    assert rig.say(b"capa\r\n") == (
        b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
        b"AUTH-RESP-CODE\r\nSTLS\r\nEXPIRE NEVER\r\nLOGIN-DELAY 60\r\n"
        b"IMPLEMENTATION imapd\r\n.\r\n")
    assert rig.say(b"USER alice\r\n") == (
        b"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections\r\n")
    assert rig.say(b"AUTH PLAIN\r\n") == (
        b"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections\r\n")
    assert rig.say(b"AUTH\r\n") == b"+OK\r\n.\r\n"


def test_user_pass_success_and_failures(rig: Rig) -> None:
    assert rig.say(b"PASS wonderland\r\n") == b"-ERR USER first\r\n"
    assert rig.say(b"USER alice\r\n") == b"+OK\r\n"
    assert rig.say(b"PASS wrong\r\n") == b"-ERR [AUTH] Authentication failed\r\n"
    # A failed PASS starts over at USER (RFC 1939 §7).
    assert rig.say(b"PASS wonderland\r\n") == b"-ERR USER first\r\n"
    assert rig.say(b"USER mallory\r\n") == b"+OK\r\n"
    assert rig.say(b"PASS wonderland\r\n") == b"-ERR [AUTH] Authentication failed\r\n"
    assert rig.login() == b"+OK Logged in, 0 messages (0 octets)\r\n"
    assert rig.session.authenticated


def test_pass_takes_spaces_as_part_of_the_password(tmp_path: Path, users: UserDatabase) -> None:
    from imapd.core.model import Secret

    users.add("carol", Secret(b"two words "))
    rig = make_rig(tmp_path, users)
    assert rig.say(b"USER carol\r\n") == b"+OK\r\n"
    assert rig.say(b"PASS two words \r\n").startswith(b"+OK Logged in")


def test_transaction_commands_before_login_and_unknown_commands(rig: Rig) -> None:
    assert rig.say(b"STAT\r\n") == b"-ERR Command not valid in this state\r\n"
    assert rig.say(b"RETR 1\r\n") == b"-ERR Command not valid in this state\r\n"
    assert rig.say(b"XYZZY\r\n") == b"-ERR Unknown command\r\n"
    assert rig.say(b"APOP alice 0123\r\n") == b"-ERR Unknown command\r\n"
    assert rig.say(b"\r\n") == b"-ERR Unknown command\r\n"
    assert rig.say(b"USER  alice\r\n") == b"-ERR Arguments are separated by one space\r\n"
    assert rig.say(b"USER a\x00b\r\n") == b"-ERR Invalid characters in command\r\n"
    assert rig.say(b"USER \xff\r\n") == b"-ERR Invalid characters in command\r\n"
    assert rig.say(b"NOOP\r\n") == b"-ERR Command not valid in this state\r\n"


def test_auth_plain_with_initial_response_and_after_a_challenge(rig: Rig) -> None:
    token = base64.b64encode(b"\0alice\0wonderland")
    assert rig.say(b"AUTH\r\n") == b"+OK\r\nPLAIN\r\nSCRAM-SHA-256\r\n.\r\n"
    assert rig.say(b"AUTH PLAIN " + token + b"\r\n") == b"+OK Logged in, 0 messages (0 octets)\r\n"
    rig.new_session()
    rig.link.responder = lambda prompt: token
    assert rig.say(b"AUTH plain\r\n") == b"+ \r\n+OK Logged in, 0 messages (0 octets)\r\n"


def test_auth_failures_cancel_and_malformed_input(rig: Rig) -> None:
    wrong = base64.b64encode(b"\0alice\0nope")
    assert rig.say(b"AUTH PLAIN " + wrong + b"\r\n") == b"-ERR [AUTH] Authentication failed\r\n"
    other = base64.b64encode(b"bob\0alice\0wonderland")
    assert rig.say(b"AUTH PLAIN " + other + b"\r\n") == b"-ERR [AUTH] Authorization failed\r\n"
    assert rig.say(b"AUTH PLAIN !!!!\r\n") == b"-ERR Invalid base64 data\r\n"
    assert rig.say("AUTH PLAIN \u00e9\u00e9\r\n".encode()) == b"-ERR Invalid base64 data\r\n"
    assert rig.say(b"AUTH PLAIN " + base64.b64encode(b"x") + b"\r\n") == (
        b"-ERR Malformed PLAIN message\r\n")
    assert rig.say(b"AUTH CRAM-MD5\r\n") == b"-ERR Unsupported authentication mechanism\r\n"
    rig.link.responder = lambda prompt: b"*"
    assert rig.say(b"AUTH PLAIN\r\n") == b"+ \r\n-ERR Authentication cancelled\r\n"
    assert not rig.session.authenticated


def test_auth_scram_sha_256_exchange(rig: Rig) -> None:
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice", "wonderland")
    answers = iter([
        lambda prompt: client.get_client_first().encode(),
        lambda prompt: (client.set_server_first(base64.b64decode(prompt[2:-2]).decode()),
                        client.get_client_final().encode())[1],
        lambda prompt: (client.set_server_final(base64.b64decode(prompt[2:-2]).decode()), b"")[1],
    ])
    rig.link.responder = lambda prompt: _b64(next(answers)(prompt))
    sent = rig.say(b"AUTH SCRAM-SHA-256\r\n")
    assert sent.startswith(b"+ \r\n+ ")
    assert sent.endswith(b"\r\n+OK Logged in, 0 messages (0 octets)\r\n")
    assert rig.session.user == "alice"


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data) if data else b""


def test_stls_forgets_the_user_and_asks_the_link_for_tls(rig: Rig) -> None:
    assert rig.say(b"STLS\r\n") == b"-ERR TLS is not available\r\n"
    rig.link.tls = True
    assert rig.say(b"USER alice\r\n") == b"+OK\r\n"
    assert rig.say(b"STLS\r\n") == b"+OK Begin TLS negotiation now\r\n"
    assert rig.link.tls_started == 1
    rig.link.is_secure = True
    assert rig.say(b"PASS wonderland\r\n") == b"-ERR USER first\r\n"
    assert rig.say(b"STLS\r\n") == b"-ERR TLS is already active\r\n"


def test_quit_before_login(rig: Rig) -> None:
    assert rig.say(b"QUIT\r\n") == b"+OK Logging out\r\n"
    assert rig.last.close


def test_per_user_session_limit_is_in_use(rig: Rig) -> None:
    rig.new_session(max_sessions_per_user=2)
    rig.link.sessions["alice"] = 2
    assert rig.say(b"USER alice\r\n") == b"+OK\r\n"
    assert rig.say(b"PASS wonderland\r\n") == b"-ERR [IN-USE] Too many sessions for this user\r\n"
    assert not rig.session.authenticated


def test_store_unavailable_at_login_is_sys_temp(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(*args: object, **kwargs: object) -> None:
        raise Unavailable("database is locked")

    monkeypatch.setattr(rig.mail, "open", down)
    assert rig.say(b"USER alice\r\n") == b"+OK\r\n"
    assert rig.say(b"PASS wonderland\r\n") == b"-ERR [SYS/TEMP] Mail store temporarily unavailable\r\n"
    assert not rig.session.authenticated


def test_too_many_bad_commands_in_a_row(rig: Rig) -> None:
    rig.new_session(max_bad_commands=3)
    rig.say(b"BAD1\r\n")
    assert not rig.last.too_many_bad
    rig.say(b"CAPA\r\n")  # a good command resets the count
    rig.say(b"BAD1\r\n")
    rig.say(b"BAD2\r\n")
    assert not rig.last.too_many_bad
    rig.say(b"BAD3\r\n")
    assert rig.last.too_many_bad


WORDS = st.sampled_from(["USER", "PASS", "AUTH", "STLS", "CAPA", "QUIT", "STAT", "LIST", "RETR",
                         "DELE", "NOOP", "RSET", "TOP", "UIDL", "APOP", "PLAIN", "SCRAM-SHA-256",
                         "alice", "wonderland", "1", "2", "0", "-1", "99999999999", "=", "*",
                         "\u00e9", "AGFsaWNlAHdvbmRlcmxhbmQ="])
LINES = st.one_of(
    st.lists(WORDS, min_size=1, max_size=4).map(lambda w: " ".join(w).encode() + b"\r\n"),
    st.binary(max_size=60))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(LINES, max_size=12))
def test_no_line_sequence_makes_the_session_raise(rig: Rig, lines: list[bytes]) -> None:
    """Whatever a client sends, every line gets one status answer (or a
    SASL prompt first) and the session never raises."""
    rig.new_session()
    rig.link.responder = lambda prompt: b"AGFsaWNlAHdvbmRlcmxhbmQ="
    for line in lines:
        sent = rig.say(line)
        assert sent.startswith((b"+OK", b"-ERR", b"+ ")), (line, sent)
        if rig.last.close:
            break
    rig.session.abort()
