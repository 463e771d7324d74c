"""Each fault of ``imapd.testing.faults`` against a real imapd through the
wiretap, with real clients (stdlib imaplib, poplib, and a raw socket for
the exact octets a client sees)."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from imapd.net import output
from imapd.testing import faults
from imapd.testing.faults import FaultPlan
from imapd.testing.tap_output import QUEUE_LIMIT
from tests.support.raw import RawClient
from tests.support.reactor_thread import reactor
from tests.testing.tap_support import PASSWORD, USER, Tapped, tapped

MESSAGE = b"From: a@example.org\r\nSubject: one\r\n\r\nbody\r\n"


class Client(RawClient):
    def login(self) -> Client:
        assert self.line().startswith(b"* OK ")
        self.send(b"a LOGIN alice wonderland\r\n")
        assert self.until(b"a")[-1].startswith(b"a OK ")
        return self

    def until(self, tag: bytes) -> list[bytes]:
        lines = [self.line()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        return lines

    def rest(self) -> bytes:
        """Everything until the server closes (EOF or reset)."""
        data = self.buffer
        self.buffer = b""
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            data += b"<reset>"
        return data


def imap(server: Tapped) -> imaplib.IMAP4:
    client = imaplib.IMAP4(*server.address, timeout=10)
    client.login(USER, PASSWORD)
    return client


def seed(server: Tapped, count: int) -> None:
    client = imap(server)
    for _ in range(count):
        assert client.append("INBOX", None, None, MESSAGE)[0] == "OK"
    client.logout()


def mailboxes(server: Tapped) -> list[bytes]:
    client = imap(server)
    names = client.list()[1]
    client.logout()
    return [n for n in names if isinstance(n, bytes)]


def messages(server: Tapped) -> int:
    client = imap(server)
    count = int(client.select("INBOX")[1][0] or b"0")
    client.logout()
    return count


# --- close_at / close_after_bytes -------------------------------------------------

def test_close_at_resets_unanswered_and_the_server_never_sees_it(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.close_at("CREATE")]) as server:
        client = Client(*server.address).login()
        client.send(b"b NOOP\r\nc CREATE Lost\r\n")
        assert client.until(b"b")[-1] == b"b OK NOOP completed\r\n"
        assert client.rest() in (b"", b"<reset>")
        client = Client(*server.address).login()  # every connection: occurrence 1 again
        client.send(b"d CREATE Lost\r\n")
        assert client.rest() in (b"", b"<reset>")
        assert not any(b"Lost" in name for name in mailboxes(server))
        assert "-- fault close_at CREATE: connection reset" in server.transcripts[0].text()


def test_close_at_with_imaplib_raises_abort(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.close_at("NOOP", occurrence=2)]) as server:
        client = imap(server)
        assert client.noop()[0] == "OK"
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            client.noop()


def test_close_at_after_answer_delivers_the_answer_then_closes(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.close_at("CREATE", after_answer=True)]) as server:
        client = Client(*server.address).login()
        client.send(b"b CREATE Kept\r\n")
        assert client.rest() == b"b OK CREATE completed\r\n"
        assert any(b"Kept" in name for name in mailboxes(server))


def test_close_after_bytes_cuts_the_greeting(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.close_after_bytes(10, connection=2)]) as server:
        whole = Client(*server.address).line()
        cut = Client(*server.address).rest()
        assert cut == whole[:10] == b"* OK [CAPA"


def test_close_after_bytes_in_the_middle_of_a_literal(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.close_after_bytes(3000, connection=2)]) as server:
        lib = imap(server)
        assert lib.append("INBOX", None, None, MESSAGE + b"y" * 5000)[0] == "OK"
        lib.logout()
        client = imaplib.IMAP4(*server.address, timeout=10)
        client.login(USER, PASSWORD)
        client.select("INBOX")
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            client.fetch("1", "(BODY[])")


# --- respond ----------------------------------------------------------------------

def test_respond_no_to_imaplib_and_the_server_never_sees_it(tmp_path: Path) -> None:
    fault = faults.respond("CREATE", "NO", "[UNAVAILABLE] try later", occurrence=2)
    with tapped(tmp_path, [fault]) as server:
        client = imap(server)
        assert client.create("First")[0] == "OK"
        assert client.create("Second") == ("NO", [b"[UNAVAILABLE] try later"])
        assert client.noop()[0] == "OK"
        client.logout()
        names = b" ".join(mailboxes(server))
        assert b"First" in names and b"Second" not in names


def test_respond_bad_and_bye_octets(tmp_path: Path) -> None:
    plan = [faults.respond("NOOP", "BAD", "no noop today"),
            faults.respond("CHECK", "BYE", "going away")]
    with tapped(tmp_path, plan) as server:
        client = Client(*server.address).login()
        client.send(b"b NOOP\r\n")
        assert client.line() == b"b BAD no noop today\r\n"
        client.send(b"c CHECK\r\nd NOOP\r\n")
        assert client.rest() == b"* BYE going away\r\n"


def test_respond_to_a_synchronizing_literal_instead_of_the_continuation(tmp_path: Path) -> None:
    """RFC 3501 §7.5: the server may answer NO instead of sending "+"; the
    client then does not send the literal. imaplib's APPEND sees the NO."""
    with tapped(tmp_path, [faults.respond("APPEND", "NO", "[OVERQUOTA] full")]) as server:
        client = Client(*server.address).login()
        client.send(b"b APPEND INBOX {5}\r\n")
        assert client.line() == b"b NO [OVERQUOTA] full\r\n"
        client.send(b"c NOOP\r\n")
        assert client.line() == b"c OK NOOP completed\r\n"
        lib = imap(server)
        assert lib.append("INBOX", None, None, MESSAGE) == ("NO", [b"[OVERQUOTA] full"])
        assert messages(server) == 0


def test_respond_swallows_a_non_synchronizing_literal(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.respond("APPEND", "NO", "refused")]) as server:
        client = Client(*server.address).login()
        client.send(b"b APPEND INBOX {5+}\r\nhello {3+}\r\nabc\r\nc NOOP\r\n")
        assert client.line() == b"b NO refused\r\n"
        assert client.line() == b"c OK NOOP completed\r\n"
        assert messages(server) == 0


def test_respond_waits_for_the_answers_to_earlier_pipelined_commands(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.respond("NOOP", "NO", "later")]) as server:
        client = Client(*server.address).login()
        client.send(b"b SELECT INBOX\r\nc NOOP\r\nd CHECK\r\n")
        lines = client.until(b"d")
        tagged = [line for line in lines if not line.startswith(b"*")]
        assert [t.split(b" ")[0] for t in tagged] == [b"b", b"c", b"d"]
        assert tagged[1] == b"c NO later\r\n"


# --- inject -----------------------------------------------------------------------

def test_inject_exists_is_reported_by_the_server(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.inject_exists("NOOP")]) as server:
        client = imap(server)
        assert client.select("INBOX") == ("OK", [b"0"])
        assert client.noop()[0] == "OK"
        assert client.response("EXISTS") == ("EXISTS", [b"0", b"1"])  # SELECT's, NOOP's
        typ, data = client.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
        assert b"injected by imapd.testing" in data[0][1]
        assert "UID 1 appended to INBOX" in server.transcripts[0].text()


def test_inject_exists_octets(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.inject_exists("NOOP", message=MESSAGE)]) as server:
        client = Client(*server.address).login()
        client.send(b"b SELECT INBOX\r\nc NOOP\r\n")
        lines = client.until(b"c")
        assert lines[-3:] == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n", b"c OK NOOP completed\r\n"]


def test_inject_expunge_not_during_fetch_but_at_the_next_noop(tmp_path: Path) -> None:
    """RFC 3501 §7.4.1: no EXPUNGE while a FETCH runs; the server reports it
    with the next command that may carry it."""
    with tapped(tmp_path, [faults.inject_expunge("FETCH")]) as server:
        seed(server, 2)
        client = Client(*server.address).login()
        client.send(b"b SELECT INBOX\r\nc FETCH 1:2 (FLAGS)\r\n")
        fetched = client.until(b"c")
        assert not any(b"EXPUNGE" in line for line in fetched)
        client.send(b"d NOOP\r\n")
        assert client.until(b"d") == [b"* 1 EXPUNGE\r\n", b"* 1 RECENT\r\n", b"d OK NOOP completed\r\n"]
        assert messages(server) == 1


def test_inject_without_a_selected_mailbox_changes_nothing(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.inject_exists("NOOP")]) as server:
        client = imap(server)
        assert client.noop()[0] == "OK"
        client.logout()
        assert messages(server) == 0
        assert "no mailbox selected, nothing done" in server.transcripts[0].text()


# --- delay / throttle -----------------------------------------------------------

def timed(action: Any) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def test_delay_holds_one_commands_answer(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.delay(0.6, "NOOP")]) as server:
        client = imap(server)
        assert timed(client.noop) >= 0.6
        assert client.select("INBOX")[0] == "OK"
        text = server.transcripts[0].text()
        assert "-- fault delay: the answer to" in text


def test_delay_of_everything_holds_the_greeting(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.delay(0.5)]) as server:
        client = RawClient(*server.address)
        assert timed(client.line) >= 0.4  # measured from just after connect


def test_throttle_dribbles_and_keeps_back_pressure(tmp_path: Path) -> None:
    # 160 messages of 5 kB, fetched at 400 kB/s: the tap writes at most
    # 40 kB at a time, under the real transport's own limit, so only the
    # tap's queue limit can pause the server's output.
    one = MESSAGE + b"y" * 5000
    with tapped(tmp_path, [faults.throttle(400_000, connection=2)]) as server:
        loader = Client(*server.address).login()
        appends = b"".join(b"s%d APPEND INBOX {%d+}\r\n%s\r\n" % (n, len(one), one) for n in range(160))
        loader.send(appends)
        assert loader.until(b"s159")[-1].startswith(b"s159 OK")
        client = Client(*server.address).login()
        client.send(b"b SELECT INBOX\r\n")
        client.until(b"b")
        peak = watch_queue(server, 2)
        client.send(b"c FETCH 1:* (BODY[])\r\n")
        took = timed(lambda: client.until(b"c"))
        assert took >= 1.5  # 800 kB at 400 kB/s
        # The server's producer is paused while the tap's queue is full:
        # without it the whole answer would wait in the queue. What the
        # server writes before it registers a producer (STREAM_AFTER) it
        # would also leave in the real transport's buffer without the tap.
        assert 0 < peak() < output.STREAM_AFTER + 4 * QUEUE_LIMIT


def watch_queue(server: Tapped, number: int) -> Any:
    """Sample the outbox of connection ``number`` every 5 ms; returns a
    function giving the peak seen."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        for proto in list(factory_protocols(server)):
            if proto.number == number and proto.outbox is not None:
                peak[0] = max(peak[0], proto.outbox.queued)
        if not stop.is_set():
            reactor().callLater(0.005, sample)

    reactor().callFromThread(sample)

    def done() -> int:
        stop.set()
        return peak[0]
    return done


def factory_protocols(server: Tapped) -> list[Any]:
    return list(server.tap_factories["imap"].protocols)


# --- POP3 (the command is the first word, RFC 1939 §3) ----------------------------

def test_pop3_respond_and_close_at(tmp_path: Path) -> None:
    plan = [faults.respond("RETR", "NO", "busy", protocol="pop3"),
            faults.close_at("DELE", protocol="pop3")]
    with tapped(tmp_path, plan, pop3=True) as server:
        seed(server, 1)
        client = poplib.POP3(server.host, server.ports["pop3"], timeout=10)
        client.user(USER)
        client.pass_(PASSWORD)
        assert client.stat() == (1, len(MESSAGE))
        with pytest.raises(poplib.error_proto, match="-ERR busy"):
            client.retr(1)
        assert client.list()[0].startswith(b"+OK")
        with pytest.raises((poplib.error_proto, OSError, EOFError)):
            client.dele(1)
        assert messages(server) == 1
        text = server.taps["pop3"].transcripts[0].text([PASSWORD])
        assert "C: PASS ***" in text and "S: -ERR busy" in text
        assert PASSWORD not in text


def test_fault_constructors_refuse_what_cannot_apply() -> None:
    with pytest.raises(ValueError, match="status"):
        faults.respond("NOOP", "MAYBE")
    with pytest.raises(ValueError, match="protocol"):
        faults.close_at("NOOP", protocol="smtp")
    with pytest.raises(ValueError, match="IMAP"):
        faults.inject_exists("RETR", protocol="pop3")
    with pytest.raises(ValueError, match="occurrence"):
        faults.close_at("NOOP", occurrence=0)
    with pytest.raises(ValueError, match="one line"):
        faults.respond("NOOP", text="a\r\nb OK forged")
    with pytest.raises(TypeError):
        FaultPlan(["close_at NOOP"])  # type: ignore[list-item]
    plan = FaultPlan([faults.close_at("uid  fetch", connection=2)])
    assert plan.faults[0].command == "UID FETCH"
    assert plan.for_connection("imap", 1) == [] and len(plan.for_connection("imap", 2)) == 1
    plan.clear()
    assert plan.faults == []


# --- LMTP (RFC 2033; the command is the first word) -------------------------------

def test_lmtp_respond_and_message_lines_are_not_commands(tmp_path: Path) -> None:
    """A message line that begins with a command's name (after 354) is
    data, not a command (RFC 5321 §4.1.1.4); the faulty RCPT gets 451."""
    plan = [faults.respond("RCPT", "NO", "try later", occurrence=2, protocol="lmtp"),
            faults.close_at("QUIT", protocol="lmtp")]
    body = b"Subject: lmtp\r\n\r\nRCPT TO:<x@example.org>\r\nQUIT\r\n"
    with tapped(tmp_path, plan, lmtp=True) as server:
        client = smtplib.LMTP(server.host, server.ports["lmtp"], timeout=10)
        client.ehlo("test")
        assert client.sendmail("a@example.org", [USER], body) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.org", [USER], body)
        assert refused.value.recipients == {USER: (451, b"4.3.0 try later")}
        client.rset()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.quit()
        lmtp = server.taps["lmtp"].transcripts[0].text()
        assert "S: 451 4.3.0 try later" in lmtp and "C: RCPT TO:<x@example.org>" in lmtp
        assert messages(server) == 1


def smtp_reply(client: RawClient) -> bytes:
    """One (possibly multi-line) SMTP reply, its lines joined."""
    lines = [client.line()]
    while lines[-1][3:4] == b"-":
        lines.append(client.line())
    return b"".join(lines)


def test_lmtp_bdat_octets_are_not_commands_and_an_answered_chunk_is_dropped(tmp_path: Path) -> None:
    """RFC 3030 §2: after ``BDAT n`` come n octets, whatever they hold. The
    first chunk (holding "QUIT") is delivered; the second BDAT is answered
    by the fault and its octets never reach the server."""
    plan = [faults.close_at("QUIT", protocol="lmtp"),
            faults.respond("BDAT", "NO", "chunk refused", occurrence=2, protocol="lmtp")]
    message = b"Subject: bdat\r\n\r\nQUIT\r\nRSET\r\n"
    with tapped(tmp_path, plan, lmtp=True) as server:
        client = RawClient(server.host, server.ports["lmtp"])
        assert smtp_reply(client).startswith(b"220 ")
        client.send(b"LHLO test\r\n")
        assert b"CHUNKING" in smtp_reply(client)
        client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice>\r\n")
        assert smtp_reply(client).startswith(b"250") and smtp_reply(client).startswith(b"250")
        client.send(b"BDAT %d LAST\r\n%s" % (len(message), message))
        assert smtp_reply(client).startswith(b"250")  # per recipient (RFC 2033 §4.2)
        client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice>\r\n")
        smtp_reply(client), smtp_reply(client)
        client.send(b"BDAT %d LAST\r\n%sNOOP\r\n" % (len(message), message))
        assert client.line() == b"451 4.3.0 chunk refused\r\n"
        assert client.line().startswith(b"250")  # NOOP: the chunk was dropped whole
        assert messages(server) == 1


def test_a_command_cut_between_segments_is_still_recognised(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.respond("STAT", "NO", "busy", protocol="pop3")], pop3=True) as server:
        client = RawClient(server.host, server.ports["pop3"])
        assert client.line().startswith(b"+OK")
        client.send(b"USER alice\r\nPASS wonderland\r\nST")
        assert client.line().startswith(b"+OK") and client.line().startswith(b"+OK")
        client.send(b"AT\r\n")
        assert client.line() == b"-ERR busy\r\n"
