"""Evaluating SEARCH keys against one message (RFC 3501 §6.4.4).

Evaluation is three-valued so that cheap keys decide first: a
``Candidate`` starts with only its store record (flags, size, internal
date, UID, sequence number, ``\\Recent``); keys that need more (the
message analysis for SENT*, the bytes for header and text keys) evaluate to
``None`` ("unknown") until that data is loaded. ``AND``/``OR``/``NOT``
follow Kleene logic (``False AND unknown`` is False, ``True OR unknown`` is
True), so ``UNSEEN TEXT foo`` never reads the bytes of seen messages. With
the analysis and the bytes loaded, every key is decided.

Key semantics (RFC 3501 §6.4.4):

* Flags and keywords compare without regard to case; ``\\Recent`` (RECENT,
  NEW, OLD) is the session's (``SelectedView.is_recent``).
* BEFORE/ON/SINCE compare the internal date's calendar date in its own
  time zone; SENTBEFORE/SENTON/SENTSINCE the date written in the Date
  header (a message without a usable Date header matches none of them).
* LARGER/SMALLER compare RFC822.SIZE (strictly).
* Strings match as substrings of decoded text (RFC 2047 words,
  quoted-printable and base64 bodies, charsets) under the
  ``i;unicode-casemap`` collation (RFC 5051; RFC 5255 §4.2 names the keys:
  BCC, BODY, CC, FROM, SUBJECT, TEXT, TO, HEADER). Each message text and
  header field is folded once per message (``Candidate``), each search
  string once per command (``Evaluator``). ``HEADER field ""`` matches every
  message that has the field.
* Sequence sets use the client's message numbers (``*`` is EXISTS); UID
  sets the UIDs (``*`` is the highest UID, so ``n:*`` includes it). ``$``
  in either place is the saved result (RFC 5182 §2.1): the messages whose
  UIDs are in ``saved``.
* ``MODSEQ n`` (RFC 7162 §3.1.5) matches messages whose MODSEQ is at least
  ``n``; the optional entry name is accepted and not narrowed further (this
  store keeps one MODSEQ per message, for all of its flags).
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import Awaitable, Callable

from imapd.mail.records import MessageRecord
from imapd.message import MessageInfo, searchable_text
from imapd.message.casemap import fold
from imapd.message.searchtext import folded_header_texts
from imapd.core.model import RECENT
from imapd.imap.wire.commands import (
    DateField, DateOp, SearchAll, SearchAnd, SearchDate, SearchFlag, SearchHeader, SearchKey,
    SearchModSeq, SearchNot, SearchOr, SearchSeq, SearchSize, SearchText, SearchUid, TextScope,
)

Truth = bool | None


def matches_everything(key: SearchKey) -> bool:
    """Is ``key`` ALL (or an AND of ALLs)? Then no message needs
    evaluating: SORT/THREAD/SEARCH ALL over 100,000 messages skip 100,000
    evaluations (issue 18)."""
    if isinstance(key, SearchAll):
        return True
    return isinstance(key, SearchAnd) and all(matches_everything(k) for k in key.keys)


@functools.lru_cache(maxsize=1024)
def _folded_flags(flags: tuple[str, ...]) -> frozenset[str]:
    return frozenset(flag.lower() for flag in flags)


@dataclass(slots=True)
class Candidate:
    """One message as the evaluator sees it; ``info`` and ``raw`` are filled
    in when a key needs them. The text caches are made on first use: SORT
    and THREAD ALL make one candidate per message of 100,000, and two empty
    dicts each were a tenth of SORT (DATE)'s time (issue 18)."""

    seq: int
    record: MessageRecord
    recent: bool
    info: MessageInfo | None = None
    raw: bytes | None = None
    _texts: dict[TextScope, str] | None = None
    _headers: dict[str, tuple[str, ...]] | None = None

    @property
    def folded_flags(self) -> frozenset[str]:
        """The flags lower-cased (flag keys compare case-insensitively),
        shared by every message with the same flags: computed here for each
        of 100,000 candidates it was a third of a SORT's time (issue 18)."""
        return _folded_flags(self.record.flags)

    def release(self) -> None:
        """Drop the loaded message data once the candidate is decided."""
        self.info = None
        self.raw = None
        self._texts = None
        self._headers = None

    def text(self, scope: TextScope) -> str | None:
        """Folded (RFC 5051) searchable text for BODY or TEXT, computed once."""
        if self.raw is None or self.info is None:
            return None
        if self._texts is None:
            self._texts = {}
        cached = self._texts.get(scope)
        if cached is None:
            cached = searchable_text(self.raw, self.info, scope)
            self._texts[scope] = cached
        return cached

    def header_texts(self, name: str) -> tuple[str, ...] | None:
        """Folded (RFC 5051) values of header field ``name`` (for FROM, TO,
        CC, BCC also the plain addresses), computed once per field."""
        if self.raw is None or self.info is None:
            return None
        if self._headers is None:
            self._headers = {}
        cached = self._headers.get(name)
        if cached is None:
            cached = folded_header_texts(self.raw, self.info, name)
            self._headers[name] = cached
        return cached


def _compare_date(value: datetime.date, op: DateOp, date: datetime.date) -> bool:
    if op is DateOp.BEFORE:
        return value < date
    if op is DateOp.ON:
        return value == date
    return value >= date


class Evaluator:
    """Evaluates keys for one SEARCH command: ``exists`` and ``largest_uid``
    give ``*`` its meaning in sequence and UID sets, ``saved`` is ``$``."""

    def __init__(self, exists: int, largest_uid: int, saved: frozenset[int] = frozenset()) -> None:
        self.exists = exists
        self.largest_uid = largest_uid
        self.saved = saved
        self._needles: dict[str, str] = {}
        # id(string key) -> (sure, maybe) from the store's index
        # (``index_narrowing``): decides the key without reading the message.
        self._indexed: dict[int, tuple[frozenset[int], frozenset[int]]] = {}

    def needle(self, value: str) -> str:
        """A search string folded (RFC 5051), once per command."""
        folded = self._needles.get(value)
        if folded is None:
            folded = self._needles[value] = fold(value)
        return folded

    def learn(self, key: SearchKey, sure: frozenset[int], maybe: frozenset[int]) -> None:
        """The index's answer for one string key of this command's criteria:
        ``sure`` match, ``maybe`` are undecided, every other message does not
        match (``MailboxWatch.text_matches``)."""
        self._indexed[id(key)] = (sure, maybe)

    def _from_index(self, key: SearchKey, uid: int) -> Truth:
        known = self._indexed.get(id(key))
        if known is None:
            return None
        sure, maybe = known
        if uid in sure:
            return True
        return None if uid in maybe else False

    def evaluate(self, key: SearchKey, message: Candidate) -> Truth:
        """True/False, or None when the key needs data not yet loaded."""
        if isinstance(key, SearchAnd):
            return self._all(key.keys, message)
        if isinstance(key, SearchOr):
            left = self.evaluate(key.left, message)
            if left is True:
                return True
            right = self.evaluate(key.right, message)
            if right is True:
                return True
            return None if left is None or right is None else False
        if isinstance(key, SearchNot):
            inner = self.evaluate(key.key, message)
            return None if inner is None else not inner
        return self._simple(key, message)

    def _all(self, keys: tuple[SearchKey, ...], message: Candidate) -> Truth:
        result: Truth = True
        for key in keys:
            value = self.evaluate(key, message)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    def _simple(self, key: SearchKey, message: Candidate) -> Truth:
        record = message.record
        if isinstance(key, SearchAll):
            return True
        if isinstance(key, SearchFlag):
            if key.flag.lower() == RECENT.lower():
                return message.recent == key.present
            return (key.flag.lower() in message.folded_flags) == key.present
        if isinstance(key, SearchSize):
            return record.size > key.size if key.larger else record.size < key.size
        if isinstance(key, (SearchSeq, SearchUid)) and key.seqset.saved:
            return record.uid in self.saved
        if isinstance(key, SearchSeq):
            return key.seqset.contains(message.seq, self.exists)
        if isinstance(key, SearchUid):
            return key.seqset.contains(record.uid, self.largest_uid)
        if isinstance(key, SearchModSeq):
            return record.modseq >= key.modseq
        if isinstance(key, SearchDate):
            return self._date(key, message)
        if isinstance(key, (SearchHeader, SearchText)):
            known = self._from_index(key, record.uid)
            if known is not None:
                return known
        if isinstance(key, SearchHeader):
            return self._header(key, message)
        if isinstance(key, SearchText):
            text = message.text(key.scope)
            return None if text is None else self.needle(key.value) in text
        raise TypeError(f"unknown search key {key!r}")

    @staticmethod
    def _date(key: SearchDate, message: Candidate) -> Truth:
        if key.field is DateField.INTERNAL:
            return _compare_date(message.record.internal_date.date(), key.op, key.date)
        if message.info is None:
            return None
        sent = message.info.sent_date
        return False if sent is None else _compare_date(sent, key.op, key.date)

    def _header(self, key: SearchHeader, message: Candidate) -> Truth:
        values = message.header_texts(key.field)
        if values is None:
            return None
        needle = self.needle(key.value)
        return any(needle in value for value in values)


# ``MailboxWatch.text_matches``: (scope, folded needle) -> (sure, maybe) or None.
TextLookup = Callable[[str, str], Awaitable["tuple[frozenset[int], frozenset[int]] | None"]]


async def index_narrowing(
    key: SearchKey, evaluator: Evaluator, lookup: TextLookup
) -> frozenset[int] | None:
    """UIDs outside which ``key`` cannot match, from the store's full-text
    index, or None when the index cannot narrow it. A string key can only
    match its candidates; AND matches only where each narrowed part can, OR
    only where either side can (so both must be narrowed); NOT and every
    other key do not narrow. The result is a superset of the matches: the
    evaluator still decides each message, so the answer is the same as
    without an index (RFC 3501 §6.4.4); what the index decided exactly
    (``Evaluator.learn``) it takes from there instead of the bytes."""
    if isinstance(key, (SearchText, SearchHeader)):
        scope = key.scope.value if isinstance(key, SearchText) else "HEADER"
        answer = await lookup(scope, evaluator.needle(key.value))
        if answer is None:
            return None
        evaluator.learn(key, *answer)  # sure matches need no reading
        return answer[0] | answer[1]
    if isinstance(key, SearchAnd):
        found: frozenset[int] | None = None
        for sub in key.keys:
            part = await index_narrowing(sub, evaluator, lookup)
            if part is not None:
                found = part if found is None else found & part
        return found
    if isinstance(key, SearchOr):
        left = await index_narrowing(key.left, evaluator, lookup)
        if left is None:
            return None
        right = await index_narrowing(key.right, evaluator, lookup)
        return None if right is None else left | right
    return None


def subkeys(key: SearchKey) -> tuple[SearchKey, ...]:
    """The keys directly inside AND / OR / NOT (none for the others)."""
    if isinstance(key, SearchAnd):
        return key.keys
    if isinstance(key, SearchOr):
        return (key.left, key.right)
    if isinstance(key, SearchNot):
        return (key.key,)
    return ()


def uses_saved_result(key: SearchKey) -> bool:
    """Does a sequence or UID set anywhere in the key use ``$`` (RFC 5182)?"""
    if isinstance(key, (SearchSeq, SearchUid)) and key.seqset.saved:
        return True
    return any(uses_saved_result(k) for k in subkeys(key))


def uses_modseq(key: SearchKey) -> bool:
    """Does the key use MODSEQ anywhere (RFC 7162 §3.1.5: then the result
    carries the highest MODSEQ, and the command enables CONDSTORE)?"""
    if isinstance(key, SearchModSeq):
        return True
    return any(uses_modseq(k) for k in subkeys(key))
