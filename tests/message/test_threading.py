"""RFC 5256 §3 THREAD algorithms (ORDEREDSUBJECT, REFERENCES) and the §4
response syntax, on ``ThreadMessage`` inputs: each rule of REFERENCES on
its own, the RFC's syntax example, deep chains (no recursion), and
properties (every message exactly once, deterministic, well-formed)."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings, strategies as st

from imapd.message.threading import (
    MAX_REFERENCE_OCTETS, ThreadMessage, ThreadNode, format_threads, ordered_subject, parent_ids, parse_msg_ids,
    references, references_text,
)


def msg(
    n: int, mid: str | None = None, refs: str = "", subject: str = "", reply: bool = False,
    sent: float | None = None,
) -> ThreadMessage:
    """Message ``n`` (number and sequence number); ``refs`` are space-separated ids."""
    return ThreadMessage(
        number=n, order=n, sent=float(n) if sent is None else sent,
        subject=subject, is_reply=reply,
        message_id=None if mid is None else mid.encode(),
        references=tuple(r.encode() for r in refs.split()),
    )


def refs_text(messages: list[ThreadMessage]) -> bytes:
    return format_threads(references(messages))


# --- §4 syntax ---------------------------------------------------------------

def test_rfc_syntax_example() -> None:
    """RFC 5256 §4: "(2)(3 6 (4 23)(44 7 96))" — 3 is the parent of 6, whose
    children are 4 (parent of 23) and 44 (parent of 7, parent of 96)."""
    n = ThreadNode
    tree = [n(2), n(3, [n(6, [n(4, [n(23)]), n(44, [n(7, [n(96)])])])])]
    assert format_threads(tree) == b"(2)(3 6 (4 23)(44 7 96))"


def test_dummy_at_top_is_a_list_of_threads() -> None:
    """RFC 5256 §4: "((3)(5))" — a missing parent of 3 and 5."""
    assert format_threads([ThreadNode(None, [ThreadNode(3), ThreadNode(5, [ThreadNode(6)])])]) \
        == b"((3)(5 6))"
    assert format_threads([]) == b""


# --- Message-IDs ---------------------------------------------------------------

def test_msg_id_parsing() -> None:
    assert parse_msg_ids(b"<a@b> junk <c@d>") == [b"a@b", b"c@d"]
    assert parse_msg_ids(b"< a (comment) @ b >") == [b"a@b"]
    assert parse_msg_ids(b"<no-at-sign> <@b> <a@> someone@example.com") == []
    assert parse_msg_ids(None) == []
    # References first; In-Reply-To only without a valid References id.
    assert parent_ids(b"<x@y> <z@y>", b"<q@y>") == (b"x@y", b"z@y")
    assert parent_ids(b"garbage", b"Fred's message <q@y> <r@y>") == (b"q@y",)
    assert parent_ids(None, None) == ()


def test_overlong_ids_and_references_are_bounded() -> None:
    """An id longer than a header line is invalid (RFC 5322 §2.1.1); of a
    huge References only the last ids, up to MAX_REFERENCE_OCTETS, stay."""
    long_id = b"x" * 990 + b"@example"
    assert parse_msg_ids(b"<" + long_id + b">") == [long_id]
    assert parse_msg_ids(b"<x" + long_id + b">") == []
    many = b" ".join(b"<%d@example>" % n for n in range(10_000))
    kept = parent_ids(many, None)
    assert kept[-1] == b"9999@example"
    assert sum(map(len, kept)) <= MAX_REFERENCE_OCTETS < sum(map(len, kept)) + 20
    assert kept == tuple(b"%d@example" % n for n in range(10_000 - len(kept), 10_000))


# --- REFERENCES, step by step --------------------------------------------------

def test_references_chain_and_siblings() -> None:
    messages = [msg(1, "a"), msg(2, "b", "a"), msg(3, "c", "a"), msg(4, "d", "a b")]
    assert refs_text(messages) == b"(1 (2 4)(3))"


def test_references_link_the_chain_in_between() -> None:
    """Step 1.A: References' ids are linked to each other (2's parent is the
    missing b, whose parent is 1)."""
    assert refs_text([msg(1, "a"), msg(2, "c", "a b")]) == b"(1 2)"


def test_duplicate_message_id_only_first_keeps_it() -> None:
    """Step 1: a later message with an id already used gets a unique one, so
    replies go to the first."""
    messages = [msg(1, "a"), msg(2, "a"), msg(3, "c", "a")]
    assert refs_text(messages) == b"(1 3)(2)"


def test_loop_is_not_linked_and_own_parent_is_broken() -> None:
    """Step 1.B: the current message's existing parent is dropped before
    linking to its last reference; that link would make a loop, so it
    ends up without a parent (the imaptest ``thread`` case)."""
    messages = [
        msg(1, "a", sent=3), msg(2, "b", "a c", sent=1), msg(3, "c", "b", sent=2),
    ]
    assert refs_text(messages) == b"(3 2)(1)"


def test_last_reference_replaces_an_inferred_parent() -> None:
    messages = [msg(1, "x", "wrong c"), msg(2, "c", "right"), msg(3, "right")]
    assert refs_text(messages) == b"(3 2 1)"


def test_prune_childless_dummy_and_promote_single_child() -> None:
    """Step 3: a dummy without children goes; one whose only child would
    be at the top is replaced by that child."""
    assert refs_text([msg(1, "a", "gone")]) == b"(1)"


def test_prune_keeps_top_dummy_with_two_children() -> None:
    assert refs_text([msg(1, "a", "gone"), msg(2, "b", "gone")]) == b"((1)(2))"


def test_prune_splices_inner_dummy_children() -> None:
    """Step 3: a dummy below a message is replaced by its children, which
    become siblings of the dummy's siblings."""
    messages = [msg(1, "a"), msg(2, "b", "a gone"), msg(3, "c", "a gone"), msg(4, "d", "a")]
    assert refs_text(messages) == b"(1 (2)(3)(4))"


def test_subject_merge_reply_goes_under_original() -> None:
    """Step 5: a reply (no references) joins the thread of its subject."""
    messages = [msg(1, "a", subject="FOO"), msg(2, "b", subject="FOO", reply=True)]
    assert refs_text(messages) == b"(1 2)"


def test_subject_table_prefers_the_original_over_an_earlier_reply() -> None:
    """Step 5.C: a reply in the table is replaced by a non-reply, so the
    earlier reply goes under the later original, not beside it."""
    messages = [msg(1, "a", subject="FOO", reply=True), msg(2, "b", subject="FOO")]
    assert refs_text(messages) == b"(2 1)"


def test_subject_merge_two_originals_get_a_dummy() -> None:
    messages = [msg(1, "a", subject="FOO"), msg(2, "b", subject="FOO")]
    assert refs_text(messages) == b"((1)(2))"


def test_subject_merge_into_dummy_and_dummies_together() -> None:
    """Step 5.C/D: the table keeps the dummy; a message joins it as a
    child; two dummies merge their children."""
    messages = [
        msg(1, "a", "x", subject="FOO"), msg(2, "b", "x", subject="FOO"),
        msg(3, "c", subject="FOO"),
        msg(4, "d", "y", subject="FOO"), msg(5, "e", "y", subject="FOO"),
    ]
    assert refs_text(messages) == b"((1)(2)(3)(4)(5))"


def test_empty_subject_is_never_merged() -> None:
    assert refs_text([msg(1, "a"), msg(2, "b")]) == b"(1)(2)"


def test_sent_date_orders_threads_and_siblings() -> None:
    """Steps 4 and 6: by sent date, ties by sequence number; a dummy sorts
    by its first child."""
    messages = [
        msg(1, "a", sent=50), msg(2, "b", "a", sent=40), msg(3, "c", "a", sent=30),
        msg(4, "d", "gone", sent=10), msg(5, "e", "gone", sent=60), msg(6, "f", sent=30),
    ]
    assert refs_text(messages) == b"((4)(5))(6)(1 (3)(2))"


# --- ORDEREDSUBJECT ------------------------------------------------------------

def test_ordered_subject() -> None:
    messages = [
        msg(1, subject="B", sent=5), msg(2, subject="A", sent=9), msg(3, subject="B", sent=1),
        msg(4, subject="A", sent=3), msg(5, subject="", sent=2), msg(6, subject="B", sent=7),
    ]
    assert format_threads(ordered_subject(messages)) == b"(3 (1)(6))(5)(4 2)"


# --- deep chains: no recursion, near-linear ------------------------------------

DEPTH = 100_000


def _chain(reverse: bool) -> list[ThreadMessage]:
    """``DEPTH`` messages, each answering the one before (References holds
    only the parent); with ``reverse`` the replies come first."""
    order = range(DEPTH, 0, -1) if reverse else range(1, DEPTH + 1)
    return [
        ThreadMessage(seq, seq, float(i), "", False, b"m%d@x" % i,
                      (b"m%d@x" % (i - 1),) if i > 1 else ())
        for seq, i in enumerate(order, start=1)
    ]


def test_100k_deep_chain_in_order() -> None:
    started = time.monotonic()
    text = format_threads(references(_chain(False)))
    assert text == b"(" + b" ".join(b"%d" % n for n in range(1, DEPTH + 1)) + b")"
    assert time.monotonic() - started < 30  # linear: about a second


def test_100k_deep_chain_replies_first() -> None:
    text = format_threads(references(_chain(True)))
    assert text == b"(" + b" ".join(b"%d" % n for n in range(DEPTH, 0, -1)) + b")"


# --- properties ------------------------------------------------------------------

_IDS = st.sampled_from(["a", "b", "c", "d", "e", "f"])
_MESSAGES = st.lists(
    st.tuples(
        st.none() | _IDS, st.lists(_IDS, max_size=4), st.sampled_from(["", "X", "Y"]),
        st.booleans(), st.integers(0, 5),
    ),
    max_size=25,
)


def _inputs(raw: list[tuple[str | None, list[str], str, bool, int]]) -> list[ThreadMessage]:
    return [
        msg(n, mid, " ".join(refs), subject, reply, float(sent))
        for n, (mid, refs, subject, reply, sent) in enumerate(raw, start=1)
    ]


_THREAD = re.compile(rb"^(\(|\)|\d+| )*$")


def _well_formed(text: bytes) -> None:
    """RFC 5256 §4 grammar: a thread-list holds numbers then optionally >= 2
    nested lists, or (top level only, a dummy) >= 2 nested lists."""
    assert _THREAD.match(text)
    tokens = re.findall(rb"\(|\)|\d+", text)
    stack: list[list[str]] = []  # per open list: kinds of its items
    for token in tokens:
        if token == b"(":
            if stack:
                stack[-1].append("list")
            stack.append([])
        elif token == b")":
            items = stack.pop()
            lists = items.count("list")
            assert items, "empty list"
            assert lists == 0 or lists >= 2, "a single nested list"
            assert "num" not in items[items.index("list"):] if lists else True
            if items[0] == "list":
                assert not stack, "a dummy below the top"
        else:
            assert stack
            stack[-1].append("num")
    assert not stack


@settings(max_examples=300, deadline=None)
@given(_MESSAGES)
def test_references_properties(raw: list[tuple[str | None, list[str], str, bool, int]]) -> None:
    messages = _inputs(raw)
    text = refs_text(messages)
    numbers = sorted(int(n) for n in re.findall(rb"\d+", text))
    assert numbers == list(range(1, len(messages) + 1))  # each exactly once
    assert refs_text(_inputs(raw)) == text  # deterministic
    _well_formed(text)


@settings(max_examples=300, deadline=None)
@given(_MESSAGES)
def test_references_text_is_the_formatted_trees(
    raw: list[tuple[str | None, list[str], str, bool, int]],
) -> None:
    """THREAD's direct formatting (no ``ThreadNode`` per message, issue 18)
    writes exactly what ``format_threads(references(...))`` writes."""
    assert references_text(_inputs(raw)) == refs_text(_inputs(raw))


def test_references_text_on_deep_chains_and_many_threads() -> None:
    chain = [msg(n, f"c{n}@x", f"c{n - 1}@x" if n > 1 else "") for n in range(1, 3001)]
    assert references_text(chain) == refs_text(chain)
    assert references_text(chain[::-1]) == refs_text(chain[::-1])
    many = [msg(n, f"m{n}@x", f"m{n // 3}@x" if n % 4 else "", subject=f"s{n % 7}",
                reply=n % 2 == 0, sent=float(n % 5)) for n in range(1, 2001)]
    assert references_text(many) == refs_text(many)
    assert references_text([]) == b""


@settings(max_examples=200, deadline=None)
@given(_MESSAGES)
def test_ordered_subject_properties(raw: list[tuple[str | None, list[str], str, bool, int]]) -> None:
    messages = _inputs(raw)
    text = format_threads(ordered_subject(messages))
    numbers = sorted(int(n) for n in re.findall(rb"\d+", text))
    assert numbers == list(range(1, len(messages) + 1))
    _well_formed(text)
