"""The load generator's response parser: well-formed responses parse to
the right values, malformed ones raise (so they count as errors)."""

from __future__ import annotations

import pytest

from bench.load.wire import Malformed, fetch_items, literal_length, parse_response


def test_tagged_ok_with_code() -> None:
    r = parse_response(b"a1 OK [READ-WRITE] SELECT completed\r\n")
    assert (r.kind, r.tag, r.name, r.code, r.text) == ("tagged", b"a1", b"OK", b"READ-WRITE", b"SELECT completed")


def test_tagged_bad_is_parsed_as_bad() -> None:
    r = parse_response(b"a2 BAD Unknown command\r\n")
    assert (r.kind, r.name) == ("tagged", b"BAD")


def test_fetch_with_section_literal_and_envelope() -> None:
    raw = (b'* 12 FETCH (UID 7 FLAGS (\\Seen $Label1) BODY[HEADER.FIELDS (X-BENCH-ID)] {17}\r\n'
           b'X-Bench-Id: 3\r\n\r\n ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "a \\"q\\"" '
           b'(("Fred" NIL "fred" "example.org")) NIL NIL NIL NIL NIL NIL "<x@y>"))\r\n')
    r = parse_response(raw)
    assert (r.name, r.number) == (b"FETCH", 12)
    items = fetch_items(r)
    assert items[b"UID"] == b"7"
    assert items[b"FLAGS"] == [b"\\Seen", b"$Label1"]
    assert items[b"BODY[HEADER.FIELDS (X-BENCH-ID)]"] == b"X-Bench-Id: 3\r\n\r\n"
    envelope = items[b"ENVELOPE"]
    assert isinstance(envelope, list) and len(envelope) == 10
    assert envelope[1] == b'a "q"' and envelope[2] == [[b"Fred", None, b"fred", b"example.org"]]


def test_multipart_bodystructure_parts_need_no_space() -> None:
    raw = (b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 1)'
           b'("TEXT" "HTML" NIL NIL NIL "7BIT" 5 1) "ALTERNATIVE"))\r\n')
    value = fetch_items(parse_response(raw))[b"BODYSTRUCTURE"]
    assert isinstance(value, list) and value[2] == b"ALTERNATIVE" and len(value) == 3


def test_literal_length_detection() -> None:
    assert literal_length(b"* 1 FETCH (BODY[] {42}\r\n") == 42
    assert literal_length(b"* 1 FETCH (BODY[] ~{7}\r\n") == 7
    assert literal_length(b"* OK {not a literal}\r\n") is None


@pytest.mark.parametrize("raw", [
    b"a1 OK done",                                  # no CRLF
    b"a1 MAYBE done\r\n",                           # tagged without OK/NO/BAD
    b"* 3 FETCH (FLAGS (\\Seen)\r\n",               # unbalanced (
    b"* 3 FETCH (FLAGS (\\Seen)))\r\n",             # unbalanced )
    b"* 3 FETCH FLAGS\r\n",                         # FETCH data not a list
    b"* 3 FETCH (BODY[] {10}\r\nshort)\r\n",        # literal longer than the data
    b'* 3 FETCH (ENVELOPE ("unterminated))\r\n',    # unterminated quoted string
    b"* 3 FROB\r\n",                                # unknown numbered data
    b"* WHATEVER x\r\n",                            # unknown untagged response
    b"* OK [UNTERMINATED code\r\n",                 # unterminated response code
    b"\r\n",                                        # empty line
    b"a(1 OK bad tag\r\n",                          # invalid tag
    b"* 3 FETCH (UID  7)\r\n",                      # double space
])
def test_malformed_responses_raise(raw: bytes) -> None:
    with pytest.raises(Malformed):
        parse_response(raw)
