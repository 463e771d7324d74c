"""The POP3 wire pieces: the line framer, the command parser (with a
hypothesis test: it never raises and reads back what a client composes),
and byte-stuffing and TOP on chunk streams cut anywhere."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from imapd.imap.wire.framer import CommandFrame, FrameError
from imapd.pop3.commands import Command, SyntaxProblem, parse_command, parse_number
from imapd.pop3.framer import LINE_TOO_LONG, LineFramer
from imapd.pop3.replies import err, multiline, ok, stuffed, top

# --- framer ---------------------------------------------------------------------------


def test_framer_splits_lines_across_reads_and_accepts_bare_lf() -> None:
    framer = LineFramer(16)
    assert framer.feed(b"NO") == []
    assert framer.feed(b"OP\r\nSTAT\nLI") == [CommandFrame(b"NOOP\r\n"), CommandFrame(b"STAT\n")]
    assert framer.feed(b"ST\r\n") == [CommandFrame(b"LIST\r\n")]


def test_framer_drops_an_overlong_line_once_and_goes_on() -> None:
    framer = LineFramer(16)
    assert framer.feed(b"X" * 10) == []
    assert framer.feed(b"X" * 10) == [FrameError(None, LINE_TOO_LONG)]
    assert framer.feed(b"X" * 1000) == []  # not buffered: dropped as it comes
    assert framer.feed(b"X\r\nNOOP\r\n") == [CommandFrame(b"NOOP\r\n")]
    # A complete overlong line in one read.
    assert framer.feed(b"Y" * 20 + b"\r\nQUIT\r\n") == [
        FrameError(None, LINE_TOO_LONG), CommandFrame(b"QUIT\r\n")]


def test_framer_line_limit_counts_the_line_end() -> None:
    framer = LineFramer(6)
    assert framer.feed(b"NOOP\r\n") == [CommandFrame(b"NOOP\r\n")]
    assert framer.feed(b"NOOPS\r\n") == [FrameError(None, LINE_TOO_LONG)]


def test_framer_discard_and_close() -> None:
    framer = LineFramer(64)
    framer.feed(b"half")
    framer.discard_buffer()
    assert framer.feed(b"NOOP\r\n") == [CommandFrame(b"NOOP\r\n")]
    framer.close()
    assert framer.feed(b"NOOP\r\n") == []


# --- parser ----------------------------------------------------------------------------


def test_parser_examples() -> None:
    assert parse_command(b"stat\r\n") == Command("STAT")
    assert parse_command(b"TOP 1 10\r\n") == Command("TOP", ("1", "10"))
    assert parse_command(b"PASS a b  c\r\n") == Command("PASS", ("a b  c",))
    assert parse_command(b"USER j\xc3\xb6rg\n") == Command("USER", ("jörg",))
    assert parse_command(b"LIST \r\n") == SyntaxProblem("Arguments are separated by one space")
    assert parse_command(b"TOOLONG\r\n") == SyntaxProblem("Unknown command")
    assert parse_command(b"NO\tOP\r\n") == SyntaxProblem("Invalid characters in command")
    assert parse_number("007") == 7
    assert parse_number("+1") is None and parse_number("١") is None


@given(st.binary(max_size=300))
def test_parser_never_raises(line: bytes) -> None:
    assert isinstance(parse_command(line), (Command, SyntaxProblem))


KEYWORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                   min_size=3, max_size=4)
ARGUMENT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FFF,
                                 blacklist_categories=["Cs"], blacklist_characters="\x7f"),
                   min_size=1, max_size=20)


@given(KEYWORDS, st.lists(ARGUMENT, max_size=3), st.sampled_from([b"\r\n", b"\n"]))
def test_parser_reads_back_what_a_client_composes(
        keyword: str, args: list[str], end: bytes) -> None:
    line = " ".join([keyword, *args]).encode("utf-8") + end
    parsed = parse_command(line)
    assert isinstance(parsed, Command)
    assert parsed.name == keyword.upper()
    expected = (" ".join(args),) if keyword.upper() == "PASS" and args else tuple(args)
    assert parsed.args == expected


# --- replies -----------------------------------------------------------------------------


def test_status_lines() -> None:
    assert ok() == b"+OK\r\n"
    assert ok("done") == b"+OK done\r\n"
    assert err("no", "SYS/TEMP") == b"-ERR [SYS/TEMP] no\r\n"
    assert b"".join(multiline(ok(), [b"a", b".b"], batch=1)) == b"+OK\r\na\r\n..b\r\n.\r\n"


def unstuff(data: bytes) -> bytes:
    """What a client makes of a multi-line body (RFC 1939 §3)."""
    assert data.endswith(b"\r\n.\r\n") or data == b".\r\n"
    body = data[:-3]
    lines = body.split(b"\n")
    return b"\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({min(p, len(data)) for p in points})
    return [data[a:b] for a, b in zip([0, *edges], [*edges, len(data)])]


MESSAGE = st.lists(st.sampled_from([b".", b"..", b"a", b"\r\n", b"\n", b"x.y", b"\r"]),
                   max_size=40).map(b"".join)


@given(MESSAGE, st.lists(st.integers(0, 200), max_size=6))
def test_stuffing_round_trips_whatever_the_chunking(message: bytes, points: list[int]) -> None:
    sent = b"".join(stuffed(cut(message, points)))
    closed = message if message.endswith(b"\r\n") or not message else message + b"\r\n"
    assert unstuff(sent) == closed
    assert b"\n.\r\n" not in sent[:-3]  # no early terminator


@given(MESSAGE, st.lists(st.integers(0, 200), max_size=6), st.integers(0, 5))
def test_top_matches_a_line_by_line_reference(message: bytes, points: list[int], n: int) -> None:
    # Lines end at LF (a lone CR is not a line end).
    lf_lines = [line + b"\n" for line in message.split(b"\n")]
    lf_lines[-1] = lf_lines[-1][:-1]
    header_end = next((i + 1 for i, line in enumerate(lf_lines) if line in (b"\r\n", b"\n")), None)
    expected = message if header_end is None else b"".join(lf_lines[:header_end + n])
    assert b"".join(top(cut(message, points), n)) == expected
