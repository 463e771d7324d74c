"""QRESYNC (RFC 7162 §3.2) as byte-exact transcripts: a client that stored
UIDVALIDITY and HIGHESTMODSEQ disconnects, other sessions change, expunge
and add messages, and the client's ``SELECT ... (QRESYNC (...))`` brings it
back in sync with exactly the right ``VANISHED (EARLIER)`` and FETCHes;
VANISHED instead of EXPUNGE once enabled; ``UID FETCH (CHANGEDSINCE
VANISHED)``; ``[CLOSED]``; the refusals."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.commands.condstore import Membership
from imapd.core.model import SeqRange, SequenceSet
from tests.imap.commands.harness import Client, MailServer, message

SYSTEM = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def qresync_client(server: MailServer) -> Client:
    client = server.connect("alice")
    client.transcript("""
        C: e ENABLE QRESYNC
        S: * ENABLED QRESYNC
        S: e OK ENABLE completed
    """)
    return client


@dataclass
class Cache:
    """What a disconnected client kept about INBOX."""

    uidvalidity: int
    modseq: int
    uids: list[int]


@pytest.fixture
def cache(server: MailServer) -> Cache:
    """INBOX with UIDs 1-10 seen by a QRESYNC client that then went away
    (it claimed \\Recent, so later SELECTs show none); its cache: the
    UIDVALIDITY, the HIGHESTMODSEQ from its SELECT, and the UIDs."""
    server.append_many("INBOX", [message(n) for n in range(1, 11)])
    device = qresync_client(server)
    out = device.ok("s SELECT INBOX")
    told = next(line for line in out if line.startswith(b"* OK [HIGHESTMODSEQ "))
    device.disconnect()
    return Cache(server.uidvalidity("INBOX"), int(told.split()[3].rstrip(b"]")), list(range(1, 11)))


def other_device_changes(server: MailServer) -> dict[str, int]:
    """Another session flags 3 and 8, expunges 2, 5 and 6, and appends two
    messages (UIDs 11, 12); returns the MODSEQs to expect."""
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    other.ok("o1 STORE 3 +FLAGS.SILENT (\\Flagged)")
    other.ok("o2 STORE 2,5:6 +FLAGS.SILENT (\\Deleted)")
    other.ok("o3 EXPUNGE")
    other.ok("o4 UID STORE 8 +FLAGS.SILENT ($Work \\Seen)")
    other.ok("o5 APPEND INBOX {3+}\r\nnew")
    other.ok("o6 APPEND INBOX (\\Seen) {4+}\r\nnew2")
    other.disconnect()
    modseqs = {record.uid: record.modseq for record, _ in server.read_messages("INBOX")}
    return {"m3": modseqs[3], "m8": modseqs[8], "m11": modseqs[11], "m12": modseqs[12],
            "top": server.status("INBOX").highestmodseq}


def selection_lines(exists: int, unseen: int, uidvalidity: int, uidnext: int, top: int) -> str:
    return f"""
        S: * FLAGS ({SYSTEM} $Work)
        S: * {exists} EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN {unseen}] First unseen message
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Work \\*)] Flags permitted
        S: * OK [UIDVALIDITY {uidvalidity}] UIDs valid
        S: * OK [UIDNEXT {uidnext}] Predicted next UID
        S: * OK [HIGHESTMODSEQ {top}] Highest"""


def test_resync_after_another_device_changed_the_mailbox(server: MailServer, cache: Cache) -> None:
    """RFC 7162 §3.2.5.2 (its Example re-enacted): with the known UIDs, the
    client hears the three expunges as VANISHED (EARLIER) and gets FETCH
    (UID FLAGS MODSEQ) for exactly the two changed messages it knows; the
    two new messages are outside its known UIDs (it learns of them from
    EXISTS/UIDNEXT)."""
    expected = other_device_changes(server)
    client = qresync_client(server)
    client.transcript(
        f"""
        C: A03 SELECT INBOX (QRESYNC ({cache.uidvalidity} {cache.modseq} 1:10))
        {selection_lines(9, 1, cache.uidvalidity, 13, expected["top"])}
        S: * VANISHED (EARLIER) 2,5:6
        S: * 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ ({expected["m3"]}))
        S: * 5 FETCH (UID 8 FLAGS (\\Seen $Work) MODSEQ ({expected["m8"]}))
        S: A03 OK [READ-WRITE] SELECT completed
        """
    )


def test_resync_without_known_uids_reports_every_change(server: MailServer, cache: Cache) -> None:
    """No known-UID list: every expunge and every changed or new message
    since the client's MODSEQ, in one round trip."""
    expected = other_device_changes(server)
    client = qresync_client(server)
    client.transcript(
        f"""
        C: A03 EXAMINE INBOX (QRESYNC ({cache.uidvalidity} {cache.modseq}))
        S: * FLAGS ({SYSTEM} $Work)
        S: * 9 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] First unseen message
        S: * OK [PERMANENTFLAGS ()] No permanent flags permitted
        S: * OK [UIDVALIDITY {cache.uidvalidity}] UIDs valid
        S: * OK [UIDNEXT 13] Predicted next UID
        S: * OK [HIGHESTMODSEQ {expected["top"]}] Highest
        S: * VANISHED (EARLIER) 2,5:6
        S: * 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ ({expected["m3"]}))
        S: * 5 FETCH (UID 8 FLAGS (\\Seen $Work) MODSEQ ({expected["m8"]}))
        S: * 8 FETCH (UID 11 FLAGS () MODSEQ ({expected["m11"]}))
        S: * 9 FETCH (UID 12 FLAGS (\\Seen) MODSEQ ({expected["m12"]}))
        S: A03 OK [READ-ONLY] EXAMINE completed
        """
    )


def test_known_uids_narrow_the_answer_and_nothing_changed_means_nothing(
    server: MailServer, cache: Cache
) -> None:
    expected = other_device_changes(server)
    client = qresync_client(server)
    out = client.ok(f"a SELECT INBOX (QRESYNC ({cache.uidvalidity} {cache.modseq} 4:6,8 (1:3 1:3)))")
    assert out[-3:-1] == [
        b"* VANISHED (EARLIER) 5:6",
        b"* 5 FETCH (UID 8 FLAGS (\\Seen $Work) MODSEQ (%d))" % expected["m8"],
    ]
    # Resynchronising from the current HIGHESTMODSEQ: nothing to report.
    out = client.ok(f"b SELECT INBOX (QRESYNC ({cache.uidvalidity} {expected['top']}))")
    assert out[0] == b"* OK [CLOSED] Previous mailbox closed"
    assert out[-2] == b"* OK [HIGHESTMODSEQ %d] Highest" % expected["top"]


def test_another_uidvalidity_means_a_plain_select(server: MailServer, cache: Cache) -> None:
    """§3.2.5.2: the cache is void; the parameters are ignored (and the
    client sees the new UIDVALIDITY in the usual response)."""
    other_device_changes(server)
    client = qresync_client(server)
    out = client.ok(f"a SELECT INBOX (QRESYNC ({cache.uidvalidity + 1} 1 1:10))")
    assert not [line for line in out if b"VANISHED" in line or b"FETCH" in line]


def test_qresync_refusals(server: MailServer, cache: Cache) -> None:
    """Without ENABLE QRESYNC the parameter is BAD (§3.2.5) and the selected
    mailbox stays selected; so is sequence match data of unequal sizes."""
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    client.transcript(
        f"""
        C: a SELECT INBOX (QRESYNC ({cache.uidvalidity} {cache.modseq}))
        S: a BAD QRESYNC is not enabled (use ENABLE QRESYNC first)
        C: b UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
        S: b BAD QRESYNC is not enabled (use ENABLE QRESYNC first)
        C: c FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
        S: c BAD VANISHED is only allowed in UID FETCH
        C: d SELECT INBOX (QRESYNC ({cache.uidvalidity} 1 1:*))
        S: d BAD Invalid known UIDs: '*' and '$' are not allowed
        C: e CHECK
        S: e OK CHECK completed
        """
    )
    device = qresync_client(server)
    device.transcript(
        f"""
        C: a SELECT INBOX (QRESYNC ({cache.uidvalidity} 1 1:10 (1:3 1,5)))
        S: a BAD QRESYNC sequence match data: the two sets differ in size
        """
    )


# --- VANISHED instead of EXPUNGE (§3.2.10) -----------------------------------------------

def test_expunges_are_vanished_for_the_session_and_for_others(server: MailServer, cache: Cache) -> None:
    """Once QRESYNC is on, EXPUNGE answers ``* VANISHED uids`` and a tagged
    HIGHESTMODSEQ; another QRESYNC session hears the same VANISHED at its
    next command, but not during FETCH (RFC 3501 §7.4.1), while a plain
    session still gets EXPUNGE."""
    client = qresync_client(server)
    client.ok("s SELECT INBOX")
    watcher = qresync_client(server)
    watcher.ok("s SELECT INBOX")
    plain = server.connect("alice")
    plain.ok("s SELECT INBOX")
    client.ok("d STORE 2,4:5 +FLAGS.SILENT (\\Deleted)")
    client.transcript(
        """
        C: x EXPUNGE
        S: * VANISHED 2,4:5
        S: x OK [HIGHESTMODSEQ ${top}] EXPUNGE completed
        """, top=server.status("INBOX").highestmodseq + 1)
    watcher.transcript("""
        C: f FETCH 4 (UID)
        S: f OK FETCH completed
        C: n NOOP
        S: * VANISHED 2,4:5
        S: n OK NOOP completed
    """)
    plain.transcript("""
        C: n NOOP
        S: * 5 EXPUNGE
        S: * 4 EXPUNGE
        S: * 2 EXPUNGE
        S: n OK NOOP completed
    """)
    client.ok("d2 STORE 1 +FLAGS.SILENT (\\Deleted)")
    client.transcript(
        """
        C: y UID EXPUNGE 1:3
        S: * VANISHED 1
        S: y OK [HIGHESTMODSEQ ${top}] UID EXPUNGE completed
        """, top=server.status("INBOX").highestmodseq + 1)


def test_uid_fetch_changedsince_vanished(server: MailServer, cache: Cache) -> None:
    """§3.2.6: the set's UIDs expunged since the MODSEQ as VANISHED (EARLIER)
    (``*`` reaches past the highest UID left), then the changed messages."""
    expected = other_device_changes(server)
    client = qresync_client(server)
    client.ok("s SELECT INBOX")
    client.transcript(
        f"""
        C: a UID FETCH 1:* (FLAGS) (CHANGEDSINCE {cache.modseq} VANISHED)
        S: * VANISHED (EARLIER) 2,5:6
        S: * 2 FETCH (FLAGS (\\Flagged) UID 3 MODSEQ ({expected["m3"]}))
        S: * 5 FETCH (FLAGS (\\Seen $Work) UID 8 MODSEQ ({expected["m8"]}))
        S: * 8 FETCH (FLAGS () UID 11 MODSEQ ({expected["m11"]}))
        S: * 9 FETCH (FLAGS (\\Seen) UID 12 MODSEQ ({expected["m12"]}))
        S: a OK UID FETCH completed
        C: b UID FETCH 3:5 (FLAGS) (CHANGEDSINCE {cache.modseq} VANISHED)
        S: * VANISHED (EARLIER) 5
        S: * 2 FETCH (FLAGS (\\Flagged) UID 3 MODSEQ ({expected["m3"]}))
        S: b OK UID FETCH completed
        C: c UID FETCH 1:* (FLAGS) (CHANGEDSINCE {expected["top"]} VANISHED)
        S: c OK UID FETCH completed
        """
    )


def test_closed_marks_the_switch_between_mailboxes(server: MailServer) -> None:
    """§3.2.11: ``* OK [CLOSED]`` when SELECT/EXAMINE closes a selected
    mailbox (even when the new one fails to open), only once QRESYNC is on."""
    server.create("Other")
    plain = server.connect("alice")
    plain.ok("s SELECT INBOX")
    assert not [line for line in plain.ok("t SELECT Other") if b"CLOSED" in line]
    client = qresync_client(server)
    assert not [line for line in client.ok("s SELECT INBOX") if b"CLOSED" in line]
    assert client.ok("t EXAMINE Other")[0] == b"* OK [CLOSED] Previous mailbox closed"
    client.transcript("""
        C: u SELECT Nowhere
        S: * OK [CLOSED] Previous mailbox closed
        S: u NO [NONEXISTENT] Mailbox does not exist: Nowhere
        C: v SELECT Nowhere
        S: v NO [NONEXISTENT] Mailbox does not exist: Nowhere
    """)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.none() | st.integers(1, 60), st.none() | st.integers(1, 60)), min_size=1, max_size=8),
    st.integers(0, 70),
)
def test_membership_agrees_with_the_sequence_set(ranges: list[tuple[int | None, int | None]], largest: int) -> None:
    """The binary-search membership used for known UIDs and CHANGEDSINCE
    sets answers exactly like ``SequenceSet.contains``."""
    seqset = SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))
    members = Membership(seqset, largest)
    assert [n for n in range(0, 75) if n in members] == [
        n for n in range(0, 75) if seqset.contains(n, largest)]


def test_idle_pushes_vanished_and_modseq_under_qresync(server: MailServer, cache: Cache) -> None:
    """An idling QRESYNC client gets another session's flag change as FETCH
    with UID and MODSEQ and its expunge as VANISHED, as they happen."""
    idler = qresync_client(server)
    idler.ok("s SELECT INBOX")
    idler.transcript("""
        C: i IDLE
        S: + idling
    """)
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    other.ok("o1 UID STORE 4 +FLAGS.SILENT (\\Answered)")
    idler.transcript(
        "S: * 4 FETCH (FLAGS (\\Answered) UID 4 MODSEQ (${m}))", m=server.status("INBOX").highestmodseq)
    other.ok("o2 UID STORE 6:7 +FLAGS.SILENT (\\Deleted)")
    idler.transcript("""
        S: * 6 FETCH (FLAGS (\\Deleted) UID 6 MODSEQ (${m}))
        S: * 7 FETCH (FLAGS (\\Deleted) UID 7 MODSEQ (${m}))
    """, m=server.status("INBOX").highestmodseq)
    other.ok("o3 EXPUNGE")
    idler.transcript("""
        S: * VANISHED 6:7
        C: DONE
        S: i OK IDLE terminated
    """)
