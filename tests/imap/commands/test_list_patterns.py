"""LIST / LSUB pattern matching (RFC 3501 §6.3.8, RFC 5258): the
non-backtracking matcher agrees with a plain regex on small inputs, and a
hostile pattern costs a bounded amount of work — unit and over the protocol
(LIST, LSUB, LIST-EXTENDED with several patterns).

The old matcher was a regex with one ``.*`` per wildcard: ``*%*%*%*%x``
(8 wildcards) against a 94-character name took over 60 s of CPU. The
bounds here are generous (seconds) because a backtracking matcher misses
them by orders of magnitude; they are measured in process CPU time, not
wall-clock time, so a loaded machine does not make them flake."""

from __future__ import annotations

import re
import time
from typing import Callable, Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imapd.core.errors import ImapError
from imapd.mail import names
from imapd.mail.listpattern import ListPattern, collapse
from tests.imap.commands.harness import Client, MailServer

CPU_BUDGET = 2.0  # seconds; the matcher needs well under 0.5 s for each case


def reference(pattern: str, name: str) -> bool:
    """RFC 3501 §6.3.8 as a regex (exponential in the wildcards: small
    inputs only)."""
    parts = [".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern]
    return re.fullmatch("".join(parts), name, re.DOTALL) is not None


@settings(max_examples=2000, deadline=None)
@given(pattern=st.text("ab/*%", max_size=9), name=st.text("ab/", max_size=9))
@example(pattern="%", name="a/b")
@example(pattern="*%", name="a/b")
@example(pattern="a%*b", name="a//b")
@example(pattern="%/%", name="a/b/c")
@example(pattern="", name="")
def test_matcher_agrees_with_a_regex(pattern: str, name: str) -> None:
    assert ListPattern(pattern, "/").matches(name) is reference(pattern, name)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        # RFC 3501 §6.3.8: "foo*" matches foo, foobar, foo/bar; "foo%" foo, foobar, not foo/bar
        ("foo*", "foo", True), ("foo*", "foobar", True), ("foo*", "foo/bar", True),
        ("foo%", "foo", True), ("foo%", "foobar", True), ("foo%", "foo/bar", False),
        ("%", "INBOX", True), ("%", "a/b", False), ("*", "", True), ("*", "a/b/c", True),
        ("%/%", "a/b", True), ("%/%", "a/b/c", False), ("*/%", "a/b/c", True),
        ("a*b%c", "axb/xbyc", True), ("a*b%c", "axxb/yc", False),
        ("Foo", "foo", False),  # case-sensitive (RFC 3501 §5.1 names are)
        ("", "", True), ("", "a", False), ("a", "a", True), ("ab", "a", False),
        ("a%", "a", True), ("%a", "a", True), ("%a%", "/a", False), ("*a*", "/a/", True),
    ],
)
def test_known_answers(pattern: str, name: str, expected: bool) -> None:
    assert ListPattern(pattern, "/").matches(name) is expected
    assert reference(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "collapsed"),
    [("*%*%", "*"), ("%%%", "%"), ("%*", "*"), ("*%", "*"), ("a%*b", "a*b"),
     ("a%%b*%c", "a%b*c"), ("abc", "abc"), ("", ""), ("*" * 1000 + "%", "*")],
)
def test_wildcard_runs_collapse(pattern: str, collapsed: str) -> None:
    assert collapse(pattern) == collapsed


def test_inbox_matches_whatever_its_case() -> None:
    """RFC 3501 §5.1: INBOX is case-insensitive; the rest is not."""
    assert names.compile_pattern("inbox")("INBOX")
    assert names.compile_pattern("InBox/%")("INBOX/x")
    assert not names.compile_pattern("InBox/%")("INBOX/x/y")
    assert not names.compile_pattern("inboxes")("INBOXES")


def _cpu(action: Callable[[], object]) -> tuple[object, float]:
    start = time.process_time()
    result = action()
    return result, time.process_time() - start


LONG_NAMES = [("n" * 30 + "/") * 31 + f"y{i:04d}" for i in range(1000)]  # 996 characters


@pytest.mark.parametrize(
    ("pattern", "names_", "matching"),
    [
        ("*%" * 5000 + "x", LONG_NAMES, 0),            # collapses to "*x"
        ("*%" * 5000 + "y0999", LONG_NAMES, 1),
        ("%" * 9999 + "/%", LONG_NAMES, 0),            # "%/%": two levels only
        # Nothing collapses and nothing is rejected early: 400 wildcards
        # and every name read to its end.
        ("*a" * 400 + "b", ["a" * 998 + "b"] * 1000, 1000),
        ("*a" * 400 + "*", ["a" * 399 + "b" * 599] * 1000, 0),
        # 500 characters read per name before "/" ends every state: 500,000
        # steps, past one command's budget (300,000), so NO [LIMIT].
        ("%a" * 400 + "%", ["a" * 500 + "/" + "b" * 498] * 1000, None),
        ("*" * 1_000_000 + "a" * 2000, LONG_NAMES, 0),  # more literals than any name
    ],
)
def test_pattern_complexity_is_bounded(pattern: str, names_: list[str], matching: int | None) -> None:
    """Each case ends within the CPU bound, with its count of matches or
    (``None``) the command's work limit, NO [LIMIT]."""
    def run() -> int | None:
        matcher = names.compile_pattern(pattern)
        try:
            return sum(1 for name in names_ if matcher(name))
        except ImapError as error:
            assert error.code == "LIMIT"
            return None

    count, cpu = _cpu(run)
    assert count == matching
    assert cpu < CPU_BUDGET, f"{cpu:.2f} s of CPU"


# --- over the protocol --------------------------------------------------------

PREFIX = "/".join(f"level{i:02d}-" + "z" * 22 for i in range(31))  # 960 characters
LEAVES = 300


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    server = MailServer(tmp_path_factory.mktemp("patterns"))
    for i in range(LEAVES):
        server.create(f"{PREFIX}/leaf{i:03d}")
    client = server.connect("alice")
    client.ok(f'a SUBSCRIBE "{PREFIX}/leaf007"')
    yield server
    server.close()


HOSTILE = "*%" * 5000 + "!"  # 10,001 characters; matches nothing


@pytest.mark.parametrize(
    "command",
    [
        f'a LIST "" {HOSTILE}',
        f'a LSUB "" {HOSTILE}',
        f'a LIST (SUBSCRIBED) "" ({HOSTILE} {HOSTILE} %%%%%%%%!)',
        f'a LIST "" ({HOSTILE} {HOSTILE}) RETURN (CHILDREN)',
        f'a LIST "{"%*" * 2000}" {HOSTILE}',  # the reference is part of the pattern
    ],
)
def test_hostile_patterns_over_the_protocol(many: MailServer, command: str) -> None:
    client = many.connect("alice")
    verb = "LSUB" if " LSUB " in command else "LIST"
    out, cpu = _cpu(lambda: client.command(command))
    assert out == f"a OK {verb} completed\r\n".encode()
    assert cpu < CPU_BUDGET, f"{cpu:.2f} s of CPU"


def test_wildcard_heavy_patterns_still_find_names(many: MailServer) -> None:
    client = many.connect("alice")
    pattern = "*%" * 3000 + "leaf00%7"  # collapses to "*leaf00%7"
    client.transcript(f"""
        C: a LIST "" {pattern}
        S: * LIST (\\HasNoChildren) "/" {PREFIX}/leaf007
        S: a OK LIST completed
        C: b LSUB "" {"%/" * 31}%%%%7
        S: * LSUB () "/" {PREFIX}/leaf007
        S: b OK LSUB completed
        C: c LIST (SUBSCRIBED) "" ({pattern} nothing)
        S: * LIST (\\HasNoChildren \\Subscribed) "/" {PREFIX}/leaf007
        S: c OK LIST completed
    """)


def test_pattern_count_is_bounded(many: MailServer) -> None:
    """RFC 5258 §3 allows several patterns; more than 32 distinct ones is
    NO [LIMIT] (RFC 5530) before any work, repeats count once."""
    client = many.connect("alice")
    distinct = " ".join(f"x{i}%" for i in range(33))
    repeated = " ".join(["nothing%"] * 200)
    client.transcript(f"""
        C: a LIST "" ({distinct})
        S: a NO [LIMIT] Too many mailbox patterns (at most 32)
        C: b LIST "" ({repeated})
        S: b OK LIST completed
    """)


def test_matching_work_is_bounded_per_command(many: MailServer) -> None:
    """32 patterns with ``%`` that every leaf passes the cheap checks for
    (a leaf has 63 e's; they ask for 2 to 33) but none matches (a leaf's
    own level has one e, and ``e%`` cannot cross a ``/``), each read by the
    automaton to the end of 300 names of ~970 characters: 9 million steps,
    past the command's budget (300,000), so NO [LIMIT] — promptly."""
    client = many.connect("alice")
    costly = " ".join("*" + "e%" * k for k in range(2, 34))
    out, cpu = _cpu(lambda: client.command(f'a LIST "" ({costly})'))
    assert out == b"a NO [LIMIT] Mailbox patterns too costly to match (work limit)\r\n"
    assert cpu < CPU_BUDGET, f"{cpu:.2f} s of CPU"
    # one such pattern is well within the budget
    out = client.command('b LIST "" ' + "*e" * 32 + "*")
    expected = sum(1 for name in many.mailbox_names() if name.count("e") >= 32)
    assert expected > LEAVES
    assert out.count(b"* LIST ") == expected and out.endswith(b"b OK LIST completed\r\n")
