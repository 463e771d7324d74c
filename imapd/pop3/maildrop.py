"""The maildrop of one POP3 session: INBOX as it was at login (RFC 1939
§4: the server "acquires" the maildrop; later deliveries show up in the
next session), numbered 1..N, with the DELE marks of the session.

UIDL (RFC 1939 §7): a unique id per message, stable across sessions and
restarts, derived from the mailbox's UIDVALIDITY and the message's UID
(RFC 3501 §2.3.1.1: the pair never names another message). Two formats:

* ``imapd`` (default): ``<uidvalidity>-<uid>`` in decimal;
* ``dovecot``: Dovecot's default ``pop3_uidl_format = %08Xu%08Xv``, the
  UID then the UIDVALIDITY as eight lower-case hex digits each (Dovecot's
  ``%X`` prints lower case: 2.3.19 answers ``000000016b15ac5a``), so clients
  of a server migrated from Dovecot with UIDs and UIDVALIDITY kept do not
  download everything again.

Both are 0x21-0x7E and at most 70 octets, as RFC 1939 §7 requires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

UIDL_FORMATS = ("imapd", "dovecot")


def uidl(uidvalidity: int, uid: int, style: str = "imapd") -> str:
    """The unique-id of a message (see the module docstring)."""
    if style == "dovecot":
        return f"{uid:08x}{uidvalidity:08x}"
    return f"{uidvalidity}-{uid}"


@dataclass(frozen=True, slots=True)
class Entry:
    uid: int
    size: int


@dataclass(slots=True)
class Maildrop:
    """Messages by number (``entries[n - 1]``), the numbers marked deleted,
    and those retrieved (RETR: ``\\Seen`` at QUIT when configured)."""

    uidvalidity: int
    entries: Sequence[Entry]
    uidl_style: str = "imapd"
    deleted: set[int] = field(default_factory=set)
    retrieved: set[int] = field(default_factory=set)

    def entry(self, number: int) -> Entry | None:
        """The message numbered ``number`` unless out of range or deleted."""
        if not 1 <= number <= len(self.entries) or number in self.deleted:
            return None
        return self.entries[number - 1]

    def exists(self, number: int) -> bool:
        return 1 <= number <= len(self.entries)

    def live(self) -> list[tuple[int, Entry]]:
        """(number, entry) of every message not marked deleted."""
        return [(n, e) for n, e in enumerate(self.entries, 1) if n not in self.deleted]

    def stat(self) -> tuple[int, int]:
        """STAT (RFC 1939 §5): count and octets of the undeleted messages."""
        live = self.live()
        return len(live), sum(e.size for _, e in live)

    def unique_id(self, entry: Entry) -> str:
        return uidl(self.uidvalidity, entry.uid, self.uidl_style)

    def deleted_uids(self) -> list[int]:
        return sorted(self.entries[n - 1].uid for n in self.deleted)

    def seen_uids(self) -> list[int]:
        """Retrieved and kept (deleted ones need no flag)."""
        return sorted(self.entries[n - 1].uid for n in self.retrieved - self.deleted)
