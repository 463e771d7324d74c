"""``imapd user quota``: parsing its limits and running it (RFC 9208 STORAGE
and MESSAGE). Apart from ``imapd.cli`` so that module stays one reader's
worth; ``cli`` registers the options class and calls ``run_quota``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.python import usage

if TYPE_CHECKING:
    from imapd.cli import UserQuotaOptions


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
UNLIMITED = -1  # parse_limit's value for "none"


def parse_limit(text: str, sizes: bool) -> int:
    """A quota limit: a whole number (sizes may end in K, M, G or T, powers
    of 1024), or ``none`` (``UNLIMITED``)."""
    value = text.strip().upper()
    if value == "NONE":
        return UNLIMITED
    unit = value[-1:] if sizes and value[-1:] in _UNITS else ""
    digits = value[:-1] if unit else value
    if not digits.isdigit() or len(digits) > 19:
        raise usage.UsageError(f"invalid limit {text!r}: a whole number"
                               + (" (K, M, G, T allowed)" if sizes else "") + " or none")
    return int(digits) * _UNITS[unit]


def run_quota(sub: UserQuotaOptions, name: str) -> int:
    """``imapd user quota``: change the limits given (the others kept), then
    print the user's usage and limits. Works while the server runs: the
    store enforces the new limits at its next write."""
    from imapd.mail.backend import QuotaInfo
    from imapd.mail.service import MailService

    async def work(mail: MailService) -> QuotaInfo:
        if sub["storage"] is not None or sub["messages"] is not None:
            now = await mail.quota(name)
            storage = now.storage_limit if sub["storage"] is None else sub["storage"]
            messages = now.messages_limit if sub["messages"] is None else sub["messages"]
            await mail.set_quota(name, None if storage == UNLIMITED else storage,
                                 None if messages == UNLIMITED else messages)
        return await mail.quota(name)

    from imapd import app

    info = app.run_with_mail(sub.config(), work)

    def limit(value: int | None) -> str:
        return "unlimited" if value is None else str(value)

    print(f"imapd: {name}: storage {info.storage_used} of {limit(info.storage_limit)} bytes, "
          f"messages {info.messages_used} of {limit(info.messages_limit)}")
    return 0
