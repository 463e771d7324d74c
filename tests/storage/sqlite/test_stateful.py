"""Hypothesis state machine: 2–4 sessions (in one or two store instances on
one data directory, i.e. one or two "processes") do random APPEND, STORE,
FETCH, EXPUNGE, COPY, MOVE, NOOP and reselects on INBOX.

A reference model holds the truth (UID -> flags). Each session has a
``Client`` that applies exactly the responses it was sent, as an IMAP client
would. After every step:

* every session not in the middle of FETCH/STORE commands drains with
  ``allow_expunge=True``; its view then equals the store, and everything its
  client was told (UIDs by sequence number, flags, \\Recent) is true;
* sessions still in FETCH/STORE have a client whose sequence numbers match
  their view (no EXPUNGE was ever sent to them while not allowed);
* UIDs never repeat, and every message is \\Recent in at most one read-write
  session — exactly one when one was selected when it arrived.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from imapd.core.errors import ImapError
from imapd.mail.flags import FlagOp
from imapd.mail.interface import MailStore
from imapd.mail.records import FlagState
from imapd.storage.sqlite.store import open_store
from imapd.core.model import DELETED, RECENT, SeqRange, SequenceSet
from imapd.imap.session.view import SelectedView
from imapd.imap.wire.responses import Exists, Expunge, FetchResponse, Recent, Response
from imapd.imap.wire.values import Atom, PList
from tests.storage.sqlite.helpers import run

U = "alice"
FLAG_POOL = ["\\Seen", "\\Deleted", "\\Flagged", "$Work", "later"]
ALL = SequenceSet((SeqRange(1, None),))


@dataclass
class Entry:
    uid: int | None = None
    flags: frozenset[str] | None = None
    recent: bool | None = None


class Client:
    """What one IMAP client knows, built only from responses it received."""

    def __init__(self, exists: int) -> None:
        self.entries = [Entry() for _ in range(exists)]

    def apply(self, responses: list[Response], allow_expunge: bool) -> None:
        for response in responses:
            if isinstance(response, Expunge):
                assert allow_expunge, "EXPUNGE sent while not allowed (RFC 3501 §7.4.1)"
                assert 1 <= response.seq <= len(self.entries)
                del self.entries[response.seq - 1]
            elif isinstance(response, Exists):
                assert response.count >= len(self.entries), "EXISTS went down"
                self.entries.extend(Entry() for _ in range(response.count - len(self.entries)))
            elif isinstance(response, Recent):
                assert response.count <= len(self.entries)
            elif isinstance(response, FetchResponse):
                self._apply_fetch(response)
            else:
                raise AssertionError(f"unexpected response {response!r}")

    def _apply_fetch(self, response: FetchResponse) -> None:
        assert 1 <= response.seq <= len(self.entries), "FETCH for an unknown number"
        entry = self.entries[response.seq - 1]
        items = dict(response.items)
        uid = items.get("UID")
        if uid is not None:
            assert isinstance(uid, int)
            assert entry.uid in (None, uid), "sequence number now names another UID"
            entry.uid = uid
        value = items.get("FLAGS")
        if value is not None:
            assert isinstance(value, PList)
            names = {item.value for item in value.items if isinstance(item, Atom)}
            entry.recent = RECENT in names
            entry.flags = frozenset(names - {RECENT})


@dataclass(eq=False)
class Session:
    store: MailStore
    view: SelectedView
    client: Client
    lagging: bool = False  # inside FETCH/STORE commands: no EXPUNGE yet


@dataclass
class Model:
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    issued: set[int] = field(default_factory=set)
    must_own: set[int] = field(default_factory=set)

    def add(self, uid: int, flags: frozenset[str], owned: bool) -> None:
        assert uid not in self.issued and uid > max(self.issued, default=0), "UID reused"
        self.issued.add(uid)
        self.flags[uid] = flags
        if owned:
            self.must_own.add(uid)


def tmp_root() -> str | None:
    # tmpfs makes fsync nearly free; durability is tested elsewhere.
    return "/dev/shm" if Path("/dev/shm").is_dir() else None


class ViewMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="imapd-stateful-", dir=tmp_root()))
        self.stores: list[MailStore] = []
        self.sessions: list[Session] = []
        self.model = Model()

    def teardown(self) -> None:
        for store in self.stores:
            run(store.close())
        shutil.rmtree(self.directory, ignore_errors=True)

    @initialize(count=st.integers(2, 4), processes=st.integers(1, 2),
                readonly=st.lists(st.booleans(), min_size=4, max_size=4))
    def start(self, count: int, processes: int, readonly: list[bool]) -> None:
        self.stores = [open_store(self.directory) for _ in range(processes)]
        run(self.stores[0].create_mailbox(U, "Other"))
        for i in range(count):
            self.sessions.append(self._open(self.stores[i % processes], i > 0 and readonly[i]))

    def _open(self, store: MailStore, readonly: bool) -> Session:
        view = run(SelectedView.open(store, U, "INBOX", readonly))
        client = Client(view.exists)
        return Session(store, view, client)

    def _any_read_write(self) -> bool:
        return any(not s.view.readonly for s in self.sessions)

    def _session(self, index: int) -> Session:
        return self.sessions[index % len(self.sessions)]

    def _pick_uids(self, session: Session, picks: list[int], by_uid: bool) -> list[int]:
        """UIDs of messages the client names, by sequence number or by UID."""
        count = len(session.client.entries)
        if count == 0:
            return []
        seqs = sorted({p % count + 1 for p in picks})
        if by_uid:
            known = [session.client.entries[s - 1].uid for s in seqs]
            uids = [u for u in known if u is not None]
            spec = SequenceSet(tuple(SeqRange(u, u) for u in uids)) if uids else None
            return [u for _, u in session.view.resolve(spec, True)] if spec else []
        spec = SequenceSet(tuple(SeqRange(s, s) for s in seqs))
        return [u for _, u in session.view.resolve(spec, False)]

    # --- rules -----------------------------------------------------------------

    @precondition(lambda self: bool(self.sessions))
    @rule(which=st.integers(0, 1), flags=st.lists(st.sampled_from(FLAG_POOL), max_size=3))
    def append(self, which: int, flags: list[str]) -> None:
        store = self.stores[which % len(self.stores)]
        uid = run(store.append(U, "INBOX", b"m", flags)).uid
        self.model.add(uid, frozenset(flags), self._any_read_write())

    @precondition(lambda self: bool(self.sessions))
    @rule(index=st.integers(0, 3), picks=st.lists(st.integers(0, 50), min_size=1, max_size=4),
          op=st.sampled_from(list(FlagOp)), flags=st.lists(st.sampled_from(FLAG_POOL), max_size=2),
          silent=st.booleans(), by_uid=st.booleans())
    def store_flags_rule(self, index: int, picks: list[int], op: FlagOp, flags: list[str],
                         silent: bool, by_uid: bool) -> None:
        self.store_flags(index, picks, op, flags, silent, by_uid)

    def store_flags(self, index: int, picks: list[int], op: FlagOp, flags: list[str],
                    silent: bool, by_uid: bool) -> None:
        session = self._session(index)
        uids = self._pick_uids(session, picks, by_uid)
        try:
            result = run(session.store.store_flags(session.view.selection, uids, op, flags))
        except ImapError as error:
            assert session.view.readonly and error.code == "READ-ONLY"
            return
        given = frozenset(flags)
        for uid in uids:
            if uid in self.model.flags:
                self.model.flags[uid] = _applied(op, self.model.flags[uid], given)
        assert {s.uid for s in result.states} == {u for u in uids if u in self.model.flags}
        if silent:
            self._client_applies_locally(session, result.states, op, given)
        else:
            session.client.apply([
                FetchResponse(seq, (("FLAGS", session.view.flags_value(s.uid, s.flags)), ("UID", s.uid)))
                for s in result.states if (seq := session.view.seq_of(s.uid)) is not None
            ], allow_expunge=False)
        self._finish(session, allow_expunge=False)

    @staticmethod
    def _client_applies_locally(
        session: Session, states: Sequence[FlagState], op: FlagOp, given: frozenset[str]
    ) -> None:
        """STORE .SILENT: the client works out the new flags itself."""
        for state in states:
            seq = session.view.seq_of(state.uid)
            entry = session.client.entries[seq - 1] if seq else None
            if entry is not None and entry.flags is not None:
                entry.flags = _applied(op, entry.flags, given)

    @precondition(lambda self: len(self.stores) > 1)
    @rule(first=st.integers(0, 3), second=st.integers(0, 3), pick=st.integers(0, 50),
          flag=st.sampled_from(FLAG_POOL), other=st.sampled_from(FLAG_POOL),
          silent=st.booleans())
    def racing_stores(self, first: int, second: int, pick: int, flag: str, other: str,
                      silent: bool) -> None:
        """Two processes change one message back to back, the second before
        it polled: its own STORE must not hide the first change."""
        a, b = self._session(first), self._session(second)
        if a.store is b.store or a.view.readonly or b.view.readonly:
            return
        uids = self._pick_uids(a, [pick], by_uid=False)
        if not uids or b.view.seq_of(uids[0]) is None:
            return
        self.fetch_all(second)  # b's client knows the flags before the race
        self.store_flags(first, [pick], FlagOp.ADD, [flag], silent=False, by_uid=False)
        seq = b.view.seq_of(uids[0])
        assert seq is not None
        self.store_flags(second, [seq - 1], FlagOp.ADD, [other], silent=silent, by_uid=False)

    @precondition(lambda self: bool(self.sessions))
    @rule(index=st.integers(0, 3))
    def fetch_all(self, index: int) -> None:
        """FETCH 1:* (UID FLAGS)."""
        session = self._session(index)
        if session.client.entries:
            pairs = session.view.resolve(ALL, uid=False)
            assert len(pairs) == len(session.client.entries)
            records = {r.uid: r for r in run(session.store.fetch_records(
                session.view.selection, [u for _, u in pairs]))}
            session.client.apply([
                FetchResponse(seq, (("UID", uid), ("FLAGS", session.view.flags_value(uid, records[uid].flags))))
                for seq, uid in pairs if uid in records
            ], allow_expunge=False)
        self._finish(session, allow_expunge=False)

    @precondition(lambda self: bool(self.sessions))
    @rule(index=st.integers(0, 3))
    def noop(self, index: int) -> None:
        self._finish(self._session(index), allow_expunge=True)

    @precondition(lambda self: bool(self.sessions))
    @rule(index=st.integers(0, 3), picks=st.lists(st.integers(0, 50), max_size=3), by_uid=st.booleans())
    def expunge(self, index: int, picks: list[int], by_uid: bool) -> None:
        session = self._session(index)
        subset = self._pick_uids(session, picks, True) if by_uid else None
        try:
            gone = run(session.store.expunge(session.view.selection, subset))
        except ImapError as error:
            assert session.view.readonly and error.code == "READ-ONLY"
            return
        expected = [u for u, f in sorted(self.model.flags.items())
                    if DELETED in f and (subset is None or u in subset)]
        assert gone == expected
        for uid in gone:
            del self.model.flags[uid]
        self._finish(session, allow_expunge=True)

    @precondition(lambda self: bool(self.sessions))
    @rule(index=st.integers(0, 3), picks=st.lists(st.integers(0, 50), min_size=1, max_size=3),
          to_inbox=st.booleans(), move=st.booleans())
    def copy(self, index: int, picks: list[int], to_inbox: bool, move: bool) -> None:
        session = self._session(index)
        uids = self._pick_uids(session, picks, False)
        target = "INBOX" if to_inbox else "Other"
        call = session.store.move if move else session.store.copy
        try:
            result = run(call(session.view.selection, uids, target))
        except ImapError as error:
            assert move and session.view.readonly and error.code == "READ-ONLY"
            return
        sources = [u for u in uids if u in self.model.flags]
        assert [s for s, _ in result.pairs] == sources
        copied = {new: self.model.flags[old] for old, new in result.pairs}
        if move:
            for uid in sources:
                del self.model.flags[uid]
        if to_inbox:
            for new, flags in copied.items():
                self.model.add(new, flags, self._any_read_write())
        self._finish(session, allow_expunge=True)

    @precondition(lambda self: bool(self.sessions))
    @rule(index=st.integers(0, 3), readonly=st.booleans())
    def reselect(self, index: int, readonly: bool) -> None:
        session = self._session(index)
        owned = {u for u in self.model.flags if session.view.is_recent(u)}
        if not session.view.readonly:
            self.model.must_own -= owned
        session.view.close()
        position = self.sessions.index(session)
        self.sessions[position] = self._open(session.store, readonly)

    @precondition(lambda self: bool(self.sessions))
    @rule(which=st.integers(0, 1))
    def poll(self, which: int) -> None:
        run(self.stores[which % len(self.stores)].poll_changes())

    def _finish(self, session: Session, allow_expunge: bool) -> None:
        """The dispatcher's drain before the tagged reply."""
        session.client.apply(session.view.drain(allow_expunge, include_uid=True), allow_expunge)
        session.lagging = not allow_expunge

    # --- invariants ------------------------------------------------------------

    @invariant()
    def consistent(self) -> None:
        # One invariant, so polling (the server's timer) happens before both checks.
        if not self.sessions:
            return
        for store in self.stores:
            run(store.poll_changes())
        self._views_match_the_store()
        self._recent_has_one_owner()

    def _views_match_the_store(self) -> None:
        truth = sorted(self.model.flags)
        stored = run(self.stores[0].fetch_records(self.sessions[0].view.selection))
        assert {r.uid: frozenset(r.flags) for r in stored} == self.model.flags
        for session in self.sessions:
            # A lagging session is drained as for one more FETCH: its expunges
            # stay held back, everything else must reach its client.
            self._finish(session, allow_expunge=not session.lagging)
            if not session.lagging:
                assert list(session.view.uids) == truth
            self._check_numbers(session)
            for entry, uid in zip(session.client.entries, session.view.uids):
                if uid not in self.model.flags:
                    assert session.view.is_expunge_pending(uid)
                    continue
                if entry.flags is not None:
                    assert entry.flags == self.model.flags[uid], "client holds stale flags"
                if entry.recent is not None:
                    assert entry.recent == session.view.is_recent(uid)

    def _check_numbers(self, session: Session) -> None:
        assert len(session.client.entries) == session.view.exists
        for entry, uid in zip(session.client.entries, session.view.uids):
            assert entry.uid in (None, uid)

    def _recent_has_one_owner(self) -> None:
        for uid in self.model.flags:
            owners = [s for s in self.sessions if not s.view.readonly and s.view.is_recent(uid)]
            assert len(owners) <= 1, f"UID {uid} is \\Recent in {len(owners)} sessions"
            if uid in self.model.must_own:
                assert len(owners) == 1, f"UID {uid} is \\Recent in no session"


def _applied(op: FlagOp, current: frozenset[str], given: frozenset[str]) -> frozenset[str]:
    if op is FlagOp.REPLACE:
        return given
    if op is FlagOp.ADD:
        return current | given
    return current - given


ViewMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestViewMachine = ViewMachine.TestCase
