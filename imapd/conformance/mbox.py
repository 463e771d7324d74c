"""The mbox message source used for APPENDs (conformance README §6, "The mbox message source").

* A message runs from after a valid ``From `` line up to (not including) the
  next valid one; the empty line before that separator belongs to the message.
* Every line is converted to CRLF; ``>From`` quoting is not undone.
* The internal date is the From line's asctime date with its optional numeric
  zone (``+0000`` when absent), sent as an IMAP date-time.
* One cursor per test, shared by setup and in-test ``append`` commands; it
  wraps round to the first message after the last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# "From sender  Fri Feb 22 17:06:23 2008 +0200": asctime date, optional zone.
_FROM_DATE_RE = re.compile(
    rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) +(" + b"|".join(m.encode() for m in _MONTHS) + rb") +"
    rb"(\d{1,2}) +(\d{1,2}):(\d{2})(?::(\d{2}))? +(\d{4})(?: +([+-]\d{4}))?\s*$"
)


class MboxError(ValueError):
    """The mbox file is empty or malformed."""


@dataclass(frozen=True)
class MboxMessage:
    """One message: CRLF-converted bytes and the IMAP internal date (``22-Feb-2008 17:06:23 +0000``)."""

    data: bytes
    internal_date: str


def parse_from_line(line: bytes) -> str | None:
    """The IMAP date-time of a valid ``From `` separator line, else None."""
    if not line.startswith(b"From "):
        return None
    match = _FROM_DATE_RE.search(line[5:])
    if match is None:
        return None
    month = match.group(2).decode()
    day, hour, minute = int(match.group(3)), int(match.group(4)), int(match.group(5))
    second = int(match.group(6) or b"0")
    year = int(match.group(7))
    zone = (match.group(8) or b"+0000").decode()
    return f"{day:02d}-{month}-{year:04d} {hour:02d}:{minute:02d}:{second:02d} {zone}"


def parse_mbox(data: bytes, name: str = "mbox") -> list[MboxMessage]:
    """Split an mbox into messages (consecutive From lines: the empty message is skipped)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise MboxError(f"empty mbox file: {name}")
    if parse_from_line(lines[0].rstrip(b"\r")) is None:
        raise MboxError(f"not a valid mbox file (no From line first): {name}")
    messages: list[MboxMessage] = []
    date = ""
    body: list[bytes] = []
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        separator_date = parse_from_line(line)
        if separator_date is not None and not body:
            date = separator_date  # first separator, or an empty message: re-anchor
            continue
        if separator_date is not None:
            messages.append(MboxMessage(b"".join(part + b"\r\n" for part in body), date))
            body = []
            date = separator_date
            continue
        body.append(line)
    if not body:
        raise MboxError(f"mbox file ends with a From line: {name}")
    messages.append(MboxMessage(b"".join(part + b"\r\n" for part in body), date))
    return messages


class MboxSource:
    """The per-test message cursor (wraps round after the last message)."""

    def __init__(self, messages: list[MboxMessage]) -> None:
        if not messages:
            raise MboxError("no messages")
        self.messages = messages
        self.position = 0

    @classmethod
    def from_file(cls, path: str | Path) -> MboxSource:
        file_path = Path(path)
        return cls(parse_mbox(file_path.read_bytes(), str(file_path)))

    def __len__(self) -> int:
        return len(self.messages)

    def next_message(self) -> MboxMessage:
        message = self.messages[self.position]
        self.position = (self.position + 1) % len(self.messages)
        return message
