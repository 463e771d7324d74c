"""Each own conformance script fails when the server gives one wrong answer (issue 11).

A script that passes against every server proves nothing. Here each script of
``imapd/conformance/scripts`` runs against the real imapd behind
:class:`~tests.support.line_proxy.LineProxy`, which rewrites one server
line into an answer a wrong server would give (a missing response code, a
wrong value, an EXPUNGE where none may come, ...). The script must then fail,
and its first failure must be at the script line that checks that answer.
The same proxy without a mutation changes nothing (the scripts pass through it).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from imapd.conformance.report import Outcome
from imapd.conformance import RunnerConfig, list_script_files, run_script_file
from tests.conformance.conftest import MAIN_USER, PASSWORD, SECOND_USER
from tests.conformance.test_scripts import OWN_SCRIPTS_DIR
from tests.support.line_proxy import LineProxy, Mutation, Mutations


@dataclass(frozen=True)
class WrongAnswer:
    """What the proxy rewrites, and the script line (its text, stripped) that must catch it."""

    pattern: bytes
    replacement: bytes
    caught_by: str
    skip: int = 0  # matching server lines left alone first (the runner's setup, earlier commands)
    connection: int | None = None


WRONG_ANSWERS: dict[str, WrongAnswer] = {
    # RFC 3501
    "rfc3501-nonauth": WrongAnswer(rb"(\S+) NO \[AUTHENTICATIONFAILED\] (.*)", rb"\1 NO \2",
                                   "no [authenticationfailed]"),
    "rfc3501-select": WrongAnswer(rb"\* OK \[UIDNEXT \d+\] (.*)", rb"* OK [UIDNEXT 77777] \1",
                                  "* status $mailbox (uidnext $uidnext uidvalidity $uidvalidity messages 4)"),
    "rfc3501-mailboxes": WrongAnswer(rb'\* LSUB \(\\Noselect\) (.*)', rb"* LSUB () \1",
                                     "* lsub (\\noselect) $sep ${mailbox}moved"),
    "rfc3501-append": WrongAnswer(rb'(.*) INTERNALDATE "12-Mar-2020 09:15:00 \+0000"(.*)',
                                  rb'\1 INTERNALDATE "12-Mar-2020 09:15:01 +0000"\2',
                                  '* 1 fetch (flags (\\seen \\flagged $$label) internaldate "12-Mar-2020 09:15:00 +0000" '
                                  "rfc822.size 100)"),
    "rfc3501-fetch": WrongAnswer(rb'(.*)\(\("Mary" NIL "replies" "example.com"\)\)(.*)',
                                 rb'\1(("Mary Somerville" NIL "mary" "example.com"))\2',
                                 '* 3 fetch (envelope ("Sat, 14 Mar 2020 11:30:00 +0100" "Dinner on Saturday" '
                                 '(("Mary Somerville" NIL "mary" "example.com")) (("Mary Somerville" NIL "mary" '
                                 '"example.com")) (("Mary" NIL "replies" "example.com")) (("Ada Lovelace" NIL "ada" '
                                 '"example.org") ("Charles Babbage" NIL "charles" "example.net")) NIL NIL NIL NIL))'),
    "rfc3501-store": WrongAnswer(rb"\* 1 FETCH \(FLAGS \(\\Flagged( \\Recent)?\)\)", rb"* 1 FETCH (FLAGS (\\Flagged \\Seen\1))",
                                 "* 1 fetch (flags (\\flagged))"),
    "rfc3501-search": WrongAnswer(rb"\* SEARCH 2 3", rb"* SEARCH 2 3 4", "* search 2 3"),
    "rfc3501-expunge": WrongAnswer(rb"(.*)FLAGS \(\\Flagged \$copied(.*)\) INTERNALDATE(.*)", rb"\1FLAGS ($copied\2) INTERNALDATE\3",
                                   '* 1 fetch (flags (\\flagged $$copied) internaldate "13-Mar-2020 10:00:00 +0100")'),
    "rfc3501-uid": WrongAnswer(rb"\* 2 FETCH \((FLAGS \(.*\)) UID \d+\)", rb"* 2 FETCH (\1)",
                               "* 2 fetch (flags () uid $uid3)"),
    "rfc3501-sessions": WrongAnswer(rb"\* 1 FETCH \(FLAGS \(\\Flagged.*\)\)", rb"* OK still here",
                                    "* 1 fetch (flags (\\flagged))", connection=1),
    "rfc3501-syntax": WrongAnswer(rb"\* SEARCH 3", rb"* SEARCH", "* search 3"),
    # extensions
    "id": WrongAnswer(rb"\* ID .*", rb"* ID NIL", '* id ("name" $)'),
    "enable": WrongAnswer(rb"\* ENABLED CONDSTORE", rb"* ENABLED", "* enabled condstore"),
    "namespace": WrongAnswer(rb"\* NAMESPACE .*", rb'* NAMESPACE (("INBOX." ".")) NIL NIL',
                             "* namespace ((\"\" $sep)) nil nil"),
    "unselect": WrongAnswer(rb"(\S+ OK UNSELECT.*)", rb"* 1 EXPUNGE\r\n\1", "! $ expunge"),
    "children": WrongAnswer(rb'\* LIST \(\\HasNoChildren\) (.*) imaptestsolo', rb"* LIST (\\HasChildren) \1 imaptestsolo",
                            "* list ($!unordered $!ban=\\haschildren \\hasnochildren) $sep ${mailbox}solo"),
    "uidplus": WrongAnswer(rb"(\S+) OK \[APPENDUID (\d+) \d+\](.*)", rb"\1 OK [APPENDUID \2 4242]\3",
                           "ok [appenduid $uidvalidity $uidnext]", skip=3),
    "move": WrongAnswer(rb"\* OK \[COPYUID (.*)", rb"* OK [X-COPYUID \1",
                        "* ok [copyuid $dstvalidity $uid2 $dstnext]"),
    "condstore": WrongAnswer(rb"(\S+) OK \[MODIFIED 2\](.*)", rb"\1 OK [MODIFIED 1]\2", "ok [modified 2]"),
    "qresync": WrongAnswer(rb"\* VANISHED \d+", rb"* VANISHED 999999", "* vanished $uid3"),
    "esearch": WrongAnswer(rb'\* ESEARCH \(TAG "([^"]*)"\) COUNT 0', rb'* ESEARCH (TAG "\1") COUNT 0 MIN 1',
                           "* esearch (tag $tag) count 0"),
    "searchres": WrongAnswer(rb"\* SEARCH 2 3", rb"* SEARCH 1 2 3", "* search 2 3"),
    "list-extended": WrongAnswer(rb'(\* LIST \(.*\) .*) \("CHILDINFO" \("SUBSCRIBED"\)\)', rb"\1",
                                 '* list () $sep $mailbox${sep}beta (childinfo ("subscribed"))'),
    "list-status": WrongAnswer(rb"\* STATUS (.*) \(MESSAGES 2 UNSEEN 1\)", rb"* STATUS \1 (MESSAGES 2 UNSEEN 2)",
                               "* status $mailbox (messages 2 unseen 1)"),
    "special-use": WrongAnswer(rb"\* LIST \(\\HasNoChildren \\Sent\) (.*)", rb"* LIST (\\HasNoChildren) \1",
                               "* list (\\sent) $sep $sent"),
    "create-special-use": WrongAnswer(rb"(\S+) NO \[USEATTR\](.*)", rb"\1 NO [CANNOT]\2", "no [useattr]"),
    "multiappend": WrongAnswer(rb"(\S+) OK \[APPENDUID (\d+) (\d+):\d+\](.*)", rb"\1 OK [APPENDUID \2 \3]\4",
                               "ok [appenduid $uidvalidity $first:$last]"),
    "appendlimit": WrongAnswer(rb"\* STATUS (.*) \(APPENDLIMIT 67108864\)", rb"* STATUS \1 (APPENDLIMIT 1000)",
                               "* status $mailbox (appendlimit 67108864)"),
    "status-size": WrongAnswer(rb"\* STATUS (.*) \(SIZE 1230 (.*)", rb"* STATUS \1 (SIZE 1229 \2",
                               "* status $mailbox (size 1230 messages 4)"),
    "literal-plus": WrongAnswer(rb"(\S+ OK \[APPENDUID.*)", rb"+ send the literal\r\n\1", "ok append $mailbox {{{",
                                skip=2),
    "idle": WrongAnswer(rb"(\S+) OK IDLE(.*)", rb"\1 NO IDLE\2", "1 ok idle"),
    "compress": WrongAnswer(rb"(\S+) OK (DEFLATE active)", rb"\1 NO \2", "ok compress deflate"),
    # RFC 5256 §3: REVERSE applied to the first key only, not to SUBJECT as well
    "sort": WrongAnswer(rb"\* SORT 3 2 4 1", rb"* SORT 3 2 1 4", "* sort 3 2 4 1"),
    # RFC 5267 §3.2: ESORT's MIN as the lowest number instead of the first in sort order
    "esort-context": WrongAnswer(rb'\* ESEARCH \(TAG "([^"]*)"\) MIN 3', rb'* ESEARCH (TAG "\1") MIN 1',
                                 "* esearch (tag $tag) min 3"),
    # RFC 3516 §4.3: BINARY.SIZE of a base64 part given as its encoded size
    "binary": WrongAnswer(rb"(.*)BINARY\.SIZE\[1\] 13(.*)", rb"\1BINARY.SIZE[1] 26\2",
                          "* 1 fetch (binary.size[1] 13 binary.size[2] 3)"),
    # RFC 4469 §5: an unresolvable URL without the BADURL code
    "catenate": WrongAnswer(rb"(\S+) NO \[BADURL(.*)", rb"\1 NO [CANNOT\2", "no [badurl"),
    # RFC 5256 §3 REFERENCES step 1B: the reference loop broken the other way round
    "thread": WrongAnswer(rb"\* THREAD \(1 \(2\)\(3\)\)\(5 4\)(.*)", rb"* THREAD (1 (2)(3))(4 5)\1",
                          "* thread (1 (2)(3))(5 4)((6)(7))(8 9)"),
}


#: Further wrong answers for the response rules and codes that matter most to clients.
MORE_WRONG_ANSWERS: dict[str, tuple[WrongAnswer, ...]] = {
    "rfc3501-select": (WrongAnswer(rb"(\S+) OK \[READ-ONLY\](.*)", rb"\1 OK [READ-WRITE]\2", "ok [read-only]"),),
    "rfc3501-append": (WrongAnswer(rb"(\S+) NO \[TRYCREATE\](.*)", rb"\1 NO\2", "no [trycreate]"),),
    "rfc3501-fetch": (WrongAnswer(rb'(.*)"7BIT" 32 1 NIL(.*)', rb'\1"7BIT" 32 2 NIL\2',
                                  "* 2 fetch (body ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 32 1) "
                                  "(\"application\" \"octet-stream\" (\"name\" \"table.bin\") NIL NIL \"base64\" 18) "
                                  "\"mixed\") bodystructure ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 32 1 "
                                  "NIL NIL NIL NIL) (\"application\" \"octet-stream\" (\"name\" \"table.bin\") NIL NIL "
                                  "\"base64\" 18 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"cut-here\") NIL NIL NIL))"),),
    # §7.4.1: an EXPUNGE sent during FETCH (the third FETCH of connection 1)
    "rfc3501-sessions": (WrongAnswer(rb"(\S+ OK FETCH.*)", rb"* 2 EXPUNGE\r\n\1", "! 2 expunge", skip=2, connection=1),),
    "rfc3501-expunge": (WrongAnswer(rb"\* 4 EXPUNGE", rb"* 3 EXPUNGE", "! $3 expunge"),),
    "uidplus": (WrongAnswer(rb"(\S+) OK \[COPYUID (\d+) (\d+) (\d+)\](.*)", rb"\1 OK [COPYUID \2 \4 \3]\5",
                            "ok [copyuid $dstvalidity $uid2 $dstnext]"),),
    "condstore": (WrongAnswer(rb"\* OK \[HIGHESTMODSEQ \d+\](.*)", rb"* OK [HIGHESTMODSEQ 1]\1",
                              "* status $mailbox (highestmodseq $highest0)"),),
    # RFC 5051 §2: a server folding ß to "ss" (full case folding) answers the
    # first empty SEARCH (body "STRASSE") with message 1
    "search-i18n": (WrongAnswer(rb"\* SEARCH", rb"* SEARCH 1", "* search"),),
    # RFC 5256 §3: an empty SORT result carries no numbers
    "sort": (WrongAnswer(rb"\* SORT", rb"* SORT 1", "* sort"),),
    # RFC 5256 §3 ORDEREDSUBJECT: ties in date broken by full subject instead of sequence order
    "thread": (WrongAnswer(rb"\* THREAD \(1 \(2\)\(3\)\)\(4 5\)\(6 7\)\(8 9\)", rb"* THREAD (1 (2)(3))(4 5)(6 7)(9 8)",
                           "* thread (1 (2)(3))(4 5)(6 7)(8 9)"),),
    # RFC 5267 §4.4: PARTIAL in ascending order instead of sort order
    "esort-context": (WrongAnswer(rb'(.*) PARTIAL \(1:2 3,1\)', rb"\1 PARTIAL (1:2 1,3)",
                                  "* esearch (tag $tag) partial (1:2 3,1)"),),
    "esearch": (WrongAnswer(rb'\* ESEARCH \(TAG "([^"]*)"\) UID (.*)', rb'* ESEARCH (TAG "\1") \2',
                            "* esearch (tag $tag) uid min $uid1 max $uid4"),),
}


def _cases() -> list[object]:
    cases: list[object] = [pytest.param(name, wrong, id=name) for name, wrong in sorted(WRONG_ANSWERS.items())]
    for name, more in sorted(MORE_WRONG_ANSWERS.items()):
        cases += [pytest.param(name, wrong, id=f"{name}-{n}") for n, wrong in enumerate(more, 2)]
    return cases


@pytest.fixture
def imapd(conformance_config: RunnerConfig) -> tuple[str, int]:
    """The session's real imapd (tests/conformance/conftest.py), the proxy's upstream."""
    return conformance_config.host, conformance_config.port


def _script_line(name: str, text: str) -> int:
    """1-based number of the first script line equal to ``text`` (surrounding blanks ignored)."""
    lines = (OWN_SCRIPTS_DIR / name).read_text().split("\n")
    numbers = [number for number, line in enumerate(lines, 1) if line.strip() == text]
    assert numbers, f"{name} has no line {text!r}"
    return numbers[0]


def test_every_own_script_has_a_wrong_answer() -> None:
    names = {path.name for path in list_script_files(OWN_SCRIPTS_DIR)}
    assert sorted((set(WRONG_ANSWERS) | set(MORE_WRONG_ANSWERS)) - names) == []
    missing = sorted(names - set(WRONG_ANSWERS) - set(MORE_WRONG_ANSWERS))
    assert missing == [], f"own scripts without a wrong-answer check: {missing}"


@pytest.mark.parametrize(("name", "wrong"), _cases())
def test_script_catches_its_wrong_answer(name: str, wrong: WrongAnswer, imapd: tuple[str, int]) -> None:
    expected_line = _script_line(name, wrong.caught_by)
    mutation = Mutation(wrong.pattern, wrong.replacement, 1, wrong.skip, wrong.connection)
    with LineProxy(imapd, Mutations([mutation])) as proxy:
        config = RunnerConfig(host="127.0.0.1", port=proxy.port, user=MAIN_USER, user2=SECOND_USER,
                              password=PASSWORD, timeout=15.0)
        result = run_script_file(OWN_SCRIPTS_DIR / name, config)
    assert proxy.changed, f"the wrong answer was never given: {wrong.pattern!r} matched no server line"
    assert result.outcome is Outcome.FAILED, result.format()
    assert result.failures[0].line == expected_line, result.format()


def test_proxy_without_mutation_is_transparent(imapd: tuple[str, int]) -> None:
    with LineProxy(imapd, Mutations([])) as proxy:
        config = RunnerConfig(host="127.0.0.1", port=proxy.port, user=MAIN_USER, user2=SECOND_USER,
                              password=PASSWORD, timeout=15.0)
        result = run_script_file(OWN_SCRIPTS_DIR / "rfc3501-sessions", config)
    assert result.outcome is Outcome.PASSED, result.format()
    assert proxy.changed == []
