"""One simulated mail client: a session on its own mailbox and the
operations of the mix, each checked against the client's model
(``bench.load.checks``).

A worker works in ``<prefix>-<n>``, filled beforehand with corpus messages
``0 .. messages-1`` (``bench.load.runner.prepare_mailboxes``). Its
operations are what a desktop client does while syncing and reading mail:

=================  ==========================================================
FETCH FLAGS        ``UID FETCH 1:* (FLAGS)`` (flag resync), flags compared
FETCH ENVELOPE     ``FETCH a:b (UID RFC822.SIZE INTERNALDATE FLAGS ENVELOPE)``
FETCH BODYSTRUCT   ``FETCH a:b (UID BODYSTRUCTURE)``
FETCH BODY         ``UID FETCH u (UID BODY.PEEK[])`` or ``BODY[]``, bytes compared
STORE              ``UID STORE u +FLAGS/-FLAGS (...)``, resulting flags compared
SEARCH             ``UID SEARCH`` FLAGGED / UNSEEN / FROM / SUBJECT / TEXT /
                   SENTSINCE, result compared exactly
APPEND             a corpus message, then ``FETCH NEW``: ``UID FETCH n:*
                   (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-BENCH-ID)])``
EXPUNGE            ``UID STORE u +FLAGS.SILENT (\\Deleted)`` then ``EXPUNGE``:
                   exactly that message's ``* n EXPUNGE``
LOGIN/SELECT/      every ``session_ops`` operations the client logs out and
LOGOUT             starts a new session (EXISTS and UIDVALIDITY checked)
=================  ==========================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench import corpus
from bench.load import checks
from bench.load.checks import CheckFailed, MailboxModel, corpus_info, require_ok
from bench.load.client import ImapClient, Reply
from bench.load.stats import Stats
from bench.load.wire import Malformed, Value

FLAG_CHOICES = ("\\Seen", "\\Flagged", "\\Answered")
SEARCH_SENDERS = ("alice@example.org", "bob@example.net", "carol@example.com")
SEARCH_SUBJECT_WORDS = ("report", "meeting", "invoice")
WINDOW_ENVELOPE = 20
WINDOW_BODYSTRUCTURE = 10


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    user: str
    password: str


def quote(text: str) -> bytes:
    return b'"' + text.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class Worker:
    """One client. ``client`` is None between sessions."""

    def __init__(
        self, target: Target, mailbox: str, stats: Stats, rng: random.Random,
        *, messages: int, append_pool: int, session_ops: int, timeout: float,
    ) -> None:
        self.target = target
        self.mailbox = mailbox
        self.stats = stats
        self.rng = rng
        self.messages = messages          # the size the mailbox hovers around
        self.append_pool = append_pool    # APPEND draws corpus messages below this
        self.session_ops = session_ops
        self.timeout = timeout
        self.client: ImapClient | None = None
        self.model = MailboxModel()
        self.synced = False
        self.ops_in_session = 0

    # --- plumbing ------------------------------------------------------------

    async def timed(self, name: str, text: bytes, literal: bytes | None = None) -> Reply:
        """Send one command and record its latency under ``name``."""
        assert self.client is not None
        reply = await self.client.command(text, literal, timeout=self.timeout)
        self.stats.record(name, reply.elapsed)
        return reply

    def apply_untagged(self, reply: Reply, allow_expunge: bool) -> None:
        """Track EXISTS/EXPUNGE in the model: only this client changes its
        mailbox, so anything unexpected is an error."""
        for response in reply.untagged:
            if response.name == b"EXPUNGE":
                if not allow_expunge:
                    raise CheckFailed(f"EXPUNGE sent during a command that forbids it: {response.raw!r}")
            elif response.name == b"EXISTS":
                assert response.number is not None
                if response.number < len(self.model.uids):
                    raise CheckFailed(f"EXISTS {response.number} below the known {len(self.model.uids)}")

    # --- sessions ------------------------------------------------------------

    async def open_session(self) -> None:
        """Connect, LOGIN, SELECT; on the first session load the model."""
        self.client = await ImapClient.connect(self.target.host, self.target.port, self.timeout)
        login = b"LOGIN " + quote(self.target.user) + b" " + quote(self.target.password)
        reply = require_ok(await self.timed("LOGIN", login), "LOGIN")
        if not checks.capabilities_in(reply):  # they change at login (RFC 3501 §6.2.3)
            reply = require_ok(await self.timed("CAPABILITY", b"CAPABILITY"), "CAPABILITY")
            if not reply.of(b"CAPABILITY"):
                raise CheckFailed("CAPABILITY without * CAPABILITY")
        await self.select()
        if not self.synced:
            await self.sync_all()
        self.ops_in_session = 0

    async def select(self) -> None:
        reply = require_ok(await self.timed("SELECT", b"SELECT " + quote(self.mailbox)), "SELECT")
        exists = [r.number for r in reply.of(b"EXISTS")]
        codes = [r.code for r in reply.untagged if r.name == b"OK" and r.code]
        validity = [c for c in codes if c.upper().startswith(b"UIDVALIDITY ")]
        if len(exists) != 1 or len(validity) != 1:
            raise CheckFailed(f"SELECT: {len(exists)} EXISTS, {len(validity)} UIDVALIDITY")
        uidvalidity = int(validity[0].split()[1])
        if self.synced:
            if uidvalidity != self.model.uidvalidity:
                raise CheckFailed("UIDVALIDITY changed between sessions")
            if exists[0] != len(self.model.uids):
                raise CheckFailed(f"SELECT: EXISTS {exists[0]}, the client knows {len(self.model.uids)}")
        self.model.uidvalidity = uidvalidity

    async def sync_all(self) -> None:
        """Learn every message: UID, flags and which corpus message it is."""
        self.model = MailboxModel(uidvalidity=self.model.uidvalidity)
        await self._fetch_new(1, "SYNC")
        self.synced = True

    async def _fetch_new(self, first_uid: int, name: str) -> None:
        text = b"UID FETCH %d:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-BENCH-ID)])" % first_uid
        reply = require_ok(await self.timed(name, text), name)
        self.apply_untagged(reply, allow_expunge=False)
        for seq, items in checks.fetches(reply):
            uid = checks.number(items.get(b"UID"), "UID")
            if uid < first_uid:
                continue  # n:* always includes the highest UID (RFC 3501 §6.4.8)
            header = next((v for k, v in items.items() if k.startswith(b"BODY[HEADER.FIELDS")), None)
            if not isinstance(header, bytes):
                raise CheckFailed(f"no header section in {items.keys()!r}")
            index = corpus.bench_id(header)
            if index is None:
                raise CheckFailed(f"UID {uid}: no X-Bench-Id in {header!r:.80}")
            self.model.add(uid, index, checks.flag_set(items.get(b"FLAGS")))
            if seq != len(self.model.uids):
                raise CheckFailed(f"UID {uid} at sequence {seq}, expected {len(self.model.uids)}")

    async def close_session(self) -> None:
        if self.client is None:
            return
        client, self.client = self.client, None
        reply = await client.command(b"LOGOUT", timeout=self.timeout)
        self.stats.record("LOGOUT", reply.elapsed)
        if not reply.of(b"BYE"):
            await client.close()
            raise CheckFailed("LOGOUT without * BYE")
        require_ok(reply, "LOGOUT", bye=True)
        await client.close()

    def abort(self) -> None:
        if self.client is not None:
            self.client.abort()
            self.client = None
        self.synced = False  # after an error, trust nothing we knew

    # --- operations ----------------------------------------------------------

    def random_uid(self) -> int:
        if not self.model.uids:
            raise CheckFailed("mailbox unexpectedly empty")
        return self.rng.choice(self.model.uids)

    async def op_fetch_flags(self) -> None:
        reply = require_ok(await self.timed("FETCH FLAGS", b"UID FETCH 1:* (FLAGS)"), "FETCH FLAGS")
        self.apply_untagged(reply, allow_expunge=False)
        seen: set[int] = set()
        for seq, items in checks.fetches(reply):
            uid = checks.number(items.get(b"UID"), "UID")
            if uid not in self.model.messages or self.model.seq_of(uid) != seq:
                raise CheckFailed(f"FETCH FLAGS: UID {uid} at {seq} unknown")
            want = self.model.messages[uid].flags
            if not checks.same_flags(checks.flag_set(items.get(b"FLAGS")), want):
                raise CheckFailed(f"FETCH FLAGS: UID {uid} flags {items.get(b'FLAGS')!r}, want {sorted(want)}")
            seen.add(uid)
        if len(seen) != len(self.model.uids):
            raise CheckFailed(f"FETCH FLAGS: {len(seen)} messages, the mailbox has {len(self.model.uids)}")

    def _window(self, size: int) -> tuple[int, int]:
        count = len(self.model.uids)
        if count == 0:
            raise CheckFailed("mailbox unexpectedly empty")
        first = self.rng.randint(1, max(1, count - size + 1))
        return first, min(count, first + size - 1)

    async def _fetch_window(self, name: str, size: int, items: bytes) -> list[tuple[int, dict[bytes, Value]]]:
        first, last = self._window(size)
        reply = require_ok(await self.timed(name, b"FETCH %d:%d (%s)" % (first, last, items)), name)
        self.apply_untagged(reply, allow_expunge=False)
        results = checks.fetches(reply)
        if sorted(seq for seq, _ in results) != list(range(first, last + 1)):
            raise CheckFailed(f"{name}: answered {[s for s, _ in results][:10]} for {first}:{last}")
        for seq, fetched in results:
            if checks.number(fetched.get(b"UID"), "UID") != self.model.uids[seq - 1]:
                raise CheckFailed(f"{name}: sequence {seq} has UID {fetched.get(b'UID')!r}")
        return results

    async def op_fetch_envelope(self) -> None:
        items = b"UID RFC822.SIZE INTERNALDATE FLAGS ENVELOPE"
        for seq, fetched in await self._fetch_window("FETCH ENVELOPE", WINDOW_ENVELOPE, items):
            info = corpus_info(self.model.messages[self.model.uids[seq - 1]].index)
            if checks.number(fetched.get(b"RFC822.SIZE"), "RFC822.SIZE") != len(info.data):
                raise checks.WrongData(f"RFC822.SIZE {fetched.get(b'RFC822.SIZE')!r} != {len(info.data)}")
            if not isinstance(fetched.get(b"INTERNALDATE"), bytes):
                raise Malformed("INTERNALDATE missing")
            checks.check_envelope(fetched.get(b"ENVELOPE"), info)

    async def op_fetch_bodystructure(self) -> None:
        for seq, fetched in await self._fetch_window("FETCH BODYSTRUCT", WINDOW_BODYSTRUCTURE, b"UID BODYSTRUCTURE"):
            info = corpus_info(self.model.messages[self.model.uids[seq - 1]].index)
            checks.check_bodystructure(fetched.get(b"BODYSTRUCTURE"), info)

    async def op_fetch_body(self) -> None:
        uid = self.random_uid()
        peek = self.rng.random() < 0.8
        section = b"BODY.PEEK[]" if peek else b"BODY[]"
        reply = require_ok(await self.timed("FETCH BODY", b"UID FETCH %d (UID %s)" % (uid, section)), "FETCH BODY")
        self.apply_untagged(reply, allow_expunge=False)
        bodies = [items.get(b"BODY[]") for _, items in checks.fetches(reply) if b"BODY[]" in items]
        if len(bodies) != 1:
            raise CheckFailed(f"FETCH BODY: {len(bodies)} bodies for UID {uid}")
        message = self.model.messages[uid]
        if not peek:
            message.flags.add("\\Seen")  # implicit \Seen (RFC 3501 §6.4.5), even if the bytes are wrong
        checks.check_body(bodies[0], corpus_info(message.index))

    async def op_store(self) -> None:
        uid = self.random_uid()
        flag = self.rng.choice(FLAG_CHOICES)
        message = self.model.messages[uid]
        adding = flag not in message.flags
        text = b"UID STORE %d %sFLAGS (%s)" % (uid, b"+" if adding else b"-", flag.encode())
        reply = require_ok(await self.timed("STORE", text), "STORE")
        self.apply_untagged(reply, allow_expunge=False)
        want = message.flags | {flag} if adding else message.flags - {flag}
        answers = [items for _, items in checks.fetches(reply) if items.get(b"UID") == b"%d" % uid]
        if not answers or not checks.same_flags(checks.flag_set(answers[-1].get(b"FLAGS")), want):
            raise CheckFailed(f"STORE: UID {uid} flags {[a.get(b'FLAGS') for a in answers]!r}, want {sorted(want)}")
        message.flags = want

    async def op_search(self) -> None:
        kind = self.rng.randrange(6)
        model = self.model
        infos = {uid: corpus_info(m.index) for uid, m in model.messages.items()}
        if kind == 0:
            text, want = b"UID SEARCH FLAGGED", model.with_flag("\\Flagged")
        elif kind == 1:
            text, want = b"UID SEARCH UNSEEN", model.without_flag("\\Seen")
        elif kind == 2:
            sender = self.rng.choice(SEARCH_SENDERS)
            text = b"UID SEARCH FROM " + quote(sender)
            want = {uid for uid, info in infos.items() if info.sender == sender.encode()}
        elif kind == 3:
            word = self.rng.choice(SEARCH_SUBJECT_WORDS)
            text = b"UID SEARCH SUBJECT " + quote(word)
            want = {uid for uid, info in infos.items() if word.encode() in info.subject.lower()}
        elif kind == 4:
            text = b"UID SEARCH TEXT " + quote(corpus.RARE_WORD)
            want = {uid for uid, info in infos.items() if info.rare}
        else:
            pivot = infos[self.random_uid()].sent
            text = b"UID SEARCH SENTSINCE " + pivot.strftime("%d-%b-%Y").encode()
            want = {uid for uid, info in infos.items() if info.sent >= pivot}
        reply = await self.timed("SEARCH", text)
        self.apply_untagged(reply, allow_expunge=False)
        checks.expect_search(reply, want, text.decode())

    async def op_append(self) -> None:
        index = self.rng.randrange(self.append_pool)
        data = corpus_info(index).data
        flags = b"(\\Seen) " if self.rng.random() < 0.5 else b""
        text = b"APPEND " + quote(self.mailbox) + b" " + flags + b"{}"
        reply = require_ok(await self.timed("APPEND", text, data), "APPEND")
        self.apply_untagged(reply, allow_expunge=False)
        before = len(self.model.uids)
        await self._fetch_new((self.model.uids[-1] + 1) if self.model.uids else 1, "FETCH NEW")
        if len(self.model.uids) != before + 1:
            raise CheckFailed(f"APPEND: {len(self.model.uids) - before} new messages seen, want 1")
        added = self.model.messages[self.model.uids[-1]]
        if added.index != index or not checks.same_flags(added.flags, {"\\Seen"} if flags else set()):
            raise CheckFailed(f"APPEND: new message is {added.index} {added.flags}, want {index} {flags!r}")

    async def op_expunge(self) -> None:
        uid = self.random_uid()
        seq = self.model.seq_of(uid)
        mark = require_ok(await self.timed("STORE", b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid), "STORE")
        self.apply_untagged(mark, allow_expunge=False)
        reply = require_ok(await self.timed("EXPUNGE", b"EXPUNGE"), "EXPUNGE")
        expunged = [r.number for r in reply.of(b"EXPUNGE")]
        if expunged != [seq]:
            raise CheckFailed(f"EXPUNGE: got {expunged}, want [{seq}] (UID {uid})")
        self.model.remove_seq(seq)

    async def op_noop(self) -> None:
        reply = require_ok(await self.timed("NOOP", b"NOOP"), "NOOP")
        self.apply_untagged(reply, allow_expunge=True)

    async def op_select(self) -> None:
        await self.select()

    async def op_login_cycle(self) -> None:
        """Connect, LOGIN, LOGOUT (the login-rate mode; no SELECT)."""
        client = await ImapClient.connect(self.target.host, self.target.port, self.timeout)
        self.client = client
        login = b"LOGIN " + quote(self.target.user) + b" " + quote(self.target.password)
        require_ok(await self.timed("LOGIN", login), "LOGIN")
        await self.close_session()
