"""Unit tests of the script parser (conformance README §2–§4) and the mbox source (§6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.conformance.mbox import MboxError, parse_from_line, parse_mbox
from imapd.conformance.script import ScriptError, list_script_files, logical_lines, parse_script, parse_script_file
from imapd.conformance.tokens import Arg, ArgKind, atom

SHIPPED = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "imaptest"


def texts(args: list[Arg] | tuple[Arg, ...]) -> list[object]:
    """Arguments as plain Python values: bytes for texts, lists for lists, None for NIL."""
    out: list[object] = []
    for arg in args:
        if arg.kind is ArgKind.LIST:
            out.append(texts(arg.items))
        elif arg.kind is ArgKind.NIL:
            out.append(None)
        else:
            out.append(arg.text)
    return out


# --- §2 lines, comments, literals ---------------------------------------------------------


def test_literal_lines_join_with_crlf_and_drop_last_break() -> None:
    data = b"\nok append x {{{\nline1\n\nline3\n}}}\n"
    assert logical_lines(data, "t") == [(1, b""), (2, b"ok append x {14}\r\nline1\r\n\r\nline3")]


def test_literal_with_empty_line_before_close_ends_in_crlf() -> None:
    data = b"\n* 1 fetch (body[text] {{{\nbody1\n\n\n}}})\n"
    assert logical_lines(data, "t")[1] == (2, b"* 1 fetch (body[text] {9}\r\nbody1\r\n\r\n)")


def test_binary_literal_joins_with_bare_lf_and_keeps_cr_bytes() -> None:
    data = b"\nok append x ~{{{\na\r\nb\n\n}}}\n"
    assert logical_lines(data, "t")[1] == (2, b"ok append x ~{5}\r\na\r\nb\n")


def test_several_literals_on_one_logical_line() -> None:
    data = b"\nok append x catenate (text {{{\nA\n}}} url \"u\" text {{{\nBB\n}}})\n"
    assert logical_lines(data, "t")[1] == (2, b'ok append x catenate (text {1}\r\nA url "u" text {2}\r\nBB)')


def test_comments_are_dropped_but_not_inside_literals() -> None:
    data = b"# header comment\nstate: auth\n\n# body comment\nok noop {{{\n# kept\n}}}\n"
    assert logical_lines(data, "t") == [(2, b"state: auth"), (3, b""), (5, b"ok noop {6}\r\n# kept")]


def test_cr_before_lf_stays_in_the_line() -> None:
    assert logical_lines(b"\nok noop\r\n", "t")[1] == (2, b"ok noop\r")


def test_unterminated_literal_and_missing_final_lf_are_errors() -> None:
    with pytest.raises(ScriptError, match="not ended"):
        logical_lines(b"\nok x {{{\nabc\n", "t")
    with pytest.raises(ScriptError, match="LF"):
        parse_script(b"\nok noop")


# --- §3 header ---------------------------------------------------------------------------


def test_header_fields_and_defaults() -> None:
    default = parse_script(b"\nok noop\n")
    assert (default.connections, default.messages, default.state, default.ignore_extra_untagged) == (
        1, 0, "selected", True)
    assert default.capabilities == [] and not default.is_extension
    script = parse_script(
        b"Capabilities : CATENATE   URLAUTH=BINARY\nconnections: 2\nmessages: all\nSTATE: Auth\n"
        b"user 2: $user2\nignore_extra_untagged: no\n\n1 ok noop\n"
    )
    assert script.capabilities == ["CATENATE", "URLAUTH=BINARY"] and script.is_extension
    assert (script.connections, script.messages, script.state) == (2, None, "auth")
    assert script.users == {2: "$user2"} and script.needs_user2
    assert script.ignore_extra_untagged is False


def test_connections_n_means_two_and_messages_number() -> None:
    script = parse_script(b"connections: n\nmessages: 3\n\n1 ok noop\n2 ok noop\n")
    assert script.connections == 2 and script.messages == 3


@pytest.mark.parametrize(
    "header",
    [b"bogus: 1\n", b"state: dreaming\n", b"no colon here\n", b"connections: 0\n", b"connections: 101\n"],
)
def test_bad_header_lines_are_errors(header: bytes) -> None:
    with pytest.raises(ScriptError):
        parse_script(header + b"\nok noop\n")


# --- §4 groups, tags, pipelining, connections ---------------------------------------------


def test_inline_reply_and_separate_reply_line() -> None:
    script = parse_script(b"\nok fetch 1 uid\n* 1 fetch (uid $u)\nselect $mailbox\n* 2 exists\nok [read-write]\n")
    first, second, logout = script.groups
    assert first.commands[0].text == b"fetch 1 uid" and texts(first.commands[0].reply or []) == [b"ok"]
    assert [e.line for e in first.expectations] == [3]
    assert second.commands[0].text == b"select $mailbox"
    assert texts(second.commands[0].reply or []) == [b"ok", b"[read-write]"]
    assert second.commands[0].reply_line == 6 and texts(second.expectations[0].args) == [b"2", b"exists"]
    assert logout.commands[0].implicit


def test_any_status_is_the_empty_atom() -> None:
    script = parse_script(b'\n"" delete ${mailbox}2\n')
    assert script.groups[0].commands[0].reply == [atom(b"")]
    assert script.groups[0].commands[0].text == b"delete ${mailbox}2"


def test_pipelined_group_with_tags() -> None:
    script = parse_script(
        b"\ntag1 status a (messages)\ntag2 status b (messages)\n* status a (messages 0)\n"
        b"tag1 no [nonexistent]\ntag2 ok\n\nok noop\n"
    )
    group = script.groups[0]
    assert [(c.label, c.text) for c in group.commands] == [(1, b"status a (messages)"), (2, b"status b (messages)")]
    assert texts(group.commands[0].reply or []) == [b"no", b"[nonexistent]"]
    assert texts(group.commands[1].reply or []) == [b"ok"]
    assert len(group.expectations) == 1 and script.groups[1].commands[0].text == b"noop"


def test_connection_numbers_and_the_count_they_raise() -> None:
    script = parse_script(b"connections: 2\n\n1 ok noop\n3 ok noop\n")
    assert [g.connection for g in script.groups] == [1, 3, 1]
    assert script.connections == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"noop\nfetch 1 uid\nok\n", "missing reply from previous command group"),
        (b"tag1 noop\ntag2 ok status b\n", "unknown tag"),
        (b"noop\nok noop\n", None),
        (b"tag1 noop\ntag1 noop\ntag1 ok\n", "tag reused"),
        (b"tag1 noop\ntag2 ok\n", "unknown tag"),
        (b"ok noop\n", None),
        (b"noop\n", "missing reply"),
        (b"tag1 noop\ntag1 ok\ntag1 ok\n", None),
    ],
)
def test_group_structure_errors(body: bytes, message: str | None) -> None:
    if message is None:
        parse_script(b"\n" + body)
        return
    with pytest.raises(ScriptError, match=message):
        parse_script(b"\n" + body)


def test_second_reply_for_a_command_is_an_error() -> None:
    with pytest.raises(ScriptError, match="already has a reply"):
        parse_script(b"\ntag1 noop\ntag2 noop\ntag1 ok\ntag1 ok\ntag2 ok\n")


def test_pipelined_commands_must_share_a_connection_and_need_the_index() -> None:
    with pytest.raises(ScriptError, match="same connection"):
        parse_script(b"connections: 2\n\n1 tag1 noop\n2 tag2 noop\ntag1 ok\ntag2 ok\n")
    with pytest.raises(ScriptError, match="client index"):
        parse_script(b"connections: 2\n\nok noop\n")


def test_maybe_bye_is_rejected_and_bye_expectation_suppresses_implicit_logout() -> None:
    with pytest.raises(ScriptError, match="BYE"):
        parse_script(b"\nok noop\n? bye\n")
    script = parse_script(b"\nok noop\n* bye\n")
    assert len(script.groups) == 1 and script.groups[0].has_bye


def test_explicit_logout_suppresses_implicit_logout() -> None:
    assert len(parse_script(b"\nok LOGOUT\n").groups) == 1
    script = parse_script(b"\nok noop\n")
    assert [(g.connection, c.text, c.line, texts(c.reply or [])) for g in script.groups for c in g.commands] == [
        (1, b"noop", 2, [b"ok"]), (1, b"logout", 0, [b"ok"])]


def test_directives_sleep_output_and_ifenv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_SET", "1")
    monkeypatch.delenv("CONFORMANCE_UNSET", raising=False)
    script = parse_script(
        b"\nok noop\n!sleep 250ms\n!output got $x\n!ifenv CONFORMANCE_SET\nok check\n!else\nok bad1\n!endif\n"
        b"!ifenv CONFORMANCE_UNSET\nok bad2\n!endif\n!ifnenv CONFORMANCE_SET\nok kept\n!endif\n"
    )
    assert script.groups[0].sleep_ms == 250 and script.groups[0].outputs == [b"got $x"]
    assert [g.commands[0].text for g in script.groups] == [b"noop", b"check", b"kept", b"logout"]
    with pytest.raises(ScriptError, match="unit"):
        parse_script(b"\nok noop\n!sleep 5\n")
    assert parse_script(b"\nok noop\n!sleep 2s\n").groups[0].sleep_ms == 2000
    with pytest.raises(ScriptError, match="!endif"):
        parse_script(b"\n!ifenv X\nok noop\n")


# --- default directives and expectation parsing (§8.3) -------------------------------------


def test_default_directives_are_inserted_by_response_name() -> None:
    script = parse_script(
        b"\nok noop\n* 1 fetch (uid 5 flags (\\seen) body[] {{{\nx\n}}})\n* list () / x\n"
        b"* status x (messages 1)\n* search 1 2\n* 1 fetch (flags ($!ordered \\seen))\n"
    )
    fetch, listing, status, search, explicit = (e.args for e in script.groups[0].expectations)
    assert texts(fetch) == [b"1", b"fetch", [b"$!unordered=2", b"uid", b"5", b"flags",
                            [b"$!unordered", b"$!noextra", b"$!ignore=\\recent", b"$!ignore=$HasAttachment",
                             b"$!ignore=$HasNoAttachment", b"\\seen"], b"body[]", b"x"]]
    assert texts(listing) == [b"list", [b"$!unordered"], b"/", b"x"]
    assert texts(status) == [b"status", b"x", [b"$!unordered=2", b"messages", b"1"]]
    assert texts(search) == [b"search", b"1", b"2"]
    assert texts(explicit)[2] == [b"$!unordered=2", b"flags", [b"$!ordered", b"\\seen"]]


def test_relative_sequence_fetch_gets_defaults_and_nested_lists_do_not() -> None:
    script = parse_script(b"\nok noop\n* $2 fetch (envelope (a (b)))\n")
    assert texts(script.groups[0].expectations[0].args) == [b"$2", b"fetch", [b"$!unordered=2", b"envelope",
                                                                             [b"a", [b"b"]]]]


@pytest.mark.parametrize("line", [b"* x ($!bogus a)", b"* x ($!unordered=x a)", b"* x ($!unordered=2 a b c)"])
def test_broken_directives_are_parse_errors(line: bytes) -> None:
    with pytest.raises(ScriptError):
        parse_script(b"\nok noop\n" + line + b"\n")


# --- shipped scripts ------------------------------------------------------------------------


@pytest.mark.skipif(not SHIPPED.is_dir(), reason=f"shipped scripts not found at {SHIPPED}")
def test_all_shipped_scripts_parse() -> None:
    files = list_script_files(SHIPPED)
    assert len(files) == 65
    assert not any(f.name in ("LICENSE", "COPYING", "AUTHORS") or f.suffix == ".mbox" for f in files)
    scripts = [parse_script_file(f) for f in files]
    assert sum(1 for s in scripts if not s.is_extension) == 25
    pipeline = next(s for s in scripts if s.name == "pipeline")
    assert [len(g.commands) for g in pipeline.groups] == [4, 4, 1]
    close = next(s for s in scripts if s.name == "close")
    assert close.mbox_path.endswith("default.mbox") and close.connections == 2 and close.messages == 3


# --- mbox source (§6) ----------------------------------------------------------------------


def test_from_line_dates() -> None:
    assert parse_from_line(b"From user@domain  Fri Feb 22 17:06:23 2008") == "22-Feb-2008 17:06:23 +0000"
    assert parse_from_line(b"From user@domain  Sat Mar 24 23:00:00 2007 +0200") == "24-Mar-2007 23:00:00 +0200"
    assert parse_from_line(b"From nobody") is None
    assert parse_from_line(b">From user@domain  Fri Feb 22 17:06:23 2008") is None


def test_mbox_messages_keep_the_separator_line_and_use_crlf() -> None:
    data = (b"From a  Fri Feb 22 17:06:23 2008\nSubject: 1\n\nbody1\n\n"
            b"From b  Sat Mar 24 23:00:00 2007 +0200\nSubject: 2\n\n>From quoted\n")
    first, second = parse_mbox(data)
    assert first.data == b"Subject: 1\r\n\r\nbody1\r\n\r\n" and first.internal_date == "22-Feb-2008 17:06:23 +0000"
    assert second.data == b"Subject: 2\r\n\r\n>From quoted\r\n" and second.internal_date.endswith("+0200")


def test_mbox_errors() -> None:
    with pytest.raises(MboxError):
        parse_mbox(b"")
    with pytest.raises(MboxError):
        parse_mbox(b"Subject: no separator\n")
    with pytest.raises(MboxError):
        parse_mbox(b"From a  Fri Feb 22 17:06:23 2008\nx\nFrom b  Fri Feb 22 17:06:23 2008\n")
