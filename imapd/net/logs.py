"""The server's log: where it goes (stderr, a rotated file, syslog) and the
one line each finished session leaves in it (docs/operations.md § Logs).

The session line (``session_line``), one per closed connection, at level
info in the namespace ``imapd.session``, modelled on Dovecot's::

    imap(alice)<127.0.0.1:50432>: Disconnected: logout in=123 out=4567 secs=1.204 tls=no
    pop3(-)<[::1]:50433>: Disconnected: idle timeout in=12 out=87 secs=600.002 tls=yes

``protocol(user)<peer>: Disconnected: REASON in=N out=N secs=S tls=yes|no``:
``-`` for a session that never logged in; the reason is one of a few
fixed words (``imapd.net.accounting``); ``in``/``out`` count octets as the
connection carried them (after TLS, compressed under COMPRESS); ``secs``
has millisecond precision. The format is stable: scripts may parse it.
It carries no secret: the user name is the logged-in account's, never
what a client typed at a failed login, and nothing of a command.

Destinations (``LogSettings``): stderr (the default, and what systemd's
journal collects), or ``--log-file PATH`` (appended to, opened with
O_APPEND so logrotate's ``copytruncate`` is safe; rotated by the server at
``--log-rotate-size`` octets keeping ``--log-rotate-keep`` old files
``PATH.1``...), or ``--syslog`` (the local syslog daemon, facility mail).
Lines are written on the reactor thread, unsynced: a short write to the
page cache, like any Twisted log observer.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, Logger,
    formatEvent, globalLogBeginner, textFileLogObserver,
)
from imapd.core.telemetry import NullTelemetry, SessionSummary

session_log = Logger(namespace="imapd.session")


@dataclass(frozen=True, slots=True)
class LogSettings:
    """``level``: the least level written; ``file``: a log file instead of
    stderr; ``rotate_size``: octets after which it is rotated (0: never,
    e.g. under logrotate); ``rotate_keep``: rotated files kept; ``syslog``:
    to the syslog daemon instead."""

    level: str = "info"
    file: Path | None = None
    rotate_size: int = 10 * 1024 * 1024
    rotate_keep: int = 5
    syslog: bool = False


# --- the session line ------------------------------------------------------------


def _safe(text: str) -> str:
    """``text`` with anything that could break or forge a log line
    (control characters, spaces, the line's own delimiters) escaped."""
    return "".join(
        c if c.isprintable() and c not in " ()<>\\" else f"\\x{ord(c):02x}" for c in text)


def session_line(summary: SessionSummary) -> str:
    """The line for one finished session (see the module docstring)."""
    user = _safe(summary.user) if summary.user else "-"
    return (f"{summary.protocol}({user})<{_safe(summary.peer)}>: Disconnected: "
            f"{summary.reason} in={summary.bytes_in} out={summary.bytes_out} "
            f"secs={summary.seconds:.3f} tls={'yes' if summary.secure else 'no'}")


class SessionLog(NullTelemetry):
    """A ``Telemetry`` sink (``imapd.core.telemetry``) that logs one line
    per closed session; every other event is the metrics' business."""

    def connection_closed(self, summary: SessionSummary) -> None:
        try:
            session_log.info("{line}", line=session_line(summary))
        except Exception:  # a sink never raises into a connection's close
            pass


# --- destinations -------------------------------------------------------------------


class RotatingFile:
    """A text file appended to, renamed to ``PATH.1`` (older ones shifted
    up to ``PATH.keep``) once it reaches ``limit`` octets (0: never).
    A rotation that fails (e.g. the directory became read-only after the
    server dropped root) keeps writing to the current file."""

    def __init__(self, path: Path, limit: int, keep: int) -> None:
        self.path = path
        self.limit = limit
        self.keep = max(1, keep)
        self._file = self._open()
        self.size = self._file.tell()

    def _open(self) -> IO[str]:
        # Created 0640: a log names users and addresses.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        handle = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
        handle.seek(0, os.SEEK_END)
        return handle

    def write(self, text: str) -> None:
        data_size = len(text.encode("utf-8", "replace"))
        if self.limit and self.size and self.size + data_size > self.limit:
            self.rotate()
        self._file.write(text)
        self.size += data_size

    def flush(self) -> None:
        self._file.flush()

    def rotate(self) -> None:
        self._file.flush()
        try:
            oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
            if oldest.exists():
                oldest.unlink()
            for index in range(self.keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.rename(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
            fresh = self._open()
        except OSError:
            self.size = 0  # try again after another ``limit`` octets
            return
        self._file.close()
        self._file = fresh
        self.size = 0

    def close(self) -> None:
        self._file.close()


# Twisted levels as syslog priorities (syslog(3)).
_PRIORITIES = {"debug": 7, "info": 6, "warn": 4, "error": 3, "critical": 2}


class SyslogObserver:
    """Each event as syslog messages (facility mail, ident ``imapd``, the
    pid; one message per line, so a traceback stays readable)."""

    def __init__(self) -> None:
        import syslog

        self._syslog = syslog
        syslog.openlog("imapd", syslog.LOG_PID, syslog.LOG_MAIL)

    def __call__(self, event: dict[str, Any]) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        level = event.get("log_level", LogLevel.info)
        priority = _PRIORITIES.get(getattr(level, "name", "info"), 6)
        namespace = event.get("log_namespace", "-")
        for line in text.splitlines():
            if line:
                self._syslog.syslog(priority, f"[{namespace}] {line}")


def observer_for(settings: LogSettings, stderr: IO[str] | None = None) -> Any:
    """The filtered observer ``settings`` asks for (one destination)."""
    destination: Any
    if settings.syslog:
        destination = SyslogObserver()
    elif settings.file is not None:
        rotating: Any = RotatingFile(settings.file, settings.rotate_size, settings.rotate_keep)
        destination = textFileLogObserver(rotating)
    else:
        destination = textFileLogObserver(stderr if stderr is not None else sys.stderr)
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(settings.level))
    return FilteringLogObserver(destination, [predicate])


def begin(settings: LogSettings) -> None:
    """Start Twisted's logging to the destination (once per process)."""
    globalLogBeginner.beginLoggingTo([observer_for(settings)], redirectStandardIO=False)
