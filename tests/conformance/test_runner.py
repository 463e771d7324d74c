"""The runner itself, run against a scripted fake server.

Every "wrong response" case is checked twice: with the right answers the
script passes, with one deliberately wrong answer it fails, at the right
script line, with a message that names what was expected and what came.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from imapd.conformance.report import Outcome, Totals
from imapd.conformance import RunnerConfig, ScriptResult, run_script_file
from tests.conformance.fakeserver import DEFER, DISCONNECT, FakeImapServer, Rule
from tests.support.pinned_skips import Pin

SHIPPED = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "imaptest"
SHIPPED_MISSING = f"shipped scripts not found at {SHIPPED}"
needs_shipped = pytest.mark.skipif(not SHIPPED.is_dir(), reason=SHIPPED_MISSING)
#: Read by tests/support/pinned_skips.py: outside the project tree ../shared may be absent; never under CI.
PINNED_SKIPS = (Pin.exact(SHIPPED_MISSING, "../shared is not part of this repository", in_ci=False),)

MBOX = b"".join(
    b"From user@domain  Fri Feb 22 17:06:2%d 2008\nFrom: user%d@domain.org\nSubject: s%d\n\nbody%d\n\n" % (n, n, n, n)
    for n in range(1, 6)
)


# A reply timeout no passing script reaches (they finish in milliseconds),
# so a loaded machine cannot turn a right answer into a timeout.
PATIENT = 30.0


def run_inline(
    tmp_path: Path,
    script: bytes,
    rules: list[Rule],
    *,
    timeout: float = PATIENT,
    user2: str | None = None,
    **server: object,
) -> tuple[ScriptResult, FakeImapServer]:
    """Write ``script`` (with a 5-message default.mbox) and run it against a fake server."""
    (tmp_path / "default.mbox").write_bytes(MBOX)
    path = tmp_path / "inline"
    path.write_bytes(script)
    with FakeImapServer(rules=rules, **server) as fake:  # type: ignore[arg-type]
        config = RunnerConfig(port=fake.port, timeout=timeout, user2=user2)
        return run_script_file(path, config), fake


def run_shipped(name: str, rules: list[Rule], tmp_path: Path, **server: object) -> ScriptResult:
    """Run a shipped script (copied with its mbox so the run is isolated)."""
    shutil.copy(SHIPPED / name, tmp_path / name)
    mbox = SHIPPED / f"{name}.mbox"
    shutil.copy(mbox if mbox.exists() else SHIPPED / "default.mbox", tmp_path / mbox.name if mbox.exists()
                else tmp_path / "default.mbox")
    with FakeImapServer(rules=rules, **server) as fake:  # type: ignore[arg-type]
        return run_script_file(tmp_path / name, RunnerConfig(port=fake.port, timeout=PATIENT))


def only_failure(result: ScriptResult) -> str:
    assert result.outcome is Outcome.FAILED, result.format()
    return result.format()


# --- a correct transcript with most features -------------------------------------------------

FULL_SCRIPT = b"""messages: 2

# unordered FETCH items, flag defaults, variable binding
ok fetch 1 (uid flags)
* 1 fetch (flags () uid $uid1)
ok uid fetch $uid1 body.peek[text]
* 1 fetch (uid $uid1 body[text] {{{
body1


}}})

# pipelined STATUS, one with a response code in its tagged reply
tag1 status $mailbox (messages unseen)
tag2 status ${mailbox}2 (messages)
* status $mailbox (unseen 2 messages 2)
tag2 no [nonexistent]
tag1 ok

# $tag, prefix matching of untagged OK, one response satisfying two expectations
ok search return (all) all
* esearch (tag $tag) all 1:2
ok list "" ""
* list () $sep $root
* list (\\noselect) $sep $root
examine $mailbox
* ok [uidvalidity $uidv]
ok [read-only]
ok status $mailbox (uidvalidity)
* status $mailbox (uidvalidity $uidv)
"""

FULL_RULES = [
    Rule(rb"fetch 1 \(uid flags\)", [b"* 1 FETCH (UID 41 FLAGS (\\Recent))", b"{tag} OK Fetch completed"]),
    Rule(rb"uid fetch 41 body\.peek\[text\]",
         [b"* 1 FETCH (UID 41 BODY[TEXT] {9}\r\nbody1\r\n\r\n)", b"{tag} OK Fetch completed"]),
    Rule(rb'status imaptest \(messages unseen\)', [b'* STATUS "imaptest" (MESSAGES 2 UNSEEN 2)', b"{tag} OK done"]),
    Rule(rb"status imaptest2 \(messages\)", [b"{tag} NO [NONEXISTENT] Mailbox doesn't exist"]),
    Rule(rb"search return \(all\) all", [b'* ESEARCH (TAG "{tag}") ALL 1:2', b"{tag} OK Search completed"]),
    Rule(rb'list "" ""', [b'* LIST (\\Noselect) "/" ""', b"{tag} OK List completed"]),
    Rule(rb"examine imaptest", [b"* 2 EXISTS", b"* OK [UIDVALIDITY 1795440669] UIDs valid",
                                b"{tag} OK [READ-ONLY] Examine completed"]),
    Rule(rb"status imaptest \(uidvalidity\)", [b"* STATUS imaptest (UIDVALIDITY 1795440669)", b"{tag} OK done"]),
]


def test_correct_transcript_passes(tmp_path: Path) -> None:
    result, fake = run_inline(tmp_path, FULL_SCRIPT, FULL_RULES)
    assert result.outcome is Outcome.PASSED, result.format()
    assert result.groups_run == 8 and result.groups_failed == 0
    sent = [text for _, text in fake.commands]
    assert sent[:2] == [b'LOGIN "testuser" "pass"', b'LIST "" "imaptest*"']
    assert b"uid fetch 41 body.peek[text]" in sent and sent[-1] == b"logout"
    # messages: 2 appends the first two mbox messages with their From-line dates, CRLF-converted
    assert fake.appended[0] == (b'APPEND "imaptest" "22-Feb-2008 17:06:21 +0000" {48+}\r\n'
                                b"From: user1@domain.org\r\nSubject: s1\r\n\r\nbody1\r\n\r\n")
    assert len(fake.appended) == 2


# --- deliberately wrong responses -----------------------------------------------------------


@dataclass
class WrongCase:
    script: bytes
    good: list[Rule]
    bad: list[Rule]
    message: str  # must appear in the failure report
    line: int  # script line the failure points at
    header: bytes = b"messages: 5\n"


WRONG_CASES = {
    "search result": WrongCase(
        b"ok search answered\n* search 3 5\n",
        [Rule(rb"search answered", [b"* SEARCH 3 5", b"{tag} OK"])],
        [Rule(rb"search answered", [b"* SEARCH 3 4", b"{tag} OK"])],
        "missing 1 untagged replies", 4),
    "literal bytes": WrongCase(
        b"ok fetch 1 body.peek[text]\n* 1 fetch (body[text] {{{\nbody1\n\n\n}}})\n",
        [Rule(rb"fetch 1 body\.peek\[text\]", [b"* 1 FETCH (BODY[TEXT] {9}\r\nbody1\r\n\r\n)", b"{tag} OK"])],
        [Rule(rb"fetch 1 body\.peek\[text\]", [b"* 1 FETCH (BODY[TEXT] {9}\r\nbodyX\r\n\r\n)", b"{tag} OK"])],
        'BODY[TEXT] {9}\\r\\nbodyX', 4),
    "banned line matches": WrongCase(
        b"ok fetch 1 body.peek[header.fields.not (date)]\n! 1 fetch (body[header.fields.not (date)] {{{\n"
        b"Date: x\n\n\n}}})\n",
        [Rule(rb"fetch 1 .*", [b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (DATE)] {2}\r\n\r\n)", b"{tag} OK"])],
        [Rule(rb"fetch 1 .*", [b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (DATE)] {11}\r\nDate: x\r\n\r\n)", b"{tag} OK"])],
        "unexpected untagged match", 4),
    "wrong bound variable": WrongCase(
        b"ok fetch 1 uid\n* 1 fetch (uid $uid1)\nok fetch 1 uid\n* 1 fetch (uid $uid1)\n",
        [Rule(rb"fetch 1 uid", [b"* 1 FETCH (UID 41)", b"{tag} OK"])],
        [Rule(rb"fetch 1 uid", [b"* 1 FETCH (UID 41)", b"{tag} OK"], times=1),
         Rule(rb"fetch 1 uid", [b"* 1 FETCH (UID 42)", b"{tag} OK"])],
        "expanded:   * 1 fetch (uid 41)", 6),
    "tagged status": WrongCase(
        b"ok noop\n",
        [],
        [Rule(rb"noop", [b"{tag} NO Server busy"])],
        "expected tagged reply 'ok', got 'NO Server busy'", 3),
    "extra flag": WrongCase(
        b"ok fetch 1 (flags body.peek[text])\n* 1 fetch (flags () body[text] $body)\n",
        [Rule(rb"fetch 1 .*", [b"* 1 FETCH (FLAGS (\\Recent) BODY[TEXT] {2}\r\nab)", b"{tag} OK"])],
        [Rule(rb"fetch 1 .*", [b"* 1 FETCH (FLAGS (\\Recent \\Seen) BODY[TEXT] {2}\r\nab)", b"{tag} OK"])],
        "best match: * 1 FETCH (FLAGS (\\Recent \\Seen)", 4),
    "relative sequence": WrongCase(
        b"ok expunge\n* $1 expunge\n* $3 expunge\n",
        [Rule(rb"expunge", [b"* 3 EXPUNGE", b"* 1 EXPUNGE", b"{tag} OK"])],
        [Rule(rb"expunge", [b"* 2 EXPUNGE", b"* 1 EXPUNGE", b"{tag} OK"])],
        "expanded:   * 1 expunge", 5, header=b"messages: 3\n"),
    "status value": WrongCase(
        b"ok status $mailbox (messages recent)\n* status $mailbox (messages 5 recent 0)\n",
        [Rule(rb"status .*", [b"* STATUS imaptest (RECENT 0 MESSAGES 5)", b"{tag} OK"])],
        [Rule(rb"status .*", [b"* STATUS imaptest (RECENT 0 MESSAGES 4)", b"{tag} OK"])],
        "* status imaptest (messages 5 recent 0)", 4),
    "extra untagged": WrongCase(
        b"ok noop\n",
        [],
        [Rule(rb"noop", [b"* 1 RECENT", b"{tag} OK"])],
        "1 unexpected untagged replies", 4, header=b"ignore_extra_untagged: no\nmessages: 1\n"),
    "response code": WrongCase(
        b"select $mailbox\n* 5 exists\nok [read-write]\n",
        [Rule(rb"select imaptest", [b"* 5 EXISTS", b"{tag} OK [READ-WRITE] Select completed"])],
        [Rule(rb"select imaptest", [b"* 5 EXISTS", b"{tag} OK [READ-ONLY] Select completed"])],
        "expected tagged reply 'ok [read-write]', got 'OK [READ-ONLY] Select completed'", 5),
    "missing untagged": WrongCase(
        b"ok fetch 1 uid\n* 1 fetch (uid $u)\n",
        [Rule(rb"fetch 1 uid", [b"* 1 FETCH (UID 1)", b"{tag} OK"])],
        [Rule(rb"fetch 1 uid", [b"{tag} OK"])],
        "missing 1 untagged replies (0 mismatches)", 4),
    "disconnect": WrongCase(
        b"ok noop\n",
        [],
        [Rule(rb"noop", [DISCONNECT])],
        "unexpected disconnection", 3),
    "timeout": WrongCase(
        b"ok noop\n",
        [],
        [Rule(rb"noop", [])],
        "timed out waiting for the tagged reply", 3),
    "thread order": WrongCase(
        b"ok thread references us-ascii all\n* thread (3 2)(1)\n",
        [Rule(rb"thread .*", [b"* THREAD (3 2)(1)", b"{tag} OK"])],
        [Rule(rb"thread .*", [b"* THREAD (2 3)(1)", b"{tag} OK"])],
        "missing 1 untagged replies", 4),
    "unexpected BAD": WrongCase(
        b'"" noop\n',
        [Rule(rb"noop", [b"{tag} NO whatever"])],
        [Rule(rb"noop", [b"{tag} BAD whatever"])],
        "server answered BAD", 3),
    "EXISTS backwards": WrongCase(
        b"ok noop\n",
        [Rule(rb"noop", [b"* 5 EXISTS", b"{tag} OK"])],
        [Rule(rb"noop", [b"* 4 EXISTS", b"{tag} OK"])],
        "EXISTS went backwards: 4 < 5", 3),
}


@pytest.mark.parametrize("case", list(WRONG_CASES), ids=list(WRONG_CASES))
def test_right_answers_pass(case: str, tmp_path: Path) -> None:
    wrong = WRONG_CASES[case]
    result, _ = run_inline(tmp_path, wrong.header + b"\n" + wrong.script, wrong.good, timeout=PATIENT)
    assert result.outcome is Outcome.PASSED, result.format()


@pytest.mark.parametrize("case", list(WRONG_CASES), ids=list(WRONG_CASES))
def test_wrong_answer_fails_with_line_and_evidence(case: str, tmp_path: Path) -> None:
    wrong = WRONG_CASES[case]
    # Only the "timeout" case waits for its timeout; the others must fail on
    # the wrong answer, not because a loaded machine was slow to send it.
    timeout = 0.5 if case == "timeout" else PATIENT
    result, _ = run_inline(tmp_path, wrong.header + b"\n" + wrong.script, wrong.bad, timeout=timeout)
    report = only_failure(result)
    assert wrong.message in report
    assert f"inline:{wrong.line} " in report
    assert result.failures[0].line == wrong.line


def test_failure_report_shows_command_expectation_and_received_lines(tmp_path: Path) -> None:
    wrong = WRONG_CASES["search result"]
    result, _ = run_inline(tmp_path, wrong.header + b"\n" + wrong.script, wrong.bad)
    report = result.failures[0].format()
    assert "(command group 1/2, connection 1)" in report
    assert "command:    search answered" in report
    assert "expected:   * search 3 5" in report
    assert "best match: * SEARCH 3 4" in report
    assert "S: * SEARCH 3 4" in report and "S: 1.11 OK" in report


# --- setup, skipping, connections, pipelining, literals ---------------------------------------


def test_missing_capability_skips_with_its_name(tmp_path: Path) -> None:
    result, fake = run_inline(tmp_path, b"capabilities: IMAP4rev1 UIDPLUS\n\nok noop\n", [])
    assert result.outcome is Outcome.SKIPPED and "UIDPLUS" in result.skip_reason
    assert "IMAP4rev1" not in result.skip_reason
    assert [text for _, text in fake.commands][-1] == b"LOGOUT"
    present, _ = run_inline(tmp_path, b"capabilities: literal+\n\nok noop\n", [])
    assert present.outcome is Outcome.PASSED


def test_capabilities_come_from_capability_command_without_login_code(tmp_path: Path) -> None:
    result, fake = run_inline(tmp_path, b"capabilities: IDLE\n\nok noop\n", [], login_capability_code=False)
    assert result.outcome is Outcome.PASSED
    assert (1, b"CAPABILITY") in fake.commands


def test_nonauth_checks_pre_login_capabilities(tmp_path: Path) -> None:
    result, fake = run_inline(tmp_path, b"capabilities: ID\nstate: nonauth\n\nok id nil\n", [])
    assert result.outcome is Outcome.SKIPPED and "pre-login" in result.skip_reason
    assert not any(text.startswith(b"LOGIN") for _, text in fake.commands)
    greeted, fake = run_inline(tmp_path, b"capabilities: ID\nstate: nonauth\n\nok id nil\n", [],
                               greeting=b"* OK [CAPABILITY IMAP4rev1 ID] hi")
    assert greeted.outcome is Outcome.PASSED
    assert [text for _, text in fake.commands] == [b"id nil", b"logout"]


def test_user2_required_but_not_configured_skips(tmp_path: Path) -> None:
    script = b"connections: 2\nuser 2: $user2\n\n2 ok noop\n"
    skipped, _ = run_inline(tmp_path, script, [])
    assert skipped.outcome is Outcome.SKIPPED and "user2" in skipped.skip_reason
    ran, fake = run_inline(tmp_path, script, [], user2="other")
    assert ran.outcome is Outcome.PASSED
    assert (2, b'LOGIN "other" "pass"') in fake.commands


def test_setup_failure_is_reported_as_initialization_failure(tmp_path: Path) -> None:
    result, _ = run_inline(tmp_path, b"\nok noop\n", [Rule(rb"LOGIN .*", [b"{tag} NO [AUTHENTICATIONFAILED] no"])])
    report = only_failure(result)
    assert "initialization failed" in report and "AUTHENTICATIONFAILED" in report and "(setup" in report


def test_cleanup_deletes_and_unsubscribes_old_mailboxes_children_first(tmp_path: Path) -> None:
    rules = [
        Rule(rb'LIST "" "imaptest\*"', [b'* LIST () "/" imaptest', b'* LIST () "/" "imaptest/Sub"',
                                        b'* LIST (\\Noselect) "/" imaptest2', b"{tag} OK"]),
        Rule(rb'LSUB "" "imaptest\*"', [b'* LSUB () "/" imaptest/gone', b"{tag} OK"]),
        Rule(rb"DELETE imaptest2", [b"{tag} NO Can't delete"]),
    ]
    result, fake = run_inline(tmp_path, b"state: auth\n\nok noop\n", rules)
    assert result.outcome is Outcome.PASSED, result.format()
    sent = [text for _, text in fake.commands]
    assert sent[3:7] == [b'DELETE "imaptest2"', b'DELETE "imaptest/Sub"', b'DELETE "imaptest"',
                         b'UNSUBSCRIBE "imaptest/gone"']
    assert not any(text.startswith(b"CREATE") or text.startswith(b"SELECT") for text in sent)


def test_pipelined_commands_are_sent_before_any_reply(tmp_path: Path) -> None:
    # The server holds back the first command's reply until the second command arrived.
    script = b"state: auth\n\ntag1 create a\ntag2 create b\ntag1 ok\ntag2 ok\n"
    rules = [Rule(rb"create a", [DEFER, b"{tag} OK a"]), Rule(rb"create b", [b"{tag} OK b"])]
    result, _ = run_inline(tmp_path, script, rules, timeout=PATIENT)
    assert result.outcome is Outcome.PASSED, result.format()


def test_synchronizing_literals_without_literal_plus(tmp_path: Path) -> None:
    script = b"state: created\n\nok append $mailbox {{{\nSubject: x\n\nbody\n}}}\nok append\n"
    result, fake = run_inline(tmp_path, script, [], capabilities=b"IMAP4rev1")
    assert result.outcome is Outcome.PASSED, result.format()
    appends = fake.appended
    assert appends[0] == b"append imaptest {18}\r\nSubject: x\r\n\r\nbody"
    assert appends[1].startswith(b'APPEND "imaptest" "22-Feb-2008 17:06:21 +0000" {48}\r\nFrom: user1')
    with_plus, fake = run_inline(tmp_path, script, [])
    assert fake.appended[0].startswith(b"append imaptest {18+}\r\n")


def test_append_forms_and_mbox_cursor(tmp_path: Path) -> None:
    script = (b"messages: 2\nstate: appended\n\nok append\nok append $mailbox (\\seen)\n"
              b"ok append $mailbox catenate (text {{{\nx\n}}})\n")
    result, fake = run_inline(tmp_path, script, [])
    assert result.outcome is Outcome.PASSED, result.format()
    assert [a.split(b"\r\n")[1] for a in fake.appended[:4]] == [
        b"From: user1@domain.org", b"From: user2@domain.org", b"From: user3@domain.org", b"From: user4@domain.org"]
    assert fake.appended[3].startswith(b"append imaptest (\\seen) {48+}\r\n")
    assert fake.appended[4] == b"append imaptest catenate (text {1+}\r\nx)"


def test_other_connection_responses_are_read_in_its_next_group(tmp_path: Path) -> None:
    # Connection 2 receives the FETCH while connection 1's group runs; it must be matched
    # against connection 2's next group, not connection 1's.
    script = (b"connections: 2\nmessages: 1\n\n1 ok store 1 +flags \\seen\n! 1 fetch (flags (\\seen \\draft))\n"
              b"2 ok noop\n* 1 fetch (flags (\\seen \\draft))\n")
    pushed = {2: [b"* 1 FETCH (FLAGS (\\Seen \\Draft))"]}
    rules = [Rule(rb"store .*", [b"* 1 FETCH (FLAGS (\\Seen))", b"{tag} OK"], connection=1, also=pushed)]
    result, _ = run_inline(tmp_path, script, rules)
    assert result.outcome is Outcome.PASSED, result.format()
    nothing_pushed = [Rule(rb"store .*", [b"* 1 FETCH (FLAGS (\\Seen))", b"{tag} OK"], connection=1)]
    result, _ = run_inline(tmp_path, script, nothing_pushed)
    assert "missing 1 untagged replies" in only_failure(result)


def test_uninitialized_variable_in_command_fails(tmp_path: Path) -> None:
    result, _ = run_inline(tmp_path, b"\nok fetch $nothing uid\n", [])
    assert "uninitialized variable: $nothing" in only_failure(result)


def test_bye_with_disconnect_accepts_only_any_status(tmp_path: Path) -> None:
    rules = [Rule(rb"shutdown", [b"* BYE going away", DISCONNECT])]
    ok, _ = run_inline(tmp_path, b'\n"" shutdown\n* bye\n', rules)
    assert ok.outcome is Outcome.PASSED, ok.format()
    bad, _ = run_inline(tmp_path, b"\nok shutdown\n* bye\n", rules)
    assert 'only "" allowed when BYE happens' in only_failure(bad)


def test_parse_error_is_a_failure_with_its_line(tmp_path: Path) -> None:
    result, _ = run_inline(tmp_path, b"\nok noop\n* x ($!bogus)\n", [])
    assert result.failures[0].line == 3 and "script parse error" in only_failure(result)


# --- shipped scripts against correct fake transcripts -------------------------------------------


@needs_shipped
def test_shipped_close_with_expunges_in_any_order(tmp_path: Path) -> None:
    rules = [Rule(rb"noop", [b"* 3 EXPUNGE", b"* 1 EXPUNGE", b"{tag} OK NOOP completed"], connection=2)]
    assert run_shipped("close", rules, tmp_path).outcome is Outcome.PASSED
    other_order = [Rule(rb"noop", [b"* 1 EXPUNGE", b"* 2 EXPUNGE", b"{tag} OK"], connection=2)]
    assert run_shipped("close", other_order, tmp_path).outcome is Outcome.PASSED
    wrong = [Rule(rb"noop", [b"* 1 EXPUNGE", b"* 1 EXPUNGE", b"{tag} OK"], connection=2)]
    assert "* $3 expunge" in only_failure(run_shipped("close", wrong, tmp_path))


@needs_shipped
def test_shipped_pipeline_and_logout(tmp_path: Path) -> None:
    rules = [Rule(rb"status imaptest%s \(messages\)" % n, [b"* STATUS imaptest%s (MESSAGES 0)" % n, b"{tag} OK"])
             for n in (b"", b"2", b"3", b"4")]
    assert run_shipped("pipeline", rules, tmp_path).outcome is Outcome.PASSED
    assert run_shipped("logout", [], tmp_path).outcome is Outcome.PASSED
    early_bye = [Rule(rb"noop", [b"* BYE bored", b"{tag} OK"], connection=1)]
    assert "unexpected untagged match" in only_failure(run_shipped("logout", early_bye, tmp_path))


@needs_shipped
def test_shipped_append_binary_relies_on_nul_truncation(tmp_path: Path) -> None:
    rules = [
        Rule(rb"select imaptest", [b"* 1 EXISTS", b"{tag} OK [READ-WRITE] Select completed"]),
        Rule(rb"fetch 1 \(body\.peek\[1\]\)", [b"* 1 FETCH (BODY[1] {10}\r\nAC3kDQo=\r\n)", b"{tag} OK"]),
        Rule(rb"fetch 1 \(binary\.size\[1\] binary\.peek\[1\]\)",
             [b"* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n\x00-\xe4\r\n\r\n)", b"{tag} OK"]),
    ]
    result = run_shipped("append-binary", rules, tmp_path, capabilities=b"IMAP4rev1 LITERAL+ BINARY")
    assert result.outcome is Outcome.PASSED, result.format()
    raw_body = [rules[0], Rule(rb"fetch 1 \(body\.peek\[1\]\)",
                               [b"* 1 FETCH (BODY[1] {6}\r\n\x00-\xe4\r\n\r)", b"{tag} OK"]), rules[2]]
    failed = run_shipped("append-binary", raw_body, tmp_path, capabilities=b"IMAP4rev1 LITERAL+ BINARY")
    assert "unexpected untagged match" in only_failure(failed)


@needs_shipped
def test_shipped_uidplus_binds_response_codes(tmp_path: Path) -> None:
    rules = [
        Rule(rb"select imaptest", [b"* 0 EXISTS", b"{tag} OK [READ-WRITE] Select completed"]),
        Rule(rb"append imaptest2 .*", [b"{tag} OK [APPENDUID 7 3] Append completed"]),
        Rule(rb"copy 1 imaptest2", [b"{tag} OK [COPYUID 7 1 4] Copy completed"]),
        Rule(rb"select imaptest2", [b"* 2 EXISTS", b"* OK [UIDVALIDITY 7] ok", b"{tag} OK [READ-WRITE] done"]),
        Rule(rb"fetch 1:2 uid", [b"* 1 FETCH (UID 3)", b"* 2 FETCH (UID 4)", b"{tag} OK"]),
    ]
    caps = b"IMAP4rev1 LITERAL+ UIDPLUS"
    assert run_shipped("uidplus", rules, tmp_path, capabilities=caps).outcome is Outcome.PASSED
    rules[4] = Rule(rb"fetch 1:2 uid", [b"* 1 FETCH (UID 3)", b"* 2 FETCH (UID 5)", b"{tag} OK"])
    assert "* 2 fetch (uid 4)" in only_failure(run_shipped("uidplus", rules, tmp_path, capabilities=caps))
    skipped = run_shipped("uidplus", [], tmp_path)
    assert skipped.outcome is Outcome.SKIPPED and "UIDPLUS" in skipped.skip_reason


# --- reporting and the command line ------------------------------------------------------------


def test_totals_in_imaptest_wording() -> None:
    totals = Totals()
    base = ScriptResult("a", "a", False, Outcome.FAILED, groups_run=4, groups_failed=1)
    ext = ScriptResult("b", "b", True, Outcome.SKIPPED, skip_reason="x")
    totals.add(base)
    totals.add(ext)
    totals.add(ScriptResult("c", "c", True, groups_run=3))
    assert totals.format().splitlines()[:3] == [
        "3 test groups: 1 failed, 1 skipped due to missing capabilities",
        "base protocol: 1/4 individual commands failed",
        "extensions: 0/3 individual commands failed",
    ]


def test_output_directive_expands_variables(tmp_path: Path) -> None:
    rules = [Rule(rb"fetch 1 uid", [b"* 1 FETCH (UID 77)", b"{tag} OK"])]
    result, _ = run_inline(tmp_path, b"messages: 1\n\nok fetch 1 uid\n* 1 fetch (uid $u)\n!output uid=$u box=$mailbox\n",
                           rules)
    assert result.outcome is Outcome.PASSED and result.outputs == ["uid=77 box=imaptest"]


def test_group_on_a_logged_out_connection_fails(tmp_path: Path) -> None:
    result, _ = run_inline(tmp_path, b"\nok logout\nok noop\n", [])
    assert "connection 1 is already closed" in only_failure(result)
    assert result.failures[0].line == 3
