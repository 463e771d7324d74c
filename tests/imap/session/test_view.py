"""SelectedView tables: events in, untagged responses out; no store, no sockets.

Each case starts a view on a fixed snapshot over a ``FakeWatch``, hands it
events the way ``MailboxWatch.catch_up`` would, and checks what each
``drain`` returns (RFC 3501 §5.2, §7.3, §7.4; RFC 7162 §3.1, §3.2.10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import pytest

from imapd.core.errors import ErrorKind, ImapError
from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MailboxRenamed, MessagesAdded, MessagesExpunged,
)
from imapd.mail.records import FlagState, MailboxSnapshot
from imapd.core.model import SeqRange, SequenceSet
from imapd.imap.session.view import SelectedView, uid_set_text
from imapd.imap.wire.responses import Exists, Expunge, FetchResponse, Generic, Recent, Response
from imapd.imap.wire.values import Atom, PList
from tests.support.context import result_of


class FakeWatch:
    """What ``SelectedView`` uses of a ``MailboxWatch``: ``queue`` events
    (and ring), ``catch_up`` hands them over as one batch."""

    def __init__(self, name: str, readonly: bool, snapshot: MailboxSnapshot) -> None:
        self.name = name
        self.readonly = readonly
        self.snapshot = snapshot
        self.uidvalidity = snapshot.uidvalidity
        self.highestmodseq = snapshot.highestmodseq
        self.deleted = self.closed = self.rang = False
        self.on_ring: Callable[[], None] | None = None
        self._queued: list[ChangeEvent] = []

    def queue(self, events: Sequence[ChangeEvent]) -> None:
        if self.closed:
            return
        self._queued.extend(events)
        self.rang = True
        if self.on_ring is not None:
            self.on_ring()

    async def catch_up(self) -> list[ChangeEvent]:
        events, self._queued, self.rang = self._queued, [], False
        for event in events:
            if isinstance(event, MailboxRenamed):
                self.name = event.new_name
            elif isinstance(event, MailboxDeleted):
                self.deleted = True
        return events

    def close(self) -> None:
        self.closed = True
        self.on_ring = None


def make_view(uids: list[int], recent: set[int] | None = None, readonly: bool = False) -> SelectedView:
    snapshot = MailboxSnapshot(
        uidvalidity=7, uidnext=(max(uids) + 1 if uids else 1), highestmodseq=100,
        uids=tuple(uids), recent=frozenset(recent or ()), keywords=(), first_unseen=None,
    )
    return SelectedView(FakeWatch("INBOX", readonly, snapshot))  # type: ignore[arg-type]


def deliver(view: SelectedView, events: Sequence[ChangeEvent]) -> None:
    """The doorbell rings and the view catches up with ``events``."""
    view.watch.queue(events)  # type: ignore[attr-defined]
    result_of(view.catch_up())


def flags(*names: str) -> PList:
    return PList(tuple(Atom(n) for n in names))


def fetch(seq: int, *items: tuple[str, object]) -> FetchResponse:
    return FetchResponse(seq, tuple(items))  # type: ignore[arg-type]


def changed(uid: int, *names: str, modseq: int = 101) -> FlagsChanged:
    return FlagsChanged((FlagState(uid, names, modseq),))


def seqset(text: str) -> SequenceSet:
    ranges = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        start = None if low == "*" else int(low)
        end = start if not high else (None if high == "*" else int(high))
        ranges.append(SeqRange(start, end))
    return SequenceSet(tuple(ranges))


@dataclass
class Case:
    name: str
    uids: list[int]
    events: list[ChangeEvent]
    drains: list[tuple[bool, list[Response]]]
    recent: set[int] = field(default_factory=set)
    uid_mode: bool = False
    condstore: bool = False
    qresync: bool = False
    final_uids: list[int] | None = None
    # States the client was shown by its own STORE before the catch-up.
    reported: list[FlagState] = field(default_factory=list)


CASES = [
    Case("new messages: EXISTS then RECENT",
         [1, 2], [MessagesAdded((5, 6), frozenset({6}))],
         [(True, [Exists(4), Recent(1)]), (True, [])], final_uids=[1, 2, 5, 6]),
    Case("new messages during FETCH are still announced",
         [1], [MessagesAdded((2,), frozenset())], [(False, [Exists(2), Recent(0)])]),
    Case("expunge held back while not allowed, then sent",
         [10, 20, 30], [MessagesExpunged((20,), 101)],
         [(False, []), (False, []), (True, [Expunge(2)]), (True, [])], final_uids=[10, 30]),
    Case("several expunges, highest sequence number first",
         [1, 2, 3, 4, 5], [MessagesExpunged((2, 4), 101)],
         [(True, [Expunge(4), Expunge(2)])], final_uids=[1, 3, 5]),
    Case("expunges from several batches are merged",
         [1, 2, 3], [MessagesExpunged((1,), 101), MessagesExpunged((3,), 102)],
         [(True, [Expunge(3), Expunge(1)])], final_uids=[2]),
    Case("flag change by another session",
         [1, 2, 3], [changed(2, "\\Seen")],
         [(False, [fetch(2, ("FLAGS", flags("\\Seen")))]), (False, [])]),
    Case("recent message shows \\Recent in FLAGS",
         [1, 2], [changed(2, "\\Seen")],
         [(True, [fetch(2, ("FLAGS", flags("\\Seen", "\\Recent")))])], recent={2}),
    Case("uid mode adds UID",
         [4, 9], [changed(9, "k")], [(True, [fetch(2, ("FLAGS", flags("k")), ("UID", 9))])],
         uid_mode=True),
    Case("condstore adds UID and MODSEQ",
         [4, 9], [changed(4, modseq=150)],
         [(True, [fetch(1, ("FLAGS", flags()), ("UID", 4), ("MODSEQ", PList((150,))))])],
         condstore=True),
    Case("several changes to one message: one FETCH with the latest flags",
         [1], [changed(1, "a", modseq=101), changed(1, "a", "b", modseq=102)],
         [(True, [fetch(1, ("FLAGS", flags("a", "b")))])]),
    Case("own change is not reported again",
         [1, 2], [changed(1, "\\Seen", modseq=101)], [(True, [])],
         reported=[FlagState(1, ("\\Seen",), 101)]),
    Case("own change refreshes a pending change from others",
         [1, 2], [changed(1, "\\Flagged", modseq=101),
                  changed(1, "\\Flagged", "\\Seen", modseq=102)],
         [(True, [fetch(1, ("FLAGS", flags("\\Flagged", "\\Seen")))])],
         reported=[FlagState(1, ("\\Flagged", "\\Seen"), 102)]),
    Case("a later change to an own-stored message is news",
         [1, 2], [changed(1, "\\Seen", "x", modseq=102)],
         [(True, [fetch(1, ("FLAGS", flags("\\Seen", "x")))])],
         reported=[FlagState(1, ("\\Seen",), 101)]),
    Case("flag change then expunge: only the expunge",
         [1, 2], [changed(1, "\\Deleted"), MessagesExpunged((1,), 102)],
         [(False, []), (True, [Expunge(1)])]),
    Case("flag change of a held-back expunged message is dropped",
         [1, 2, 3], [MessagesExpunged((2,), 101), changed(2, "x"), changed(3, "y")],
         [(False, [fetch(3, ("FLAGS", flags("y")))]), (True, [Expunge(2)])], final_uids=[1, 3]),
    Case("added and expunged before any drain: never mentioned",
         [1], [MessagesAdded((2, 3), frozenset({2})), MessagesExpunged((2,), 102)],
         [(True, [Exists(2), Recent(0)])], final_uids=[1, 3]),
    Case("held-back expunge keeps its number; EXISTS counts it",
         [1, 2], [MessagesExpunged((1,), 101), MessagesAdded((3,), frozenset({3}))],
         [(False, [Exists(3), Recent(1)]), (True, [Expunge(1)])], final_uids=[2, 3]),
    Case("QRESYNC sends VANISHED instead of EXPUNGE",
         [1, 2, 3, 4, 5, 6], [MessagesExpunged((2, 3, 4, 6), 101)],
         [(False, []), (True, [Generic("VANISHED", (Atom("2:4,6"),))])],
         qresync=True, final_uids=[1, 5]),
    Case("mailbox deleted: every message expunged",
         [1, 2, 3], [MessagesAdded((4,), frozenset()), MailboxDeleted()],
         [(False, []), (True, [Expunge(3), Expunge(2), Expunge(1)])], final_uids=[]),
    Case("mailbox renamed: nothing to tell",
         [1], [MailboxRenamed("Other")], [(True, [])]),
    Case("expunge of a message the view never had is ignored",
         [1], [MessagesExpunged((99,), 101)], [(True, [])]),
    Case("many expunges (array rebuilt)",
         list(range(1, 101)), [MessagesExpunged(tuple(range(2, 101, 2)), 101)],
         [(True, [Expunge(s) for s in range(100, 1, -2)])], final_uids=list(range(1, 101, 2))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_view_table(case: Case) -> None:
    view = make_view(case.uids, case.recent)
    view.uid_mode, view.condstore, view.qresync = case.uid_mode, case.condstore, case.qresync
    view.reported(case.reported)
    deliver(view, case.events)
    for allow_expunge, expected in case.drains:
        assert view.drain(allow_expunge) == expected
    if case.final_uids is not None:
        assert list(view.uids) == case.final_uids
        assert view.exists == len(case.final_uids)


def test_recent_count_follows_expunges_and_additions() -> None:
    view = make_view([1, 2, 3], recent={2, 3})
    assert view.recent_count == 2
    deliver(view, [MessagesExpunged((3,), 101), MessagesAdded((4, 5), frozenset({5}))])
    assert view.drain(True) == [Expunge(3), Exists(4), Recent(2)]
    assert [view.is_recent(u) for u in (1, 2, 4, 5)] == [False, True, False, True]


def test_include_uid_argument_overrides_uid_mode() -> None:
    view = make_view([3])
    deliver(view, [changed(3, "a")])
    assert view.drain(True, include_uid=True) == [fetch(1, ("FLAGS", flags("a")), ("UID", 3))]


def test_on_change_is_the_doorbell_and_nothing_arrives_before_catch_up() -> None:
    """A ring only calls ``on_change`` (IDLE schedules its own catch-up);
    the changes reach the view when it catches up, never by themselves."""
    view = make_view([1, 2])
    calls: list[int] = []
    view.on_change = lambda: calls.append(1)
    view.watch.queue([changed(1, "x")])  # type: ignore[attr-defined]
    assert calls == [1]
    assert view.drain(True) == []  # not caught up: nothing to tell
    result_of(view.catch_up())
    assert view.drain(True) == [fetch(1, ("FLAGS", flags("x")))]


def test_close_detaches_from_the_watch() -> None:
    view = make_view([1])
    calls: list[int] = []
    view.on_change = lambda: calls.append(1)
    view.close()
    assert view.watch.closed
    deliver(view, [MessagesAdded((2,), frozenset())])
    assert calls == [] and view.drain(True) == []


def test_first_unseen_and_names() -> None:
    snapshot = MailboxSnapshot(5, 40, 9, (10, 20, 30), frozenset(), ("k",), 20)
    view = SelectedView(FakeWatch("Box", True, snapshot))  # type: ignore[arg-type]
    assert (view.first_unseen_seq, view.name, view.readonly, view.uidvalidity) == (2, "Box", True, 5)
    deliver(view, [MailboxRenamed("Box2")])
    assert view.name == "Box2"


# --- resolving client numbers --------------------------------------------------

UIDS = [10, 20, 30, 40, 50]


@pytest.mark.parametrize(("text", "uid", "expected"), [
    ("2:4", False, [(2, 20), (3, 30), (4, 40)]),
    ("*", False, [(5, 50)]),
    ("4:*", False, [(4, 40), (5, 50)]),
    ("*:4", False, [(4, 40), (5, 50)]),
    ("3,1,3,2:1", False, [(1, 10), (2, 20), (3, 30)]),
    ("20:40", True, [(2, 20), (3, 30), (4, 40)]),
    ("25:35", True, [(3, 30)]),
    ("60:*", True, [(5, 50)]),  # RFC 3501 §6.4.8: n:* always includes the last UID
    ("*", True, [(5, 50)]),
    ("1:15", True, [(1, 10)]),
    ("100", True, []),
    ("50,10,1:20", True, [(1, 10), (2, 20), (5, 50)]),
])
def test_resolve(text: str, uid: bool, expected: list[tuple[int, int]]) -> None:
    view = make_view(UIDS)
    assert view.resolve(seqset(text), uid) == expected
    assert view.uid_mode is uid


@pytest.mark.parametrize("text", ["6", "0", "1:6", "7:*"])
def test_resolve_out_of_range_sequence_numbers_is_bad(text: str) -> None:
    with pytest.raises(ImapError) as info:
        make_view(UIDS).resolve(seqset(text), uid=False)
    assert info.value.kind is ErrorKind.BAD


def test_resolve_in_an_empty_mailbox() -> None:
    view = make_view([])
    assert view.resolve(seqset("*"), uid=False) == []
    assert view.resolve(seqset("1:*"), uid=True) == []
    with pytest.raises(ImapError):
        view.resolve(seqset("1"), uid=False)


def test_resolve_uses_the_clients_numbers_while_changes_are_pending() -> None:
    view = make_view(UIDS)
    deliver(view, [MessagesExpunged((20,), 101), MessagesAdded((60,), frozenset())])
    # Nothing announced yet: seq 2 is still UID 20; UID 60 is not visible.
    assert view.resolve(seqset("2"), uid=False) == [(2, 20)]
    assert view.resolve(seqset("60"), uid=True) == []
    assert view.is_expunge_pending(20)
    view.drain(True)
    assert view.resolve(seqset("2,*"), uid=False) == [(2, 30), (5, 60)]


def test_saved_result_marker_resolves_saved_uids() -> None:
    """SEARCHRES ``$`` (RFC 5182 §2.1): empty until a SEARCH saves; then the
    saved messages that still exist, by sequence number or UID alike."""
    view = make_view(UIDS)
    saved = SequenceSet((), saved=True)
    assert view.resolve(saved, uid=False) == []
    view.saved_uids = (20, 40, 99)
    assert view.resolve(saved, uid=False) == view.resolve(saved, uid=True) == [(2, 20), (4, 40)]


@pytest.mark.parametrize(("uids", "text"), [
    ([], ""), ([5], "5"), ([1, 2, 3], "1:3"), ([1, 3, 4, 5, 9], "1,3:5,9"),
])
def test_uid_set_text(uids: list[int], text: str) -> None:
    assert uid_set_text(uids) == text


def test_flags_value_adds_recent() -> None:
    view = make_view([1, 2], recent={2})
    assert view.flags_value(1, ["\\Seen"]) == flags("\\Seen")
    assert view.flags_value(2, []) == flags("\\Recent")
