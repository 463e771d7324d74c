"""Hypothesis state machine over the command handlers: 2–4 IMAP sessions
(over the in-process server, tests/imap/commands/harness.py) in one or two
server "processes" (two store instances on one data directory, whose
changes cross only at ``poll``) run random APPEND, STORE (+/-/replace,
.SILENT, UID), FETCH, EXPUNGE, UID EXPUNGE, COPY, MOVE, IDLE, reselects
(SELECT or EXAMINE) and NOOP on INBOX, with keywords that are new to the
mailbox (``NIL`` among them).

Each session has a ``Client`` that knows only what the server sent it, as
an IMAP client would: its sequence-number -> UID list (EXISTS, EXPUNGE),
flags per message (FETCH), the FLAGS and PERMANENTFLAGS lists, and the
RECENT count. The truth is a reference model (UID -> flags) kept from the
commands themselves and from APPENDUID/COPYUID. Checked on every response:

* a FETCH names only keywords of the client's last FLAGS list (RFC 3501
  §7.2.6), and for a read-write selection PERMANENTFLAGS matches it;
* EXPUNGE never comes during FETCH/STORE (§7.4.1), never names an unknown
  number; EXISTS never goes down;
* after every command: the RECENT the client believes is at most EXISTS
  (§7.3.2), and its own .SILENT flags use only keywords it was told;
* after NOOP, the FLAGS list names every keyword of every message the
  client was told exists, fetched or not;

and at each checkpoint (every store polled, every session NOOP and FETCH
1:*): every client's UID list and flags equal the truth, the number of
messages it sees as \\Recent equals the RECENT it was told, no message is
\\Recent in two read-write sessions, and one that arrived while a read-write
session was selected is \\Recent in exactly one.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.imap.commands.harness import DEFAULT_USERS, Client as Connection, MailServer

RECENT = "\\Recent"
DELETED = "\\Deleted"
SYSTEM = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]
FLAG_POOL = ["\\Seen", "\\Deleted", "\\Flagged", "$Work", "later", "NIL", "$Kw"]
CRLF = b"\r\n"
_FETCH = re.compile(rb"\* (\d+) FETCH \((.*)\)")
_ITEM = re.compile(rb"([A-Z0-9.]+) (\d+|\([^)]*\))")
_NUMBERED = re.compile(rb"\* (\d+) (EXISTS|RECENT|EXPUNGE)")
_FLAGS = re.compile(rb"\* FLAGS \(([^)]*)\)")
_PERMANENT = re.compile(rb"\* OK \[PERMANENTFLAGS \(([^)]*)\)\]")
_COPYUID = re.compile(rb"\[COPYUID \d+ ([\d:,]+) ([\d:,]+)\]")
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


def words(raw: bytes) -> list[str]:
    return raw.decode().split() if raw else []


def uid_set(text: bytes) -> list[int]:
    """``1:3,7`` -> [1, 2, 3, 7], in the order written (COPYUID keeps it)."""
    result: list[int] = []
    for part in text.decode().split(","):
        low, _, high = part.partition(":")
        result.extend(range(int(low), int(high or low) + 1))
    return result


@dataclass
class Entry:
    uid: int | None = None
    flags: frozenset[str] | None = None
    recent: bool | None = None


@dataclass
class Client:
    """What one IMAP client knows, from the bytes it was sent."""

    readonly: bool
    entries: list[Entry] = field(default_factory=list)
    flag_list: list[str] = field(default_factory=list)
    permanent: list[str] | None = None
    recent: int = 0

    def apply(self, lines: list[bytes], allow_expunge: bool) -> None:
        for line in lines:
            if not self._apply_line(line, allow_expunge):
                raise AssertionError(f"unexpected response {line!r}")
        assert self.recent <= len(self.entries), (
            f"client believes RECENT {self.recent} > EXISTS {len(self.entries)}")
        if not self.readonly:
            assert self.permanent == self.flag_list + ["\\*"], "PERMANENTFLAGS out of step"
        for entry in self.entries:
            if entry.flags is not None:  # (also flags it worked out after .SILENT)
                unknown = {f for f in entry.flags if not f.startswith("\\")} - set(self.flag_list)
                assert not unknown, f"keywords {unknown} are not in the FLAGS list"

    def _apply_line(self, line: bytes, allow_expunge: bool) -> bool:
        if (match := _FETCH.fullmatch(line)) is not None:
            self._fetch(int(match[1]), match[2])
        elif (match := _NUMBERED.fullmatch(line)) is not None:
            self._numbered(int(match[1]), match[2], allow_expunge)
        elif (match := _FLAGS.fullmatch(line)) is not None:
            told = words(match[1])
            assert set(self.flag_list) <= set(told), "the FLAGS list shrank"
            assert told[:len(SYSTEM)] == SYSTEM
            self.flag_list = told
        elif (match := _PERMANENT.match(line)) is not None:
            self.permanent = words(match[1])
        else:
            return line.startswith((b"* OK [", b"+ idling", b"* SEARCH"))
        return True

    def _numbered(self, number: int, kind: bytes, allow_expunge: bool) -> None:
        if kind == b"EXISTS":
            assert number >= len(self.entries), "EXISTS went down"
            self.entries.extend(Entry() for _ in range(number - len(self.entries)))
        elif kind == b"RECENT":
            assert number <= len(self.entries), "RECENT above EXISTS"
            self.recent = number
        else:
            assert allow_expunge, "EXPUNGE during FETCH/STORE (RFC 3501 §7.4.1)"
            assert 1 <= number <= len(self.entries), "EXPUNGE of an unknown number"
            del self.entries[number - 1]

    def _fetch(self, seq: int, body: bytes) -> None:
        assert 1 <= seq <= len(self.entries), "FETCH of an unknown number"
        items = {m[1]: m[2] for m in _ITEM.finditer(body)}
        assert b" ".join(k + b" " + v for k, v in items.items()) == body, body
        entry = self.entries[seq - 1]
        if b"UID" in items:
            uid = int(items[b"UID"])
            assert entry.uid in (None, uid), "a sequence number now names another UID"
            entry.uid = uid
        if b"FLAGS" in items:
            flags = words(items[b"FLAGS"][1:-1])
            unknown = {f for f in flags if not f.startswith("\\")} - set(self.flag_list)
            assert not unknown, f"FETCH names keywords {unknown} not announced by FLAGS"
            entry.recent = RECENT in flags
            entry.flags = frozenset(flags) - {RECENT}


@dataclass(eq=False)
class Session:
    conn: Connection
    server: int
    client: Client


@dataclass
class Truth:
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    must_own: set[int] = field(default_factory=set)

    def add(self, uid: int, flags: frozenset[str], owned: bool) -> None:
        assert uid not in self.flags and uid > max(self.flags, default=0), "UID reused"
        self.flags[uid] = flags
        if owned:
            self.must_own.add(uid)


def applied(mode: str, current: frozenset[str], given: frozenset[str]) -> frozenset[str]:
    if mode == "+":
        return current | given
    if mode == "-":
        return current - given
    return given


def tmp_root() -> str | None:
    # tmpfs makes fsync nearly free; durability is tested elsewhere.
    return "/dev/shm" if Path("/dev/shm").is_dir() else None


class SessionsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="imapd-sessions-", dir=tmp_root()))
        self.servers: list[MailServer] = []
        self.sessions: list[Session] = []
        self.truth = Truth()
        self.tags = 0
        # False from the first command of a rule until its invariants passed:
        # after a failure, teardown must not pile a second error on it.
        self.clean = True

    def teardown(self) -> None:
        try:
            if self.sessions and self.clean:
                self._checkpoint()  # every run ends in a full comparison
        finally:
            for server in self.servers:
                server.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    @initialize(count=st.integers(2, 4), processes=st.integers(1, 2),
                readonly=st.lists(st.booleans(), min_size=4, max_size=4))
    def start(self, count: int, processes: int, readonly: list[bool]) -> None:
        self.servers = [MailServer(self.directory)]
        if processes == 2:  # same data directory, its own store: another process
            second = MailServer(self.directory, users={})
            second.passwords = dict(DEFAULT_USERS)
            self.servers.append(second)
        self.servers[0].create("Other")
        for i in range(count):
            server = i % processes
            conn = self.servers[server].connect("alice")
            session = Session(conn, server, Client(readonly=False))
            self._select(session, readonly=i > 0 and readonly[i])
            self.sessions.append(session)

    # --- talking to the server ------------------------------------------------

    def _tag(self) -> str:
        self.tags += 1
        return f"t{self.tags}"

    def _run(self, session: Session, command: str, allow_expunge: bool = True,
             literal: bytes | None = None) -> list[bytes]:
        """Send ``tag command`` and apply the answer; returns its lines, the
        tagged one last."""
        self.clean = False
        tag = self._tag()
        data = f"{tag} {command}".encode() + CRLF
        if literal is not None:
            data = f"{tag} {command} {{{len(literal)}+}}".encode() + CRLF + literal + CRLF
        out = session.conn.exchange(data)
        assert out.endswith(CRLF), out
        lines = out[:-2].split(CRLF)
        assert lines[-1].startswith(tag.encode() + b" "), lines
        session.client.apply(lines[:-1], allow_expunge)
        self._learn_uids(session)
        return lines

    def _learn_uids(self, session: Session) -> None:
        """Like a client, fetch the UIDs of messages it was just told about."""
        entries = session.client.entries
        unknown = [seq for seq, e in enumerate(entries, 1) if e.uid is None]
        if unknown:
            tag = self._tag()
            out = session.conn.exchange(f"{tag} FETCH {unknown[0]}:{unknown[-1]} (UID)\r\n".encode())
            lines = out[:-2].split(CRLF)
            assert lines[-1] == f"{tag} OK FETCH completed".encode(), lines
            session.client.apply(lines[:-1], allow_expunge=False)

    def _select(self, session: Session, readonly: bool) -> None:
        session.client = Client(readonly=readonly)
        verb = "EXAMINE" if readonly else "SELECT"
        assert b" OK [READ-" in self._run(session, f"{verb} INBOX")[-1]

    def _session(self, index: int) -> Session:
        return self.sessions[index % len(self.sessions)]

    def _any_read_write(self) -> bool:
        return any(not s.client.readonly for s in self.sessions)

    def _pick(self, session: Session, picks: list[int]) -> list[int]:
        """Sequence numbers of messages the client knows the UID of."""
        entries = session.client.entries
        if not entries:
            return []
        return sorted({p % len(entries) + 1 for p in picks if entries[p % len(entries)].uid})

    def _uids(self, session: Session, seqs: list[int]) -> list[int]:
        return [u for u in (session.client.entries[s - 1].uid for s in seqs) if u is not None]

    # --- rules --------------------------------------------------------------------

    @rule(index=st.integers(0, 3))
    def noop(self, index: int) -> None:
        self._run(self._session(index), "NOOP")

    @rule(index=st.integers(0, 3),
          flags=st.lists(st.sampled_from(FLAG_POOL), max_size=3, unique=True),
          into_other=st.booleans())
    def append(self, index: int, flags: list[str], into_other: bool) -> None:
        """APPEND through any session (so through either process)."""
        session = self._session(index)
        target = "Other" if into_other else "INBOX"
        tagged = self._run(session, f"APPEND {target} ({' '.join(flags)})", literal=b"m")[-1]
        match = _APPENDUID.search(tagged)
        assert match is not None, tagged
        if not into_other:
            self.truth.add(int(match[1]), frozenset(flags), self._any_read_write())
            # Decision (docs/extensions.md): own APPEND into the selected
            # mailbox announces its new keywords with the EXISTS.
            told = set(session.client.flag_list)
            assert {f for f in flags if not f.startswith("\\")} <= told

    @rule(index=st.integers(0, 3), picks=st.lists(st.integers(0, 40), min_size=1, max_size=4),
          mode=st.sampled_from(["+", "-", ""]), silent=st.booleans(), by_uid=st.booleans(),
          flags=st.lists(st.sampled_from(FLAG_POOL), max_size=2, unique=True))
    def store(self, index: int, picks: list[int], mode: str, silent: bool, by_uid: bool,
              flags: list[str]) -> None:
        session = self._session(index)
        seqs = self._pick(session, picks)
        uids = self._uids(session, seqs)
        if not seqs:
            return
        numbers = ",".join(str(n) for n in (uids if by_uid else seqs))
        item = f"{mode}FLAGS{'.SILENT' if silent else ''} ({' '.join(flags)})"
        tagged = self._run(session, f"{'UID ' if by_uid else ''}STORE {numbers} {item}",
                           allow_expunge=False)[-1]
        if session.client.readonly:
            assert b" NO [READ-ONLY]" in tagged, tagged
            return
        assert b" OK " in tagged, tagged
        given = frozenset(flags)
        for uid in uids:
            if uid in self.truth.flags:
                self.truth.flags[uid] = applied(mode, self.truth.flags[uid], given)
        if silent:
            # The client works the new flags out itself, from what it knew:
            # stale if another process changed them and this one has not
            # polled yet (a STORE that changes nothing writes nothing, so
            # the store does not catch up); checkpoints compare after polls.
            for seq in seqs:
                entry = session.client.entries[seq - 1]
                if entry.flags is not None and entry.uid in self.truth.flags:
                    entry.flags = applied(mode, entry.flags, given)
            session.client.apply([], allow_expunge=False)  # its keywords are in the list
        else:
            self._check_flags_of(session, uids)

    def _check_flags_of(self, session: Session, uids: list[int]) -> None:
        for entry in session.client.entries:
            if entry.uid in uids and entry.uid in self.truth.flags and entry.flags is not None:
                assert entry.flags == self.truth.flags[entry.uid], "flags differ from the truth"

    @rule(index=st.integers(0, 3), by_uid=st.booleans())
    def fetch_all(self, index: int, by_uid: bool) -> None:
        session = self._session(index)
        if not session.client.entries and not by_uid:
            return
        command = "UID FETCH 1:* (FLAGS)" if by_uid else "FETCH 1:* (UID FLAGS)"
        assert b" OK " in self._run(session, command, allow_expunge=False)[-1]
        self._check_flags_of(session, list(self.truth.flags))

    @rule(index=st.integers(0, 3), picks=st.lists(st.integers(0, 40), max_size=3),
          by_uid=st.booleans())
    def expunge(self, index: int, picks: list[int], by_uid: bool) -> None:
        session = self._session(index)
        subset = self._uids(session, self._pick(session, picks)) if by_uid else None
        if subset is not None and not subset:
            return
        command = "EXPUNGE" if subset is None else f"UID EXPUNGE {','.join(map(str, subset))}"
        tagged = self._run(session, command)[-1]
        if session.client.readonly:
            assert b" NO [READ-ONLY]" in tagged, tagged
            return
        assert b" OK " in tagged, tagged
        for uid, flags in list(self.truth.flags.items()):
            if DELETED in flags and (subset is None or uid in subset):
                del self.truth.flags[uid]

    @rule(index=st.integers(0, 3), picks=st.lists(st.integers(0, 40), min_size=1, max_size=3),
          to_inbox=st.booleans(), move=st.booleans())
    def copy(self, index: int, picks: list[int], to_inbox: bool, move: bool) -> None:
        session = self._session(index)
        seqs = self._pick(session, picks)
        if not seqs:
            return
        sources = self._uids(session, seqs)
        target = "INBOX" if to_inbox else "Other"
        verb = "MOVE" if move else "COPY"
        lines = self._run(session, f"{verb} {','.join(map(str, seqs))} {target}")
        if move and session.client.readonly:
            assert b" NO [READ-ONLY]" in lines[-1], lines
            return
        assert b" OK " in lines[-1], lines
        pairs = self._copyuid(lines)
        assert [s for s, _ in pairs] == [u for u in sources if u in self.truth.flags]
        copied = {new: self.truth.flags[old] for old, new in pairs}
        if move:
            for old, _ in pairs:
                del self.truth.flags[old]
        if to_inbox:
            for new, flags in copied.items():
                self.truth.add(new, flags, self._any_read_write())

    @staticmethod
    def _copyuid(lines: list[bytes]) -> list[tuple[int, int]]:
        for line in lines:
            match = _COPYUID.search(line)
            if match is not None:
                return list(zip(uid_set(match[1]), uid_set(match[2])))
        return []

    @rule(idler=st.integers(0, 3), actor=st.integers(0, 3), picks=st.lists(st.integers(0, 40),
          min_size=1, max_size=2), flags=st.lists(st.sampled_from(FLAG_POOL), max_size=2,
          unique=True), then_expunge=st.booleans())
    def idle_while_another_changes(self, idler: int, actor: int, picks: list[int],
                                   flags: list[str], then_expunge: bool) -> None:
        """IDLE pushes (RFC 2177): FLAGS, FETCH, EXPUNGE, RECENT as they come."""
        waiting, acting = self._session(idler), self._session(actor)
        if waiting is acting:
            return
        self.clean = False
        tag = self._tag()
        out = waiting.conn.exchange(f"{tag} IDLE\r\n".encode())
        self.store(actor, picks, "+", True, False, flags)
        if then_expunge:
            self.expunge(actor, [], False)
        for server in self.servers:
            server.poll()
        out += waiting.conn.exchange(b"DONE\r\n")
        lines = out[:-2].split(CRLF)
        assert lines[-1] == f"{tag} OK IDLE terminated".encode(), lines
        waiting.client.apply(lines[:-1], allow_expunge=True)
        self._learn_uids(waiting)

    @rule(index=st.integers(0, 3), readonly=st.booleans())
    def reselect(self, index: int, readonly: bool) -> None:
        session = self._session(index)
        if not session.client.readonly:
            # What it held as \Recent is nobody's once it leaves (§2.3.2).
            # Its process polls first (as its timer would), or messages
            # another process added meanwhile were never claimed by anyone.
            self.servers[session.server].poll()
            self._run(session, "NOOP")
            if session.client.entries:
                self._run(session, "FETCH 1:* (UID FLAGS)", allow_expunge=False)
            self.truth.must_own -= {e.uid for e in session.client.entries if e.recent and e.uid}
        self._select(session, readonly)

    @rule(which=st.integers(0, 1))
    def poll(self, which: int) -> None:
        self.servers[which % len(self.servers)].poll()

    @rule()
    def checkpoint(self) -> None:
        self._checkpoint()

    # --- checks ---------------------------------------------------------------------

    @invariant()
    def believed_recent_never_exceeds_exists(self) -> None:
        for session in self.sessions:
            assert session.client.recent <= len(session.client.entries)
        self.clean = True

    def _checkpoint(self) -> None:
        for server in self.servers:
            server.poll()
        for session in self.sessions:
            self._run(session, "NOOP")
        truth = sorted(self.truth.flags)
        owners: dict[int, int] = {}
        for session in self.sessions:
            # Told a message exists, the client must have been told a FLAGS
            # list naming its keywords, fetched or not (RFC 3501 §7.2.6).
            known = session.client.entries
            in_use = {f for e in known if e.uid in self.truth.flags
                      for f in self.truth.flags[e.uid] if not f.startswith("\\")}
            assert in_use <= set(session.client.flag_list), "keywords in use not in FLAGS"
            if session.client.entries:
                self._run(session, "FETCH 1:* (UID FLAGS)", allow_expunge=False)
            client = session.client
            assert [e.uid for e in client.entries] == truth, "the client's UIDs differ"
            for entry in client.entries:
                assert entry.uid is not None and entry.flags == self.truth.flags[entry.uid]
            seen_recent = [e.uid for e in client.entries if e.recent]
            assert len(seen_recent) == client.recent, "RECENT differs from the \\Recent seen"
            if not client.readonly:
                for uid in seen_recent:
                    assert uid is not None
                    owners[uid] = owners.get(uid, 0) + 1
        assert all(count == 1 for count in owners.values()), "\\Recent in two sessions"
        missing = (self.truth.must_own & set(truth)) - set(owners)
        assert not missing, f"UIDs {missing} are \\Recent in no session"


SessionsMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestSessionsMachine = SessionsMachine.TestCase
