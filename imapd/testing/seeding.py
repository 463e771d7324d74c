"""Messages for a test mailbox, from whatever a test has at hand.

``messages_from(sources, flags, internal_date)`` turns each source into
the ``AppendItem``s the mail core delivers (``TestServer.seed`` then
stores them through ``MailService.deliver``, as an APPEND would):

* ``bytes``: one message, as given;
* an ``email.message.Message`` (or ``EmailMessage``): its bytes;
* a path (``str`` or ``pathlib.Path``): an ``.eml`` file (one message), or
  an mbox when the file starts with a ``From `` line (mboxrd or mboxo,
  read by ``imapd import mbox``'s reader: every message of it, in file
  order, with the flags its ``Status``/``X-Status``/``X-Keywords`` headers
  give and the ``From `` line's date as internal date).

Line ends become CRLF (RFC 5322 §2.1), as every real delivery path of
imapd stores them. ``flags`` (system flags such as ``\\Seen`` and
keywords such as ``$Forwarded``, RFC 3501 §2.3.2) are added to every
message; ``internal_date`` (RFC 3501 §2.3.3) replaces each message's own
(a naive datetime is taken as UTC); None: the mbox's date, else "now".
Reading files happens in the calling (test) thread, never on the reactor.
"""

from __future__ import annotations

import datetime
import email.message
import os
from pathlib import Path
from typing import Iterable, Union

from imapd.importer import mbox
from imapd.importer.source import stored_form
from imapd.mail.records import AppendItem

MessageSource = Union[bytes, bytearray, str, "os.PathLike[str]", email.message.Message]


class SeedError(ValueError):
    """A source that gives no message: an empty file, an unreadable path,
    an mbox with problems, a value of an unknown type. The message says
    which source."""


def messages_from(sources: Iterable[MessageSource], flags: Iterable[str] = (),
                  internal_date: datetime.datetime | None = None) -> list[AppendItem]:
    """The items to deliver for ``sources`` in order (see the module doc)."""
    extra = tuple(flags)
    when = _aware(internal_date)
    items: list[AppendItem] = []
    for source in sources:
        for raw, own_flags, own_date in _read(source):
            merged = tuple(dict.fromkeys(own_flags + extra))  # order kept, no duplicates
            items.append(AppendItem(raw, merged, when or own_date))
    return items


def _aware(when: datetime.datetime | None) -> datetime.datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=datetime.timezone.utc)


Parsed = tuple[bytes, tuple[str, ...], "datetime.datetime | None"]


def _read(source: MessageSource) -> list[Parsed]:
    if isinstance(source, (bytes, bytearray)):
        return [(_stored(bytes(source), "a bytes message"), (), None)]
    if isinstance(source, email.message.Message):
        return [(_stored(source.as_bytes(), "an email.message.Message"), (), None)]
    if isinstance(source, (str, os.PathLike)):
        return _read_path(Path(source))
    raise SeedError(f"cannot seed from a {type(source).__name__}: give bytes, an "
                    "email.message.Message, or the path of an .eml or mbox file")


def _read_path(path: Path) -> list[Parsed]:
    try:
        with open(path, "rb") as file:
            start = file.read(5)
    except OSError as error:
        raise SeedError(f"cannot read {path}: {error.strerror or error}") from None
    if start != b"From ":
        return [(_stored(path.read_bytes(), str(path)), (), None)]
    folder = mbox.scan_file(path, ())
    if folder.problems:
        where, reason = folder.problems[0]
        raise SeedError(f"mbox {path}: {where}: {reason}")
    parsed: list[Parsed] = []
    for message in folder.messages:
        parsed.append((_stored(message.read(), message.label), message.flags,
                       message.internal_date))
    return parsed


def _stored(raw: bytes, what: str) -> bytes:
    try:
        return stored_form(raw)
    except ValueError as error:
        raise SeedError(f"{what}: {error}") from None
