"""Many sessions on one mailbox over real sockets stay consistent (issue 11).

Short runs of the stress checker (``tests/support/stress.py``) against the
real server process: random pipelined commands from fixed seeds, with
checkpoints that compare every client's picture (seq→UID, flags, FLAGS
list, EXISTS, RECENT) with the store and with each other. Any
inconsistency fails the test with the checker's report. Two-session
transcripts of the defects: ``test_stress_sessions.py``.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.stress import run_stress, stress_server
from tests.support.stress_ops import StressConfig
from tests.support.stress_pair import Pair, command, run_pair


def test_ten_clients_with_checkpoints_and_random_expunges(tmp_path: Path) -> None:
    config = StressConfig(clients=10, seconds=4.0, checkpoint_every=1.0, seed=11)
    with stress_server(tmp_path) as server:
        report = run_stress(server.host, server.port, config)
        assert "Traceback" not in server.log()
    assert report.total_inconsistencies == 0, report.summary()
    assert not report.failed_clients, report.summary()
    ops = report.stats.operations
    assert report.checkpoints >= 3
    # The run exercised what the checker is for: expunges, flag changes
    # (new keywords among them), appends and copies into the mailbox.
    assert ops["EXPUNGE"] + ops["UID EXPUNGE"] + ops["MOVE"] > 0, report.summary()
    assert ops["STORE"] > 0 and ops["STORE.SILENT"] > 0 and ops["APPEND"] > 0 and ops["COPY"] > 0


def test_qresync_clients_with_reconnects(tmp_path: Path) -> None:
    config = StressConfig(clients=6, seconds=4.0, checkpoint_every=1.0, seed=12, qresync=True,
                          special_rate=0.12)
    with stress_server(tmp_path) as server:
        report = run_stress(server.host, server.port, config)
        assert "Traceback" not in server.log()
    assert report.total_inconsistencies == 0, report.summary()
    assert not report.failed_clients, report.summary()
    assert report.stats.operations["reconnect"] > 0, report.summary()


def test_new_keyword_on_a_message_another_session_appended_is_announced(tmp_path: Path) -> None:
    """A selects; B APPENDs a message with a new keyword; A's NOOP tells A
    the message exists, so A's FLAGS list must now name the keyword
    (RFC 3501 §7.2.6: the flags applicable in the mailbox), before A ever
    fetches it. The checkpoints of the runs above require it too."""
    async def scenario(pair: Pair) -> None:
        await pair.a.connect()
        await pair.b.connect()
        await pair.b.run([command(b"APPEND INBOX ($Brand) {5+}\r\nhello")])
        await pair.a.run([command(b"NOOP")])

    pair = run_pair(tmp_path, scenario)
    assert len(pair.a.model.messages) == 1
    assert pair.a.model.flags_list is not None and "$brand" in pair.a.model.flags_list
    assert pair.b.model.flags_list is not None and "$brand" in pair.b.model.flags_list
