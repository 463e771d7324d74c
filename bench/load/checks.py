"""What a correct answer looks like: checks the load generator applies to
every reply, so wrong answers count as errors (issue 8).

A client knows its own mailbox (``MailboxModel``: UID -> corpus message and
flags), so most answers are checked exactly: BODY[] bytes, RFC822.SIZE,
ENVELOPE subject and message-id, the BODYSTRUCTURE's top-level type, flags
after STORE, and SEARCH results (flags and headers are known).
"""

from __future__ import annotations

import bisect
import datetime
import functools
from dataclasses import dataclass, field

from bench import corpus
from bench.load.client import Reply
from bench.load.wire import Malformed, Response, Value, fetch_items

IGNORED_FLAGS = frozenset({"\\recent"})
SYSTEM_FLAGS = ("\\Seen", "\\Flagged", "\\Answered")


class CheckFailed(Exception):
    """A reply was well-formed but wrong (or NO/BAD where OK was due). The
    client's model of its mailbox may be off: it resynchronizes."""


class WrongData(CheckFailed):
    """Message data (ENVELOPE, BODYSTRUCTURE, BODY[], SIZE) differs from the
    corpus; the mailbox model is unaffected, so the client carries on."""


def require_ok(reply: Reply, what: str, bye: bool = False) -> Reply:
    """OK, and no untagged BAD (nor BYE unless ``bye``: LOGOUT)."""
    if reply.status != b"OK":
        raise CheckFailed(f"{what}: {reply.status.decode()} {reply.text[:100]!r}")
    for response in reply.untagged:
        if response.name == b"BAD":
            raise CheckFailed(f"{what}: untagged BAD {response.text[:100]!r}")
        if response.name == b"BYE" and not bye:
            raise CheckFailed(f"{what}: unexpected BYE {response.text[:100]!r}")
    return reply


def capabilities_in(reply: Reply) -> bool:
    """Whether a reply carried the capability list (untagged or as a code)."""
    return bool(reply.of(b"CAPABILITY")) or bool(reply.code and reply.code.upper().startswith(b"CAPABILITY "))


@dataclass(frozen=True, slots=True)
class CorpusInfo:
    """What a client knows about corpus message ``index``."""

    index: int
    data: bytes
    kind: str
    subject: bytes
    sender: bytes        # the addr-spec in From
    message_id: bytes
    sent: datetime.date
    rare: bool


@functools.lru_cache(maxsize=4096)
def corpus_info(index: int) -> CorpusInfo:
    item = corpus.message(index)
    header = item.data[: item.data.index(b"\r\n\r\n")]
    fields: dict[bytes, bytes] = {}
    for line in header.split(b"\r\n"):
        name, _, value = line.partition(b": ")
        fields.setdefault(name.lower(), value)
    sender = fields[b"from"].rsplit(b"<", 1)[1].rstrip(b">")
    sent = datetime.datetime.strptime(fields[b"date"].decode(), "%a, %d %b %Y %H:%M:%S %z").date()
    return CorpusInfo(
        index, item.data, item.kind, fields[b"subject"], sender, fields[b"message-id"], sent,
        corpus.RARE_WORD.encode() in item.data,
    )


@dataclass(slots=True)
class Message:
    index: int
    flags: set[str] = field(default_factory=set)


@dataclass(slots=True)
class MailboxModel:
    """A client's knowledge of its own mailbox: UIDs ascending (so the
    sequence number of ``uids[i]`` is ``i + 1``) and each message."""

    uidvalidity: int = 0
    uids: list[int] = field(default_factory=list)
    messages: dict[int, Message] = field(default_factory=dict)

    def add(self, uid: int, index: int, flags: set[str]) -> None:
        if uid in self.messages:
            raise CheckFailed(f"UID {uid} reported twice")
        if self.uids and uid < self.uids[-1]:
            raise CheckFailed(f"new UID {uid} below the highest UID {self.uids[-1]}")
        self.uids.append(uid)
        self.messages[uid] = Message(index, flags)

    def seq_of(self, uid: int) -> int:
        i = bisect.bisect_left(self.uids, uid)
        if i == len(self.uids) or self.uids[i] != uid:
            raise KeyError(uid)
        return i + 1

    def remove_seq(self, seq: int) -> int:
        uid = self.uids.pop(seq - 1)
        del self.messages[uid]
        return uid

    def with_flag(self, flag: str) -> set[int]:
        return {uid for uid, m in self.messages.items() if flag in m.flags}

    def without_flag(self, flag: str) -> set[int]:
        return {uid for uid, m in self.messages.items() if flag not in m.flags}


def flag_set(value: Value) -> set[str]:
    """FLAGS value -> set of flags (case-preserving, \\Recent dropped)."""
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise Malformed(f"FLAGS is not a list of atoms: {value!r}")
    flags = {v.decode("ascii", "replace") for v in value if isinstance(v, bytes)}
    return {f for f in flags if f.lower() not in IGNORED_FLAGS}


def same_flags(got: set[str], want: set[str]) -> bool:
    # System flags are case-insensitive (RFC 3501 §2.3.2).
    return {f.lower() for f in got} == {f.lower() for f in want}


def number(value: Value, what: str) -> int:
    if not isinstance(value, bytes) or not value.isdigit():
        raise Malformed(f"{what} is not a number: {value!r}")
    return int(value)


def fetches(reply: Reply) -> list[tuple[int, dict[bytes, Value]]]:
    """(sequence number, items) of every FETCH response in a reply."""
    out: list[tuple[int, dict[bytes, Value]]] = []
    for response in reply.untagged:
        if response.name == b"FETCH":
            assert response.number is not None
            out.append((response.number, fetch_items(response)))
    return out


def check_envelope(value: Value, info: CorpusInfo) -> None:
    """ENVELOPE (RFC 3501 §7.4.2): 10 fields; subject and message-id are
    the raw header values."""
    if not isinstance(value, list) or len(value) != 10:
        raise Malformed(f"ENVELOPE is not a 10-element list: {value!r:.100}")
    if value[1] != info.subject:
        raise WrongData(f"ENVELOPE subject {value[1]!r:.80} != {info.subject!r:.80}")
    if value[9] != info.message_id:
        raise WrongData(f"ENVELOPE message-id {value[9]!r} != {info.message_id!r}")
    for position in (2, 3, 4, 5):  # from, sender, reply-to, to: address lists
        addresses = value[position]
        if not isinstance(addresses, list) or not all(isinstance(a, list) and len(a) == 4 for a in addresses):
            raise Malformed(f"ENVELOPE address list {position} malformed: {addresses!r:.100}")


_TOP_TYPES = {
    "plain": (b"TEXT", b"PLAIN"), "nonascii": (b"TEXT", b"PLAIN"),
    "alternative": (b"MULTIPART", b"ALTERNATIVE"), "attachment": (b"MULTIPART", b"MIXED"),
    "large": (b"MULTIPART", b"MIXED"),
}


def check_bodystructure(value: Value, info: CorpusInfo) -> None:
    """BODYSTRUCTURE (RFC 3501 §7.4.2): the top-level type matches the
    message; multiparts have two body parts."""
    if not isinstance(value, list) or not value:
        raise Malformed(f"BODYSTRUCTURE is not a list: {value!r:.100}")
    want = _TOP_TYPES[info.kind]
    if isinstance(value[0], list):
        # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        count = next((i for i, v in enumerate(value) if not isinstance(v, list)), len(value))
        parts = value[:count]
        subtype = value[count] if count < len(value) else None
        got = (b"MULTIPART", subtype.upper() if isinstance(subtype, bytes) else b"?")
        if len(parts) < 2 or not all(isinstance(p, list) and (isinstance(p[0], list) or len(p) >= 7) for p in parts):
            raise WrongData(f"BODYSTRUCTURE parts malformed: {value!r:.120}")
    else:
        if len(value) < 7:
            raise Malformed(f"single-part BODYSTRUCTURE too short: {value!r:.100}")
        first, second = value[0], value[1]
        got = (first.upper() if isinstance(first, bytes) else b"?", second.upper() if isinstance(second, bytes) else b"?")
    if got != want:
        raise WrongData(f"BODYSTRUCTURE type {got!r} != {want!r} (message {info.index})")


def check_body(value: Value, info: CorpusInfo) -> None:
    if value != info.data:
        got = len(value) if isinstance(value, bytes) else value
        raise WrongData(f"BODY[] of message {info.index} differs ({got!r} vs {len(info.data)} bytes)")


def search_uids(reply: Reply) -> set[int]:
    """The numbers of the (single) ``* SEARCH`` response."""
    responses = reply.of(b"SEARCH")
    if len(responses) != 1:
        raise CheckFailed(f"{len(responses)} SEARCH responses")
    result: set[int] = set()
    for value in responses[0].values:
        if isinstance(value, list):  # (MODSEQ n) of RFC 7162 §3.1.5
            continue
        result.add(number(value, "SEARCH result"))
    return result


def expect_search(reply: Reply, want: set[int], what: str) -> None:
    got = search_uids(require_ok(reply, what))
    if got != want:
        missing, extra = sorted(want - got)[:5], sorted(got - want)[:5]
        raise CheckFailed(f"{what}: {len(got)} results, want {len(want)} (missing {missing}, extra {extra})")

