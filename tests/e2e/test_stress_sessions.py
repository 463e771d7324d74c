"""Two sessions through the stress checker's own client (issue 11): the
two sync defects as transcripts. A changes nothing, B makes the change,
A's NOOP must tell A everything it needs, and the checker's per-response
rules (``tests/support/stress_model.py``) must find nothing wrong.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.stress_pair import Pair, command, run_pair


def test_new_keyword_from_another_session_is_announced_with_flags(tmp_path: Path) -> None:
    """A selects; B ``STORE 1 +FLAGS ($NewKw)``; A's NOOP must bring
    ``* FLAGS`` naming $NewKw before the FETCH that uses it (RFC 3501 §7.2.6)."""
    async def scenario(pair: Pair) -> None:
        await pair.b.connect()
        await pair.b.run([command(b"APPEND INBOX (\\Seen) {5+}\r\nhello")])
        await pair.a.connect()
        await pair.b.run([command(b"NOOP"), command(b"STORE 1 +FLAGS ($NewKw NIL)")])
        await pair.a.run([command(b"NOOP")])

    pair = run_pair(tmp_path, scenario)
    assert pair.a.model.flags_list is not None and {"$newkw", "nil"} <= pair.a.model.flags_list
    assert pair.a.model.messages[0].flags == frozenset({"\\seen", "$newkw", "nil"})


def test_recent_is_resent_when_expunges_lower_it(tmp_path: Path) -> None:
    """A selected; B appends two messages and expunges both; A's NOOP gets
    two EXPUNGEs and must get RECENT again (RFC 3501 §7.3.2)."""
    async def scenario(pair: Pair) -> None:
        await pair.a.connect()
        await pair.b.connect(examine=True)
        appends = [command(b"APPEND INBOX (\\Deleted) {5+}\r\nhello")] * 2
        await pair.b.run(appends)
        await pair.a.run([command(b"NOOP")])
        assert pair.a.model.recent == 2
        await pair.b.select()
        await pair.b.run([command(b"EXPUNGE")])
        await pair.a.run([command(b"NOOP")])

    pair = run_pair(tmp_path, scenario)
    assert pair.a.model.messages == [] and pair.a.model.recent == 0
