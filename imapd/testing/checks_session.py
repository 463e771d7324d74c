"""What a client has been told: the strict checks' view of the server stream.

A check can only blame a client for what the server had already said on
the connection: the capabilities (RFC 3501 §7.2.1), the state (§3), the
number of messages (EXISTS/EXPUNGE, §7.3.1, §7.4.1; VANISHED, RFC 7162
§3.2.10), the UIDs it has seen (FETCH UID, UID SEARCH) and which commands
are still in progress (tagged responses, §7.1). ``ServerView`` follows the
server's lines and keeps exactly that, bounded in memory whatever the
server sends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imapd.testing.stream import Line

NOT_AUTHENTICATED = "not authenticated"
AUTHENTICATED = "authenticated"
SELECTED = "selected"
LOGOUT = "logout"

# Bounds on what is remembered: UIDs by sequence number (a mailbox larger
# than this is not followed), UIDs seen, numbers of one SEARCH answer,
# commands in progress.
MAX_MESSAGES_TRACKED = 200_000
MAX_UIDS_KEPT = 200_000
MAX_SEARCH_KEPT = 10_000
MAX_PENDING = 1_000

_STATUS_WORDS = frozenset({"OK", "NO", "BAD"})
_CODE = re.compile(rb"\[([A-Za-z0-9.=-]+)(?: ([^\]]*))?\]")
_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"')
_FETCH_UID = re.compile(rb"[( ]UID ([0-9]{1,10})\b", re.IGNORECASE)
_NUMBER = re.compile(rb"[0-9]{1,10}")


@dataclass
class Pending:
    """A command the server has not answered with a tagged response yet."""

    tag: str
    verb: str
    line: bytes


@dataclass(frozen=True)
class ServerEvent:
    """What one server line means to the client-side checks: ``kind`` is
    "continuation" (``+``), "tagged" (with ``tag``, ``status`` and the
    answered ``command``) or "other"."""

    kind: str
    tag: str = ""
    status: str = ""
    command: Pending | None = None


_OTHER = ServerEvent("other")


class ServerView:
    """The connection as the server has described it so far."""

    def __init__(self) -> None:
        self.capabilities: frozenset[str] = frozenset()
        self.enabled: set[str] = set()
        self.state = NOT_AUTHENTICATED
        self.state_note = "no LOGIN or AUTHENTICATE has succeeded yet"
        self.pending: dict[str, Pending] = {}
        self.exists: int | None = None      # None: no mailbox selected
        self.exists_note = ""               # the server line that last changed it
        self.high_water = 0                 # see ``limit``
        self.uid_by_seq: list[int | None] | None = None
        self.known_uids: set[int] = set()
        self.seq_search: frozenset[int] = frozenset()   # last plain SEARCH answer
        self.uid_search: frozenset[int] = frozenset()   # last UID SEARCH answer
        self.blind = False      # after STARTTLS: the octets are not IMAP text
        self._greeted = False
        self._fetch_seq = 0     # the FETCH response whose continuation lines follow
        # The pending commands that change the state (LOGIN, SELECT, ...),
        # apart, so that judging a command costs O(those), not O(pending).
        self._changing: dict[str, str] = {}

    # --- what the client may rely on -------------------------------------------

    @property
    def limit(self) -> int:
        """The highest sequence number the client may use: the largest
        message count reported since no command was last in progress. A
        client that pipelines commands may not have read an EXPUNGE sent
        meanwhile (RFC 3501 §5.5), so it is not blamed for the count
        before it; a client that waits for each answer is."""
        return self.high_water

    def projected_state(self) -> str:
        """The state once the commands in progress have succeeded: a client
        may pipeline SELECT after LOGIN (RFC 3501 §5.5)."""
        state = self.state
        for verb in self._changing.values():
            state = _STATE_AFTER[verb]
        return state

    def start_command(self, tag: str, verb: str, line: bytes) -> None:
        """The client sent a command (its first line)."""
        if len(self.pending) >= MAX_PENDING:   # never answered: forget the oldest
            oldest = next(iter(self.pending))
            del self.pending[oldest]
            self._changing.pop(oldest, None)
        self.pending[tag] = Pending(tag, verb, line)
        self._changing.pop(tag, None)
        if verb in _STATE_AFTER:
            self._changing[tag] = verb
        if verb in ("SELECT", "EXAMINE"):
            # Numbers now refer to the new mailbox, known once it reports EXISTS.
            self.exists = None
            self.known_uids.clear()
            self.seq_search = self.uid_search = frozenset()
            self._set_mailbox(0, f"{verb} sent, no EXISTS reported yet")
            self.high_water = 0

    # --- the server's lines ----------------------------------------------------

    def server_line(self, line: Line) -> ServerEvent:
        """Follow one server line; say what it means for the client side."""
        text = line.text
        if not line.first:
            self._fetch_continuation(text)
            return _OTHER
        self._fetch_seq = 0
        if text.startswith(b"+"):
            return ServerEvent("continuation")
        words = text.split(b" ", 3)
        if words[0] == b"*":
            self._untagged(words, text)
            return _OTHER
        if len(words) >= 2 and words[1].upper().decode("ascii", "replace") in _STATUS_WORDS:
            return self._tagged(words[0].decode("ascii", "replace"),
                                words[1].upper().decode("ascii"), text)
        return _OTHER

    def _untagged(self, words: list[bytes], text: bytes) -> None:
        if len(words) < 2:
            return
        first, name = words[1].upper(), (words[2].upper() if len(words) > 2 else b"")
        greeting, self._greeted = not self._greeted, True
        if first.isdigit() and len(first) <= 10:
            self._numbered(int(first), name, text)
        elif first == b"CAPABILITY":
            self._capabilities(text.split(b" ", 2)[2] if len(words) > 2 else b"")
        elif first == b"ENABLED":
            self.enabled.update(w.upper().decode("ascii", "replace") for w in text.split()[2:])
        elif first == b"SEARCH":
            self._search_answer(text)
        elif first == b"VANISHED" and name != b"(EARLIER)" and len(words) > 2:
            self._vanished(words[2])
        elif first == b"BYE":
            self.state, self.state_note = LOGOUT, "the server said BYE"
        elif first == b"PREAUTH" and greeting:
            self.state, self.state_note = AUTHENTICATED, "the greeting was PREAUTH"
        self._codes(text)

    def _numbered(self, number: int, name: bytes, text: bytes) -> None:
        """``* n EXISTS``, ``* n EXPUNGE``, ``* n FETCH (...)``."""
        if name == b"EXISTS":
            self._set_mailbox(number, text.decode("ascii", "replace"))
        elif name == b"EXPUNGE" and self.exists:
            if self.uid_by_seq is not None and number <= len(self.uid_by_seq):
                del self.uid_by_seq[number - 1]
            self.exists -= 1
            self.exists_note = text.decode("ascii", "replace")
        elif name == b"FETCH":
            self._fetch_seq = number
            self._fetch_continuation(text.split(b" ", 3)[3] if text.count(b" ") >= 3 else b"")

    def _fetch_continuation(self, text: bytes) -> None:
        """A UID item in a FETCH response (outside quoted strings)."""
        if not self._fetch_seq:
            return
        found = _FETCH_UID.search(_QUOTED.sub(b'""', text))
        if found is None:
            return
        uid = int(found.group(1))
        self._remember_uid(uid)
        table = self.uid_by_seq
        if table is not None and self._fetch_seq <= len(table):
            table[self._fetch_seq - 1] = uid

    def _set_mailbox(self, exists: int, note: str) -> None:
        if self.exists is None or exists < len(self.uid_by_seq or ()):
            self.uid_by_seq = []    # a new mailbox (or a server bug): start over
        self.exists, self.exists_note = exists, note
        self.high_water = max(self.high_water, exists)
        table = self.uid_by_seq
        if table is not None:
            if exists > MAX_MESSAGES_TRACKED:
                self.uid_by_seq = None
            else:
                table.extend([None] * (exists - len(table)))

    def _remember_uid(self, uid: int) -> None:
        if len(self.known_uids) < MAX_UIDS_KEPT:
            self.known_uids.add(uid)

    def _search_answer(self, text: bytes) -> None:
        """``* SEARCH n...``: UIDs for UID SEARCH, else sequence numbers;
        the oldest SEARCH in progress is the one answered."""
        asker = next((p for p in self.pending.values() if p.verb in ("SEARCH", "UID SEARCH")), None)
        if asker is None:
            return
        body = text.split(b"(", 1)[0]   # drop a CONDSTORE "(MODSEQ n)"
        numbers = frozenset(int(n) for n in _NUMBER.findall(body)[:MAX_SEARCH_KEPT])
        if asker.verb == "UID SEARCH":
            self.uid_search = numbers
            for uid in numbers:
                self._remember_uid(uid)
        else:
            self.seq_search = numbers

    def _vanished(self, uid_set: bytes) -> None:
        """``* VANISHED uids`` (RFC 7162 §3.2.10): those messages are gone."""
        ranges = _uid_ranges(uid_set)
        if ranges is None or self.exists is None:
            return
        table = self.uid_by_seq
        if table is not None:
            if None in table:
                self.uid_by_seq = None  # which numbers went is not known
            else:
                table[:] = [u for u in table if not _in_ranges(u, ranges)]
        gone = sum(high - low + 1 for low, high in ranges)
        self.exists = max(0, self.exists - gone) if table is None else len(table)
        self.exists_note = "* VANISHED " + uid_set.decode("ascii", "replace")

    def _capabilities(self, words: bytes) -> None:
        self.capabilities = frozenset(w.upper().decode("ascii", "replace") for w in words.split())

    def _codes(self, text: bytes) -> None:
        """Response codes that matter: CAPABILITY, UIDVALIDITY (a new UID space)."""
        found = _CODE.search(text)
        if found is None:
            return
        code, argument = found.group(1).upper(), found.group(2) or b""
        if code == b"CAPABILITY":
            self._capabilities(argument)
        elif code == b"UIDVALIDITY":
            self.known_uids.clear()

    def _tagged(self, tag: str, status: str, text: bytes) -> ServerEvent:
        self._codes(text)
        command = self.pending.pop(tag, None)
        self._changing.pop(tag, None)
        if command is not None and status == "OK":
            self._succeeded(command.verb)
        elif command is not None and status == "NO" and command.verb in ("SELECT", "EXAMINE"):
            # A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
            self.state, self.exists = AUTHENTICATED, None
            self.state_note = f"the last {command.verb} failed ({text[:80].decode('ascii', 'replace')})"
        if not self.pending:
            self.high_water = self.exists or 0
        return ServerEvent("tagged", tag, status, command)

    def _succeeded(self, verb: str) -> None:
        if verb in _STATE_AFTER:
            self.state = _STATE_AFTER[verb]
            self.state_note = f"after {verb}"
            if self.state != SELECTED:
                self.exists = None
        if verb == "STARTTLS":
            # What follows is TLS. (After COMPRESS the wiretap feeds the
            # checks inflated octets: those are still lines.)
            self.blind = True


# The state a successful command leads to (RFC 3501 §3).
_STATE_AFTER = {
    "LOGIN": AUTHENTICATED, "AUTHENTICATE": AUTHENTICATED,
    "SELECT": SELECTED, "EXAMINE": SELECTED,
    "CLOSE": AUTHENTICATED, "UNSELECT": AUTHENTICATED,
    "LOGOUT": LOGOUT,
}

_UID_RANGE = re.compile(rb"([0-9]{1,10})(?::([0-9]{1,10}))?")


def _uid_ranges(text: bytes) -> list[tuple[int, int]] | None:
    """A uid-set of plain numbers (no ``*``) as (low, high) pairs; None when
    it is not one or has more than 1,000 elements."""
    ranges: list[tuple[int, int]] = []
    for element in text.split(b",")[:1001]:
        found = _UID_RANGE.fullmatch(element)
        if found is None:
            return None
        low = int(found.group(1))
        high = int(found.group(2) or low)
        ranges.append((min(low, high), max(low, high)))
    return ranges if len(ranges) <= 1000 else None


def _in_ranges(value: int | None, ranges: list[tuple[int, int]]) -> bool:
    return value is not None and any(low <= value <= high for low, high in ranges)
