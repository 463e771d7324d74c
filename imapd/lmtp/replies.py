"""LMTP replies: a reply code, an enhanced status code (RFC 2034, RFC 3463)
and text, and the one table mapping a ``MailError`` to a per-recipient
reply (RFC 2033 §4.2: one reply per accepted recipient after DATA)."""

from __future__ import annotations

from dataclasses import dataclass

from imapd.mail.errors import MailError, OverQuota, StorageFull, Unavailable


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply; ``lines`` > 1 makes a multi-line reply (RFC 5321 §4.2.1:
    ``code-text`` on every line but the last). ``enhanced`` is left out
    of the greeting and of LHLO's keyword lines (RFC 2034 §3)."""

    code: int
    enhanced: str
    text: str
    extra: tuple[str, ...] = ()

    def encode(self) -> bytes:
        lines = [self.text, *self.extra]
        out = []
        for index, line in enumerate(lines):
            sep = " " if index == len(lines) - 1 else "-"
            prefix = f"{self.enhanced} " if self.enhanced and index == 0 else ""
            out.append(f"{self.code}{sep}{prefix}{line}\r\n")
        return "".join(out).encode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400


def delivery_failure(error: MailError, quota_tempfail: bool = False) -> Reply:
    """The reply for a recipient whose delivery raised ``error``: permanent
    only when retrying cannot help (RFC 3463 §3.3 / §3.5). Over quota is
    X.2.2 (RFC 3463 §3.3, "mailbox full"): 552 by default (RFC 5321
    §4.2.2 lets 552 be permanent), or 452 when the operator wants the MTA
    to keep the mail and retry (``quota_tempfail``)."""
    if isinstance(error, OverQuota):
        if quota_tempfail:
            return Reply(452, "4.2.2", "Mailbox full (over quota), try again later")
        return Reply(552, "5.2.2", "Mailbox full (over quota)")
    if isinstance(error, StorageFull):
        return Reply(452, "4.3.1", "Mail system full, try again later")
    if isinstance(error, Unavailable):
        return Reply(451, "4.3.0", "Mail store unavailable, try again later")
    return Reply(451, "4.3.0", "Temporary delivery failure")
