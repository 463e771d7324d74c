"""Properties of the LMTP wing under hypothesis: envelope paths
(RFC 5321 §4.1.2), the DATA transparency procedure (RFC 5321 §4.5.2:
whatever the client dot-stuffs arrives exactly), and sessions fed any
sequence of commands and junk (every line answered with a well-formed
reply; nothing raises; the session keeps answering)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from imapd.lmtp.address import PathError, parse_path, resolve
from imapd.lmtp.data import DataReader
from imapd.lmtp.session import LmtpSession, LmtpSettings
from imapd.mail.service import MailService
from imapd.storage.memory import MemoryBackend
from tests.support.inline import run_inline as run

REPLY = re.compile(rb"\A(?:[2-5]\d\d-[^\r\n]*\r\n)*[2-5]\d\d [^\r\n]*\r\n\Z")
ATOM = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_",
               min_size=1, max_size=20)


@given(st.text(max_size=300), st.sampled_from(["FROM", "TO"]))
def test_parse_path_accepts_or_refuses_with_path_error(text: str, keyword: str) -> None:
    try:
        envelope = parse_path(text, keyword)
    except PathError:
        return
    assert len(envelope.address) <= 256
    assert not set(envelope.address) & set("<> \t\r\n")


@given(ATOM, ATOM, st.dictionaries(st.sampled_from(["SIZE", "BODY", "X-Y"]), ATOM, max_size=3))
def test_parse_path_reads_back_what_was_written(local: str, domain: str,
                                                params: dict[str, str]) -> None:
    written = " ".join(f"{key}={value}" for key, value in params.items())
    envelope = parse_path(f"To:<{local}@{domain}> {written}", "TO")
    assert envelope.address == f"{local}@{domain}"
    assert envelope.params == params


@given(ATOM, st.one_of(st.none(), ATOM), st.booleans())
def test_resolve_matches_the_local_part_case_insensitively(
        user: str, detail: str | None, shout: bool) -> None:
    local = user.lower()
    known = {local}

    async def exists(name: str) -> bool:
        return name in known

    written = (local.upper() if shout else local) + ("" if detail is None else f"+{detail}")
    recipient = run(resolve(f"{written}@example.org", ("example.org",), "+", exists))
    if "+" in local:  # the separator inside the name itself splits it
        return
    assert recipient is not None
    assert (recipient.user, recipient.detail) == (local, detail)
    assert run(resolve(f"{written}@elsewhere.org", ("example.org",), "+", exists)) is None


LINE = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@given(st.lists(LINE, max_size=40), st.booleans())
def test_dot_stuffed_lines_arrive_exactly(lines: list[bytes], bare_lf: bool) -> None:
    """RFC 5321 §4.5.2: the client doubles a leading dot; the server
    removes it; the stored message is the lines joined by CRLF."""
    reader = DataReader(limit=1 << 20)
    end = b"\n" if bare_lf else b"\r\n"
    for line in lines:
        stuffed = b"." + line if line.startswith(b".") else line
        assert not reader.feed(stuffed + end)
    assert reader.feed(b".\r\n")
    assert bytes(reader.message(b"P: x\r\n")) == b"P: x\r\n" + b"".join(l + b"\r\n" for l in lines)
    reader.discard()


COMMAND = st.one_of(
    st.sampled_from([b"LHLO mta", b"MAIL FROM:<s@example.org>", b"MAIL FROM:<>",
                     b"RCPT TO:<alice@x.org>", b"RCPT TO:<nobody@x.org>", b"DATA", b"RSET",
                     b"NOOP", b"VRFY alice", b"HELO x", b"BDAT 3", b"BDAT 0 LAST", b"MAIL",
                     b"RCPT TO:alice", b"MAIL FROM:<a> SIZE=x", b"MAIL FROM:<a> FOO=1",
                     b"Subject: x", b".", b"..", b""]),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")),
)


@given(st.lists(COMMAND, max_size=30))
def test_any_command_sequence_gets_well_formed_replies(commands: list[bytes]) -> None:
    async def exists(name: str) -> bool:
        return name == "alice"

    lmtp = LmtpSession(MailService(MemoryBackend()), exists, LmtpSettings(max_message=4096))
    for command in commands:
        if lmtp.closed:
            break
        replies = run(lmtp.feed(command + b"\r\n"))
        for reply in replies:
            assert REPLY.match(reply.encode()), reply
    if lmtp.closed:
        return
    # Whatever came before, the session still answers: end any DATA, then NOOP.
    if lmtp.in_data:
        run(lmtp.feed(b".\r\n"))
    replies = run(lmtp.feed(b"NOOP\r\n")) if not lmtp.in_data else []
    if replies:
        assert replies[-1].code == 250
    lmtp.abort()
