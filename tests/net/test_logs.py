"""The log side (``imapd.net.logs``): the per-session line's exact format
and escaping, the rotated log file, and the destination chosen by
``LogSettings``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from twisted.logger import Logger, capturedLogs

from imapd.core.telemetry import SessionSummary
from imapd.net.logs import LogSettings, RotatingFile, SessionLog, observer_for, session_line

SUMMARY = SessionSummary(protocol="imap", peer="127.0.0.1:5533", user="alice", seconds=1.2,
                         bytes_in=123, bytes_out=4567, reason="logout")


def test_the_session_line_is_exact() -> None:
    assert session_line(SUMMARY) == (
        "imap(alice)<127.0.0.1:5533>: Disconnected: logout in=123 out=4567 secs=1.200 tls=no")


def test_no_user_and_tls() -> None:
    summary = SessionSummary("pop3", "[::1]:7", None, 0.0004, 0, 9, "idle timeout", secure=True)
    assert session_line(summary) == (
        "pop3(-)<[::1]:7>: Disconnected: idle timeout in=0 out=9 secs=0.000 tls=yes")


def test_a_user_name_cannot_forge_a_line() -> None:
    summary = SessionSummary("imap", "1.2.3.4:5", "eve\nimap(root)<x> (y)", 1, 1, 1, "logout")
    line = session_line(summary)
    assert "\n" not in line
    assert line.startswith("imap(eve\\x0aimap\\x28root\\x29\\x3cx\\x3e\\x20\\x28y\\x29)<1.2.3.4:5>")


def test_the_sink_logs_one_info_line_per_closed_session() -> None:
    with capturedLogs() as events:
        SessionLog().connection_closed(SUMMARY)
        SessionLog().command_finished("imap", "LOGIN", "OK", 0.1)  # nothing: metrics only
    assert [(e["log_namespace"], e["log_level"].name, e["line"]) for e in events] == [
        ("imapd.session", "info", session_line(SUMMARY))]


def test_rotating_file_rotates_at_the_size_and_keeps_n(tmp_path: Path) -> None:
    path = tmp_path / "imapd.log"
    log = RotatingFile(path, limit=100, keep=2)
    for index in range(12):
        log.write(f"line {index:02d} " + "x" * 21 + "\n")  # 30 octets
        log.flush()
    log.close()
    # 3 lines per file (90 octets; a 4th would pass 100); two old files kept.
    assert path.read_text().splitlines()[0].startswith("line 09")
    assert (tmp_path / "imapd.log.1").read_text().splitlines()[0].startswith("line 06")
    assert (tmp_path / "imapd.log.2").read_text().splitlines()[0].startswith("line 03")
    assert not (tmp_path / "imapd.log.3").exists()
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert oct(path.stat().st_mode & 0o777) == "0o640"


def test_rotating_file_appends_to_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "imapd.log"
    path.write_text("before\n")
    log = RotatingFile(path, limit=0, keep=5)  # 0: never rotates (logrotate's job)
    log.write("after\n" * 1000)
    log.close()
    assert path.read_text() == "before\n" + "after\n" * 1000
    assert list(tmp_path.iterdir()) == [path]


def test_the_observer_writes_to_the_file_filtered_by_level(tmp_path: Path) -> None:
    path = tmp_path / "imapd.log"
    observer = observer_for(LogSettings(level="info", file=path))
    log = Logger(namespace="imapd.test", observer=observer)
    log.debug("hidden {x}", x=1)
    log.info("shown {x}", x=2)
    text = path.read_text()
    assert "shown 2" in text and "hidden" not in text


def test_stderr_is_the_default() -> None:
    stream = io.StringIO()
    log = Logger(namespace="imapd.test", observer=observer_for(LogSettings(), stderr=stream))
    log.warn("to stderr")
    assert "[imapd.test#warn] to stderr" in stream.getvalue()


def test_syslog_gets_one_message_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import syslog

    sent: list[tuple[int, str]] = []
    opened: list[tuple[object, ...]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *args: opened.append(args))
    monkeypatch.setattr(syslog, "syslog", lambda priority, text: sent.append((priority, text)))
    log = Logger(namespace="imapd.session", observer=observer_for(LogSettings(syslog=True)))
    log.info("one\ntwo")
    log.error("bad")
    assert opened == [("imapd", syslog.LOG_PID, syslog.LOG_MAIL)]
    assert sent == [(syslog.LOG_INFO, "[imapd.session] one"), (syslog.LOG_INFO, "[imapd.session] two"),
                    (syslog.LOG_ERR, "[imapd.session] bad")]


@pytest.mark.parametrize("argv, error", [
    (["--log-file", "x.log", "--syslog"], "exclude each other"),
    (["--log-rotate-size", "-1"], "--log-rotate-size must be >= 0"),
    (["--log-rotate-keep", "0"], "--log-rotate-keep >= 1"),
])
def test_log_options_are_checked(argv: list[str], error: str) -> None:
    from twisted.python import usage

    from imapd.cli_serve import ServeOptions

    with pytest.raises(usage.UsageError, match=error):
        ServeOptions().parseOptions(argv)


def test_log_options_make_settings(tmp_path: Path) -> None:
    from imapd.cli_serve import ServeOptions, log_settings

    options = ServeOptions()
    options.parseOptions(["--log-file", str(tmp_path / "a.log"), "--log-rotate-size", "0",
                          "--log-level", "warn"])
    assert log_settings(options) == LogSettings(level="warn", file=tmp_path / "a.log",
                                                rotate_size=0, rotate_keep=5)
