"""The imaptest scripts' FETCH/SEARCH expectations as known answers for the
message model.

The scripts and mbox files are read from ../shared/conformance/imaptest
exactly as the conformance runner uses them (README §2 for ``{{{`` literals,
§6 for the mbox source: every line converted to CRLF, the empty line before
the next ``From `` separator is part of the message).  Values are formatted
with the test formatter and compared without regard to case (README §8).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imapd.message import (
    MessageInfo,
    analyze,
    apply_partial,
    body_structure,
    envelope,
    header_values,
    matches_text,
    section_bytes,
)
from imapd.imap.wire.commands import Partial, Section, SectionText, TextScope
from imapd.imap.wire.encode import encode_response
from imapd.imap.wire.responses import FetchResponse

from .conftest import CONFORMANCE

if not CONFORMANCE.is_dir():  # pragma: no cover - only outside the project tree
    pytest.skip(f"conformance data not found at {CONFORMANCE}", allow_module_level=True)


def read_mbox(path: Path) -> list[bytes]:
    messages: list[list[bytes]] = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        if line.startswith(b"From "):
            messages.append([])
        elif messages:
            messages[-1].append(line)
    return [b"".join(line + b"\r\n" for line in lines) for lines in messages]


def read_script(path: Path) -> list[bytes]:
    """Logical lines with ``{{{`` literals inlined as ``{N}\\r\\n...``."""
    lines = path.read_bytes().split(b"\n")[:-1]
    out: list[bytes] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith(b"#"):
            continue
        while line.endswith(b"{{{"):
            binary = line.endswith(b"~{{{")
            head = line[: -4 if binary else -3]
            content: list[bytes] = []
            while not lines[index].startswith(b"}}}"):
                content.append(lines[index])
                index += 1
            rest = lines[index][3:]
            index += 1
            body = (b"\n" if binary else b"\r\n").join(content)
            line = head + (b"~" if binary else b"") + b"{%d}\r\n" % len(body) + body + rest
        out.append(line)
    return out


def messages_of(test: str) -> list[tuple[bytes, MessageInfo]]:
    return [(raw, analyze(raw)) for raw in read_mbox(CONFORMANCE / f"{test}.mbox")]


_TEXTS = {
    "HEADER": SectionText.HEADER,
    "HEADER.FIELDS": SectionText.HEADER_FIELDS,
    "HEADER.FIELDS.NOT": SectionText.HEADER_FIELDS_NOT,
    "TEXT": SectionText.TEXT,
    "MIME": SectionText.MIME,
}


def parse_section(spec: str) -> Section:
    """``1.2.HEADER.FIELDS (From To)`` -> Section."""
    fields: tuple[str, ...] = ()
    if "(" in spec:
        spec, _, names = spec.partition("(")
        fields = tuple(names.rstrip(")").upper().split())
    spec = spec.strip().upper()
    numbers: list[int] = []
    pieces = spec.split(".") if spec else []
    while pieces and pieces[0].isdigit():
        numbers.append(int(pieces.pop(0)))
    text = _TEXTS[".".join(pieces)] if pieces else None
    return Section(tuple(numbers), text, fields)


_BODY_ITEM = re.compile(rb"(?:body(?:\.peek)?\[([^\]]*)\]|(rfc822\.text)|(rfc822))(?:<(\d+)\.(\d+)>)?", re.I)
_EXPECTED = re.compile(
    rb"^([*!]) (\d+) fetch \((?:flags \(\) )?(?:body\[[^\]]*\](?:<\d+>)?|rfc822\.text|rfc822) "
    rb'(~?\{(\d+)\}\r\n|"([^"]*)")',
    re.I | re.S,
)


def fetch_cases(test: str) -> list[tuple[str, int, Section, Partial | None, bytes, bool]]:
    """(label, message number, section, partial, expected bytes, must match)."""
    cases = []
    command = b""
    for line in read_script(CONFORMANCE / test):
        if line.lower().startswith(b"ok fetch"):
            command = line
            continue
        match = _EXPECTED.match(line)
        if match is None:
            continue
        item = _BODY_ITEM.search(command)
        assert item is not None, command
        if item.group(2):
            section = Section(text=SectionText.TEXT)
        elif item.group(3):
            section = Section()
        else:
            section = parse_section(item.group(1).decode())
        partial = Partial(int(item.group(4)), int(item.group(5))) if item.group(4) else None
        if match.group(4) is not None:
            start = match.end()
            expected = line[start:start + int(match.group(4))]
        else:
            expected = match.group(5)
        label = f"{test}:{command.decode(errors='replace')}"
        cases.append((label, int(match.group(2)), section, partial, expected, match.group(1) == b"*"))
    return cases


FETCH_TESTS = [
    "fetch-body", "fetch-body-mime", "fetch-body-message-rfc822",
    "fetch-body-message-rfc822-mime",
]
FETCH_CASES = [case for test in FETCH_TESTS for case in fetch_cases(test)]


def test_fetch_cases_were_found() -> None:
    # Guards against the parser above silently finding nothing.
    assert len(FETCH_CASES) == 53  # counted in the four scripts
    assert sum(1 for case in FETCH_CASES if not case[5]) == 2


@pytest.mark.parametrize("case", FETCH_CASES, ids=[c[0] for c in FETCH_CASES])
def test_fetch_body_section(case: tuple[str, int, Section, Partial | None, bytes, bool]) -> None:
    label, number, section, partial, expected, must_match = case
    test = label.split(":", 1)[0]
    raw, info = messages_of(test)[number - 1]
    data = section_bytes(raw, info, section)
    assert data is not None
    got = apply_partial(data, partial)
    if must_match:
        assert got == expected
    else:
        assert got != expected


def test_rfc822_header_equals_body_header() -> None:
    for raw, info in messages_of("fetch-body"):
        header = section_bytes(raw, info, Section(text=SectionText.HEADER))
        assert header == raw[: raw.index(b"\r\n\r\n") + 4]


def _expected_fetch_lines(test: str, item: str) -> dict[int, bytes]:
    found = {}
    for line in read_script(CONFORMANCE / test):
        match = re.match(rb"\* (\d+) FETCH \(" + item.encode() + rb" ", line, re.I)
        if match:
            found[int(match.group(1))] = line + b"\r\n"
    return found


def test_fetch_envelope() -> None:
    # The whole response line as the encoder writes it, compared without
    # regard to case (README §8): address lists back to back, as Dovecot.
    expected = _expected_fetch_lines("fetch-envelope", "ENVELOPE")
    messages = messages_of("fetch-envelope")
    assert sorted(expected) == list(range(1, len(messages) + 1))
    for number, (_, info) in enumerate(messages, 1):
        line = encode_response(FetchResponse(number, (("ENVELOPE", envelope(info)),)))
        assert line.lower() == expected[number].lower(), number


def test_fetch_body_structure() -> None:
    expected = _expected_fetch_lines("fetch-bodystructure", "BODY")
    messages = messages_of("fetch-bodystructure")
    assert len(expected) == 1
    for number, (_, info) in enumerate(messages, 1):
        line = encode_response(FetchResponse(number, (("BODY", body_structure(info, False)),)))
        assert line.lower() == expected[number].lower()


def _search(messages: list[tuple[bytes, MessageInfo]], words: list[str]) -> set[int]:
    negate = words[0] == "not"
    if negate:
        words = words[1:]
    key = words[0]
    hits = set()
    for number, (raw, info) in enumerate(messages, 1):
        if key in ("text", "body"):
            hit = matches_text(raw, info, words[1], TextScope(key.upper()))
        else:
            field, needle = (words[1], words[2]) if key == "header" else (key, words[1])
            hit = any(needle.lower() in value.lower() for value in header_values(raw, info, field))
        if hit != negate:
            hits.add(number)
    return hits


@pytest.mark.parametrize("test", ["search-body", "search-header"])
def test_search_scripts(test: str) -> None:
    messages = messages_of(test)
    lines = read_script(CONFORMANCE / test)
    checked = 0
    for line, following in zip(lines, lines[1:] + [b""]):
        if not line.lower().startswith(b"ok search ") or not following.startswith(b"* search"):
            continue
        words = [w.strip('"') for w in re.findall(r'"[^"]*"|\S+', line.decode()[10:])]
        expected = {int(n) for n in following.split()[2:]}
        assert _search(messages, words) == expected, line
        checked += 1
    assert checked >= 12
