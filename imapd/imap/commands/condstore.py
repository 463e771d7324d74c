"""CONDSTORE and QRESYNC (RFC 7162): the session switches and the responses
they add to SELECT, FETCH and the expunging commands.

* **Enabling.** CONDSTORE is on for the rest of the connection once the
  client issues a "CONDSTORE enabling command" (§3.1): ENABLE CONDSTORE or
  QRESYNC, SELECT/EXAMINE with CONDSTORE (or QRESYNC), STATUS
  HIGHESTMODSEQ, FETCH or SEARCH with MODSEQ, FETCH CHANGEDSINCE, STORE
  UNCHANGEDSINCE. From then on every untagged FETCH carries UID and MODSEQ
  (the view's ``condstore`` switch). Enabled while a mailbox is selected,
  the client gets ``* OK [HIGHESTMODSEQ n]`` at once (§3.1.2.1: it had no
  reason to keep the value before). QRESYNC is on only through ENABLE
  (§3.2.3); it implies CONDSTORE and switches EXPUNGE to VANISHED (the
  view's ``qresync`` switch, §3.2.10).
* **HIGHESTMODSEQ** values sent are the view's ``told_modseq``: never ahead
  of an expunge the client has not been told about (a client that stores
  the value and resyncs later would otherwise miss it).
* **Expunge history.** The backend keeps every expunged UID with the MODSEQ
  of its expunge for the life of the mailbox (docs/extensions.md), so
  VANISHED (EARLIER) is exact and costs O(changes), and QRESYNC's optional
  sequence-match data is never needed to narrow it down (§3.2.5.2 allows
  servers with full history to ignore it).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

from imapd.imap.commands import catalogue
from imapd.imap.commands.context import CommandContext
from imapd.core.errors import ImapError
from imapd.mail.records import FlagState
from imapd.core.model import SequenceSet
from imapd.imap.session.state import Session
from imapd.imap.session.view import SelectedView, uid_set_text
from imapd.imap.wire.commands import QResync
from imapd.imap.wire.responses import (
    FetchResponse, Generic, Response, ResponseCode, Status, Untagged,
)
from imapd.imap.wire.values import Atom, PList, Value

CONDSTORE = "CONDSTORE"
QRESYNC = "QRESYNC"
# ``*`` in a UID set matched against expunged UIDs: they may lie above the
# highest UID still in the mailbox, and ``n:*`` means "n and up".
_NO_LIMIT = 2**32 - 1
_EARLIER = PList((Atom("EARLIER"),))


def condstore_on(session: Session) -> bool:
    return CONDSTORE in session.enabled


def qresync_on(session: Session) -> bool:
    return QRESYNC in session.enabled


def apply_modes(session: Session) -> None:
    """Set the selected view's switches from what the session enabled (after
    SELECT/EXAMINE, and as ENABLE's hook)."""
    view = session.selected
    if isinstance(view, SelectedView):
        view.condstore = condstore_on(session)
        view.qresync = qresync_on(session)


def highestmodseq_code(value: int) -> ResponseCode:
    return ResponseCode(catalogue.CODE_HIGHESTMODSEQ, (value,))


def highestmodseq_response(value: int) -> Untagged:
    """``* OK [HIGHESTMODSEQ n] Highest`` (RFC 7162 §3.1.2.1)."""
    return Untagged(Status.OK, catalogue.TEXT_HIGHESTMODSEQ, highestmodseq_code(value))


def enable_condstore(ctx: CommandContext) -> None:
    """A CONDSTORE enabling command ran (RFC 7162 §3.1); see module doc."""
    session = ctx.session
    if condstore_on(session):
        return
    session.enabled.add(CONDSTORE)
    view = session.selected
    if isinstance(view, SelectedView):
        view.condstore = True
        ctx.send(highestmodseq_response(view.told_modseq))


async def expunge_completion_code(
    ctx: CommandContext, view: SelectedView,
) -> ResponseCode | None:
    """``[HIGHESTMODSEQ n]`` for the tagged OK of EXPUNGE, UID EXPUNGE and
    MOVE once CONDSTORE is on (RFC 7162 §3.2.10's example): VANISHED and
    EXPUNGE carry no MODSEQ, so this is how the client learns how far it is
    synchronised. The view is caught up first (the command's own expunges
    rang the doorbell), and the dispatcher drains every pending change
    before this reply (these commands may send expunges), so the view's
    value is what the client will have been told."""
    if not condstore_on(ctx.session):
        return None
    if view.watch.rang:
        await view.catch_up()
    return highestmodseq_code(view.highestmodseq)


def modseq_value(modseq: int) -> PList:
    """The FETCH ``MODSEQ (n)`` value (RFC 7162 §3.1.4.2)."""
    return PList((modseq,))


def vanished_earlier(uids: Sequence[int]) -> Generic:
    """``* VANISHED (EARLIER) uid-set`` (RFC 7162 §3.2.10)."""
    return Generic("VANISHED", (_EARLIER, Atom(uid_set_text(uids))))


class Membership:
    """Fast ``n in set`` for a client's sequence set: its ranges merged and
    sorted once, then one binary search per number (a known-UID list can
    have thousands of ranges, and it is tested once per change)."""

    def __init__(self, seqset: SequenceSet, largest: int) -> None:
        self._lows: list[int] = []
        self._highs: list[int] = []
        for low, high in sorted(r.bounds(largest) for r in seqset.ranges):
            if self._highs and low <= self._highs[-1] + 1:
                self._highs[-1] = max(self._highs[-1], high)
            else:
                self._lows.append(low)
                self._highs.append(high)

    def __contains__(self, number: int) -> bool:
        i = bisect_right(self._lows, number) - 1
        return i >= 0 and number <= self._highs[i]


# --- CHANGEDSINCE and VANISHED for FETCH (§3.1.4.1, §3.2.6) -----------------------

def _check_numbers(view: SelectedView, seqset: SequenceSet) -> None:
    """Sequence numbers above EXISTS are a client error, as for any FETCH."""
    count = view.exists
    for span in seqset.ranges:
        for number in (span.start, span.end):
            if number is not None and not 1 <= number <= count:
                raise ImapError.bad(f"Invalid message sequence number {number}")


async def changed_pairs(
    view: SelectedView, seqset: SequenceSet, uid: bool, since: int,
) -> list[tuple[int, int]]:
    """(seq, uid) of the messages in the set whose MODSEQ is above
    ``since``, ascending: one indexed query over the changes, so cost
    follows the number of changes, not the size of the set or mailbox."""
    if seqset.saved:
        saved = {u for _, u in view.resolve(seqset, uid)}
        states = await view.watch.changes_since(since)
        return [(s, u) for s, u in ((view.seq_of(st.uid), st.uid) for st in states)
                if s is not None and u in saved]
    if uid:
        view.uid_mode = True
    else:
        _check_numbers(view, seqset)
    wanted = Membership(seqset, (view.uids[-1] if view.exists else 0) if uid else view.exists)
    pairs: list[tuple[int, int]] = []
    for state in await view.watch.changes_since(since):
        seq = view.seq_of(state.uid)
        if seq is None:
            continue  # added by another session and not announced yet
        if (state.uid if uid else seq) in wanted:
            pairs.append((seq, state.uid))
    return pairs


async def vanished_in_set(
    view: SelectedView, seqset: SequenceSet, since: int,
) -> list[int]:
    """The UIDs of the set expunged with a MODSEQ above ``since`` (UID FETCH
    ... (CHANGEDSINCE n VANISHED), §3.2.6), leaving out those the view
    still holds (their expunge will be announced as plain VANISHED)."""
    expunged = await view.watch.expunged_since(since)
    if seqset.saved:
        saved = set(view.saved_uids)
        return [u for u in expunged if u in saved and view.seq_of(u) is None]
    wanted = Membership(seqset, _NO_LIMIT)
    return [u for u in expunged if u in wanted and view.seq_of(u) is None]


# --- SELECT / EXAMINE (§3.1.8, §3.2.5) -----------------------------------------------

def check_select_params(ctx: CommandContext, qresync: QResync | None) -> None:
    """Refuse what must be refused before the current mailbox is closed:
    QRESYNC without ENABLE QRESYNC is BAD (§3.2.5), and so is sequence
    match data whose two sets differ in size (§3.2.5.2)."""
    if qresync is None:
        return
    if not qresync_on(ctx.session):
        raise ImapError.bad(catalogue.BAD_QRESYNC_NOT_ENABLED)
    if qresync.seq_match is not None:
        sequences, uids = qresync.seq_match
        if _set_size(sequences) != _set_size(uids):
            raise ImapError.bad(catalogue.BAD_SEQ_MATCH_SIZES)


def _set_size(seqset: SequenceSet) -> int:
    """Numbers in a ``*``-free set, counting overlaps once (bounded by the
    ranges, not the numbers, so a huge range costs nothing)."""
    spans = sorted(r.bounds(0) for r in seqset.ranges)
    total = last = 0
    for low, high in spans:
        low = max(low, last + 1)
        if high >= low:
            total += high - low + 1
            last = high
    return total


async def resync(view: SelectedView, params: QResync) -> list[Response]:
    """The QRESYNC part of SELECT/EXAMINE (§3.2.5.2), sent after the usual
    selection responses: ``VANISHED (EARLIER)`` for the messages expunged
    since the client's MODSEQ, then ``FETCH (UID FLAGS MODSEQ)`` for those
    changed since, both limited to the client's known UIDs when it sent them.
    A different UIDVALIDITY means the client's cache is void: the remaining
    parameters are ignored (plain SELECT).

    Called before any selection response is sent. The view's state was
    read first (SELECT's snapshot) and another session may have committed
    since: answered from a second, separate read, a message of the view
    expunged meanwhile would be counted in EXISTS yet be neither fetched
    nor reported vanished, and a change read but not absorbed would be
    told again, unsolicited, numbered in a state the client cannot place
    (issue 14: with PostgreSQL a commit is visible to reads before its
    doorbell rings here). So the view absorbs every change (nothing was
    told yet) from the very read that answers the resynchronisation
    (``SelectedView.absorb_history``): the FETCH and VANISHED responses
    describe exactly the state whose EXISTS, UIDNEXT and HIGHESTMODSEQ
    the selection announces (§3.1.2.1, §3.2.5.2)."""
    if params.uidvalidity != view.uidvalidity:
        return []
    known = None if params.known_uids is None else Membership(params.known_uids, _NO_LIMIT)
    states, gone = await view.absorb_history(params.modseq)
    responses: list[Response] = []
    expunged = [
        uid for uid in gone if (known is None or uid in known) and view.seq_of(uid) is None
    ]
    if expunged:
        responses.append(vanished_earlier(expunged))
    for state in states:
        seq = view.seq_of(state.uid)
        if seq is not None and (known is None or state.uid in known):
            responses.append(flags_fetch(view, seq, state))
    return responses


def flags_fetch(view: SelectedView, seq: int, state: FlagState) -> FetchResponse:
    """``* seq FETCH (UID u FLAGS (...) MODSEQ (m))`` (§3.2.5.2's example)."""
    items: tuple[tuple[str, Value], ...] = (
        ("UID", state.uid),
        ("FLAGS", view.flags_value(state.uid, state.flags)),
        ("MODSEQ", modseq_value(state.modseq)),
    )
    return FetchResponse(seq, items)
