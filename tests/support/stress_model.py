"""What one stress client believes about its selected mailbox, built only
from what the server told it (RFC 3501 §7), with the checks every single
response must pass.

The model is a list of messages by sequence number (UID and flags each
possibly unknown), the last FLAGS and PERMANENTFLAGS lists, EXISTS (the
list's length) and the last RECENT count. Rules applied (RFC 3501):

* EXISTS (§7.3.1) only grows the list; a smaller EXISTS is an error.
* EXPUNGE n (§7.4.1) removes n and renumbers; n must be in range and it must
  not arrive while a FETCH, STORE or SEARCH (by sequence number) runs.
* FETCH n (§7.4.2): n in range; every keyword in FLAGS must be in the last
  FLAGS list (§7.2.6) and allowed by PERMANENTFLAGS (§7.1) on a read-write
  selection; a seq's UID never changes and UIDs ascend with seq (§2.3.1.1).
* RECENT (§7.3.2) ≤ EXISTS once a command completes.
* VANISHED (RFC 7162 §3.2.10) removes messages by UID.

Flag names are compared case-insensitively (casefolded), as keywords are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from tests.support.stress_wire import Response, Token, atoms, fetch_items

RECENT = "\\recent"
WILDCARD = "\\*"
# Commands during which EXPUNGE must not be sent (RFC 3501 §7.4.1).
NO_EXPUNGE_DURING = {"FETCH", "STORE", "SEARCH"}

Report = Callable[[str, str], None]  # (kind, detail)


@dataclass
class Message:
    uid: int | None = None
    flags: frozenset[str] | None = None  # casefolded, without \Recent
    recent: bool | None = None  # \Recent seen in the last FLAGS fetched
    modseq: int = 0
    updated: int = 0  # MailboxModel.flag_updates when a FETCH last set the flags


def fold(flags: list[str]) -> frozenset[str]:
    return frozenset(flag.casefold() for flag in flags)


def keywords(flags: frozenset[str]) -> set[str]:
    return {flag for flag in flags if not flag.startswith("\\")}


def uid_set_members(text: str, top: int) -> list[int]:
    """The numbers of a sequence set (RFC 3501 §9 ``sequence-set``), with
    ``*`` standing for ``top``; empty if ``top`` is 0 and ``*`` is used."""
    out: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition(":")
        first = top if low == "*" else int(low)
        last = first if not high else (top if high == "*" else int(high))
        first, last = min(first, last), max(first, last)
        out.update(range(max(first, 1), last + 1))
    return sorted(out)


@dataclass
class MailboxModel:
    """One client's picture of its selected mailbox."""

    report: Report
    messages: list[Message] = field(default_factory=list)
    recent: int | None = None
    flags_list: frozenset[str] | None = None
    permanent: frozenset[str] | None = None
    readonly: bool = False
    selected: bool = False
    uidvalidity: int = 0
    highestmodseq: int = 0
    closed_pending: bool = False  # RFC 7162 §3.2.11: old mailbox's responses until [CLOSED]
    resync_base: dict[int, Message] | None = None  # QRESYNC SELECT: what the client knew
    # During a QRESYNC SELECT: the EXISTS of its own data (the state VANISHED
    # (EARLIER) and its FETCHes describe); the counts of the resynchronised
    # state once built, for the check at the tagged reply.
    resync_exists: int | None = None
    resync_counts: tuple[int, int, int, int] | None = None
    seen_in_select: set[str] = field(default_factory=set)
    recent_reported: tuple[int | None, int] = (None, 0)
    flag_updates: int = 0  # FETCH FLAGS responses applied so far
    permanent_reported: set[str] = field(default_factory=set)

    # --- bookkeeping ----------------------------------------------------------

    def reset(self, *, after_closed: bool) -> None:
        """SELECT/EXAMINE starts: forget the old mailbox (RFC 3501 §6.3.1)."""
        self.messages = []
        self.recent = None
        self.flags_list = self.permanent = None
        self.selected = False
        self.closed_pending = after_closed
        self.seen_in_select = set()
        self.resync_exists = None
        self.resync_counts = None

    def uids(self) -> list[int | None]:
        return [message.uid for message in self.messages]

    def known_uids(self) -> list[int]:
        return [message.uid for message in self.messages if message.uid is not None]

    def by_uid(self) -> dict[int, Message]:
        return {m.uid: m for m in self.messages if m.uid is not None}

    # --- untagged responses -----------------------------------------------

    def untagged(self, response: Response, command: str) -> None:
        """Apply one untagged response; ``command`` is the name of the
        command in progress (``UID FETCH`` etc.)."""
        if self.closed_pending:
            if response.code == "CLOSED":
                self.closed_pending = False
            return
        handler = _HANDLERS.get(response.word)
        if response.word in ("OK", "NO", "BAD") and response.code:
            self.code(response)
        elif handler is not None:
            self.seen_in_select.add(response.word)
            handler(self, response, command)

    def code(self, response: Response) -> None:
        """A response code (RFC 3501 §7.1; HIGHESTMODSEQ: RFC 7162 §3.1.2.1)."""
        code, args = response.code, response.code_args
        self.seen_in_select.add(code or "")
        if code == "PERMANENTFLAGS" and args and isinstance(args[0], list):
            self.permanent = fold(atoms(args[0]))
        elif code == "HIGHESTMODSEQ" and args and isinstance(args[0], str):
            value = int(args[0])
            if value < self.highestmodseq and self.selected:
                self.report("modseq-decreased", f"HIGHESTMODSEQ {value} after {self.highestmodseq}")
            self.highestmodseq = value
        elif code == "UIDVALIDITY" and args and isinstance(args[0], str):
            self.uidvalidity = int(args[0])

    def _exists(self, response: Response, command: str) -> None:
        count = response.number or 0
        if self.resync_base is not None:
            if self.resync_exists is None:
                self.resync_exists = count
            else:  # a later change (doorbell during the SELECT): resync first
                self.merge_resync()
        if count < len(self.messages):
            self.report("exists-shrank", f"* {count} EXISTS with {len(self.messages)} messages ({command})")
            del self.messages[count:]
        self.messages.extend(Message() for _ in range(count - len(self.messages)))

    def _recent(self, response: Response, command: str) -> None:
        self.recent = response.number or 0

    def _flags(self, response: Response, command: str) -> None:
        if response.data and isinstance(response.data[0], list):
            self.flags_list = fold(atoms(response.data[0]))

    def _expunge(self, response: Response, command: str) -> None:
        number = response.number or 0
        if command in NO_EXPUNGE_DURING:
            self.report("expunge-during-" + command.lower(), f"* {number} EXPUNGE during {command}")
        if not 1 <= number <= len(self.messages):
            self.report("expunge-range", f"* {number} EXPUNGE with {len(self.messages)} messages")
            return
        del self.messages[number - 1]

    def _vanished(self, response: Response, command: str) -> None:
        """RFC 7162 §3.2.10; EARLIER ones are handled by the QRESYNC resync."""
        data = response.data
        if data and isinstance(data[0], list):
            # (EARLIER): UIDs gone since the client's MODSEQ (QRESYNC SELECT).
            text = data[1] if len(data) > 1 and isinstance(data[1], str) else ""
            base = self.resync_base if self.resync_base is not None else {}
            for uid in uid_set_members(text, 0) if text else []:
                base.pop(uid, None)
            return
        if self.resync_base is not None:
            # A change after the resynchronised state (the doorbell rang
            # during the SELECT): its sequence numbers count from that state.
            self.merge_resync()
        if command in NO_EXPUNGE_DURING:
            self.report("vanished-during-" + command.lower(), f"{response.raw!r} during {command}")
        text = data[0] if data and isinstance(data[0], str) else ""
        gone = set(uid_set_members(text, 0)) if text else set()
        known = {m.uid for m in self.messages if m.uid is not None}
        if gone & known:
            self.messages = [m for m in self.messages if m.uid not in gone]
        for uid in sorted(gone - known):
            self._remove_unknown(uid)

    def _remove_unknown(self, uid: int) -> None:
        """VANISHED for a UID the client does not know: one of the messages
        whose UID is unknown and would sort there (they are
        indistinguishable) goes; if there is none, the server named a
        message the client was never told about."""
        uids = self.uids()
        lower = 0
        for index, known in enumerate(uids):
            if known is not None and known < uid:
                lower = index + 1
            elif known is not None:
                break
        upper = lower
        while upper < len(uids) and uids[upper] is None:
            upper += 1
        if upper == lower:
            self.report("vanished-unknown", f"VANISHED {uid}: no such message in the client's view")
            return
        del self.messages[lower]
        for index in range(lower, upper - 1):
            self.messages[index].flags = None  # which one went is unknowable

    def _fetch(self, response: Response, command: str) -> None:
        number = response.number or 0
        if not 1 <= number <= len(self.messages):
            self.report("fetch-range", f"{response.raw!r} with {len(self.messages)} messages")
            return
        message = self.messages[number - 1]
        items = fetch_items(response.data)
        if "UID" in items:
            self._fetch_uid(number, message, items["UID"])
        if "FLAGS" in items and isinstance(items["FLAGS"], list):
            self._fetch_flags(response, message, atoms(items["FLAGS"]))
        modseq = items.get("MODSEQ")
        if isinstance(modseq, list) and modseq and isinstance(modseq[0], str):
            value = int(modseq[0])
            if value < message.modseq:
                self.report("modseq-decreased", f"{response.raw!r}: MODSEQ was {message.modseq}")
            message.modseq = value

    def _fetch_uid(self, number: int, message: Message, token: Token) -> None:
        uid = int(token) if isinstance(token, str) and token.isdigit() else 0
        if message.uid is not None and message.uid != uid:
            self.report("uid-changed", f"seq {number}: UID {message.uid} became {uid}")
        message.uid = uid
        lower, higher = self._known_neighbours(number - 1)
        if (lower is not None and lower >= uid) or (higher is not None and higher <= uid):
            self.report("uid-order", f"seq {number} UID {uid} between {lower} and {higher}")

    def _known_neighbours(self, index: int) -> tuple[int | None, int | None]:
        """The nearest known UIDs below and above position ``index``."""
        lower = higher = None
        for before in range(index - 1, -1, -1):
            if (lower := self.messages[before].uid) is not None:
                break
        for after in range(index + 1, len(self.messages)):
            if (higher := self.messages[after].uid) is not None:
                break
        return lower, higher

    def _fetch_flags(self, response: Response, message: Message, flags: list[str]) -> None:
        folded = fold(flags)
        for keyword in sorted(keywords(folded)):
            if self.flags_list is None or keyword not in self.flags_list:
                self.report("keyword-not-in-flags",
                            f"{response.raw!r}: {keyword} not in the last FLAGS {sorted(self.flags_list or ())}")
            elif not self.readonly and self.permanent is not None and \
                    keyword not in self.permanent and WILDCARD not in self.permanent:
                self.report("keyword-not-in-permanentflags", f"{response.raw!r}: {keyword}")
        message.recent = RECENT in folded
        message.flags = folded - {RECENT}
        self.flag_updates += 1
        message.updated = self.flag_updates

    # --- end of a command ---------------------------------------------------

    def completed(self, command: str) -> None:
        """Checks once a command's tagged response arrived: RECENT ≤ EXISTS
        (RFC 3501 §7.3.2); on a read-write selection, PERMANENTFLAGS names
        the keywords FLAGS names (§7.1: they can be changed permanently)."""
        if self.selected and not self.readonly and self.flags_list is not None \
                and self.permanent is not None:
            behind = keywords(self.flags_list) - self.permanent
            if behind and behind != self.permanent_reported:
                self.permanent_reported = behind
                self.report("permanentflags-behind-flags",
                            f"after {command}: {sorted(behind)} in FLAGS, not in PERMANENTFLAGS")
        state = (self.recent, len(self.messages))
        if self.selected and self.recent is not None and self.recent > len(self.messages) \
                and state != self.recent_reported:  # once per wrong state, not per command
            self.recent_reported = state
            self.report("recent-exceeds-exists",
                        f"after {command}: RECENT {self.recent} > EXISTS {len(self.messages)}")

    def select_completed(self, ok: bool, code: str | None) -> None:
        """SELECT/EXAMINE's tagged response: its required untagged
        responses (RFC 3501 §6.3.1: FLAGS, EXISTS, RECENT, UIDVALIDITY)."""
        if self.closed_pending:
            self.report("closed-missing", "SELECT after a selection with QRESYNC but no [CLOSED]")
            self.closed_pending = False
        if not ok:
            return
        self.selected = True
        self.readonly = code == "READ-ONLY"
        for required in ("FLAGS", "EXISTS", "RECENT", "UIDVALIDITY"):
            if required not in self.seen_in_select:
                self.report("select-missing-" + required.lower(), f"SELECT sent no {required}")

    def finish_resync(self, *, complete: bool) -> bool:
        """After ``SELECT (QRESYNC ...)`` (RFC 7162 §3.2.5): what the client
        knew minus VANISHED (EARLIER) plus what was FETCHed, in UID order,
        are the first messages (``merge_resync``); any others are new
        (higher UIDs, unknown until fetched). ``complete``: no known-UIDs
        list was sent, so the server had to report every message changed or
        added since the client's MODSEQ and the count must equal the
        SELECT's EXISTS. False if it does not add up (the client then
        refetches everything)."""
        if self.resync_base is not None:
            self.merge_resync()
        counts, self.resync_counts = self.resync_counts, None
        if counts is None:
            return True
        known, fetched, total, size = counts
        if total != size if complete else total > size:
            self.report("qresync-count", f"known {known} - vanished + fetched {fetched} "
                        f"= {total} messages, EXISTS {size}")
            return False
        return True

    def merge_resync(self) -> None:
        """Build the resynchronised state of a QRESYNC SELECT: at its tagged
        reply, or earlier when a response of a later change arrives before
        it (another session's EXPUNGE or APPEND drained during the SELECT:
        its sequence numbers count from the resynchronised state). Messages
        past the SELECT's own EXISTS came later: new, unknown until fetched."""
        base, self.resync_base = self.resync_base or {}, None
        fetched = {m.uid: (i, m) for i, m in enumerate(self.messages) if m.uid is not None}
        uids = sorted(set(base) | set(fetched))
        size = self.resync_exists if self.resync_exists is not None else len(self.messages)
        self.resync_exists = None
        self.resync_counts = (len(base), len(fetched), len(uids), size)
        if len(uids) > size or len(uids) > len(self.messages):
            return  # reported at the tagged reply; the client refetches
        for index, uid in enumerate(uids):
            if uid in fetched and fetched[uid][0] != index:
                self.report("qresync-seq", f"UID {uid} fetched at seq {fetched[uid][0] + 1}, "
                            f"resynchronised list puts it at {index + 1}")
            self.messages[index] = fetched[uid][1] if uid in fetched else base[uid]

    def apply_silent_store(self, members: list[int], by_uid: bool, sign: str, flags: list[str],
                           mark: int) -> None:
        """A successful STORE .SILENT: the client applies its own change
        (RFC 3501 §6.4.6: the server does not echo it). A message whose
        flags a FETCH reported after the command was sent (``mark``) may
        carry another session's later change, which the client cannot
        order against its own: its flags become unknown."""
        change = fold(flags)
        targets = self.by_uid() if by_uid else dict(enumerate(self.messages, 1))
        for key in members:
            message = targets.get(key)
            if message is None or message.flags is None:
                continue
            if message.updated > mark:
                message.flags = None
                continue
            if sign == "+":
                message.flags = message.flags | change
            elif sign == "-":
                message.flags = message.flags - change
            else:
                message.flags = change

    def forget_flags(self, members: list[int], by_uid: bool) -> None:
        targets = self.by_uid() if by_uid else dict(enumerate(self.messages, 1))
        for key in members:
            if key in targets:
                targets[key].flags = None


_HANDLERS: dict[str, Callable[[MailboxModel, Response, str], None]] = {
    "EXISTS": MailboxModel._exists,
    "RECENT": MailboxModel._recent,
    "FLAGS": MailboxModel._flags,
    "EXPUNGE": MailboxModel._expunge,
    "VANISHED": MailboxModel._vanished,
    "FETCH": MailboxModel._fetch,
}
