"""The encoder's FETCH fast path (``encode._fast_fetch``) writes exactly
what the generic writer writes, and fails where it fails."""

from __future__ import annotations

import gc
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.wire import encode
from imapd.imap.wire.encode import (
    encode_response, encode_response_chunks, encode_response_data,
)
from imapd.imap.wire.responses import FetchResponse, Response
from imapd.imap.wire.values import Atom, IString, Literal, LiteralStream, PList, Value

FLAG_NAMES = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent",
              "$Forwarded", "Junk", "work/urgent", "")
BAD_ATOMS = ("", "a\r\nb", "x\x00", "\n")
ITEM_NAMES = ("UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "BODY[1.HEADER.FIELDS (FROM)]<0>",
              "X-GM-LABELS", *BAD_ATOMS)

flag_text = st.one_of(st.sampled_from(FLAG_NAMES + BAD_ATOMS), st.text(max_size=8))
numbers = st.one_of(st.integers(min_value=-3, max_value=2**64), st.booleans())
atom_lists = st.lists(flag_text, max_size=6).map(lambda fs: PList(tuple(Atom(f) for f in fs)))
number_lists = st.lists(numbers, max_size=3).map(lambda ns: PList(tuple(ns)))
mixed_lists = st.lists(
    st.one_of(flag_text.map(Atom), numbers, st.none(), st.binary(max_size=4).map(IString)),
    max_size=4,
).map(lambda items: PList(tuple(items)))
values: st.SearchStrategy[Value] = st.one_of(
    numbers, atom_lists, number_lists, mixed_lists,
    st.binary(max_size=6).map(IString), st.binary(max_size=6).map(Literal),
    flag_text.map(Atom), st.none(),
)
items = st.lists(st.tuples(st.sampled_from(ITEM_NAMES), values), max_size=4).map(tuple)
seqs = st.one_of(st.integers(min_value=-2, max_value=2**32), st.booleans())


def outcome(encoder: object, response: Response) -> bytes | type[BaseException]:
    try:
        return encoder(response)  # type: ignore[operator, no-any-return]
    except Exception as error:  # the type is what must agree
        return type(error)


@settings(max_examples=400)
@given(seqs, items)
def test_fast_path_equals_generic_writer(seq: int, fetch_items: tuple[tuple[str, Value], ...]) -> None:
    response = FetchResponse(seq, fetch_items)
    expected = outcome(encode._generic_bytes, response)
    assert outcome(encode_response, response) == expected
    # Again: the second time lists and labels come from the caches.
    assert outcome(encode_response, response) == expected
    assert outcome(lambda r: b"".join(encode_response_chunks(r)), response) == expected


@settings(max_examples=300)
@given(st.integers(min_value=1, max_value=2**32 - 1), st.integers(min_value=1, max_value=2**32 - 1),
       st.lists(st.sampled_from(FLAG_NAMES[:-1]), unique=True, max_size=5),
       st.integers(min_value=0, max_value=2**63 - 1), st.booleans())
def test_flag_answers_take_the_fast_path(
    seq: int, uid: int, flags: list[str], modseq: int, with_modseq: bool,
) -> None:
    """The answers ``UID FETCH 1:* (UID FLAGS [MODSEQ])`` is made of are
    formatted by the fast path (so the test above really compares it)."""
    fetch_items: list[tuple[str, Value]] = [
        ("UID", uid), ("FLAGS", PList(tuple(Atom(f) for f in flags)))]
    if with_modseq:
        fetch_items.append(("MODSEQ", PList((modseq,))))
    response = FetchResponse(seq, tuple(fetch_items))
    fast = encode._fast_fetch(response)
    assert fast is not None
    assert fast == encode._generic_bytes(response)
    expected = b"* %d FETCH (UID %d FLAGS (%s)" % (seq, uid, " ".join(flags).encode())
    assert fast.startswith(expected)


def test_known_answers() -> None:
    seen = PList((Atom("\\Seen"), Atom("\\Recent")))
    assert encode_response(FetchResponse(23, (("FLAGS", seen), ("UID", 4827313)))) == (
        b"* 23 FETCH (FLAGS (\\Seen \\Recent) UID 4827313)\r\n")
    assert encode_response(FetchResponse(1, (("UID", 7), ("FLAGS", PList(())),
                                              ("MODSEQ", PList((12,)))))) == (
        b"* 1 FETCH (UID 7 FLAGS () MODSEQ (12))\r\n")
    assert encode_response(FetchResponse(2, ())) == b"* 2 FETCH ()\r\n"


@pytest.mark.parametrize("response", [
    FetchResponse(0, (("UID", 1),)),
    FetchResponse(1, (("UID", -1),)),
    FetchResponse(1, (("UID", True),)),
    FetchResponse(1, (("A\r\nB", 1),)),
    FetchResponse(1, (("FLAGS", PList((Atom("a\r\n* BYE"),))),)),
    FetchResponse(1, (("FLAGS", PList((Atom(""),))),)),
    FetchResponse(1, (("MODSEQ", PList((-5,))),)),
])
def test_invalid_values_are_refused_as_before(response: FetchResponse) -> None:
    with pytest.raises(ValueError):
        encode._generic_bytes(response)
    with pytest.raises(ValueError):
        encode_response(response)


def test_list_cache_is_by_identity_not_by_recycled_id() -> None:
    """Lists built and dropped one after another often get the same id;
    each must still be written as itself."""
    for index in range(2000):
        flags = PList((Atom(f"k{index}"),))
        assert encode_response(FetchResponse(1, (("FLAGS", flags),))) == (
            b"* 1 FETCH (FLAGS (k%d))\r\n" % index)
        del flags
        if index % 100 == 0:
            gc.collect()


def test_a_shared_list_is_cached_and_still_correct() -> None:
    shared = PList((Atom("\\Seen"), Atom("$Label1")))
    encode_response(FetchResponse(1, (("FLAGS", shared),)))
    assert encode._ATOM_LIST_BYTES[id(shared)] == (shared, b"(\\Seen $Label1)")
    for seq in range(1, 50):
        assert encode_response(FetchResponse(seq, (("FLAGS", shared),))) == (
            b"* %d FETCH (FLAGS (\\Seen $Label1))\r\n" % seq)


def test_data_is_whole_bytes_unless_a_literal_is_streamed() -> None:
    assert encode_response_data(FetchResponse(3, (("UID", 9),))) == b"* 3 FETCH (UID 9)\r\n"
    body = FetchResponse(3, (("BODY[]", Literal(b"hi")),))
    assert encode_response_data(body) == b"* 3 FETCH (BODY[] {2}\r\nhi)\r\n"
    opened: list[bool] = []

    def chunks() -> Iterator[bytes]:
        opened.append(True)
        yield b"hello"

    streamed = FetchResponse(4, (("BODY[]", LiteralStream(5, chunks)),))
    data = encode_response_data(streamed)
    assert not isinstance(data, bytes)
    assert not opened  # the stream is read only as the chunks are taken
    assert b"".join(data) == b"* 4 FETCH (BODY[] {5}\r\nhello)\r\n"
    assert opened
