"""One LMTP session (RFC 2033), free of I/O: ``feed`` takes one complete
input line (with its line end) and returns the replies to send, in order;
while ``octets_wanted`` is non-zero (a BDAT chunk, RFC 3030) the caller
hands raw input to ``feed_octets`` instead, at most that many octets.

States: greeted -> LHLO -> MAIL -> RCPT... -> DATA or BDAT chunks -> (one
reply per accepted recipient, RFC 2033 §4.2, §4.3) -> MAIL again.
RSET/NOOP/VRFY/QUIT anywhere outside DATA and a chunk. No AUTH: the
listener is local (RFC 2033 §5).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from imapd.core import telemetry
from imapd.core.runtime import Runtime
from imapd.core.spool import MessageData, SpooledLiteral
from imapd.lmtp.address import Envelope, Exists, PathError, Recipient, parse_path, resolve
from imapd.lmtp.data import DataReader
from imapd.lmtp.replies import Reply, delivery_failure
from imapd.mail.errors import MailError, StorageFull, Unavailable
from imapd.mail.names import INBOX
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService


@dataclass(frozen=True, slots=True)
class LmtpSettings:
    """Operator choices: ``domains`` accepted (lower-case; empty: any),
    the subaddress ``separator`` ("" turns ``+detail`` off), the SIZE
    limit (RFC 1870), recipients per transaction (RFC 5321 §4.5.3.1.8
    asks for at least 100), where large messages spool, and whether over
    quota is temporary (452 4.2.2) rather than permanent (552 5.2.2)."""

    hostname: str = "imapd"
    domains: tuple[str, ...] = ()
    separator: str = "+"
    max_message: int = 64 * 1024 * 1024
    max_recipients: int = 100
    spool_dir: Path | None = None
    quota_full_tempfail: bool = False


OK = Reply(250, "2.0.0", "OK")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL first")
NO_RECIPIENTS = Reply(503, "5.5.1", "No valid recipients")
TOO_BIG = Reply(552, "5.3.4", "Message too big")
SPOOL_FAILED = Reply(451, "4.3.0", "Local error while spooling")
MAX_CHUNK_DIGITS = 20  # a BDAT size past any SIZE limit is still a size: 552, not 501


@dataclass(slots=True)
class _Transaction:
    """``bdat``: the message being sent in BDAT chunks (RFC 3030), None
    before the first; ``failed``: the reply every later chunk gets once a
    chunk failed (RFC 3030 §4.2: pipelined chunks are read and dropped)."""

    sender: str | None = None
    recipients: list[Recipient] = field(default_factory=list)
    bdat: DataReader | None = None
    failed: Reply | None = None

    def discard(self) -> None:
        if self.bdat is not None:
            self.bdat.discard()


@dataclass(slots=True)
class _Chunk:
    """A BDAT chunk being read: octets still to come, whether it is the
    LAST one, and the refusal its octets are read for, if any."""

    size: int
    last: bool
    refused: Reply | None
    left: int = 0

    def __post_init__(self) -> None:
        self.left = self.size


class LmtpSession:
    """See the module docstring. ``exists`` asks the user store (off the
    reactor thread if it blocks); ``peer`` names the client in Received."""

    def __init__(self, mail: MailService, exists: Exists, settings: LmtpSettings,
                 peer: str = "local", runtime: Runtime | None = None,
                 now: Callable[[], datetime.datetime] | None = None) -> None:
        self.mail = mail
        self.exists = exists
        self.settings = settings
        self.peer = peer
        self.runtime = runtime
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.helo: str | None = None
        self.closed = False
        self._tx = _Transaction()
        self._data: DataReader | None = None
        self._chunk: _Chunk | None = None
        self._serial = 0

    @property
    def in_data(self) -> bool:
        """True while message lines are read (no command is parsed)."""
        return self._data is not None

    @property
    def octets_wanted(self) -> int:
        """Raw octets of a BDAT chunk still to read (``feed_octets``)."""
        return self._chunk.left if self._chunk is not None else 0

    def line_too_long(self) -> list[Reply]:
        """An input line past the connection's limit was dropped
        (RFC 5321 §4.5.3.1.4-6): a command is refused; in DATA the message
        is refused after its terminator, as a message past SIZE is."""
        if self._data is not None:
            self._data.too_big = True
            self._data.discard()
            return []
        return [Reply(500, "5.5.2", "Line too long")]

    def abort(self) -> None:
        """The connection ended: drop a message being read."""
        if self._data is not None:
            self._data.discard()
            self._data = None
        self._new_transaction()

    def _new_transaction(self) -> None:
        self._tx.discard()
        self._tx = _Transaction()

    def greeting(self) -> Reply:
        return Reply(220, "", f"{self.settings.hostname} LMTP ready")

    async def feed(self, line: bytes) -> list[Reply]:
        """The replies to one input line."""
        started = time.monotonic()
        if self._data is not None:
            if not self._data.feed(line):
                await self._spool(self._data)
                return []
            return report("DATA", await self._finish_data(), started)
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        verb, _, argument = text.partition(" ")
        handler = _COMMANDS.get(verb.upper())
        if handler is None:
            return report("UNKNOWN", [Reply(500, "5.5.1", "Unknown command")], started)
        return report(verb.upper(), await handler(self, argument), started)

    # --- commands (RFC 2033 §4.1, RFC 5321 §4.1.1) ------------------------------

    async def _lhlo(self, argument: str) -> list[Reply]:
        if not argument.strip():
            return [Reply(501, "5.5.4", "LHLO needs a domain")]
        self.helo = argument.strip().split()[0]
        self._new_transaction()
        extensions = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING",
                      f"SIZE {self.settings.max_message}")
        return [Reply(250, "", self.settings.hostname, extensions)]

    async def _mail(self, argument: str) -> list[Reply]:
        if self.helo is None:
            return [Reply(503, "5.5.1", "Send LHLO first")]
        if self._tx.sender is not None:
            return [Reply(503, "5.5.1", "Nested MAIL command")]
        try:
            path = parse_path(argument, "FROM")
        except PathError as error:
            return [Reply(501, "5.5.4", str(error))]
        refused = self._check_params(path)
        if refused is not None:
            return [refused]
        self._tx.sender = path.address
        return [Reply(250, "2.1.0", "Sender OK")]

    def _check_params(self, path: Envelope) -> Reply | None:
        """RFC 1870 §6.1 SIZE=, RFC 6152 BODY=; anything else is refused
        (RFC 5321 §4.1.1.11: 555)."""
        for key, value in path.params.items():
            if key == "SIZE":
                if not value.isdigit():
                    return Reply(501, "5.5.4", "Bad SIZE")
                if int(value) > self.settings.max_message:
                    return Reply(552, "5.3.4", "Message too big")
            elif key == "BODY":
                if value.upper() not in ("7BIT", "8BITMIME"):
                    return Reply(501, "5.5.4", "Bad BODY")
            else:
                return Reply(555, "5.5.4", f"Unsupported parameter {key}")
        return None

    async def _rcpt(self, argument: str) -> list[Reply]:
        if self._tx.sender is None:
            return [Reply(503, "5.5.1", "Need MAIL first")]
        try:
            path = parse_path(argument, "TO")
        except PathError as error:
            return [Reply(501, "5.5.4", str(error))]
        if path.params:
            return [Reply(555, "5.5.4", "No RCPT parameters supported")]
        if self._tx.bdat is not None or self._tx.failed is not None:
            return [BAD_SEQUENCE]  # RFC 3030 §3: the message is already on its way
        if len(self._tx.recipients) >= self.settings.max_recipients:
            return [Reply(452, "4.5.3", "Too many recipients")]
        settings = self.settings
        try:
            recipient = await resolve(path.address, settings.domains, settings.separator,
                                      self.exists)
        except MailError:  # the user store is down: the MTA retries (RFC 3463 §3.5)
            return [Reply(451, "4.3.0", "User lookup failed, try again later")]
        if recipient is None:
            return [Reply(550, "5.1.1", f"<{path.address}> User unknown")]
        self._tx.recipients.append(recipient)
        return [Reply(250, "2.1.5", "Recipient OK")]

    async def _data_command(self, argument: str) -> list[Reply]:
        if self._tx.sender is None:
            return [Reply(503, "5.5.1", "Need MAIL first")]
        if not self._tx.recipients:
            return [NO_RECIPIENTS]  # RFC 2033 §4.2
        if self._tx.bdat is not None or self._tx.failed is not None:
            return [Reply(503, "5.5.1", "DATA after BDAT")]  # RFC 3030 §3: not both
        self._data = DataReader(self.settings.max_message, self.settings.spool_dir)
        return [Reply(354, "", "Send message, end with <CRLF>.<CRLF>")]

    async def _rset(self, argument: str) -> list[Reply]:
        self._new_transaction()
        return [OK]

    async def _noop(self, argument: str) -> list[Reply]:
        return [OK]

    async def _vrfy(self, argument: str) -> list[Reply]:
        # RFC 5321 §3.5.3: 252 = cannot verify, will accept and attempt.
        return [Reply(252, "2.5.2", "Cannot VRFY user, but will accept message")]

    async def _quit(self, argument: str) -> list[Reply]:
        self.closed = True
        return [Reply(221, "2.0.0", "Bye")]

    # --- BDAT (RFC 3030; in LMTP, RFC 2033 §4.3) -----------------------------------

    async def _bdat(self, argument: str) -> list[Reply]:
        """``BDAT size [LAST]``: ``size`` raw octets follow the line. A
        refused chunk is still read (else its octets would be taken for
        commands), then answered; see ``_end_chunk``."""
        words = argument.split()
        if (not 1 <= len(words) <= 2 or not words[0].isdigit()
                or len(words[0]) > MAX_CHUNK_DIGITS
                or (len(words) == 2 and words[1].upper() != "LAST")):
            return [Reply(501, "5.5.4", "Syntax: BDAT size [LAST]")]
        tx = self._tx
        refused = tx.failed
        if refused is None and tx.sender is None:
            refused = NEED_MAIL
        elif refused is None and not tx.recipients:
            refused = NO_RECIPIENTS
        elif refused is None and tx.bdat is None:
            tx.bdat = DataReader(self.settings.max_message, self.settings.spool_dir)
        self._chunk = _Chunk(int(words[0]), len(words) == 2, refused)
        if self._chunk.left == 0:
            return await self._end_chunk()
        return []

    async def feed_octets(self, data: bytes) -> list[Reply]:
        """Raw octets of the current chunk (at most ``octets_wanted``),
        stored exactly as sent: no dot-unstuffing, no line-end change."""
        started = time.monotonic()
        chunk = self._chunk
        assert chunk is not None and 0 < len(data) <= chunk.left
        chunk.left -= len(data)
        if chunk.refused is None and self._tx.bdat is not None:
            self._tx.bdat.feed_raw(data)
            await self._spool(self._tx.bdat)
        if chunk.left:
            return []
        return report("BDAT", await self._end_chunk(), started)

    async def _end_chunk(self) -> list[Reply]:
        """The replies to a whole chunk: one for a chunk before LAST; after
        LAST one per accepted recipient (RFC 2033 §4.3), also when the
        transaction failed earlier, so a pipelining client stays in step."""
        chunk, self._chunk = self._chunk, None
        assert chunk is not None
        tx = self._tx
        failure = chunk.refused
        if failure is None and tx.bdat is not None and (tx.bdat.too_big or tx.bdat.broken):
            # RFC 1870 §6.2: refused after the octets, as every later chunk
            failure = tx.failed = TOO_BIG if tx.bdat.too_big else SPOOL_FAILED
            tx.discard()
        if not chunk.last:
            return [failure or Reply(250, "2.0.0", f"{chunk.size} octets received")]
        if failure is not None:
            count = len(tx.recipients) if failure is tx.failed else 1
            replies = [failure] * max(1, count)
            if tx.sender is not None:
                self._new_transaction()
            return delivered(replies) if tx.recipients else replies
        reader, tx.bdat = tx.bdat, None
        assert reader is not None
        self._tx = _Transaction()
        return await self._deliver_all(reader, tx)

    # --- delivery ------------------------------------------------------------------

    async def _finish_data(self) -> list[Reply]:
        reader, self._data = self._data, None
        assert reader is not None
        tx, self._tx = self._tx, _Transaction()
        if reader.too_big or reader.broken:
            reader.discard()
            return delivered([TOO_BIG if reader.too_big else SPOOL_FAILED] * len(tx.recipients))
        return await self._deliver_all(reader, tx)

    async def _deliver_all(self, reader: DataReader, tx: _Transaction) -> list[Reply]:
        """One reply per accepted recipient, in RCPT order (RFC 2033 §4.2)."""
        try:
            self._serial += 1
            return delivered([await self._deliver_one(reader, tx, rcpt)
                              for rcpt in tx.recipients])
        finally:
            reader.discard()

    async def _deliver_one(self, reader: DataReader, tx: _Transaction,
                           rcpt: Recipient) -> Reply:
        """Store the message for one recipient; 250 only once it is
        durably stored (``MailService.deliver`` commits before returning)."""
        prefix = self.trace(tx.sender or "", rcpt)
        message: MessageData = b""
        try:
            message = await self._message(reader, prefix)
            folder = await self._folder(rcpt)
            await self.mail.deliver(rcpt.user, folder, [AppendItem(message)])
        except MailError as error:
            return delivery_failure(error, self.settings.quota_full_tempfail)
        except OSError:
            return Reply(451, "4.3.0", "Local error while spooling")
        finally:
            if isinstance(message, SpooledLiteral):
                message.close()  # the spool file goes now, not at garbage collection
        return Reply(250, "2.0.0", f"<{rcpt.address}> Saved")

    async def _spool(self, reader: DataReader) -> None:
        """Write a full batch to the spool file in a worker thread (file
        I/O blocks); input is not read on meanwhile."""
        if not reader.batch_full:
            return
        reader.flushing = True
        try:
            if self.runtime is not None:
                await self.runtime.in_thread(reader.flush)
            else:
                reader.flush()
        except OSError:  # disk full, spool directory gone: 451 at the end
            reader.broken = True
        finally:
            reader.flushing = False
        if reader.broken or reader.discarded:
            reader.discard()

    async def _message(self, reader: DataReader, prefix: bytes) -> MessageData:
        if self.runtime is not None and reader.spooled:
            return await self.runtime.in_thread(reader.message, prefix)
        return reader.message(prefix)

    async def _folder(self, rcpt: Recipient) -> str:
        """The ``+detail`` folder when it exists and takes mail, else INBOX."""
        if rcpt.detail is None:
            return INBOX
        try:
            await self.mail.target_entry(rcpt.user, rcpt.detail)
        except (Unavailable, StorageFull):
            raise  # the store's trouble, not a missing folder: 4xx, not INBOX
        except MailError:  # missing, a placeholder, or not a valid name
            return INBOX
        return rcpt.detail

    def trace(self, sender: str, rcpt: Recipient) -> bytes:
        """Return-Path, Delivered-To and Received, as Dovecot's LMTP adds
        them (RFC 5321 §4.4: the final delivery adds Return-Path)."""
        stamp = self.now().strftime("%a, %d %b %Y %H:%M:%S %z")
        lines = (
            f"Return-Path: <{sender}>\r\n"
            f"Delivered-To: {rcpt.address}\r\n"
            f"Received: from {self.helo} ({self.peer})\r\n"
            f"\tby {self.settings.hostname} (imapd) with LMTP\r\n"
            f"\tfor <{rcpt.address}>; {stamp}\r\n"
        )
        return lines.encode("utf-8", "replace")


def verdict(replies: list[Reply]) -> str:
    """The telemetry result of a command's replies: the success code
    ("250", "221"...), or the class of the worst failure ("4xx", "5xx")
    when any recipient or the command failed."""
    worst = max(reply.code for reply in replies)
    return f"{worst // 100}xx" if worst >= 400 else str(worst)


def report(command: str, replies: list[Reply], started: float) -> list[Reply]:
    """Tell the telemetry a command finished, unless it has no final reply
    yet (a BDAT chunk still being read; DATA's 354, which is reported with
    the replies after the message instead)."""
    if replies and not all(300 <= reply.code < 400 for reply in replies):
        telemetry.sink().command_finished(
            "lmtp", command, verdict(replies), time.monotonic() - started)
    return replies


def delivered(replies: list[Reply]) -> list[Reply]:
    """Tell the telemetry one delivery per recipient reply (RFC 2033 §4.2)."""
    sink = telemetry.sink()
    for reply in replies:
        outcome = "ok" if reply.code < 400 else "temporary" if reply.code < 500 else "permanent"
        sink.delivered("lmtp", outcome)
    return replies


_Handler = Callable[[LmtpSession, str], Awaitable[list[Reply]]]
_COMMANDS: dict[str, _Handler] = {
    "LHLO": LmtpSession._lhlo,
    "MAIL": LmtpSession._mail,
    "RCPT": LmtpSession._rcpt,
    "DATA": LmtpSession._data_command,
    "BDAT": LmtpSession._bdat,
    "RSET": LmtpSession._rset,
    "NOOP": LmtpSession._noop,
    "VRFY": LmtpSession._vrfy,
    "QUIT": LmtpSession._quit,
}
