"""Column encodings the SQL engines (SQLite, PostgreSQL) share.

System flags are a bit set and keywords a text column (``imapd.mail.flags``);
an internal date (RFC 3501 §2.3.3) is stored as Unix seconds plus the UTC
offset in minutes it was given with, so FETCH INTERNALDATE gives back the
zone the client chose.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, NamedTuple, Sequence

from imapd.core.errors import ErrorKind, ImapError
from imapd.mail.errors import InvalidFlag, MailError, OverLimit
from imapd.mail.flags import FlagOp, apply_op, decode_keywords, encode_keywords, join_flags
from imapd.mail.records import FlagState


class MailboxRow(NamedTuple):
    """A row of the ``mailboxes`` table, as both SQL engines store it."""

    id: int
    name: str
    selectable: bool
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    recent_from: int
    special_use: str | None


@lru_cache(maxsize=8192)  # few distinct flag sets; decoded for every row read
def decode_flags(bits: int, keywords: str) -> tuple[str, ...]:
    """The flags of a row: system flag bits, then its keywords."""
    return join_flags(bits, decode_keywords(keywords))


@lru_cache(maxsize=256)
def _zone(minutes: int) -> datetime.timezone:
    return datetime.timezone(datetime.timedelta(minutes=minutes))


def date_columns(value: datetime.datetime | None) -> tuple[int, int]:
    """(unix seconds, UTC offset in minutes) of an internal date; None = now."""
    if value is None:
        value = datetime.datetime.now().astimezone()
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("internal_date must be timezone-aware")
    return int(value.timestamp()), int(offset.total_seconds() // 60)


def date_value(seconds: int, minutes: int) -> datetime.datetime:
    """The internal date of ``date_columns``' two columns."""
    return datetime.datetime.fromtimestamp(seconds, _zone(minutes))


@dataclass
class StorePlan:
    """What STORE (RFC 3501 §6.4.6, UNCHANGEDSINCE RFC 7162 §3.1.3) does to
    some rows, before any MODSEQ is taken: ``updates`` (uid, new system
    bits, new keyword text) for the rows that change; ``states`` of every
    row in UID order (changed ones with MODSEQ 0 until the caller stamps
    them); ``modified``: UIDs left alone because they changed after
    UNCHANGEDSINCE; ``prior``: each changed UID's MODSEQ before."""

    states: list[FlagState] = field(default_factory=list)
    modified: list[int] = field(default_factory=list)
    updates: list[tuple[int, int, str]] = field(default_factory=list)
    prior: dict[int, int] = field(default_factory=dict)

    def stamped(self, modseq: int) -> tuple[FlagState, ...]:
        """``states`` with the changed rows at their new MODSEQ."""
        return tuple(FlagState(s.uid, s.flags, modseq) if s.uid in self.prior else s
                     for s in self.states)


def plan_store(
    rows: Iterable[Sequence[Any]], op: FlagOp, bits: int, keywords: Sequence[str],
    unchangedsince: int | None,
) -> StorePlan:
    """Apply ``op`` with (``bits``, ``keywords``) to (uid, sysflags, keyword
    text, modseq) rows in UID order. A row whose flags come out the same is
    not a change (it keeps its MODSEQ, RFC 7162 §3.1.3)."""
    plan = StorePlan()
    for uid, old_bits, old_text, old_modseq in rows:
        if unchangedsince is not None and old_modseq > unchangedsince:
            plan.modified.append(uid)
            continue
        old_keywords = decode_keywords(old_text)
        new_bits, new_keywords = apply_op(op, (old_bits, old_keywords), (bits, tuple(keywords)))
        if new_bits == old_bits and set(new_keywords) == set(old_keywords):
            plan.states.append(FlagState(uid, decode_flags(old_bits, old_text), old_modseq))
            continue
        text = encode_keywords(new_keywords)
        plan.updates.append((uid, new_bits, text))
        plan.prior[uid] = old_modseq
        plan.states.append(FlagState(uid, decode_flags(new_bits, text), 0))
    return plan


def legacy_mail_error(error: ImapError) -> MailError:
    """The ``imapd.mail.errors`` form of an ``ImapError`` raised by the
    engines' older row helpers (flag checks, the UID limit)."""
    if error.kind is ErrorKind.BAD:
        return InvalidFlag(error.text)
    if error.code == "LIMIT":
        return OverLimit(error.text)
    return MailError(error.text)
