"""APPEND (RFC 3501 §6.3.11), with group commit.

The message is analysed once here (``imapd.message.analyze``; FETCH and
SEARCH later read the result from the store as the ``meta`` blob) and then
stored with its flags and internal date. The tagged OK is returned only
after the store call that holds the message returned, i.e. once it is
committed and synced to disk (the store's durability contract).

Group commit: each durable commit costs one disk sync (milliseconds), so
one commit per APPEND caps the whole server at the disk's sync rate. APPENDs
that arrive within the same reactor turn (from different connections; one
connection runs one command at a time) are therefore stored together, one
``append_many`` per (user, mailbox): one sync for all of them. The first
APPEND of a turn waits one turn (``runtime.sleep(0)``) so that the others,
already read from their sockets, can join it; with the synchronous SQLite
store that turn is exactly when the others arrive, because a commit blocks
the reactor while their data accumulates. A batch that fails (one bad flag
list, a missing mailbox) is retried message by message so each APPEND gets
its own answer; ``append_many`` is atomic, so the failed attempt left
nothing behind.

UIDPLUS (RFC 4315 §3): the tagged OK carries ``[APPENDUID uidvalidity uid]``,
the target's UIDVALIDITY and the UID the message got.

MULTIAPPEND (RFC 3502): an APPEND with several messages is stored with one
``append_many`` of its own, outside the batches: all messages or none
(RFC 3502 §3: when one message cannot be appended, none is), under
consecutive UIDs, reported as a uid-set (``[APPENDUID 38505 3955:3957]``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import cast

from imapd.imap.commands import catalogue
from imapd.imap.commands.context import (
    AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion, Runtime,
)
from imapd.imap.commands.select import store_of, user_of
from imapd.mail.interface import MailStore
from imapd.mail.records import AppendItem
from imapd.imap.session.view import uid_set_text
from imapd.message import analyze
from imapd.core.spool import MessageData
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import ResponseCode
from imapd.imap.wire.values import Atom

# Messages above this size are analysed in a worker thread so a large
# upload does not stall every other connection; small ones are cheaper
# inline than the thread hand-off.
THREAD_ANALYSIS_THRESHOLD = 256 * 1024
# How long a waiting APPEND sleeps between checks when the store call of
# its batch is still running (only with a store that really awaits).
_RECHECK_SECONDS = 0.0005


def analysis_blob(message: MessageData) -> bytes:
    """The stored form of the message's MIME analysis. A large message is a
    ``SpooledLiteral``: it has every bytes method ``analyze`` uses (find,
    count, startswith, slicing, the buffer protocol for ``re``), so it is
    analysed in place rather than copied into one bytes object
    (tests/imap/commands/test_append_spool.py checks that both give the same blob)."""
    return analyze(cast(bytes, message)).to_bytes()


@dataclass(eq=False)
class _Slot:
    """One APPEND waiting in a batch, and its outcome once stored."""

    item: AppendItem
    done: bool = False
    error: BaseException | None = None
    uidvalidity: int = 0  # set once stored (RFC 4315 APPENDUID)
    uid: int = 0


class AppendBatcher:
    """Collects the APPENDs of one reactor turn and stores them with one
    ``append_many`` (one durable commit) per (user, mailbox)."""

    def __init__(self, store: MailStore, runtime: Runtime) -> None:
        self.store = store
        self.runtime = runtime
        self._pending: dict[tuple[str, str], list[_Slot]] = {}

    async def append(self, user: str, mailbox: str, item: AppendItem) -> tuple[int, int]:
        """Store ``item``; returns (UIDVALIDITY, UID) once it is durable, or
        raises its error."""
        slot = _Slot(item)
        leader = not self._pending
        self._pending.setdefault((user, mailbox), []).append(slot)
        delay = 0.0
        while not slot.done:
            await self.runtime.sleep(delay)
            if leader:
                leader = False
                await self._flush()
            delay = _RECHECK_SECONDS
        if slot.error is not None:
            raise slot.error
        return slot.uidvalidity, slot.uid

    async def _flush(self) -> None:
        batches, self._pending = self._pending, {}
        for (user, mailbox), slots in batches.items():
            await self._store_batch(user, mailbox, slots)

    async def _store_batch(self, user: str, mailbox: str, slots: list[_Slot]) -> None:
        try:
            result = await self.store.append_many(user, mailbox, [s.item for s in slots])
        except Exception as error:
            if len(slots) == 1:
                slots[0].error = error
                slots[0].done = True
            else:
                for slot in slots:  # nothing was stored: find out who failed
                    await self._store_batch(user, mailbox, [slot])
            return
        for slot, uid in zip(slots, result.uids):
            slot.uidvalidity, slot.uid = result.uidvalidity, uid
            slot.done = True


_batchers: weakref.WeakKeyDictionary[object, AppendBatcher] = weakref.WeakKeyDictionary()


def batcher_for(store: MailStore, runtime: Runtime) -> AppendBatcher:
    """The process-wide batcher of ``store`` (every connection shares it)."""
    batcher = _batchers.get(store)
    if batcher is None:
        batcher = _batchers[store] = AppendBatcher(store, runtime)
    return batcher


async def handle_append(cmd: c.Append, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.11. A missing target mailbox is ``NO [TRYCREATE]``;
    ``\\Recent`` or an unknown system flag in the flag list is BAD. When the
    target is the selected mailbox the new message is announced with EXISTS
    (and RECENT) by the dispatcher's drain before this OK ("the normal new
    message actions SHOULD occur"); it is ``\\Recent`` in exactly one
    session (§2.3.2)."""
    store = store_of(ctx)
    user = user_of(ctx)
    if cmd.more:
        return await _multiappend(cmd, ctx)
    meta = await _analysis(ctx, cmd.message)
    item = AppendItem(cmd.message, cmd.flags, cmd.internal_date, meta)
    uidvalidity, uid = await batcher_for(store, ctx.runtime).append(user, cmd.mailbox, item)
    return Completion(
        catalogue.OK_APPEND, ResponseCode(catalogue.CODE_APPENDUID, (uidvalidity, uid))
    )


async def _analysis(ctx: CommandContext, message: MessageData) -> bytes:
    if len(message) > THREAD_ANALYSIS_THRESHOLD:
        return await ctx.runtime.in_thread(analysis_blob, message)
    return analysis_blob(message)


async def _multiappend(cmd: c.Append, ctx: CommandContext) -> Completion:
    """MULTIAPPEND (RFC 3502 §3): every message in one atomic, durable
    ``append_many``; APPENDUID with the uid-set (RFC 4315 §3)."""
    items = [
        AppendItem(m.message, m.flags, m.internal_date, await _analysis(ctx, m.message))
        for m in cmd.messages
    ]
    result = await store_of(ctx).append_many(user_of(ctx), cmd.mailbox, items)
    uids = Atom(uid_set_text(result.uids))
    return Completion(
        catalogue.OK_APPEND, ResponseCode(catalogue.CODE_APPENDUID, (result.uidvalidity, uids))
    )


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Append, handle_append, AUTHENTICATED),
)
