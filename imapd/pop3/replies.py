"""POP3 responses as bytes (RFC 1939 §3): a status line ``+OK``/``-ERR``
with optional text, RFC 2449 §8 response codes in brackets (RFC 3206:
AUTH, SYS/TEMP, SYS/PERM, IN-USE), and multi-line responses ending in a
line holding a single ".", where a line starting with "." is sent with one
more "." in front (byte-stuffing).

Message bodies go out exactly as stored, stuffed: ``stuffed`` works on a
chunk stream (a message is never joined in memory) and ``top`` cuts a
stream after the header and N body lines (RFC 1939 §7 TOP).
"""

from __future__ import annotations

from typing import Iterable, Iterator

CRLF = b"\r\n"
END = b".\r\n"

# RFC 3206 / RFC 2449 §8 response codes.
AUTH = "AUTH"            # the credentials are wrong (not a temporary problem)
SYS_TEMP = "SYS/TEMP"    # a temporary server problem (the store is unavailable)
SYS_PERM = "SYS/PERM"    # a permanent server problem
IN_USE = "IN-USE"        # the maildrop is busy (here: too many sessions)


def ok(text: str = "", code: str | None = None) -> bytes:
    return _status(b"+OK", text, code)


def err(text: str, code: str | None = None) -> bytes:
    return _status(b"-ERR", text, code)


def _status(word: bytes, text: str, code: str | None) -> bytes:
    parts = [word]
    if code:
        parts.append(f"[{code}]".encode("ascii"))
    if text:
        parts.append(text.encode("utf-8"))
    return b" ".join(parts) + CRLF


def stuff_line(line: bytes) -> bytes:
    """One line of a multi-line response (without its CRLF), stuffed."""
    return (b"." + line if line.startswith(b".") else line) + CRLF


def multiline(first: bytes, lines: Iterable[bytes], batch: int = 512) -> Iterator[bytes]:
    """``first`` (a status line), then ``lines`` stuffed, then ".": as
    chunks of ``batch`` lines, so a 100,000-message LIST is written as the
    client reads it instead of being built at once."""
    yield first
    pending: list[bytes] = []
    for line in lines:
        pending.append(stuff_line(line))
        if len(pending) >= batch:
            yield b"".join(pending)
            pending = []
    pending.append(END)
    yield b"".join(pending)


def stuffed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The message in ``chunks``, byte for byte, with a "." added in front
    of every line that starts with "." (a line starts after any LF), then
    CRLF unless the message ends with CRLF (a message ending in a bare LF
    too: a client that waits for CRLF "." CRLF must see it), then ".".
    Chunk boundaries may fall anywhere."""
    tail = b"\r\n"  # the last two octets sent: an empty message needs no CRLF
    for chunk in chunks:
        if not chunk:
            continue
        out = chunk.replace(b"\n.", b"\n..")
        if tail.endswith(b"\n") and chunk.startswith(b"."):
            out = b"." + out
        tail = (tail + chunk)[-2:]
        yield out
    yield END if tail == CRLF else CRLF + END


def top(chunks: Iterable[bytes], lines: int) -> Iterator[bytes]:
    """The start of the message in ``chunks``: its header, the empty line
    after it, and ``lines`` lines of the body (RFC 1939 §7 TOP); the whole
    message if it is shorter. Stops reading once that much is out."""
    in_header = True
    body_lines = 0
    line_start = b""  # the first octets (at most 2) of the current line
    for chunk in chunks:
        position = 0
        while True:
            if not in_header and body_lines >= lines:
                if position:
                    yield chunk[:position]
                return
            newline = chunk.find(b"\n", position)
            if newline < 0:
                line_start = (line_start + chunk[position:position + 2])[:2]
                break
            head = (line_start + chunk[position:newline + 1])[:2]
            line_start = b""
            if in_header:
                in_header = head not in (b"\n", b"\r\n")  # the empty line ends it
            else:
                body_lines += 1
            position = newline + 1
        yield chunk
