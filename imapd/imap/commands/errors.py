"""The one table from mail errors to IMAP answers (RFC 3501 §7.1, RFC 5530).

Below ``imap/`` failures are ``imapd.mail.errors.MailError``s, in mail
terms; the dispatcher turns each into a tagged NO or BAD with the RFC 5530
response code here, keeping the error's text (which is what clients and
tests see, e.g. ``NO [NONEXISTENT] Mailbox does not exist: Foo``).
Subclasses not listed take their nearest listed ancestor's row, and a bare
``MailError`` is a plain NO: a new error kind degrades to NO, never to a
server bug.
"""

from __future__ import annotations

from imapd.core.errors import ErrorKind, ImapError
from imapd.imap.commands import catalogue
from imapd.mail import errors as e

# error class -> (NO/BAD, RFC 5530 code or None)
ERROR_TABLE: dict[type[e.MailError], tuple[ErrorKind, str | None]] = {
    e.NoSuchMailbox: (ErrorKind.NO, catalogue.CODE_NONEXISTENT),      # RFC 5530 §3
    e.TargetMissing: (ErrorKind.NO, catalogue.CODE_TRYCREATE),        # RFC 3501 §6.3.11, §6.4.7
    e.AlreadyExists: (ErrorKind.NO, catalogue.CODE_ALREADYEXISTS),    # RFC 5530 §3
    e.HasChildren: (ErrorKind.NO, catalogue.CODE_HASCHILDREN),        # RFC 9051 §7.1
    e.Cannot: (ErrorKind.NO, catalogue.CODE_CANNOT),                  # RFC 5530 §3
    e.ReadOnly: (ErrorKind.NO, catalogue.CODE_READ_ONLY),             # RFC 3501 §7.1
    e.OverQuota: (ErrorKind.NO, catalogue.CODE_OVERQUOTA),            # RFC 5530 §3, RFC 9208
    e.OverLimit: (ErrorKind.NO, catalogue.CODE_LIMIT),                # RFC 5530 §3
    e.StorageFull: (ErrorKind.NO, catalogue.CODE_OVERQUOTA),          # RFC 5530 §3 (disk full)
    e.InvalidFlag: (ErrorKind.BAD, None),                             # RFC 3501 §2.3.2
    e.Unavailable: (ErrorKind.NO, catalogue.CODE_UNAVAILABLE),        # RFC 5530 §3
    e.InUse: (ErrorKind.NO, catalogue.CODE_INUSE),                    # RFC 5530 §3
}


def imap_error(error: e.MailError) -> ImapError:
    """The ``ImapError`` (NO/BAD, code, the error's text) for ``error``."""
    for cls in type(error).__mro__:
        row = ERROR_TABLE.get(cls)
        if row is not None:
            kind, code = row
            return ImapError(kind, error.text, code)
    return ImapError(ErrorKind.NO, error.text)
