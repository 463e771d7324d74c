"""The stress checker catches what it is for (issue 11).

A checker that reports nothing proves nothing unless it is shown to report
real faults. Three levels:

* recorded transcripts, wrong in one way each, fed to the client model: each
  must give exactly its finding, and the corrected transcript none;
* the checker's client against the tiny scripted fake server of the
  conformance runner, answering like the two defects of issue 11;
* whole stress runs against the real server through a proxy that deletes
  the responses a defective server would not send (``* FLAGS`` updates,
  RECENT after expunges): the run must report them.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Callable

import pytest

from tests.conformance.fakeserver import FakeImapServer, Rule
from tests.support.line_proxy import Deletions, LineFilter, LineProxy
from tests.support.stress import run_stress, stress_server
from tests.support.stress_checks import compare_with_truth, recent_checks
from tests.support.stress_client import Command, Stats, StressClient
from tests.support.stress_model import MailboxModel, Message
from tests.support.stress_ops import Chooser, StressConfig
from tests.support.stress_wire import Quoted, parse_response, tokenize

SELECT_LINES = [
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Old)",
    b"* 3 EXISTS",
    b"* 1 RECENT",
    b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Old \\*)] Flags permitted",
    b"* OK [UIDVALIDITY 7] UIDs valid",
]
UID_FETCH_LINES = [
    b"* 1 FETCH (UID 4 FLAGS (\\Seen))",
    b"* 2 FETCH (UID 6 FLAGS ($Old))",
    b"* 3 FETCH (UID 9 FLAGS (\\Recent))",
]


class Recorder:
    """A model fed recorded responses; its findings as (kind, detail)."""

    def __init__(self, select: list[bytes] = SELECT_LINES) -> None:
        self.found: list[tuple[str, str]] = []
        self.model = MailboxModel(lambda kind, detail: self.found.append((kind, detail)))
        self.feed(select, "SELECT")
        self.model.select_completed(True, "READ-WRITE")
        self.feed(UID_FETCH_LINES, "UID FETCH")

    def feed(self, lines: list[bytes], command: str = "NOOP") -> list[str]:
        for line in lines:
            self.model.untagged(parse_response(line), command)
        self.model.completed(command)
        return self.kinds()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.found]


# --- recorded transcripts ---------------------------------------------------

def test_a_correct_transcript_gives_no_finding() -> None:
    recorder = Recorder()
    assert recorder.feed([
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Old $New)",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Old $New \\*)] Flags permitted",
        b"* 1 FETCH (FLAGS (\\Seen $New))",
        b"* 3 EXPUNGE",
        b"* 0 RECENT",
        b"* 3 EXISTS",
        b"* 1 RECENT",
    ]) == []
    model = recorder.model
    assert [m.uid for m in model.messages] == [4, 6, None]
    assert model.messages[0].flags == frozenset({"\\seen", "$new"}) and model.recent == 1


@pytest.mark.parametrize("keyword", [b"$New", b"NIL", b"nil"])
def test_keyword_without_flags_first_is_reported(keyword: bytes) -> None:
    recorder = Recorder()
    assert recorder.feed([b"* 2 FETCH (FLAGS (\\Seen " + keyword + b"))"]) == ["keyword-not-in-flags"]


def test_keywords_compare_case_insensitively() -> None:
    assert Recorder().feed([b"* 2 FETCH (FLAGS ($OLD))"]) == []


def test_keyword_outside_permanentflags_without_wildcard_is_reported() -> None:
    select = [line.replace(b" \\*)", b")") for line in SELECT_LINES]
    recorder = Recorder(select)
    found = recorder.feed([b"* FLAGS (\\Seen $Old $New)", b"* 1 FETCH (FLAGS ($New))"])
    assert found == ["keyword-not-in-permanentflags", "permanentflags-behind-flags"]


def test_flags_without_permanentflags_on_a_read_write_selection_is_reported() -> None:
    """Issue 11: a read-write session told of a new keyword by FLAGS gets
    PERMANENTFLAGS naming it too (RFC 3501 §7.1), as at SELECT."""
    recorder = Recorder()
    assert recorder.feed([b"* FLAGS (\\Seen $Old $New)"]) == ["permanentflags-behind-flags"]
    recorder.found.clear()
    assert recorder.feed([b"* OK [PERMANENTFLAGS (\\Seen $Old $New \\*)] Flags permitted"]) == []


def test_recent_not_resent_after_expunges_is_reported() -> None:
    recorder = Recorder()
    assert recorder.feed([b"* 5 EXISTS", b"* 3 RECENT"]) == []
    assert recorder.feed([b"* 5 EXPUNGE", b"* 4 EXPUNGE", b"* 3 EXPUNGE"]) == ["recent-exceeds-exists"]
    recorder.found.clear()
    assert recorder.feed([b"* 1 RECENT"]) == []  # the server's correction


@pytest.mark.parametrize("lines, command, kind", [
    ([b"* 4 EXPUNGE"], "NOOP", "expunge-range"),
    ([b"* 0 EXPUNGE"], "NOOP", "expunge-range"),
    ([b"* 1 EXPUNGE"], "FETCH", "expunge-during-fetch"),
    ([b"* 1 EXPUNGE"], "STORE", "expunge-during-store"),
    ([b"* VANISHED 4"], "SEARCH", "vanished-during-search"),
    ([b"* 4 FETCH (FLAGS ())"], "NOOP", "fetch-range"),
    ([b"* 2 FETCH (UID 7)"], "UID FETCH", "uid-changed"),
    ([b"* 2 EXISTS"], "NOOP", "exists-shrank"),
    ([b"* 4 EXISTS", b"* 4 FETCH (UID 8)"], "UID FETCH", "uid-order"),
    ([b"* VANISHED 5"], "NOOP", "vanished-unknown"),
    ([b"* OK [HIGHESTMODSEQ 9] x", b"* OK [HIGHESTMODSEQ 8] x"], "NOOP", "modseq-decreased"),
    ([b"* 1 FETCH (UID 4 MODSEQ (9))", b"* 1 FETCH (UID 4 MODSEQ (8))"], "NOOP", "modseq-decreased"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_each_wrong_response_gives_its_finding(lines: list[bytes], command: str, kind: str) -> None:
    recorder = Recorder()
    assert recorder.feed(lines, command) == [kind]


def test_expunge_allowed_during_uid_commands_and_vanished_removes_by_uid() -> None:
    recorder = Recorder()
    assert recorder.feed([b"* 1 EXPUNGE"], "UID FETCH") == []
    assert recorder.feed([b"* VANISHED 9"], "UID STORE") == []
    assert [m.uid for m in recorder.model.messages] == [6]


def test_vanished_for_a_message_whose_uid_is_unknown_removes_one_in_its_gap() -> None:
    recorder = Recorder()
    recorder.feed([b"* 5 EXISTS"])  # two new messages, UIDs unknown (above 9)
    assert recorder.feed([b"* VANISHED 12"]) == []
    assert [m.uid for m in recorder.model.messages] == [4, 6, 9, None]


def test_select_without_its_required_responses_is_reported() -> None:
    recorder = Recorder([line for line in SELECT_LINES if not line.startswith((b"* 1 RECENT", b"* FLAGS"))])
    # (and the UID FETCH that follows uses $Old, never announced)
    assert sorted(recorder.kinds()) == ["keyword-not-in-flags", "select-missing-flags", "select-missing-recent"]


def test_qresync_select_must_add_up() -> None:
    recorder = Recorder()
    model = recorder.model
    model.reset(after_closed=False)
    model.resync_base = {uid: Message(uid, frozenset()) for uid in (4, 6, 9)}
    recorder.feed([SELECT_LINES[0], b"* 3 EXISTS", b"* VANISHED (EARLIER) 6", b"* 3 FETCH (UID 11 FLAGS ($Old))"],
                  "SELECT")
    assert model.finish_resync(complete=True) is True and recorder.kinds() == []
    assert [m.uid for m in model.messages] == [4, 9, 11]
    model.resync_base = {uid: Message(uid, frozenset()) for uid in (4, 9, 11)}
    model.messages = [Message() for _ in range(4)]  # EXISTS 4: one new message not reported
    assert model.finish_resync(complete=True) is False
    assert recorder.kinds() == ["qresync-count"]


def test_qresync_select_with_changes_drained_before_its_tagged_reply() -> None:
    """Another session's APPEND and EXPUNGE land during a QRESYNC SELECT and
    are sent before its tagged OK: the SELECT's own EXISTS is what the
    resync must add up to, the later VANISHED counts from the resynchronised
    state, the later EXISTS is a new message (issue 14: frequent with the
    PostgreSQL engine, whose doorbells arrive from another thread)."""
    recorder = Recorder()
    model = recorder.model
    model.reset(after_closed=False)
    model.resync_base = {uid: Message(uid, frozenset()) for uid in (4, 6, 9)}
    recorder.feed([SELECT_LINES[0], b"* 3 EXISTS", b"* VANISHED (EARLIER) 6",
                   b"* 3 FETCH (UID 11 FLAGS ($Old))", b"* 4 EXISTS", b"* VANISHED 4",
                   b"* 2 FETCH (FLAGS (\\Seen))"], "SELECT")
    assert model.finish_resync(complete=True) is True and recorder.kinds() == []
    assert [m.uid for m in model.messages] == [9, 11, None]
    assert model.messages[1].flags == frozenset({"\\seen"})


# --- checkpoint comparisons ---------------------------------------------------

def picture(uids: list[int], flags: list[set[str]], flags_list: set[str], recent: int = 0,
            recent_uids: set[int] = set(), readonly: bool = False) -> MailboxModel:
    model = MailboxModel(lambda kind, detail: None, selected=True, readonly=readonly, recent=recent)
    model.messages = [Message(uid, frozenset(f), uid in recent_uids) for uid, f in zip(uids, flags)]
    model.flags_list = frozenset(flags_list)
    return model


def test_checkpoint_finds_every_kind_of_divergence() -> None:
    truth = picture([4, 6, 9], [{"\\seen"}, {"$a"}, set()], {"$a"})
    assert compare_with_truth(truth, truth) == []
    client = picture([4, 7, 9, 10], [{"\\seen", "$a"}, {"$a"}, set(), set()], set())
    assert [kind for kind, _ in compare_with_truth(client, truth)] == [
        "exists-differs", "seq-uid-differs", "uid-not-in-store", "flags-differ", "flags-list-incomplete"]


def test_unknown_uids_and_flags_are_not_compared() -> None:
    truth = picture([4, 6], [{"\\seen"}, {"$a"}], {"$a"})
    client = picture([4, 6], [set(), set()], {"$a"})
    client.messages[0].uid = None
    client.messages[0].flags = client.messages[1].flags = None
    assert compare_with_truth(client, truth) == []


def test_recent_rules_across_sessions() -> None:
    truth = picture([4, 6], [set(), set()], set())
    good = {"a": picture([4, 6], [set(), set()], set(), 1, {4}), "b": picture([4, 6], [set(), set()], set(), 1, {6})}
    assert recent_checks(good, truth) == []
    shared = {"a": picture([4, 6], [set(), set()], set(), 1, {4}), "b": picture([4, 6], [set(), set()], set(), 1, {4})}
    assert [kind for _, kind, _ in recent_checks(shared, truth)] == ["recent-shared"]
    stale = {"a": picture([4, 6], [set(), set()], set(), 2, {4})}
    assert [kind for _, kind, _ in recent_checks(stale, truth)] == ["recent-count"]
    truth.recent = 1
    assert [kind for _, kind, _ in recent_checks(good, truth)] == ["fresh-examine-recent"]
    read_only = {"a": picture([4, 6], [set(), set()], set(), 2, {4, 6}, readonly=True),
                 "b": picture([4, 6], [set(), set()], set(), 2, {4, 6}, readonly=True)}
    assert recent_checks(read_only, truth) == []  # EXAMINE sessions claim nothing (RFC 3501 §6.3.2)


# --- the checker's own response parser -----------------------------------------

def test_response_parser() -> None:
    response = parse_response(b"* OK [PERMANENTFLAGS (\\Seen $A \\*)] Flags permitted")
    assert (response.word, response.code, response.code_args, response.text) == (
        "OK", "PERMANENTFLAGS", [["\\Seen", "$A", "\\*"]], "Flags permitted")
    fetch = parse_response(b"* 12 FETCH (UID 40 FLAGS (NIL \\Recent) MODSEQ (7))")
    assert (fetch.number, fetch.word, fetch.data) == (
        12, "FETCH", [["UID", "40", "FLAGS", ["NIL", "\\Recent"], "MODSEQ", ["7"]]])
    assert tokenize(b'"a \\"q\\"" {3}\r\nx)y (b)')[0] == [Quoted('a "q"'), Quoted("x)y"), ["b"]]
    tagged = parse_response(b"c1.7 NO [TRYCREATE] No such mailbox")
    assert (tagged.tag, tagged.word, tagged.code) == ("c1.7", "NO", "TRYCREATE")


# --- the client against a scripted fake server ----------------------------------

FAKE_SELECT = [
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
    b"* 2 EXISTS",
    b"* 2 RECENT",
    b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
    b"* OK [UIDVALIDITY 3] UIDs valid",
    b"{tag} OK [READ-WRITE] SELECT completed",
]
FAKE_UID_FETCH = [b"* 1 FETCH (UID 1 FLAGS (\\Recent))", b"* 2 FETCH (UID 2 FLAGS (\\Recent))",
                  b"{tag} OK UID FETCH completed"]


def fake_session(select: list[bytes], noop: list[bytes]) -> list[str]:
    """The checker's client logs in to the fake server, selects, fetches
    every UID, sends NOOP and logs out; its findings' kinds."""
    found: list[str] = []
    rules = [Rule(rb"SELECT INBOX", select), Rule(rb"UID FETCH 1:\* \(UID FLAGS\)", FAKE_UID_FETCH),
             Rule(rb"NOOP", noop + [b"{tag} OK NOOP completed"])]

    async def session(port: int) -> None:
        client = StressClient("c", ("127.0.0.1", port), ("alice", "pw"), Stats(),
                              lambda client, kind, detail: found.append(kind), timeout=10)
        await client.connect()
        await client.run([Command("NOOP", "NOOP", b"NOOP")])
        await client.logout()

    with FakeImapServer(rules=rules) as fake:
        asyncio.run(session(fake.port))
    return found


def test_fake_server_that_answers_correctly_gives_no_finding() -> None:
    noop = [b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $NewKw)",
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $NewKw \\*)] Flags permitted",
            b"* 1 FETCH (FLAGS (\\Seen $NewKw \\Recent))", b"* 2 EXPUNGE", b"* 1 RECENT"]
    assert fake_session(FAKE_SELECT, noop) == []


def test_fake_server_that_omits_flags_for_a_new_keyword_is_caught() -> None:
    """Issue 11, defect 1: the FETCH uses $NewKw with no ``* FLAGS`` first."""
    assert fake_session(FAKE_SELECT, [b"* 1 FETCH (FLAGS (\\Seen $NewKw \\Recent))"]) == ["keyword-not-in-flags"]


def test_fake_server_that_does_not_resend_recent_is_caught() -> None:
    """Issue 11, defect 2: two EXPUNGEs of recent messages, no ``* 0 RECENT``."""
    assert fake_session(FAKE_SELECT, [b"* 2 EXPUNGE", b"* 1 EXPUNGE"]) == ["recent-exceeds-exists"]


def test_fake_server_whose_select_omits_recent_is_caught() -> None:
    select = [line for line in FAKE_SELECT if not line.endswith(b"RECENT")]
    assert fake_session(select, []) == ["select-missing-recent"]


# --- whole runs against the real server, with responses deleted ----------------

def drop_flags_updates() -> LineFilter:
    """Keep a connection's first ``* FLAGS`` and PERMANENTFLAGS, drop the rest:
    the server then never announces a keyword that appears later."""
    seen: set[bytes] = set()

    def drop(line: bytes) -> bool:
        for prefix in (b"* FLAGS ", b"* OK [PERMANENTFLAGS "):
            if line.startswith(prefix):
                if prefix in seen:
                    return True
                seen.add(prefix)
        return False
    return drop


def drop_recent_without_exists() -> LineFilter:
    """Drop every ``* n RECENT`` that does not follow an EXISTS: the
    server then never corrects RECENT after expunges."""
    previous = [b""]

    def drop(line: bytes) -> bool:
        after_exists = previous[0].endswith(b" EXISTS")
        previous[0] = line
        return line.startswith(b"* ") and line.endswith(b" RECENT") and not after_exists
    return drop


def drop_some_expunges() -> LineFilter:
    """Drop every fifth ``* n EXPUNGE``: the client's numbering goes wrong."""
    count = [0]

    def drop(line: bytes) -> bool:
        if line.startswith(b"* ") and line.endswith(b" EXPUNGE"):
            count[0] += 1
            return count[0] % 5 == 0
        return False
    return drop


def drop_vanished_earlier() -> LineFilter:
    """Drop ``* VANISHED (EARLIER)``: a QRESYNC reconnect misses expunges."""
    return lambda line: line.startswith(b"* VANISHED (EARLIER) ")


@pytest.mark.parametrize("make_filter, qresync, kinds", [
    (drop_flags_updates, False, {"keyword-not-in-flags", "flags-list-incomplete"}),
    (drop_recent_without_exists, False, {"recent-exceeds-exists", "recent-count"}),
    (drop_some_expunges, False, {"exists-differs", "seq-uid-differs", "uid-changed", "uid-order"}),
    (drop_vanished_earlier, True, {"qresync-count", "exists-differs", "uid-not-in-store"}),
], ids=["flags-updates-dropped", "recent-corrections-dropped", "expunges-dropped", "vanished-earlier-dropped"])
def test_stress_run_reports_a_server_that_omits_responses(
        tmp_path: Path, make_filter: Callable[[], LineFilter], qresync: bool, kinds: set[str]) -> None:
    # Many new keywords, a small mailbox that is appended to and expunged
    # from all the time (recent messages get expunged), frequent reconnects.
    config = StressConfig(clients=4, seconds=3.0, checkpoint_every=1.0, seed=21, new_keyword_rate=0.3,
                          initial_messages=8, max_messages=12, qresync=qresync, special_rate=0.15)
    with stress_server(tmp_path) as server:
        with LineProxy((server.host, server.port), Deletions(make_filter)) as proxy:
            report = run_stress("127.0.0.1", proxy.port, config)
    assert proxy.changed, "the proxy removed nothing: the test proves nothing"
    assert kinds & set(report.kinds), report.summary()


def test_silent_store_is_applied_by_the_client_unless_a_fetch_overtook_it() -> None:
    recorder = Recorder()
    model = recorder.model
    mark = model.flag_updates
    model.apply_silent_store([1], False, "+", ["$Old"], mark)
    assert model.messages[0].flags == frozenset({"\\seen", "$old"})
    mark = model.flag_updates
    recorder.feed([b"* 2 FETCH (FLAGS (\\Seen))"], "STORE")  # another session's change, before or after ours?
    model.apply_silent_store([2, 3], False, "-", ["\\Seen"], mark)
    assert model.messages[1].flags is None and model.messages[2].flags == frozenset()


def test_silent_stores_never_use_star() -> None:
    """The client applies its own .SILENT change, so it must know the
    messages it named; ``*`` is the server's largest UID or number, which
    the client may not know yet (a false flags-differ seen in a long run)."""
    model = Recorder().model
    for seed in range(300):
        chooser = Chooser("c", random.Random(seed), StressConfig())
        command = chooser.command("STORE.SILENT", model)
        assert command.store is not None and "*" not in command.store.members, command.text
