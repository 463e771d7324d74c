"""The reference storage engine: everything in memory (``MailBackend``).

It implements ``imapd.mail.backend.MailBackend`` as literally as possible
and is what the contract suite (``tests/mail/contract/``) and the mail-core
tests run on. Nothing is durable beyond the process: "committed" means
applied to the shared ``MemoryData``. The coroutines never await, so every
call is atomic; each validates before its first mutation, so a call that
raised changed nothing. Rings (``MemoryFeed``) reach every backend over the
same ``MemoryData`` before the mutating call returns.
"""

from __future__ import annotations

import datetime
from typing import Iterator, Sequence

from imapd.core.errors import ImapError
from imapd.mail import names
from imapd.mail.backend import (
    AddMailbox, ChangeFeed, RemoveMailbox, Changes, MailBackend, MailboxEntry, MailboxRef, QuotaInfo,
    TreeOp, TreePlan,
)
from imapd.mail.errors import (
    AlreadyExists, Cannot, InvalidFlag, NoSuchMailbox, OverLimit, OverQuota, Unavailable,
)
from imapd.mail.flags import SEEN_BIT, DELETED_BIT, FlagOp, apply_op, split_flags
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MailboxSnapshot, MailboxStatus,
    MessageBody, MessageRecord, StoreResult,
)
from imapd.message.sortfacts import facts_for
from imapd.storage.memory.data import (
    MAX_KEYWORDS_PER_MAILBOX, MAX_UID, Mailbox, MemoryData, Message, User,
)
from imapd.storage.memory.feed import MemoryFeed
from imapd.storage.memory.tree import apply_tree_ops

STREAM_CHUNK = 64 * 1024


def _split(flags: Sequence[str]) -> tuple[int, tuple[str, ...]]:
    """(system bits, keywords); ``\\Recent``, unknown system flags and
    malformed keywords are InvalidFlag (RFC 3501 §2.3.2)."""
    try:
        return split_flags(flags)
    except ImapError as error:
        raise InvalidFlag(error.text) from None


def _respell(
    mailbox: Mailbox, keywords: tuple[str, ...], define: bool, pending: dict[str, str]
) -> tuple[str, ...]:
    """Keywords in the mailbox's spelling (the first one stored wins). With
    ``define``, new ones are recorded in ``pending`` (applied by the caller
    after validation, so a failing call defines nothing); OverLimit past
    ``MAX_KEYWORDS_PER_MAILBOX``."""
    result: list[str] = []
    for keyword in keywords:
        folded = keyword.lower()
        known = mailbox.keywords.get(folded) or pending.get(folded)
        if known is None and define:
            if len(mailbox.keywords) + len(pending) >= MAX_KEYWORDS_PER_MAILBOX:
                raise OverLimit("Too many keywords in this mailbox")
            pending[folded] = known = keyword
        result.append(known or keyword)
    return tuple(result)


def _wanted(mailbox: Mailbox, uids: Sequence[int] | None) -> list[Message]:
    """The existing messages among ``uids`` (all when None), ascending."""
    if uids is None:
        return list(mailbox.messages.values())
    found = (mailbox.messages.get(uid) for uid in sorted(set(uids)))
    return [m for m in found if m is not None]


def _now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


class MemoryBackend:
    """``MailBackend`` over a ``MemoryData`` (a fresh one when None)."""

    def __init__(self, data: MemoryData | None = None) -> None:
        self.data = data if data is not None else MemoryData()
        self._feed = MemoryFeed()
        self.feed: ChangeFeed = self._feed
        self.data.feeds.append(self._feed)
        self.closed = False

    # --- helpers -----------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise Unavailable("the store is closed")

    def _mailbox(self, ref: MailboxRef) -> Mailbox:
        """The selectable mailbox ``ref`` names, or NoSuchMailbox."""
        self._check_open()
        mailbox = self.data.by_id.get(ref.id)
        if mailbox is None or not mailbox.selectable or mailbox.uidvalidity != ref.uidvalidity:
            raise NoSuchMailbox("The mailbox does not exist (deleted or re-created)")
        return mailbox

    def _claim(self, mailbox: Mailbox, uidnext: int) -> tuple[int, int] | None:
        """Claim every unclaimed UID below ``uidnext`` (RFC 3501 §2.3.2)."""
        upto = min(uidnext, mailbox.uidnext)
        if mailbox.recent_from >= upto:
            return None
        low = mailbox.recent_from
        mailbox.recent_from = upto
        return low, upto - 1

    @staticmethod
    def _entry(mailbox: Mailbox) -> MailboxEntry:
        return MailboxEntry(mailbox.id, mailbox.name, mailbox.selectable, mailbox.uidvalidity,
                            mailbox.special_use)

    def _usage(self, user: str) -> QuotaInfo:
        record = self.data.users.get(user)
        if record is None:
            return QuotaInfo(0, None, 0, None)
        boxes = record.mailboxes.values()
        return QuotaInfo(
            sum(len(m.data) for box in boxes for m in box.messages.values()),
            record.storage_limit,
            sum(len(box.messages) for box in boxes),
            record.messages_limit,
        )

    def _check_quota(self, user: str, size: int, count: int) -> None:
        """OverQuota (RFC 9208 §5) if adding ``count`` messages of ``size``
        bytes would pass one of the user's limits; called before any
        mutation, and nothing awaits in between (atomic in this engine)."""
        record = self.data.users.get(user)
        if record is None or (record.storage_limit is None and record.messages_limit is None):
            return
        usage = self._usage(user)
        if record.storage_limit is not None and usage.storage_used + size > record.storage_limit:
            raise OverQuota("Over the storage quota")
        if record.messages_limit is not None and usage.messages_used + count > record.messages_limit:
            raise OverQuota("Over the message quota")

    async def quota(self, user: str) -> QuotaInfo:
        self._check_open()
        return self._usage(user)

    async def set_quota(self, user: str, storage: int | None, messages: int | None) -> None:
        self._check_open()
        record = self.data.user(user)
        record.storage_limit, record.messages_limit = storage, messages

    # --- users and trees ---------------------------------------------------

    async def ensure_user(
        self, user: str, defaults: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        """INBOX always (RFC 3501 §5.1); each default once per user ever
        (one added to the configuration later reaches existing users, one
        the user deleted is not recreated), selectable and subscribed, with
        its missing superiors. A special use some mailbox already has is not
        given out again; an existing mailbox by the default's name gets the
        attribute added (RFC 6154)."""
        self._check_open()
        record = self.data.user(user)
        todo = [d for d in defaults if d not in record.provisioned]
        if not todo and names.INBOX in record.mailboxes:
            return
        ops: list[TreeOp] = []
        present = set(record.mailboxes)
        if names.INBOX not in present:
            ops.append(AddMailbox(names.INBOX, True, None))
            present.add(names.INBOX)
        taken = {u for box in record.mailboxes.values() for u in (box.special_use or "").split()}
        for name, special_use in todo:
            record.provisioned.add((name, special_use))
            if special_use is not None and special_use in taken:
                continue
            existing = record.mailboxes.get(name)
            if existing is not None and existing.selectable:
                if special_use is not None:
                    existing.special_use = " ".join([*(existing.special_use or "").split(), special_use])
            else:
                if existing is not None:
                    ops.append(RemoveMailbox(name))
                    present.discard(name)
                for superior in [*names.ancestors(name), name]:
                    if superior not in present:
                        use = special_use if superior == name else None
                        ops.append(AddMailbox(superior, True, use))
                        present.add(superior)
            record.subscriptions.add(name)
            if special_use is not None:
                taken.add(special_use)
        rung = apply_tree_ops(self.data, record, ops)
        self._ring_all(rung)

    async def mailboxes(self, user: str) -> list[MailboxEntry]:
        self._check_open()
        record = self.data.users.get(user)
        if record is None:
            return []
        return [self._entry(record.mailboxes[n]) for n in sorted(record.mailboxes)]

    async def lookup(self, user: str, name: str) -> MailboxEntry | None:
        self._check_open()
        record = self.data.users.get(user)
        mailbox = None if record is None else record.mailboxes.get(name)
        return None if mailbox is None else self._entry(mailbox)

    async def edit_tree(self, user: str, plan: TreePlan) -> None:
        """Run ``plan`` on the current tree and apply its edits atomically
        (``tree.apply_tree_ops`` checks them all before changing anything)."""
        self._check_open()
        record = self.data.user(user)
        entries = [self._entry(record.mailboxes[n]) for n in sorted(record.mailboxes)]
        ops = plan(entries)
        self._ring_all(apply_tree_ops(self.data, record, ops))

    def _ring_all(self, rung: Sequence[tuple[int, int]]) -> None:
        for mailbox_id, modseq in rung:
            self.data.ring(mailbox_id, modseq)

    async def subscriptions(self, user: str) -> list[str]:
        self._check_open()
        record = self.data.users.get(user)
        return sorted(record.subscriptions) if record is not None else []

    async def set_subscribed(self, user: str, name: str, subscribed: bool) -> None:
        self._check_open()
        record: User = self.data.user(user)
        if subscribed:
            record.subscriptions.add(name)
        else:
            record.subscriptions.discard(name)

    # --- whole accounts ----------------------------------------------------

    def _drop(self, user: str) -> list[tuple[int, int]]:
        """Forget ``user``'s record and mailboxes; the rings to make."""
        record = self.data.users.pop(user, None)
        if record is None:
            return []
        for mailbox in record.mailboxes.values():
            self.data.by_id.pop(mailbox.id, None)
        return [(mailbox.id, 0) for mailbox in record.mailboxes.values()]

    async def delete_account(self, user: str) -> bool:
        """The store-wide UIDVALIDITY counter is kept, so a new account of
        this name gets values the old one never had (``MemoryData``)."""
        self._check_open()
        had = user in self.data.users
        self._ring_all(self._drop(user))
        return had

    async def rename_account(self, old: str, new: str) -> bool:
        self._check_open()
        if old == new:
            raise Cannot("An account cannot be renamed to itself")
        record = self.data.users.get(old)
        if record is None:
            return False
        target = self.data.users.get(new)
        if target is not None and any(box.messages for box in target.mailboxes.values()):
            raise AlreadyExists(f"Account {new} has mail")
        rung = self._drop(new)
        del self.data.users[old]
        record.name = new
        for mailbox in record.mailboxes.values():
            mailbox.user = new
            rung.append((mailbox.id, 0))
        self.data.users[new] = record
        self._ring_all(rung)
        return True

    # --- one mailbox -------------------------------------------------------

    async def status(self, ref: MailboxRef) -> MailboxStatus:
        mailbox = self._mailbox(ref)
        messages = mailbox.messages.values()
        return MailboxStatus(
            name=mailbox.name,
            messages=len(mailbox.messages),
            recent=sum(1 for m in messages if m.uid >= mailbox.recent_from),
            uidnext=mailbox.uidnext,
            uidvalidity=mailbox.uidvalidity,
            unseen=sum(1 for m in messages if not m.bits & SEEN_BIT),
            highestmodseq=mailbox.highestmodseq,
            size=sum(len(m.data) for m in messages),
            deleted=sum(1 for m in messages if m.bits & DELETED_BIT),
            deleted_size=sum(len(m.data) for m in messages if m.bits & DELETED_BIT),
        )

    async def snapshot(self, ref: MailboxRef) -> tuple[MailboxSnapshot, int]:
        mailbox = self._mailbox(ref)
        unseen = (m.uid for m in mailbox.messages.values() if not m.bits & SEEN_BIT)
        keywords = tuple(mailbox.keywords[k] for k in sorted(mailbox.keywords))
        snapshot = MailboxSnapshot(
            uidvalidity=mailbox.uidvalidity,
            uidnext=mailbox.uidnext,
            highestmodseq=mailbox.highestmodseq,
            uids=tuple(mailbox.messages),
            recent=frozenset(),
            keywords=keywords,
            first_unseen=next(unseen, None),
        )
        return snapshot, mailbox.recent_from

    async def claim_recent(self, ref: MailboxRef, uidnext: int) -> tuple[int, int] | None:
        return self._claim(self._mailbox(ref), uidnext)

    async def append(
        self, ref: MailboxRef, items: Sequence[AppendItem], claim: bool = False
    ) -> AppendResult:
        mailbox = self._mailbox(ref)
        if not items:
            return AppendResult(mailbox.uidvalidity, ())
        if mailbox.uidnext + len(items) - 1 > MAX_UID:
            raise OverLimit("No more UIDs in this mailbox")
        self._check_quota(mailbox.user, sum(len(i.message) for i in items), len(items))
        pending: dict[str, str] = {}
        prepared: list[tuple[int, tuple[str, ...], datetime.datetime]] = []
        for item in items:
            bits, keywords = _split(item.flags)
            date = item.internal_date if item.internal_date is not None else _now()
            if date.utcoffset() is None:
                raise ValueError("internal_date must be timezone-aware")
            prepared.append((bits, _respell(mailbox, keywords, True, pending), date))
        mailbox.keywords.update(pending)
        modseq = mailbox.bump()
        uids: list[int] = []
        for item, (bits, keywords, date) in zip(items, prepared):
            uid = mailbox.uidnext
            mailbox.uidnext += 1
            data = bytes(item.message)
            mailbox.messages[uid] = Message(uid, bits, keywords, date, data, item.meta, modseq,
                                            facts_for(data, item.meta))
            uids.append(uid)
        claimed = self._claim(mailbox, mailbox.uidnext) if claim else None
        self.data.ring(mailbox.id, modseq)
        return AppendResult(mailbox.uidvalidity, tuple(uids), claimed)

    async def fetch_records(
        self, ref: MailboxRef, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        mailbox = self._mailbox(ref)
        return [
            MessageRecord(m.uid, m.flags, m.internal_date, len(m.data), m.modseq,
                          m.meta if with_meta else b"")
            for m in _wanted(mailbox, uids)
        ]

    async def sort_facts(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        return {m.uid: m.facts for m in _wanted(self._mailbox(ref), uids) if m.facts is not None}

    async def fetch_flags(
        self, ref: MailboxRef, uids: Sequence[int] | None = None
    ) -> list[FlagState]:
        return [m.state() for m in _wanted(self._mailbox(ref), uids)]

    async def read_message(
        self, ref: MailboxRef, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        message = self._mailbox(ref).messages.get(uid)
        if message is None:
            return None
        size = len(message.data)
        start = min(max(offset, 0), size)
        end = size if length is None else min(size, start + max(length, 0))
        return message.data[start:end]

    async def read_messages(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        return {m.uid: m.data for m in _wanted(self._mailbox(ref), uids)}

    async def open_message(self, ref: MailboxRef, uid: int) -> MessageBody | None:
        message = self._mailbox(ref).messages.get(uid)
        if message is None:
            return None
        data = message.data  # immutable bytes: an expunge cannot cut it short

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), STREAM_CHUNK):
                yield data[start:start + STREAM_CHUNK]

        return MessageBody(len(data), chunks)

    async def store_flags(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        op: FlagOp,
        flags: Sequence[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        """STORE (RFC 3501 §6.4.6), UNCHANGEDSINCE (RFC 7162 §3.1.3): as the
        SQLite engine, ``states`` holds every message that passed the test,
        changed or not; only changed ones get the one new MODSEQ."""
        mailbox = self._mailbox(ref)
        bits, keywords = _split(flags)
        pending: dict[str, str] = {}
        keywords = _respell(mailbox, keywords, op is not FlagOp.REMOVE, pending)
        modified: list[int] = []
        updates: list[tuple[Message, int, tuple[str, ...]]] = []
        for message in _wanted(mailbox, uids):
            if unchangedsince is not None and message.modseq > unchangedsince:
                modified.append(message.uid)
                continue
            new_bits, new_keywords = apply_op(op, (message.bits, message.keywords),
                                              (bits, keywords))
            if new_bits != message.bits or set(new_keywords) != set(message.keywords):
                updates.append((message, new_bits, new_keywords))
        mailbox.keywords.update(pending)
        changed = frozenset(m.uid for m, _, _ in updates)
        if updates:
            modseq = mailbox.bump()
            for message, new_bits, new_keywords in updates:
                message.bits, message.keywords, message.modseq = new_bits, new_keywords, modseq
        states = tuple(m.state() for m in _wanted(mailbox, uids) if m.uid not in modified)
        if updates:
            self.data.ring(mailbox.id, mailbox.highestmodseq)
        return StoreResult(states, changed, tuple(modified))

    async def expunge(self, ref: MailboxRef, uids: Sequence[int] | None = None) -> list[int]:
        mailbox = self._mailbox(ref)
        gone = [m.uid for m in _wanted(mailbox, uids) if m.bits & DELETED_BIT]
        if gone:
            modseq = self._remove(mailbox, gone)
            self.data.ring(mailbox.id, modseq)
        return gone

    async def store_and_expunge(
        self, ref: MailboxRef, uids: Sequence[int], flags: Sequence[str],
        expunge: Sequence[int],
    ) -> list[int]:
        """POP3's UPDATE (RFC 1939 §6): see the contract; one MODSEQ."""
        mailbox = self._mailbox(ref)
        bits, keywords = _split(flags)
        pending: dict[str, str] = {}
        keywords = _respell(mailbox, keywords, True, pending)
        gone = [m.uid for m in _wanted(mailbox, expunge)]
        updates: list[tuple[Message, int, tuple[str, ...]]] = []
        for message in _wanted(mailbox, [u for u in uids if u not in set(gone)]):
            new_bits, new_keywords = apply_op(FlagOp.ADD, (message.bits, message.keywords),
                                              (bits, keywords))
            if new_bits != message.bits or set(new_keywords) != set(message.keywords):
                updates.append((message, new_bits, new_keywords))
        mailbox.keywords.update(pending)
        if not updates and not gone:
            return []
        modseq = mailbox.bump()
        for message, new_bits, new_keywords in updates:
            message.bits, message.keywords, message.modseq = new_bits, new_keywords, modseq
        self._remove(mailbox, gone, modseq)
        self.data.ring(mailbox.id, modseq)
        return gone

    @staticmethod
    def _remove(mailbox: Mailbox, uids: Sequence[int], modseq: int | None = None) -> int:
        """Remove messages, remembering them as expunged at one MODSEQ."""
        if modseq is None:
            modseq = mailbox.bump()
        for uid in uids:
            del mailbox.messages[uid]
            mailbox.expunged.append((uid, modseq))
        return modseq

    async def copy(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        target: MailboxRef,
        move: bool = False,
        claim: bool = False,
    ) -> CopyResult:
        """COPY / MOVE (RFC 3501 §6.4.7, RFC 6851 §3.1) in one step. MOVE
        into the mailbox itself gives the new copies and the expunge one
        MODSEQ (one call, one MODSEQ per mailbox)."""
        source = self._mailbox(ref)
        destination = self._mailbox(target)
        messages = _wanted(source, uids)
        if not messages:
            return CopyResult(destination.uidvalidity, ())
        if destination.uidnext + len(messages) - 1 > MAX_UID:
            raise OverLimit("No more UIDs in the target mailbox")
        if not (move and source.user == destination.user):
            self._check_quota(destination.user, sum(len(m.data) for m in messages), len(messages))
        pending: dict[str, str] = {}
        respelled = [_respell(destination, m.keywords, True, pending) for m in messages]
        destination.keywords.update(pending)
        modseq = destination.bump()
        pairs: list[tuple[int, int]] = []
        for message, keywords in zip(messages, respelled):
            uid = destination.uidnext
            destination.uidnext += 1
            destination.messages[uid] = Message(uid, message.bits, keywords,
                                                message.internal_date, message.data,
                                                message.meta, modseq, message.facts)
            pairs.append((message.uid, uid))
        source_modseq = 0
        if move:
            same = source is destination
            source_modseq = self._remove(source, [m.uid for m in messages],
                                         modseq if same else None)
        claimed = self._claim(destination, destination.uidnext) if claim else None
        if move and source is not destination:
            self.data.ring(source.id, source_modseq)
        self.data.ring(destination.id, modseq)
        return CopyResult(destination.uidvalidity, tuple(pairs), claimed)

    async def text_candidates(
        self, ref: MailboxRef, scope: str, folded: str
    ) -> frozenset[int] | None:
        """No index here: the caller evaluates every message."""
        self._mailbox(ref)
        return None

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        """See ``Changes``; a vanished mailbox is ``Changes(exists=False)``."""
        self._check_open()
        mailbox = self.data.by_id.get(ref.id)
        if mailbox is None or not mailbox.selectable or mailbox.uidvalidity != ref.uidvalidity:
            return Changes(exists=False)
        changed: list[FlagState] = []
        added: list[FlagState] = []
        for message in mailbox.messages.values():
            if message.uid >= uidnext:
                added.append(message.state())
            elif message.modseq > modseq:
                changed.append(message.state())
        expunged = sorted((u, m) for u, m in mailbox.expunged if m > modseq)
        return Changes(
            exists=True,
            name=mailbox.name,
            highestmodseq=mailbox.highestmodseq,
            uidnext=mailbox.uidnext,
            recent_from=mailbox.recent_from,
            changed=tuple(changed),
            added=tuple(added),
            expunged=tuple(expunged),
        )

    async def close(self) -> None:
        """Stop this backend's feed; the shared data stays for the others."""
        if self.closed:
            return
        self.closed = True
        self._feed.close()
        if self._feed in self.data.feeds:
            self.data.feeds.remove(self._feed)


def _conforms(backend: MemoryBackend) -> MailBackend:
    return backend  # mypy checks that MemoryBackend implements the protocol
