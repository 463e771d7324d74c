"""CONDSTORE (RFC 7162 §3.1) as byte-exact transcripts: the RFC's examples
re-enacted on a real store (MODSEQ values are the store's own, read back
from it), the enabling rules, and what other sessions' changes look like."""

from __future__ import annotations

import pytest

from tests.imap.commands.harness import Client, MailServer, message


def modseqs(server: MailServer, mailbox: str = "INBOX") -> dict[int, int]:
    """Each message's MODSEQ, by UID, straight from the store."""
    return {record.uid: record.modseq for record, _ in server.read_messages(mailbox)}


def highest(server: MailServer, mailbox: str = "INBOX") -> int:
    return server.status(mailbox).highestmodseq


@pytest.fixture
def writer(server: MailServer) -> Client:
    """Another session on INBOX ("an external agent" for the RFC), which
    also claims \\Recent so the client's FLAGS stay short."""
    server.append_many("INBOX", [message(n) for n in range(1, 10)])
    other = server.connect("alice")
    other.ok("w SELECT INBOX")
    return other


# --- HIGHESTMODSEQ, STATUS and enabling ------------------------------------------------

def test_every_select_reports_highestmodseq_and_status_agrees(
    server: MailServer, client: Client, writer: Client
) -> None:
    """RFC 7162 §3.1.2.1: OK [HIGHESTMODSEQ] with every successful SELECT
    or EXAMINE (with or without CONDSTORE); §3.1.9: STATUS HIGHESTMODSEQ."""
    writer.ok("w1 STORE 2 +FLAGS (\\Seen)")
    value = highest(server)
    assert value == modseqs(server)[2]
    for command in ("SELECT INBOX", "EXAMINE INBOX", "SELECT INBOX (CONDSTORE)"):
        assert f"* OK [HIGHESTMODSEQ {value}] Highest".encode() in client.ok(f"s {command}")
    client.ok("u UNSELECT")
    client.transcript(
        """
        C: a STATUS INBOX (MESSAGES HIGHESTMODSEQ)
        S: * STATUS INBOX (MESSAGES 9 HIGHESTMODSEQ ${value})
        S: a OK STATUS completed
        """, value=value)


def test_enabling_in_selected_state_sends_highestmodseq_then_modseq_everywhere(
    server: MailServer, client: Client, writer: Client
) -> None:
    """Before CONDSTORE is enabled other sessions' changes come as FETCH
    (FLAGS); ``FETCH ... (MODSEQ)`` enables it (§3.1), the first time with
    ``* OK [HIGHESTMODSEQ]`` (the client had no reason to keep the SELECT
    value), and from then on every untagged FETCH carries UID and MODSEQ."""
    client.ok("s SELECT INBOX")
    writer.ok("w1 STORE 1 +FLAGS (\\Flagged)")
    client.transcript("""
        C: n NOOP
        S: * 1 FETCH (FLAGS (\\Flagged))
        S: n OK NOOP completed
    """)
    before = highest(server)
    client.transcript(
        """
        C: a FETCH 1:2 (MODSEQ)
        S: * OK [HIGHESTMODSEQ ${before}] Highest
        S: * 1 FETCH (MODSEQ (${m1}))
        S: * 2 FETCH (MODSEQ (${m2}))
        S: a OK FETCH completed
        C: b FETCH 2 (MODSEQ)
        S: * 2 FETCH (MODSEQ (${m2}))
        S: b OK FETCH completed
        """,
        before=before, m1=modseqs(server)[1], m2=modseqs(server)[2],
    )
    writer.ok("w2 STORE 3 FLAGS ($Junk)")
    client.transcript(
        """
        C: n NOOP
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk \\*)] Flags permitted
        S: * 3 FETCH (FLAGS ($Junk) UID 3 MODSEQ (${m3}))
        S: n OK NOOP completed
        C: x STORE 4 +FLAGS (\\Answered)
        S: * 4 FETCH (FLAGS (\\Answered) UID 4 MODSEQ (${m4}))
        S: x OK STORE completed
        """,
        m3=modseqs(server)[3], m4=highest(server) + 1,
    )


@pytest.mark.parametrize("command", [
    "STATUS INBOX (HIGHESTMODSEQ)",
    "SEARCH MODSEQ 1",
    "UID FETCH 1 (FLAGS) (CHANGEDSINCE 1)",
    "STORE 5 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)",
])
def test_each_enabling_command_turns_condstore_on(
    server: MailServer, client: Client, writer: Client, command: str
) -> None:
    """RFC 7162 §3.1's list (SELECT (CONDSTORE), FETCH MODSEQ and ENABLE
    are covered elsewhere): each makes the next untagged FETCH carry MODSEQ."""
    client.ok("s SELECT INBOX")
    out = client.lines(f"e {command}")
    assert f"* OK [HIGHESTMODSEQ {highest(server)}] Highest".encode() in out
    writer.ok("w STORE 9 +FLAGS (\\Draft)")
    assert client.lines("n NOOP")[0] == b"* 9 FETCH (FLAGS (\\Draft) UID 9 MODSEQ (%d))" % highest(server)


def test_enable_condstore_before_select(server: MailServer, client: Client, writer: Client) -> None:
    client.transcript("""
        C: e ENABLE CONDSTORE
        S: * ENABLED CONDSTORE
        S: e OK ENABLE completed
    """)
    client.ok("s SELECT INBOX")
    writer.ok("w STORE 2 +FLAGS (\\Seen)")
    assert client.lines("n NOOP")[0] == b"* 2 FETCH (FLAGS (\\Seen) UID 2 MODSEQ (%d))" % highest(server)


def test_highestmodseq_never_runs_ahead_of_a_held_back_expunge(
    server: MailServer, client: Client, writer: Client
) -> None:
    """Enabled during a FETCH, while another session's expunge is held back
    (RFC 3501 §7.4.1), the HIGHESTMODSEQ sent is the value from before that
    expunge: a client that kept it and resynchronised later must still
    learn of the expunge."""
    client.ok("s SELECT INBOX")
    told = highest(server)
    writer.ok("w1 STORE 9 +FLAGS.SILENT (\\Deleted)")
    writer.ok("w2 EXPUNGE")
    assert highest(server) > told
    client.transcript(
        """
        C: a FETCH 1 (MODSEQ)
        S: * OK [HIGHESTMODSEQ ${told}] Highest
        S: * 1 FETCH (MODSEQ (${m1}))
        S: a OK FETCH completed
        C: n NOOP
        S: * 9 EXPUNGE
        S: n OK NOOP completed
        """,
        told=told, m1=modseqs(server)[1],
    )


# --- FETCH MODSEQ and CHANGEDSINCE (§3.1.4) ---------------------------------------------

def test_rfc7162_fetch_modseq_example(server: MailServer, client: Client, writer: Client) -> None:
    """``FETCH 1:3 (MODSEQ)``: each message's own MODSEQ; no UID (the FETCH
    did not ask for it, §3.1: the rule only covers unsolicited FETCH)."""
    writer.ok("w1 STORE 2 +FLAGS (\\Seen)")
    writer.ok("w2 STORE 3 +FLAGS (\\Seen)")
    client.ok("s SELECT INBOX (CONDSTORE)")
    ms = modseqs(server)
    assert ms[1] < ms[2] < ms[3]
    client.transcript(
        """
        C: a FETCH 1:3 (MODSEQ)
        S: * 1 FETCH (MODSEQ (${m1}))
        S: * 2 FETCH (MODSEQ (${m2}))
        S: * 3 FETCH (MODSEQ (${m3}))
        S: a OK FETCH completed
        """,
        m1=ms[1], m2=ms[2], m3=ms[3],
    )


def test_rfc7162_changedsince_example(server: MailServer, client: Client, writer: Client) -> None:
    """``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)``: only the messages changed
    since ``m``, with UID and MODSEQ (implied)."""
    since = highest(server)
    writer.ok("w1 STORE 4 +FLAGS (\\Seen)")
    writer.ok("w2 STORE 6 +FLAGS (\\Deleted)")
    writer.ok("w3 STORE 8 FLAGS ($NoJunk $AutoJunk $MDNSent)")
    client.ok("s SELECT INBOX (CONDSTORE)")
    ms = modseqs(server)
    client.transcript(
        """
        C: s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${since})
        S: * 4 FETCH (FLAGS (\\Seen) UID 4 MODSEQ (${m4}))
        S: * 6 FETCH (FLAGS (\\Deleted) UID 6 MODSEQ (${m6}))
        S: * 8 FETCH (FLAGS ($NoJunk $AutoJunk $MDNSent) UID 8 MODSEQ (${m8}))
        S: s100 OK UID FETCH completed
        C: s101 FETCH 5:8 (UID) (CHANGEDSINCE ${m6})
        S: * 8 FETCH (UID 8 MODSEQ (${m8}))
        S: s101 OK FETCH completed
        C: s102 UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${m8})
        S: s102 OK UID FETCH completed
        C: s103 FETCH 8:10 (FLAGS) (CHANGEDSINCE 1)
        S: s103 BAD Invalid message sequence number 10
        """,
        since=since, m4=ms[4], m6=ms[6], m8=ms[8],
    )


def test_fetch_that_sets_seen_reports_uid_and_modseq(server: MailServer, client: Client, writer: Client) -> None:
    client.ok("s SELECT INBOX (CONDSTORE)")
    client.transcript(
        """
        C: a FETCH 2 (BODY[TEXT])
        S: * 2 FETCH (BODY[TEXT] {12}
        S: Body of 2.
        S:  FLAGS (\\Seen) UID 2 MODSEQ (${m}))
        S: a OK FETCH completed
        C: b FETCH 2 (BODY[TEXT])
        S: * 2 FETCH (BODY[TEXT] {12}
        S: Body of 2.
        S: )
        S: b OK FETCH completed
        """,
        m=highest(server) + 1,
    )
    assert modseqs(server)[2] == highest(server)


# --- STORE UNCHANGEDSINCE (§3.1.3) --------------------------------------------------------

def test_rfc7162_conditional_store_examples(server: MailServer, client: Client, writer: Client) -> None:
    """``STORE 7,5,9 (UNCHANGEDSINCE m) +FLAGS.SILENT (\\Deleted)`` after an
    external agent changed 7 and 9: only 5 is stored (and reported with its
    new MODSEQ despite .SILENT), 7 and 9 come back in ``[MODIFIED 7,9]``;
    their new flags reach the client before the tagged reply. Then a UID
    STORE whose UNCHANGEDSINCE lies between the MODSEQs: 6 (unchanged by the
    flag removal, still reported) and 7 pass, 5 (just stored) and 9 fail,
    reported by UID; UNCHANGEDSINCE 0 fails for every message."""
    client.ok("s SELECT INBOX (CONDSTORE)")
    since = highest(server)
    writer.ok("w1 STORE 7 +FLAGS ($Work)")
    writer.ok("w2 STORE 9 +FLAGS ($Work)")
    ms = modseqs(server)
    client.transcript(
        """
        C: a105 STORE 7,5,9 (UNCHANGEDSINCE ${since}) +FLAGS.SILENT (\\Deleted)
        S: * 5 FETCH (UID 5 MODSEQ (${new}))
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted
        S: * 7 FETCH (FLAGS ($Work) UID 7 MODSEQ (${m7}))
        S: * 9 FETCH (FLAGS ($Work) UID 9 MODSEQ (${m9}))
        S: a105 OK [MODIFIED 7,9] Conditional STORE failed
        C: a106 UID STORE 9,5:7 (UNCHANGEDSINCE ${m7}) -FLAGS ($Work)
        S: * 6 FETCH (FLAGS () UID 6 MODSEQ (${m6}))
        S: * 7 FETCH (FLAGS () UID 7 MODSEQ (${newer}))
        S: a106 OK [MODIFIED 5,9] Conditional STORE failed
        C: a107 STORE 1:2 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)
        S: a107 OK [MODIFIED 1:2] Conditional STORE failed
        C: a108 STORE 3 (UNCHANGEDSINCE ${newer}) +FLAGS.SILENT (\\Seen)
        S: * 3 FETCH (UID 3 MODSEQ (${newest}))
        S: a108 OK STORE completed
        """,
        since=since, new=since + 3, m7=ms[7], m9=ms[9], m6=ms[6], newer=since + 4, newest=since + 5,
    )
    after = modseqs(server)
    assert (after[5], after[7], after[3]) == (since + 3, since + 4, since + 5)
    flags = {record.uid: record.flags for record, _ in server.read_messages("INBOX")}
    assert (flags[5], flags[7], flags[9], flags[1]) == (("\\Deleted",), (), ("$Work",), ())


def test_conditional_store_on_a_message_expunged_meanwhile_reports_it_modified(
    server: MailServer, client: Client, writer: Client
) -> None:
    client.ok("s SELECT INBOX (CONDSTORE)")
    writer.ok("w1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    writer.ok("w2 EXPUNGE")
    client.transcript(
        """
        C: a STORE 1:2 (UNCHANGEDSINCE ${now}) +FLAGS.SILENT (\\Seen)
        S: * 1 FETCH (UID 1 MODSEQ (${new}))
        S: a OK [MODIFIED 2] Conditional STORE failed
        C: n NOOP
        S: * 2 EXPUNGE
        S: n OK NOOP completed
        """,
        now=highest(server), new=highest(server) + 1,
    )


def test_conditional_store_is_refused_read_only(server: MailServer, client: Client, writer: Client) -> None:
    client.ok("s EXAMINE INBOX (CONDSTORE)")
    client.transcript("""
        C: a STORE 1 (UNCHANGEDSINCE 99) +FLAGS (\\Seen)
        S: a NO [READ-ONLY] Mailbox is read-only
    """)


# --- SEARCH MODSEQ (§3.1.5) -------------------------------------------------------------

def test_rfc7162_search_modseq_examples(server: MailServer, client: Client, writer: Client) -> None:
    """``* SEARCH ... (MODSEQ n)`` with the highest MODSEQ of the matches;
    nothing found: no trailer; no MODSEQ key: no trailer either."""
    since = highest(server)
    for uid in (2, 5, 6):
        writer.ok(f"w{uid} STORE {uid} +FLAGS (\\Draft)")
    client.ok("s SELECT INBOX (CONDSTORE)")
    client.transcript(
        """
        C: a SEARCH MODSEQ "/flags/\\\\draft" all ${after}
        S: * SEARCH 2 5 6 (MODSEQ ${top})
        S: a OK SEARCH completed
        C: b UID SEARCH MODSEQ ${after} NOT UID 6
        S: * SEARCH 2 5 (MODSEQ ${m5})
        S: b OK UID SEARCH completed
        C: t SEARCH OR NOT MODSEQ ${since} LARGER 50000
        S: * SEARCH
        S: t OK SEARCH completed
        C: u SEARCH DRAFT
        S: * SEARCH 2 5 6
        S: u OK SEARCH completed
        """,
        since=since, after=since + 1, top=highest(server), m5=modseqs(server)[5],
    )
