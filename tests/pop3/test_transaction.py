"""The TRANSACTION and UPDATE states as byte-exact transcripts: STAT,
LIST, RETR (byte-stuffed, exact), TOP, DELE, RSET, NOOP, UIDL in both
formats, CAPA, and QUIT's effect on the store (``\\Seen``, expunge of
exactly the marked messages) or its absence when the connection drops."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.accounts.users import UserDatabase
from imapd.core import telemetry
from imapd.core.telemetry import NullTelemetry
from imapd.mail.errors import StorageFull
from tests.pop3.support import Rig, make_rig
from tests.pop3.test_session import ONE, TWO, logged_in

STUFFED_ONE = ONE.replace(b"\r\n.", b"\r\n..")


@pytest.fixture
def rig(tmp_path: Path, users: UserDatabase) -> Rig:
    return make_rig(tmp_path, users)


def test_stat_list_and_list_one(rig: Rig) -> None:
    logged_in(rig)
    assert rig.say(b"STAT\r\n") == b"+OK 2 %d\r\n" % (len(ONE) + len(TWO))
    assert rig.say(b"LIST\r\n") == b"+OK\r\n1 %d\r\n2 %d\r\n.\r\n" % (len(ONE), len(TWO))
    assert rig.say(b"LIST 2\r\n") == b"+OK 2 %d\r\n" % len(TWO)
    assert rig.say(b"LIST 3\r\n") == b"-ERR There is no message 3\r\n"
    assert rig.say(b"LIST 0\r\n") == b"-ERR There is no message 0\r\n"
    assert rig.say(b"LIST x\r\n") == b"-ERR Invalid message number: x\r\n"
    assert rig.say(b"LIST 1 2\r\n") == b"-ERR Wrong number of arguments for LIST\r\n"
    assert rig.say(b"STAT 1\r\n") == b"-ERR Wrong number of arguments for STAT\r\n"
    assert rig.say(b"LIST 99999999999\r\n") == b"-ERR Invalid message number: 99999999999\r\n"


def test_retr_is_the_exact_message_byte_stuffed(rig: Rig) -> None:
    logged_in(rig)
    assert rig.say(b"RETR 1\r\n") == b"+OK %d octets\r\n" % len(ONE) + STUFFED_ONE + b".\r\n"
    assert rig.say(b"RETR 2\r\n") == b"+OK %d octets\r\n" % len(TWO) + TWO + b".\r\n"
    assert rig.say(b"RETR 3\r\n") == b"-ERR There is no message 3\r\n"
    assert rig.say(b"RETR\r\n") == b"-ERR Wrong number of arguments for RETR\r\n"


def test_a_message_without_a_final_line_end_gets_one_before_the_dot(rig: Rig) -> None:
    rig.put("alice", b"Subject: x\r\n\r\n.no end")
    rig.login()
    assert rig.say(b"RETR 1\r\n") == b"+OK 21 octets\r\nSubject: x\r\n\r\n..no end\r\n.\r\n"


def test_top_sends_the_header_and_n_body_lines(rig: Rig) -> None:
    logged_in(rig)
    head = b"From: a@example.org\r\nSubject: one\r\n\r\n"
    assert rig.say(b"TOP 1 0\r\n") == b"+OK\r\n" + head + b".\r\n"
    assert rig.say(b"TOP 1 2\r\n") == b"+OK\r\n" + head + b"..dot first\r\nline 2\r\n.\r\n"
    assert rig.say(b"TOP 1 100\r\n") == b"+OK\r\n" + STUFFED_ONE + b".\r\n"
    assert rig.say(b"TOP 1\r\n") == b"-ERR Wrong number of arguments for TOP\r\n"
    assert rig.say(b"TOP 1 -1\r\n") == b"-ERR Invalid line count: -1\r\n"


def test_dele_rset_noop_and_deleted_messages(rig: Rig) -> None:
    logged_in(rig)
    assert rig.say(b"DELE 1\r\n") == b"+OK Message 1 deleted\r\n"
    assert rig.say(b"DELE 1\r\n") == b"-ERR Message 1 is deleted\r\n"
    assert rig.say(b"RETR 1\r\n") == b"-ERR Message 1 is deleted\r\n"
    assert rig.say(b"LIST 1\r\n") == b"-ERR Message 1 is deleted\r\n"
    assert rig.say(b"STAT\r\n") == b"+OK 1 %d\r\n" % len(TWO)
    assert rig.say(b"LIST\r\n") == b"+OK\r\n2 %d\r\n.\r\n" % len(TWO)
    assert rig.say(b"UIDL\r\n").count(b"\r\n") == 3
    assert rig.say(b"NOOP\r\n") == b"+OK\r\n"
    assert rig.say(b"RSET\r\n") == b"+OK 2 messages (%d octets)\r\n" % (len(ONE) + len(TWO))
    assert rig.say(b"STAT\r\n") == b"+OK 2 %d\r\n" % (len(ONE) + len(TWO))


def test_uidl_imapd_format_is_uidvalidity_dash_uid(rig: Rig) -> None:
    uids = logged_in(rig)
    assert rig.session.watch is not None
    validity = rig.session.watch.uidvalidity
    assert rig.say(b"UIDL\r\n") == b"+OK\r\n1 %d-%d\r\n2 %d-%d\r\n.\r\n" % (
        validity, uids[0], validity, uids[1])
    assert rig.say(b"UIDL 2\r\n") == b"+OK 2 %d-%d\r\n" % (validity, uids[1])


def test_uidl_dovecot_format_is_uid_then_uidvalidity_in_hex(rig: Rig) -> None:
    rig.new_session(uidl_style="dovecot")
    uids = logged_in(rig)
    assert rig.session.watch is not None
    validity = rig.session.watch.uidvalidity
    assert rig.say(b"UIDL 1\r\n") == b"+OK 1 %08x%08x\r\n" % (uids[0], validity)


def test_capa_after_login_has_no_login_capabilities(rig: Rig) -> None:
    logged_in(rig)
    assert rig.say(b"CAPA\r\n") == (
        b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
        b"AUTH-RESP-CODE\r\nIMPLEMENTATION imapd\r\n.\r\n")
    assert rig.say(b"USER bob\r\n") == b"-ERR Command not valid in this state\r\n"
    assert rig.say(b"STLS\r\n") == b"-ERR Command not valid in this state\r\n"


def test_quit_expunges_exactly_the_marked_messages_and_marks_retrieved_seen(rig: Rig) -> None:
    uids = logged_in(rig)
    # A message an IMAP client flagged \Deleted but did not expunge stays.
    third = rig.put("alice", b"Subject: 3\r\n\r\nx\r\n", flags=("\\Deleted",))[0]
    rig.say(b"RETR 2\r\n")
    rig.say(b"RETR 1\r\n")
    rig.say(b"DELE 1\r\n")
    assert rig.say(b"QUIT\r\n") == b"+OK Logging out\r\n"
    assert rig.last.close
    flags = rig.flags()
    assert sorted(flags) == [uids[1], third]
    assert "\\Seen" in flags[uids[1]]
    assert flags[third] == ("\\Deleted",)


def test_seen_on_retr_can_be_turned_off(rig: Rig) -> None:
    rig.new_session(seen_on_retr=False)
    uids = logged_in(rig)
    rig.say(b"RETR 1\r\n")
    rig.say(b"QUIT\r\n")
    assert rig.flags()[uids[0]] == ()


def test_a_dropped_session_changes_nothing(rig: Rig) -> None:
    uids = logged_in(rig)
    rig.say(b"RETR 1\r\n")
    rig.say(b"DELE 2\r\n")
    rig.session.abort()
    assert rig.flags() == {uids[0]: (), uids[1]: ()}


def test_the_snapshot_is_taken_at_login(rig: Rig) -> None:
    logged_in(rig)
    rig.put("alice", b"Subject: later\r\n\r\nx\r\n")
    assert rig.say(b"STAT\r\n") == b"+OK 2 %d\r\n" % (len(ONE) + len(TWO))
    rig.say(b"QUIT\r\n")
    rig.new_session()
    assert rig.login().startswith(b"+OK Logged in, 3 messages")


def test_a_message_expunged_by_imap_meanwhile_is_err(rig: Rig) -> None:
    uids = logged_in(rig)

    async def expunge() -> None:
        watch = await rig.mail.open("alice", "INBOX", readonly=False)
        from imapd.mail.flags import FlagOp

        await watch.store_flags([uids[0]], FlagOp.ADD, ["\\Deleted"])
        await watch.expunge([uids[0]])
        watch.close()

    from twisted.internet.defer import Deferred
    from tests.pop3.support import result

    result(Deferred.fromCoroutine(expunge()))
    assert rig.say(b"RETR 1\r\n") == b"-ERR Message 1 was removed by another session\r\n"
    assert rig.say(b"DELE 1\r\n") == b"+OK Message 1 deleted\r\n"
    assert rig.say(b"QUIT\r\n") == b"+OK Logging out\r\n"  # already gone: nothing to do


def test_quit_when_the_store_fails_is_sys_temp_and_closes(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    logged_in(rig)
    rig.say(b"DELE 1\r\n")
    assert rig.session.watch is not None

    async def full(*args: object, **kwargs: object) -> None:
        raise StorageFull("disk full")

    monkeypatch.setattr(rig.session.watch, "store_and_expunge", full)
    assert rig.say(b"QUIT\r\n") == b"-ERR [SYS/TEMP] Some deleted messages were not removed\r\n"
    assert rig.last.close


class Commits(NullTelemetry):
    def __init__(self) -> None:
        self.count = 0

    def committed(self, engine: str, seconds: float, changes: int) -> None:
        self.count += 1


def test_quit_is_one_commit(rig: Rig) -> None:
    """RFC 1939 §6's UPDATE state, \\Seen and the expunge together, costs
    one durable commit (it was three: \\Seen, \\Deleted, EXPUNGE)."""
    uids = logged_in(rig)
    rig.say(b"RETR 1\r\n")
    rig.say(b"DELE 2\r\n")
    counter = Commits()
    previous = telemetry.install(counter)
    try:
        assert rig.say(b"QUIT\r\n") == b"+OK Logging out\r\n"
    finally:
        telemetry.install(previous)
    assert counter.count == 1
    assert rig.flags() == {uids[0]: ("\\Seen",)}
