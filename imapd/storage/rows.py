"""Column encodings the SQL engines (SQLite, PostgreSQL) share.

System flags are a bit set and keywords a text column (``imapd.mail.flags``);
an internal date (RFC 3501 §2.3.3) is stored as Unix seconds plus the UTC
offset in minutes it was given with, so FETCH INTERNALDATE gives back the
zone the client chose.
"""

from __future__ import annotations

import datetime
from functools import lru_cache

from imapd.mail.flags import decode_keywords, join_flags


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
