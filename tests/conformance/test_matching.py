"""Unit tests of the tokenizer (README §5), variables (§9) and the matcher (§8.1–§8.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.conformance.directives import add_default_directives
from imapd.conformance.matcher import MATCHED, is_prefix_response, match_args
from imapd.conformance.tokens import Arg, ArgKind, TokenizeError, format_args, tokenize_response, tokenize_script
from imapd.conformance.variables import ExpansionError, Variables, expand_command, expand_for_display, match_text
from tests.conformance.test_script_parser import texts

# --- tokenizer ----------------------------------------------------------------------------


def test_atoms_keep_brackets_and_lists_split_them() -> None:
    args = tokenize_response(b"OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.\r\n")
    assert texts(args) == [b"OK", b"[PERMANENTFLAGS", [b"\\Seen", b"\\*"], b"]", b"Flags", b"permitted."]
    script = tokenize_script(b"1 fetch (body[header.fields (from)] {5}\r\nhello)")
    assert texts(script) == [b"1", b"fetch", [b"body[header.fields", [b"from"], b"]", b"hello"]]


def test_kinds_nil_quoted_literal_literal8() -> None:
    args = tokenize_script(b'NIL nil "NIL" "a\\"b\\\\c" {3}\r\nx\0y ~{2}\r\n\r\n atom')
    assert [a.kind for a in args] == [ArgKind.NIL, ArgKind.NIL, ArgKind.STRING, ArgKind.STRING, ArgKind.LITERAL,
                                      ArgKind.LITERAL, ArgKind.ATOM]
    assert [a.text for a in args[2:]] == [b"NIL", b'a"b\\c', b"x\0y", b"\r\n", b"atom"]
    assert args[5].literal8 and not args[4].literal8


def test_close_paren_ends_atoms_only_inside_lists() -> None:
    assert texts(tokenize_script(b"a) (b) c")) == [b"a)", [b"b"], b"c"]
    assert texts(tokenize_script(b"(a)b")) == [[b"a"], b"b"]
    assert texts(tokenize_script(b"~foo !#$$&'+,-.0123456789:;<=>?@^_`|[}")) == [
        b"~foo", b"!#$$&'+,-.0123456789:;<=>?@^_`|[}"]


def test_multiple_and_trailing_spaces() -> None:
    assert texts(tokenize_script(b"1   exists ")) == [b"1", b"exists"]


def test_script_quoted_strings_may_span_lines_but_responses_may_not() -> None:
    assert texts(tokenize_script(b'"a\r\nb" c')) == [b"a\r\nb", b"c"]
    assert texts(tokenize_response(b'OK "a\r\nb" c')) == [b"OK"]


def test_response_parsing_is_lenient() -> None:
    assert texts(tokenize_response(b'NO [ALERT] unbalanced "quote')) == [b"NO", b"[ALERT]", b"unbalanced"]
    assert texts(tokenize_response(b"OK (unclosed list")) == [b"OK"]
    with pytest.raises(TokenizeError):
        tokenize_script(b"(unclosed")
    with pytest.raises(TokenizeError):
        tokenize_script(b"{9}\r\nshort")


def test_format_args_shows_literals_and_escapes() -> None:
    args = tokenize_script(b'a "q" (b NIL) {3}\r\nx\r\n')
    assert format_args(args) == 'a "q" (b NIL) {3}"x\\r\\n"'


_atom_text = st.text(alphabet="abcXYZ019.[]\\$*%<>", min_size=1, max_size=6).map(str.encode).filter(
    lambda t: t.upper() != b"NIL")
_leaf = st.one_of(
    _atom_text.map(lambda t: Arg(ArgKind.ATOM, t)),
    st.binary(max_size=8).map(lambda t: Arg(ArgKind.LITERAL, t)),
    st.text(alphabet='ab "\\', max_size=6).map(lambda t: Arg(ArgKind.STRING, t.encode())),
    st.just(Arg(ArgKind.NIL, b"NIL")),
)
_tree = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4).map(lambda i: Arg(ArgKind.LIST, items=tuple(i))),
                     max_leaves=12)


def _serialize(arg: Arg) -> bytes:
    if arg.kind is ArgKind.LIST:
        return b"(" + b" ".join(_serialize(item) for item in arg.items) + b")"
    if arg.kind is ArgKind.STRING:
        return b'"' + arg.text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    if arg.kind is ArgKind.LITERAL:
        return b"{%d}\r\n%s" % (len(arg.text), arg.text)
    return arg.text


@settings(max_examples=300)
@given(st.lists(_tree, max_size=5))
def test_tokenizer_round_trips_serialized_arguments(args: list[Arg]) -> None:
    data = b" ".join(_serialize(arg) for arg in args)
    assert tokenize_script(data) == args
    assert tokenize_response(data + b"\r\n") == args


# --- variables (§9) -------------------------------------------------------------------------


def make_vars(**values: str) -> Variables:
    return Variables(values={k: v.encode() for k, v in values.items()})


def test_command_expansion() -> None:
    variables = make_vars(mailbox="imaptest", sep="/")
    assert expand_command(b"create $mailbox${sep}x $$hello 100$", variables) == b"create imaptest/x $hello 100$"
    variables.reset_seqmap(3)
    assert expand_command(b"fetch $2,${3}", variables) == b"fetch 2,3"
    with pytest.raises(ExpansionError, match="uninitialized variable: \\$nope"):
        expand_command(b"select $nope", variables)
    with pytest.raises(ExpansionError):
        expand_command(b"select ${mailbox", variables)


def test_unset_variable_binds_up_to_next_literal_character() -> None:
    variables = make_vars()
    assert match_text(b"$uid]", b"5]", variables, prefix=False)
    assert variables.values["uid"] == b"5"
    assert match_text(b"$pos3", b"0", variables, prefix=False) and variables.values["pos3"] == b"0"
    # the stop character is compared case-insensitively
    assert match_text(b"x${a}Y", b"xabcyY", variables, prefix=False) is False
    assert variables.values["a"] == b"abc"


def test_set_variable_must_appear_verbatim_and_case_sensitively() -> None:
    variables = make_vars(hdr=b"Subject: X".decode())
    assert match_text(b"$hdr", b"Subject: X", variables, prefix=False)
    assert not match_text(b"$hdr", b"subject: x", variables, prefix=False)
    assert not match_text(b"$hdr", b"Subject: X2", variables, prefix=False)
    # literal pattern text is case-insensitive
    assert match_text(b"BODY[$$x]", b"body[$X]", variables, prefix=False)


def test_dollar_alone_matches_anything_without_binding() -> None:
    variables = make_vars()
    assert match_text(b"a$", b"abcdef", variables, prefix=False)
    assert match_text(b"$", b"", variables, prefix=False)
    assert variables.values == {}


def test_relative_sequence_numbers_follow_expunges() -> None:
    variables = Variables()
    variables.reset_seqmap(3)
    assert match_text(b"$3", b"3", variables, prefix=False)
    variables.apply_expunge(3)
    assert variables.seqmap == [1, 2, 0]
    assert variables.relative_seq(3) == b"<expunged>" and variables.relative_seq(4) == b"<out of range>"
    variables.apply_expunge(1)
    assert variables.seqmap == [0, 1, 0]
    assert match_text(b"$2", b"1", variables, prefix=False)
    variables.apply_expunge(9)
    assert variables.seqmap == [0, 1, 0]


def test_nul_truncates_both_sides() -> None:
    variables = make_vars()
    assert match_text(b"\0abc", b"\0xyz", variables, prefix=False)
    assert match_text(b"ab\0c", b"ab\0d", variables, prefix=False)
    assert not match_text(b"ab\0c", b"ax\0c", variables, prefix=False)


def test_prefix_mode_on_text() -> None:
    variables = make_vars()
    assert match_text(b"ok", b"OK", variables, prefix=True)
    assert match_text(b"", b"anything", variables, prefix=True)
    assert not match_text(b"ok", b"NO", variables, prefix=True)


def test_display_expansion_keeps_unknowns() -> None:
    variables = make_vars(mailbox="box")
    variables.reset_seqmap(2)
    assert expand_for_display(b"status $mailbox ($x $1 $$y)", variables) == b"status box ($x 1 $$y)"


def test_temporary_overlay_for_tag() -> None:
    variables = make_vars(tag="old")
    with variables.temporary("tag", b"1.5"):
        assert variables.get("tag") == b"1.5"
    assert variables.get("tag") == b"old"


# --- matcher (§8) ---------------------------------------------------------------------------


def expect(line: bytes) -> list[Arg]:
    return add_default_directives(tokenize_script(line))


def matches(expected: bytes, received: bytes, variables: Variables | None = None) -> bool:
    got = tokenize_response(received)
    exp = expect(expected)
    return match_args(exp, got, variables or Variables(), prefix=is_prefix_response(got)) == MATCHED


def test_ordered_lists_need_same_count_and_order() -> None:
    assert matches(b"search 1 2", b"SEARCH 1 2")
    assert not matches(b"search 1 2", b"SEARCH 2 1")
    assert not matches(b"search 1 2", b"SEARCH 1 2 3")
    assert not matches(b"search 1 2 3", b"SEARCH 1 2")
    assert not matches(b"search", b"SEARCH 1")


def test_nil_matches_only_nil_and_lists_only_lists() -> None:
    assert matches(b"x NIL", b"X NIL")
    assert not matches(b'x NIL', b'X "NIL"')
    assert not matches(b'x "NIL"', b"X NIL")
    assert not matches(b"x (a)", b"X a")
    assert not matches(b"x a", b"X (a)")
    assert matches(b"x $", b"X (a b (c))")


def test_fetch_items_unordered_with_extras_allowed() -> None:
    assert matches(b"1 fetch (uid $u)", b"1 FETCH (FLAGS (\\Seen) UID 5)")
    assert not matches(b"1 fetch (uid 6)", b"1 FETCH (FLAGS (\\Seen) UID 5)")
    assert not matches(b"1 fetch (uid 5 rfc822.size 1)", b"1 FETCH (UID 5)")


def test_fetch_flags_defaults() -> None:
    assert matches(b"1 fetch (flags (\\seen \\flagged))", b"1 FETCH (FLAGS (\\Flagged \\Recent \\Seen))")
    assert matches(b"1 fetch (flags ())", b"1 FETCH (FLAGS (\\Recent $HasNoAttachment))")
    assert not matches(b"1 fetch (flags ())", b"1 FETCH (FLAGS (\\Seen))")
    assert not matches(b"1 fetch (flags (\\seen))", b"1 FETCH (FLAGS ())")


def test_status_attribute_pairs_in_any_order() -> None:
    assert matches(b"status box (messages 2 unseen 1)", b'STATUS "box" (UNSEEN 1 UIDNEXT 9 MESSAGES 2)')
    assert not matches(b"status box (messages 2 unseen 1)", b"STATUS box (UNSEEN 2 MESSAGES 1)")


def test_list_flags_unordered_extras_allowed() -> None:
    assert matches(b"list () / x", b'LIST (\\HasNoChildren) "/" x')
    assert matches(b"list (\\noselect) $sep $root", b'LIST (\\Noselect \\HasChildren) "/" ""')
    assert not matches(b"list (\\noselect) / x", b'LIST (\\HasChildren) "/" x')


def test_explicit_directives_ban_ignore_chains() -> None:
    assert matches(b"list ($!unordered $!ban=\\noselect \\subscribed) / x", b"LIST (\\Subscribed \\X) / x")
    assert not matches(b"list ($!unordered $!ban=\\noselect \\subscribed) / x", b"LIST (\\Subscribed \\NoSelect) / x")
    assert matches(b"x ($!unordered $!noextra $!ignore=b a)", b"X (b a)")
    assert not matches(b"x ($!noextra $!unordered a)", b"X (b a)")
    assert matches(b"x ($!unordered=2 a 1 b 2)", b"X (b 2 c 3 a 1)")
    assert not matches(b"x ($!unordered=2 a 1)", b"X (a 1 b)")
    assert matches(b"1 fetch (envelope ($!unordered))", b'1 FETCH (ENVELOPE ("d" NIL NIL))')
    # ordered nested lists (envelope, body, thread) are exact
    assert not matches(b"thread (3 2)(1)", b"THREAD (2 3)(1)")


def test_prefix_mode_for_status_responses() -> None:
    variables = Variables()
    assert matches(b"ok [uidvalidity $uidv]", b"OK [UIDVALIDITY 1795440669] UIDs valid", variables)
    assert variables.values["uidv"] == b"1795440669"
    assert not matches(b"ok [unseen 1]", b"OK [UNSEEN 2] First unseen")
    # non-status responses are not prefix-matched
    assert not matches(b"search 1", b"SEARCH 1 2")


def test_failed_attempt_leaves_partial_count_and_ordered_nested() -> None:
    exp = expect(b"1 fetch (uid 5)")
    got = tokenize_response(b"1 FETCH (UID 6)")
    assert match_args(exp, got, Variables()) == 2
    assert match_args(exp, tokenize_response(b"2 FETCH (UID 5)"), Variables()) == 0


def test_failed_chain_attempts_do_not_leave_bindings() -> None:
    variables = Variables()
    # chain (a $x) is first tried against (b 1) where "a" fails before binding; then matches (a 2)
    assert matches(b"x ($!unordered=2 a $x)", b"X (b 1 a 2)", variables)
    assert variables.values == {"x": b"2"}
