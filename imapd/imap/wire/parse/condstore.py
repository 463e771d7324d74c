"""Grammar of the synchronisation extensions: CONDSTORE and QRESYNC
(RFC 7162 §7), ESEARCH (RFC 4731 §3.1), SEARCHRES (RFC 5182 §4), MOVE
(RFC 6851 §6) and UID EXPUNGE (RFC 4315 §4).

``parse`` calls these at the points where the base grammar allows the
RFC 4466 generic extensions (select-params, fetch-modifiers,
store-modifiers, search-return-opts); each function quotes its ABNF.
"""

from __future__ import annotations

from imapd.core.model import SequenceSet
from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import MAX_NUMBER, MAX_NUMBER64, ParseError, Reader


def mod_sequence(reader: Reader, what: str, zero_ok: bool = False) -> int:
    """``mod-sequence-value = 1*DIGIT`` (1 to 2^63-1, RFC 7162 §7), or
    ``mod-sequence-valzer = "0" / mod-sequence-value`` when ``zero_ok``."""
    if zero_ok:
        return reader.number(what, MAX_NUMBER64)
    return reader.nz_number(what, MAX_NUMBER64)


def _plain_set(reader: Reader, what: str) -> SequenceSet:
    """A sequence set without ``*`` or ``$`` (RFC 7162 §7 ``known-uids``,
    ``known-sequence-set``, ``known-uid-set``: "* is not allowed")."""
    seqset = reader.seqset(what)
    if seqset.saved or any(r.start is None or r.end is None for r in seqset.ranges):
        raise ParseError(f"Invalid {what}: '*' and '$' are not allowed")
    return seqset


# --- SELECT / EXAMINE parameters ---------------------------------------------------

def parse_select_params(reader: Reader) -> tuple[bool, c.QResync | None]:
    """``[SP "(" select-param *(SP select-param) ")"]`` after the mailbox
    name (RFC 4466 §2.1), where (RFC 7162 §7)::

        select-param   =/ "CONDSTORE" / "QRESYNC" SP "(" uidvalidity SP
                          mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
        seq-match-data = "(" known-sequence-set SP known-uid-set ")"

    Returns (CONDSTORE given, QRESYNC parameters or None)."""
    if reader.peek() != 0x20:
        return False, None
    reader.sp("SELECT parameters")
    reader.expect(b"(", "Invalid SELECT parameters: expected '('")
    reader.enter()
    condstore = False
    qresync: c.QResync | None = None
    while True:
        name = reader.keyword()
        if name == "CONDSTORE" and not condstore:
            condstore = True
        elif name == "QRESYNC" and qresync is None:
            reader.sp("QRESYNC parameters")
            qresync = _qresync(reader)
        else:
            raise ParseError(f"Unknown or repeated SELECT parameter {name[:40]}")
        if reader.skip(b")"):
            break
        reader.expect(b" ", "Invalid SELECT parameters: expected space or ')'")
    reader.leave()
    return condstore, qresync


def _qresync(reader: Reader) -> c.QResync:
    reader.expect(b"(", "Invalid QRESYNC parameters: expected '('")
    reader.enter()
    uidvalidity = reader.nz_number("UIDVALIDITY", MAX_NUMBER)
    reader.sp("mod-sequence")
    modseq = mod_sequence(reader, "mod-sequence")
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None
    if reader.skip(b" ") and reader.peek() != 0x28:
        known_uids = _plain_set(reader, "known UIDs")
        if reader.skip(b" ") and reader.peek() != 0x28:
            raise ParseError("Invalid QRESYNC parameters: expected '(' for sequence match data")
    if reader.peek() == 0x28:
        reader.enter()
        reader.pos += 1
        sequences = _plain_set(reader, "known sequence set")
        reader.sp("known UID set")
        uids = _plain_set(reader, "known UID set")
        reader.expect(b")", "Invalid sequence match data: expected ')'")
        reader.leave()
        seq_match = (sequences, uids)
    reader.expect(b")", "Invalid QRESYNC parameters: expected ')'")
    reader.leave()
    return c.QResync(uidvalidity, modseq, known_uids, seq_match)


# --- FETCH and STORE modifiers ----------------------------------------------------

def parse_fetch_modifiers(reader: Reader, uid: bool) -> tuple[int | None, bool]:
    """``[SP "(" fetch-modifier *(SP fetch-modifier) ")"]`` (RFC 4466 §2.4)::

        fetch-modifier =/ "CHANGEDSINCE" SP mod-sequence-value   ; RFC 7162 §3.1.4.1
                        / "VANISHED"                             ; §3.2.6, UID FETCH only

    VANISHED needs CHANGEDSINCE (§3.2.6: "MUST be BAD" otherwise). A list
    that does not start with a known modifier is left alone, so the caller
    reports it as extra arguments (``FETCH 1 BODY[] (FLAGS)``).
    Returns (CHANGEDSINCE value or None, VANISHED given)."""
    if not (reader.peek_is(b" (CHANGEDSINCE") or reader.peek_is(b" (VANISHED")):
        return None, False
    reader.sp("FETCH modifiers")
    reader.expect(b"(", "Invalid FETCH modifiers: expected '('")
    reader.enter()
    changedsince: int | None = None
    vanished = False
    while True:
        name = reader.keyword()
        if name == "CHANGEDSINCE" and changedsince is None:
            reader.sp("CHANGEDSINCE value")
            # Lenient: some clients send CHANGEDSINCE 0 ("everything").
            changedsince = mod_sequence(reader, "CHANGEDSINCE value", zero_ok=True)
        elif name == "VANISHED" and not vanished:
            if not uid:
                raise ParseError("VANISHED is only allowed in UID FETCH")
            vanished = True
        else:
            raise ParseError(f"Unknown or repeated FETCH modifier {name[:40]}")
        if reader.skip(b")"):
            break
        reader.expect(b" ", "Invalid FETCH modifiers: expected space or ')'")
    reader.leave()
    if vanished and changedsince is None:
        raise ParseError("VANISHED requires CHANGEDSINCE")
    return changedsince, vanished


def parse_store_modifiers(reader: Reader) -> int | None:
    """``[SP "(" store-modifier *(SP store-modifier) ")"]`` after the set
    (RFC 4466 §2.5); the only modifier is RFC 7162 §3.1.3's
    ``"UNCHANGEDSINCE" SP mod-sequence-valzer``. Returns its value or None."""
    if not reader.peek_is(b" ("):
        return None
    reader.sp("STORE modifiers")
    reader.expect(b"(", "Invalid STORE modifiers: expected '('")
    reader.enter()
    name = reader.keyword()
    if name != "UNCHANGEDSINCE":
        raise ParseError(f"Unknown STORE modifier {name[:40]}")
    reader.sp("UNCHANGEDSINCE value")
    value = mod_sequence(reader, "UNCHANGEDSINCE value", zero_ok=True)
    reader.expect(b")", "Invalid STORE modifiers: expected ')' (one UNCHANGEDSINCE only)")
    reader.leave()
    return value


# --- MOVE, UID EXPUNGE ----------------------------------------------------------------

def parse_move(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``"MOVE" SP sequence-set SP mailbox`` (RFC 6851 §6), ``UID MOVE`` too."""
    reader.sp("sequence set")
    seqset = reader.seqset()
    reader.sp("mailbox name")
    return c.Move(tag, uid, seqset, reader.mailbox())


def parse_uid_expunge(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``"UID" SP "EXPUNGE" SP sequence-set`` (RFC 4315 §4); plain EXPUNGE
    takes no argument and never gets here."""
    reader.sp("UID set")
    return c.UidExpunge(tag, reader.seqset("UID set"))
