"""Hypothesis strategies that generate valid commands in the parser's normal
form (what ``parse_command`` returns), for ``parse(encode(c)) == c``."""

from __future__ import annotations

import base64
import datetime
from typing import Callable, TypeVar

from hypothesis import strategies as st

from imapd.core.model import SYSTEM_FLAGS, RECENT, SeqRange, Secret, SequenceSet, canonical_flag
from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import ATOM_CHARS, TAG_CHARS, normalize_mailbox
from imapd.imap.wire.parse import STATUS_ITEMS
from imapd.imap.wire.parse.mailbox_ext import SPECIAL_USE_ATTRIBUTES, canonical_special_use
from imapd.imap.wire.parse.search import HEADER_SHORTHANDS

T = TypeVar("T")
MAX32 = 2**32 - 1

tags = st.text(TAG_CHARS.decode("ascii"), min_size=1, max_size=8)
atoms = st.text(ATOM_CHARS.decode("ascii"), min_size=1, max_size=10)
# Any text a person could name a mailbox: every plane, no lone surrogates.
any_text = st.text(st.characters(codec="utf-8"), max_size=16)
# Strings sent as astrings cannot carry NUL (RFC 3501 §4.3: not even in literals).
nul_free_text = st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=16)
mailboxes = any_text.map(normalize_mailbox) | st.sampled_from(["INBOX", "inbox", "Sent", "a/b"]).map(normalize_mailbox)
header_names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=":"), min_size=1, max_size=12,
).map(str.upper)

keywords = atoms.filter(lambda a: not a.startswith("\\"))
flags = st.sampled_from(SYSTEM_FLAGS + (RECENT,)) | keywords | atoms.map(lambda a: canonical_flag("\\" + a))
flag_tuples = st.lists(flags, max_size=4).map(tuple)

seq_numbers = st.none() | st.integers(1, MAX32)
seq_ranges = st.builds(SeqRange, seq_numbers, seq_numbers)
seqsets = st.lists(seq_ranges, min_size=1, max_size=4).map(lambda r: SequenceSet(tuple(r))) | st.just(
    SequenceSet((), saved=True)
)

dates = st.dates(min_value=datetime.date(1, 1, 1), max_value=datetime.date(9999, 12, 31))
zones = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))
date_times = st.builds(
    lambda d, h, mi, s, z: datetime.datetime(d.year, d.month, d.day, h, mi, s, tzinfo=z),
    st.dates(min_value=datetime.date(1, 1, 2), max_value=datetime.date(9999, 12, 30)),
    st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), zones,
)


def _tagged(builder: Callable[..., T], *args: st.SearchStrategy[object]) -> st.SearchStrategy[T]:
    return st.builds(builder, tags, *args)


# --- SEARCH ---------------------------------------------------------------------

search_leaves: st.SearchStrategy[c.SearchKey] = st.one_of(
    st.just(c.SearchAll()),
    st.builds(c.SearchFlag, st.sampled_from(SYSTEM_FLAGS + (RECENT,)), st.booleans()),
    st.builds(c.SearchFlag, keywords, st.booleans()),
    st.builds(c.SearchDate, st.sampled_from(c.DateField), st.sampled_from(c.DateOp), dates),
    st.builds(c.SearchHeader, st.sampled_from(sorted(HEADER_SHORTHANDS)) | header_names, nul_free_text),
    st.builds(c.SearchText, st.sampled_from(c.TextScope), nul_free_text),
    st.builds(c.SearchSize, st.booleans(), st.integers(0, 2**63 - 1)),
    st.builds(c.SearchSeq, seqsets),
    st.builds(c.SearchUid, seqsets),
    st.builds(c.SearchModSeq, st.integers(0, 2**63 - 1)),
    st.builds(
        c.SearchModSeq, st.integers(0, 2**63 - 1),
        st.sampled_from(["/flags/\\Seen", "/flags/$MDNSent", "/flags/\\answered"]),
        st.sampled_from(["priv", "shared", "all"]),
    ),
)


def _extend_search(children: st.SearchStrategy[c.SearchKey]) -> st.SearchStrategy[c.SearchKey]:
    return st.one_of(
        st.builds(c.SearchNot, children),
        st.builds(c.SearchOr, children, children),
        st.lists(children, min_size=1, max_size=3).map(lambda keys: c.SearchAnd(tuple(keys))),
    )


search_keys = st.recursive(search_leaves, _extend_search, max_leaves=8)
charsets = st.none() | st.sampled_from(["UTF-8", "US-ASCII", "ISO-8859-1", "KOI8-R", "X-UNKNOWN"])
# RFC 4731 / RFC 5182 result options: None (plain SEARCH) or distinct options.
return_options = st.none() | st.lists(
    st.sampled_from(c.SEARCH_RETURN_OPTIONS), unique=True, max_size=5
).map(tuple)
searches = _tagged(
    c.Search, st.booleans(), charsets,
    st.lists(search_keys, min_size=1, max_size=4).map(lambda keys: c.SearchAnd(tuple(keys))),
    return_options,
)
# RFC 5267: UPDATE, CONTEXT and ``PARTIAL low:high`` among the options.
context_searches = st.builds(
    lambda tag, uid, keys, options, low, span: c.Search(
        tag, uid, None, c.SearchAnd(tuple(keys)), tuple(options) + (c.PARTIAL,), (low, low + span)),
    tags, st.booleans(), st.lists(search_keys, min_size=1, max_size=2),
    st.lists(st.sampled_from(c.SEARCH_RETURN_OPTIONS + c.CONTEXT_RETURN_OPTIONS), unique=True, max_size=3),
    st.integers(1, 2**32 - 2), st.integers(0, 5),
)
# RFC 5256 THREAD: an algorithm and the charset THREAD requires.
threads = _tagged(
    c.Thread, st.booleans(), st.sampled_from(c.ThreadAlgorithm),
    st.sampled_from(["UTF-8", "US-ASCII", "ISO-8859-1"]),
    st.lists(search_keys, min_size=1, max_size=3).map(lambda keys: c.SearchAnd(tuple(keys))),
)
# RFC 5256 / RFC 5957 SORT: distinct keys, each maybe reversed, and the
# charset SORT requires.
sorts = _tagged(
    c.Sort, st.booleans(),
    st.lists(st.sampled_from(c.SortKey), min_size=1, max_size=4, unique=True).flatmap(
        lambda keys: st.tuples(*(st.builds(c.SortCriterion, st.just(k), st.booleans()) for k in keys))),
    st.sampled_from(["UTF-8", "US-ASCII", "ISO-8859-1"]),
    st.lists(search_keys, min_size=1, max_size=3).map(lambda keys: c.SearchAnd(tuple(keys))),
)
# ESORT (RFC 5267 §3.2): SORT RETURN (...) with PARTIAL low:high among the options.
esorts = st.builds(
    lambda sort, options, low, span: c.Sort(
        sort.tag, sort.uid, sort.program, sort.charset, sort.criteria,
        tuple(options) + (c.PARTIAL,), (low, low + span)),
    sorts, st.lists(st.sampled_from(("MIN", "MAX", "COUNT", "ALL")), unique=True, max_size=4),
    st.integers(1, 2**32 - 2), st.integers(0, 5),
)

# --- FETCH ----------------------------------------------------------------------

_SECTIONED = (c.FetchKind.BODY_SECTION, c.FetchKind.BINARY_SECTION, c.FetchKind.BINARY_SIZE)
simple_fetch = st.sampled_from([k for k in c.FetchKind if k not in _SECTIONED]).map(c.FetchAttribute)
parts = st.lists(st.integers(1, MAX32), max_size=3).map(tuple)


@st.composite
def sections(draw: st.DrawFn) -> c.Section:
    part = draw(parts)
    texts = [None, *c.SectionText] if part else [None, *(t for t in c.SectionText if t is not c.SectionText.MIME)]
    text = draw(st.sampled_from(texts))
    fields: tuple[str, ...] = ()
    if text in (c.SectionText.HEADER_FIELDS, c.SectionText.HEADER_FIELDS_NOT):
        fields = tuple(draw(st.lists(header_names, min_size=1, max_size=3)))
    return c.Section(part, text, fields)


partials = st.none() | st.builds(c.Partial, st.integers(0, MAX32), st.integers(1, MAX32))
section_fetch = st.builds(
    lambda s, peek, partial: c.FetchAttribute(c.FetchKind.BODY_SECTION, s, peek, partial),
    sections(), st.booleans(), partials,
)
# RFC 3516: BINARY[.PEEK][part]<partial> and BINARY.SIZE[part].
binary_fetch = st.builds(
    lambda part, peek, partial, size: (
        c.FetchAttribute(c.FetchKind.BINARY_SIZE, c.Section(part)) if size
        else c.FetchAttribute(c.FetchKind.BINARY_SECTION, c.Section(part), peek, partial)),
    parts, st.booleans(), partials, st.booleans(),
)
modseqs = st.integers(1, 2**63 - 1)


@st.composite
def _fetch_commands(draw: st.DrawFn) -> c.Fetch:
    """FETCH with optional RFC 7162 modifiers (VANISHED: UID FETCH with
    CHANGEDSINCE only)."""
    uid = draw(st.booleans())
    changedsince = draw(st.none() | st.integers(0, 2**63 - 1))
    vanished = uid and changedsince is not None and draw(st.booleans())
    attributes = tuple(draw(st.lists(simple_fetch | section_fetch | binary_fetch, min_size=1, max_size=4)))
    return c.Fetch(draw(tags), uid, draw(seqsets), attributes, changedsince, vanished)


fetches = _fetch_commands()
plain_seqsets = st.lists(
    st.builds(SeqRange, st.integers(1, MAX32), st.integers(1, MAX32)), min_size=1, max_size=4,
).map(lambda r: SequenceSet(tuple(r)))
qresyncs = st.builds(
    c.QResync, st.integers(1, MAX32), modseqs, st.none() | plain_seqsets,
    st.none() | st.tuples(plain_seqsets, plain_seqsets),
)

# --- LIST-EXTENDED, CREATE-SPECIAL-USE, MULTIAPPEND (RFC 5258, 6154, 3502) ----------

@st.composite
def _extended_lists(draw: st.DrawFn) -> c.List:
    selection = draw(st.none() | st.lists(
        st.sampled_from(c.LIST_SELECTION_OPTIONS), unique=True, max_size=4,
    ).filter(lambda s: "RECURSIVEMATCH" not in s or "SUBSCRIBED" in s).map(tuple))
    patterns = draw(st.none() | st.lists(any_text, min_size=1, max_size=3).map(tuple))
    pattern = patterns[0] if patterns is not None else draw(any_text)
    options = draw(st.none() | st.lists(st.sampled_from(c.LIST_RETURN_OPTIONS), unique=True).map(tuple))
    status: tuple[str, ...] = ()
    if options is not None and "STATUS" in options:
        status = draw(st.lists(st.sampled_from(sorted(STATUS_ITEMS)), min_size=1, max_size=4, unique=True).map(tuple))
    return c.List(draw(tags), draw(any_text), pattern, selection, patterns, options, status)


extended_lists = _extended_lists()
use_attributes = st.sampled_from(SPECIAL_USE_ATTRIBUTES) | atoms.map(lambda a: canonical_special_use("\\" + a))
creates = _tagged(c.Create, mailboxes, st.none() | st.lists(use_attributes, max_size=3).map(
    lambda uses: tuple(dict.fromkeys(uses))))
append_messages = st.builds(c.AppendMessage, flag_tuples, st.none() | date_times, st.binary(max_size=100))
multiappends = _tagged(
    c.Append, mailboxes, flag_tuples, st.none() | date_times, st.binary(max_size=100),
    st.lists(append_messages, max_size=3).map(tuple),
)

# --- everything else --------------------------------------------------------------

base64_responses = st.just(b"=") | st.binary(min_size=1, max_size=30).map(base64.b64encode)
commands: st.SearchStrategy[c.Command] = st.one_of(
    _tagged(c.Capability), _tagged(c.Noop), _tagged(c.Logout), _tagged(c.StartTLS),
    _tagged(c.Check), _tagged(c.Close), _tagged(c.Expunge),
    _tagged(
        c.Authenticate, st.from_regex(r"[A-Z0-9_-]{1,12}", fullmatch=True), st.none() | base64_responses,
    ),
    _tagged(c.Login, nul_free_text, st.binary(max_size=20).map(lambda b: Secret(b.replace(b"\x00", b"")))),
    _tagged(c.Select, mailboxes, st.booleans(), st.none() | qresyncs),
    _tagged(c.Examine, mailboxes, st.booleans(), st.none() | qresyncs),
    _tagged(c.Create, mailboxes), creates,
    _tagged(c.Delete, mailboxes), _tagged(c.Subscribe, mailboxes), _tagged(c.Unsubscribe, mailboxes),
    _tagged(c.Rename, mailboxes, mailboxes),
    _tagged(c.List, any_text, any_text), _tagged(c.Lsub, any_text, any_text), extended_lists,
    _tagged(c.Status, mailboxes, st.lists(st.sampled_from(sorted(STATUS_ITEMS)), min_size=1, max_size=5).map(tuple)),
    _tagged(c.Append, mailboxes, flag_tuples, st.none() | date_times, st.binary(max_size=200)), multiappends,
    searches, context_searches,
    _tagged(c.CancelUpdate, st.lists(tags, min_size=1, max_size=3).map(tuple)),  # RFC 5267
    threads,
    sorts, esorts,
    fetches,
    _tagged(
        c.Store, st.booleans(), seqsets, st.sampled_from(c.StoreMode), st.booleans(), flag_tuples,
        st.none() | st.integers(0, 2**63 - 1),
    ),
    _tagged(c.Copy, st.booleans(), seqsets, mailboxes),
    _tagged(c.Move, st.booleans(), seqsets, mailboxes),
    _tagged(c.UidExpunge, seqsets),
    # Session extensions (RFC 2177, 5161, 2342, 2971, 3691, 4978).
    _tagged(c.Idle), _tagged(c.Namespace), _tagged(c.Unselect),
    _tagged(c.Enable, st.lists(atoms.map(str.upper), min_size=1, max_size=4).map(tuple)),
    _tagged(c.Id, st.none() | st.lists(
        st.tuples(nul_free_text, st.none() | nul_free_text), max_size=4).map(tuple)),
    _tagged(c.Compress, atoms.map(str.upper)),
    # QUOTA (RFC 9208).
    _tagged(c.GetQuota, nul_free_text), _tagged(c.GetQuotaRoot, mailboxes),
    _tagged(c.SetQuota, nul_free_text, st.lists(
        st.tuples(atoms.map(str.upper), st.integers(0, 2**63 - 1)), max_size=4).map(tuple)),
)
