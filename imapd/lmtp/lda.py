"""The local delivery agent behind ``imapd deliver`` (the MTA's
``mailbox_command`` / a pipe transport): one message from stdin into one
recipient's mailbox, answered with a sysexits(3) status the MTA acts on
(0 delivered; 67 unknown user: bounce; 75 try again later; 73 the input
cannot be stored: bounce; 77 over quota: bounce, unless the operator made
quota temporary with ``--quota-full-tempfail``: then 75, as Dovecot's LDA
with ``quota_full_tempfail``).

The message is stored as piped, except: a leading mbox ``From `` envelope
line is dropped, line ends become CRLF (RFC 5322 §2.1; MTAs pipe LF), and
``-f SENDER`` adds ``Return-Path`` unless the MTA already put one first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imapd.core import telemetry
from imapd.lmtp.address import Exists, resolve
from imapd.mail.errors import MailError, OverQuota, StorageFull, Unavailable
from imapd.mail.names import INBOX
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService

EX_OK = 0
EX_USAGE = 64
EX_NOUSER = 67
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77

_BARE_LF = re.compile(rb"(?<!\r)\n")


class BadMessage(ValueError):
    """The input cannot be stored as a message (empty or too large): 73."""


@dataclass(frozen=True, slots=True)
class Request:
    """``-f`` sender (None: none given), ``-a`` recipient, ``-m`` folder
    (None: the recipient's ``+detail`` folder if it exists, else INBOX)."""

    recipient: str
    sender: str | None = None
    folder: str | None = None
    separator: str = "+"


def prepare(raw: bytes, sender: str | None, limit: int) -> bytes:
    """The bytes to store (see the module docstring); ``BadMessage``."""
    if len(raw) > limit:
        raise BadMessage(f"message larger than {limit} octets")
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    if not raw.strip():
        raise BadMessage("empty message")
    message = _BARE_LF.sub(b"\r\n", raw)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if sender is not None and not message[:12].lower() == b"return-path:":
        message = f"Return-Path: <{sender}>\r\n".encode("utf-8", "replace") + message
    return message


async def deliver(mail: MailService, exists: Exists, request: Request,
                  message: bytes, quota_tempfail: bool = False) -> tuple[int, str]:
    """Store ``message`` for ``request``; (sysexits status, one line for
    stderr). The outcome goes to the installed telemetry ("lda")."""
    status, text = await _deliver(mail, exists, request, message, quota_tempfail)
    outcome = ("ok" if status == EX_OK else "temporary" if status == EX_TEMPFAIL
               else "permanent")
    telemetry.sink().delivered("lda", outcome)
    return status, text


async def _deliver(mail: MailService, exists: Exists, request: Request,
                   message: bytes, quota_tempfail: bool) -> tuple[int, str]:
    """See ``deliver``. A ``-m`` folder that does not exist falls back to INBOX, as
    Dovecot's LDA does without ``-n``: the mail is not lost. Over quota is
    EX_NOPERM (the MTA bounces with the reason) unless ``quota_tempfail``."""
    recipient = await resolve(request.recipient, (), request.separator, exists)
    if recipient is None:
        return EX_NOUSER, f"imapd deliver: {request.recipient}: user unknown"
    wanted = request.folder or recipient.detail
    try:
        folder = INBOX
        if wanted:
            try:
                await mail.target_entry(recipient.user, wanted)
                folder = wanted
            except (Unavailable, StorageFull):
                raise
            except MailError:  # missing, a placeholder, an invalid name
                folder = INBOX
        await mail.deliver(recipient.user, folder, [AppendItem(message)])
    except OverQuota as error:
        status = EX_TEMPFAIL if quota_tempfail else EX_NOPERM
        return status, f"imapd deliver: {recipient.user}: mailbox full (over quota): {error}"
    except (StorageFull, Unavailable) as error:
        # The store's trouble, not the recipient's: the MTA keeps the mail.
        return EX_TEMPFAIL, f"imapd deliver: {recipient.user}: {error}"
    except MailError as error:
        return EX_TEMPFAIL, f"imapd deliver: {recipient.user}: {error}"
    return EX_OK, ""
