"""The TRANSACTION state (RFC 1939 §5, §7): STAT, LIST, RETR, DELE, NOOP,
RSET, TOP, UIDL, CAPA, and QUIT, which enters UPDATE
(``Pop3Session.update``).

Numbers are the session's (``imapd.pop3.maildrop``); a number out of range
or marked deleted is ``-ERR`` (RFC 1939 §5) and not a bad command.
Message bodies are streamed from the store in chunks, stuffed
(``imapd.pop3.replies.stuffed``), as the client reads them.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from imapd.mail.errors import MailError
from imapd.mail.records import MessageBody
from imapd.pop3 import replies as r
from imapd.pop3.commands import Command, parse_number
from imapd.pop3.maildrop import Entry, Maildrop
from imapd.pop3.session import Bad, Handler, Pop3Session, Refused, log


def _drop(session: Pop3Session) -> Maildrop:
    assert session.maildrop is not None
    return session.maildrop


def _number(text: str) -> int:
    number = parse_number(text)
    if number is None:
        raise Bad(f"Invalid message number: {text[:20]}")
    return number


def _message(session: Pop3Session, text: str) -> tuple[int, Entry]:
    """The numbered message, or ``-ERR`` for one that is not there."""
    number = _number(text)
    drop = _drop(session)
    entry = drop.entry(number)
    if entry is None:
        if drop.exists(number):
            raise Refused(f"Message {number} is deleted")
        raise Refused(f"There is no message {number}")
    return number, entry


def _arguments(command: Command, least: int, most: int) -> tuple[str, ...]:
    if not least <= len(command.args) <= most:
        raise Bad(f"Wrong number of arguments for {command.name}")
    return command.args


async def stat(session: Pop3Session, command: Command) -> bool:
    _arguments(command, 0, 0)
    count, octets = _drop(session).stat()
    session.link.send(r.ok(f"{count} {octets}"))
    return False


async def _listing(session: Pop3Session, command: Command,
                   value: Callable[[Entry], str]) -> None:
    """LIST and UIDL: one message's line, or every undeleted message's."""
    args = _arguments(command, 0, 1)
    drop = _drop(session)
    if args:
        number, entry = _message(session, args[0])
        session.link.send(r.ok(f"{number} {value(entry)}"))
        return
    lines = (f"{n} {value(e)}".encode("ascii") for n, e in drop.live())
    session.link.send(r.multiline(r.ok(), lines))


async def list_(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §5 LIST: octet counts (the stored size, CRLF line ends)."""
    await _listing(session, command, lambda e: str(e.size))
    return False


async def uidl(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §7 UIDL (``imapd.pop3.maildrop.uidl``)."""
    drop = _drop(session)
    await _listing(session, command, drop.unique_id)
    return False


async def _open(session: Pop3Session, entry: Entry, number: int) -> MessageBody:
    assert session.watch is not None
    body = await session.watch.open_message(entry.uid)
    if body is None:  # expunged by an IMAP session since login
        raise Refused(f"Message {number} was removed by another session")
    return body


def _stream(first: bytes, body: MessageBody,
            shape: Callable[[Iterable[bytes]], Iterator[bytes]]) -> Iterator[bytes]:
    """The status line, then the body as ``shape`` makes it; the body is
    released at the end, or when the connection drops the stream."""
    try:
        yield first
        yield from shape(body.chunks())
    finally:
        body.close()


async def retr(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §5 RETR: the whole message, stuffed."""
    (text,) = _arguments(command, 1, 1)
    number, entry = _message(session, text)
    body = await _open(session, entry, number)
    _drop(session).retrieved.add(number)
    session.link.send(_stream(r.ok(f"{entry.size} octets"), body, r.stuffed))
    return False


async def top(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §7 TOP msg n: the header and n body lines (no ``\\Seen``)."""
    text, count = _arguments(command, 2, 2)
    number, entry = _message(session, text)
    lines = parse_number(count)
    if lines is None:
        raise Bad(f"Invalid line count: {count[:20]}")
    body = await _open(session, entry, number)
    session.link.send(_stream(r.ok(), body, lambda c: r.stuffed(r.top(c, lines))))
    return False


async def dele(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §5 DELE: only marks; QUIT removes."""
    (text,) = _arguments(command, 1, 1)
    number, _ = _message(session, text)
    _drop(session).deleted.add(number)
    session.link.send(r.ok(f"Message {number} deleted"))
    return False


async def noop(session: Pop3Session, command: Command) -> bool:
    _arguments(command, 0, 0)
    session.link.send(r.ok())
    return False


async def rset(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §5 RSET: unmark every deleted message."""
    _arguments(command, 0, 0)
    drop = _drop(session)
    drop.deleted.clear()
    count, octets = drop.stat()
    session.link.send(r.ok(f"{count} messages ({octets} octets)"))
    return False


async def quit_(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §6: the UPDATE state, then close, whatever its outcome."""
    try:
        await session.update()
    except MailError as error:  # store unavailable or full: nothing is lost, retry later
        log.info("{label}: update failed: {why}", label=session.link.label, why=error.text)
        raise Refused("Some deleted messages were not removed", r.SYS_TEMP, close=True) from None
    session.link.send(r.ok("Logging out"))
    return True


async def capa(session: Pop3Session, command: Command) -> bool:
    return await session.capa(command)


HANDLERS: dict[str, Handler] = {
    "STAT": stat, "LIST": list_, "RETR": retr, "DELE": dele, "NOOP": noop,
    "RSET": rset, "TOP": top, "UIDL": uidl, "CAPA": capa, "QUIT": quit_,
}
