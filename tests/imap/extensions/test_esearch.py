"""ESEARCH (RFC 4731) and SEARCHRES (RFC 5182) as byte-exact transcripts:
the RFCs' examples re-enacted, ``$`` in every command that takes a set,
``$`` after expunges, after a failed SEARCH and after reselecting."""

from __future__ import annotations

import datetime

import pytest

from tests.imap.commands.harness import Client, MailServer

UTC = datetime.timezone.utc
OLD = datetime.datetime(1994, 1, 15, 12, 0, tzinfo=UTC)
NEW = datetime.datetime(1994, 2, 7, 12, 0, tzinfo=UTC)


def mail(n: int, sender: str) -> bytes:
    return f"From: {sender} <{sender.lower()}@example.org>\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    """Eleven messages: \\Flagged, since 1-Feb-1994 and not from Smith are
    exactly 2, 10 and 11 (the RFC examples' answer); 5 is flagged but old,
    7 flagged but from Smith. ``client`` has INBOX selected, no \\Recent."""
    for n in range(1, 12):
        flagged = n in (2, 5, 7, 10, 11)
        sender = "Smith" if n in (3, 7) else "Jones"
        date = OLD if n in (1, 5) else NEW
        server.append("INBOX", mail(n, sender), ["\\Flagged"] if flagged else [], date)
    claimer = server.connect("alice")
    claimer.ok("c SELECT INBOX")
    claimer.disconnect()
    client.ok("s SELECT INBOX")
    return client


CRITERIA = 'FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"'


def test_rfc4731_examples(mailbox: Client) -> None:
    """RFC 4731 §4's examples: MIN+COUNT, ``RETURN ()`` meaning ALL (ranges
    compressed), MIN alone, UID MIN+MAX, COUNT 0 and no MIN/MAX/ALL when
    nothing matches."""
    mailbox.transcript(f"""
        C: A282 SEARCH RETURN (MIN COUNT) {CRITERIA}
        S: * ESEARCH (TAG "A282") MIN 2 COUNT 3
        S: A282 OK SEARCH completed
        C: A283 SEARCH RETURN () {CRITERIA}
        S: * ESEARCH (TAG "A283") ALL 2,10:11
        S: A283 OK SEARCH completed
        C: A284 SEARCH RETURN (MIN) {CRITERIA}
        S: * ESEARCH (TAG "A284") MIN 2
        S: A284 OK SEARCH completed
        C: A285 UID SEARCH RETURN (MIN MAX) 1:5000
        S: * ESEARCH (TAG "A285") UID MIN 1 MAX 11
        S: A285 OK UID SEARCH completed
        C: A286 SEARCH RETURN (MAX COUNT ALL MIN) FROM "Nobody"
        S: * ESEARCH (TAG "A286") COUNT 0
        S: A286 OK SEARCH completed
        C: A287 UID SEARCH RETURN (ALL) FROM "Nobody"
        S: * ESEARCH (TAG "A287") UID
        S: A287 OK UID SEARCH completed
    """)


def test_esearch_numbers_follow_expunges_and_uids(server: MailServer, mailbox: Client) -> None:
    mailbox.ok("d STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    mailbox.ok("x EXPUNGE")
    mailbox.transcript("""
        C: a SEARCH RETURN (ALL COUNT) FLAGGED
        S: * ESEARCH (TAG "a") COUNT 5 ALL 1,3,5,8:9
        S: a OK SEARCH completed
        C: b UID SEARCH RETURN (ALL MIN MAX) FLAGGED
        S: * ESEARCH (TAG "b") UID MIN 2 MAX 11 ALL 2,5,7,10:11
        S: b OK UID SEARCH completed
    """)


def test_rfc5182_save_then_use_in_fetch_store_copy(server: MailServer, mailbox: Client) -> None:
    """RFC 5182 §2.2's example: SAVE sends no ESEARCH, then ``$`` is the
    saved messages as sequence numbers for FETCH and as UIDs for UID
    commands, in STORE, COPY and SEARCH alike."""
    server.create("Saved")
    mailbox.transcript(
        f"""
        C: A282 SEARCH RETURN (SAVE) {CRITERIA}
        S: A282 OK SEARCH completed
        C: A283 FETCH $ (UID FLAGS RFC822.SIZE)
        S: * 2 FETCH (UID 2 FLAGS (\\Flagged) RFC822.SIZE 56)
        S: * 10 FETCH (UID 10 FLAGS (\\Flagged) RFC822.SIZE 58)
        S: * 11 FETCH (UID 11 FLAGS (\\Flagged) RFC822.SIZE 58)
        S: A283 OK FETCH completed
        C: A284 UID STORE $ +FLAGS ($Saved)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Saved)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Saved \\*)] Flags permitted
        S: * 2 FETCH (FLAGS (\\Flagged $Saved) UID 2)
        S: * 10 FETCH (FLAGS (\\Flagged $Saved) UID 10)
        S: * 11 FETCH (FLAGS (\\Flagged $Saved) UID 11)
        S: A284 OK UID STORE completed
        C: A285 COPY $ Saved
        S: A285 OK [COPYUID ${{saved}} 2,10:11 1:3] COPY completed
        C: A286 SEARCH $ NOT UID 10
        S: * SEARCH 2 11
        S: A286 OK SEARCH completed
        C: A287 UID SEARCH RETURN (COUNT) UID $
        S: * ESEARCH (TAG "A287") UID COUNT 3
        S: A287 OK UID SEARCH completed
        """,
        saved=server.uidvalidity("Saved"),
    )


def test_save_with_min_or_max_keeps_only_those(mailbox: Client) -> None:
    """RFC 5182 §2.4: with MIN and/or MAX (and no ALL or COUNT) only those
    messages are saved; with COUNT all of them."""
    mailbox.transcript(f"""
        C: a SEARCH RETURN (SAVE MIN MAX) {CRITERIA}
        S: * ESEARCH (TAG "a") MIN 2 MAX 11
        S: a OK SEARCH completed
        C: b FETCH $ UID
        S: * 2 FETCH (UID 2)
        S: * 11 FETCH (UID 11)
        S: b OK FETCH completed
        C: c SEARCH RETURN (MAX SAVE) {CRITERIA}
        S: * ESEARCH (TAG "c") MAX 11
        S: c OK SEARCH completed
        C: d FETCH $ UID
        S: * 11 FETCH (UID 11)
        S: d OK FETCH completed
        C: e SEARCH RETURN (SAVE COUNT MIN) {CRITERIA}
        S: * ESEARCH (TAG "e") MIN 2 COUNT 3
        S: e OK SEARCH completed
        C: f FETCH $ UID
        S: * 2 FETCH (UID 2)
        S: * 10 FETCH (UID 10)
        S: * 11 FETCH (UID 11)
        S: f OK FETCH completed
    """)


def test_saved_result_after_expunge_failure_and_reselect(server: MailServer, mailbox: Client) -> None:
    """``$`` loses expunged messages (RFC 5182 §2.1); a SEARCH ... SAVE that
    fails empties it; a SEARCH can use the old ``$`` while saving a new
    one; a new selection starts with an empty ``$``."""
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    mailbox.ok(f"a SEARCH RETURN (SAVE) {CRITERIA}")
    other.ok("o1 STORE 10 +FLAGS.SILENT (\\Deleted)")
    other.ok("o2 EXPUNGE")
    mailbox.transcript("""
        C: b NOOP
        S: * 10 EXPUNGE
        S: b OK NOOP completed
        C: c FETCH $ (UID)
        S: * 2 FETCH (UID 2)
        S: * 10 FETCH (UID 11)
        S: c OK FETCH completed
        C: d SEARCH RETURN (SAVE) $ NOT UID 2
        S: d OK SEARCH completed
        C: e UID SEARCH $
        S: * SEARCH 11
        S: e OK UID SEARCH completed
        C: f SEARCH RETURN (SAVE) CHARSET KOI8-R ALL
        S: f NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KOI8-R
        C: g FETCH $ (UID)
        S: g OK FETCH completed
    """)
    mailbox.ok(f"h SEARCH RETURN (SAVE) {CRITERIA}")
    assert mailbox.lines("i UID SEARCH $") == [b"* SEARCH 2 11", b"i OK UID SEARCH completed"]
    mailbox.ok("j SELECT INBOX")
    mailbox.transcript("""
        C: k UID SEARCH $
        S: * SEARCH
        S: k OK UID SEARCH completed
    """)


def test_unknown_return_option_is_bad(mailbox: Client) -> None:
    """Options of extensions not offered (RFC 6203's RELEVANCY) are syntax
    errors, not silently ignored."""
    mailbox.transcript("""
        C: a SEARCH RETURN (RELEVANCY) ALL
        S: a BAD Unsupported SEARCH RETURN option RELEVANCY
        C: b SEARCH RETURN (MIN ALL
        S: b BAD Invalid RETURN options: expected space or ')'
    """)
