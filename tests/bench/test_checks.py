"""The load generator's answer checks: wrong answers are errors."""

from __future__ import annotations

import pytest

from bench import corpus
from bench.load import checks
from bench.load.checks import CheckFailed, MailboxModel, WrongData, corpus_info, require_ok
from bench.load.client import Reply
from bench.load.stats import Stats, percentile
from bench.load.wire import Value, parse_response


def reply(status: bytes, *untagged: bytes) -> Reply:
    return Reply(status, None, b"done", [parse_response(u) for u in untagged])


def test_require_ok_rejects_no_bad_and_untagged_bad_or_bye() -> None:
    assert require_ok(reply(b"OK"), "x").status == b"OK"
    for bad in (reply(b"NO"), reply(b"BAD"), reply(b"OK", b"* BAD oops\r\n"), reply(b"OK", b"* BYE gone\r\n")):
        with pytest.raises(CheckFailed):
            require_ok(bad, "x")
    require_ok(reply(b"OK", b"* BYE logging out\r\n"), "LOGOUT", bye=True)


def test_body_must_be_byte_exact() -> None:
    info = corpus_info(5)
    checks.check_body(info.data, info)
    with pytest.raises(WrongData):
        checks.check_body(info.data.replace(b"\r\n", b"\n"), info)
    with pytest.raises(WrongData):
        checks.check_body(None, info)


def test_envelope_subject_must_be_raw_not_decoded() -> None:
    index = next(i for i in range(100) if corpus.message(i).kind == "nonascii")
    info = corpus_info(index)
    assert info.subject.startswith(b"=?UTF-8?")  # an RFC 2047 encoded word
    good: list[Value] = [b"date", info.subject, [], [], [], [], None, None, None, info.message_id]
    checks.check_envelope(good, info)
    decoded = list(good)
    decoded[1] = "Résumé du projet".encode()
    with pytest.raises(WrongData):
        checks.check_envelope(decoded, info)
    with pytest.raises(Exception):
        checks.check_envelope(good[:9], info)


def test_bodystructure_type_checked() -> None:
    plain = next(i for i in range(50) if corpus_info(i).kind == "plain")
    single: list[Value] = [b"TEXT", b"PLAIN", [b"CHARSET", b"us-ascii"], None, None, b"7BIT", b"10", b"1"]
    checks.check_bodystructure(single, corpus_info(plain))
    html: list[Value] = [b"TEXT", b"HTML", None, None, None, b"7BIT", b"10", b"1"]
    with pytest.raises(WrongData):
        checks.check_bodystructure(html, corpus_info(plain))
    alternative = next(i for i in range(50) if corpus_info(i).kind == "alternative")
    checks.check_bodystructure([single, html, b"ALTERNATIVE", [b"BOUNDARY", b"x"]], corpus_info(alternative))
    with pytest.raises(WrongData):
        checks.check_bodystructure([single, html, b"MIXED"], corpus_info(alternative))


def test_search_result_must_match_exactly() -> None:
    checks.expect_search(reply(b"OK", b"* SEARCH 2 5 9\r\n"), {2, 5, 9}, "SEARCH")
    with pytest.raises(CheckFailed):
        checks.expect_search(reply(b"OK", b"* SEARCH 2 5\r\n"), {2, 5, 9}, "SEARCH")
    with pytest.raises(CheckFailed):
        checks.expect_search(reply(b"OK"), set(), "SEARCH")  # no * SEARCH at all
    with pytest.raises(CheckFailed):
        checks.expect_search(reply(b"BAD"), set(), "SEARCH")


def test_model_keeps_uids_ascending() -> None:
    model = MailboxModel()
    model.add(3, 0, set())
    model.add(8, 1, {"\\Seen"})
    assert model.seq_of(8) == 2 and model.with_flag("\\Seen") == {8}
    with pytest.raises(CheckFailed):
        model.add(5, 2, set())
    assert model.remove_seq(1) == 3 and model.uids == [8]


def test_percentiles_and_error_counting() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([], 0.5)) == (50.0, 99.0, 0.0)
    stats = Stats(recording=True)
    stats.record("NOOP", 0.001)
    stats.error("NOOP", "BAD")
    figures = stats.figures()
    assert [(f.name, f.count, f.errors) for f in figures] == [("NOOP", 1, 1)]
