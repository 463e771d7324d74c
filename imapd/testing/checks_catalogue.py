"""What the strict client checks can report, and how a report reads.

Every check has a name (used to switch it on or off), the RFC section that
states the rule, and a one-line summary. A ``Violation`` is one mistake a
client made on one connection; ``ClientProtocolError`` is the assertion a
test fails with, written for the author of the client: what was sent, the
rule, and what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# How much of an offending line a violation keeps (a line may be a 64 KiB
# command; the report shows its beginning).
MAX_LINE_KEPT = 300


@dataclass(frozen=True)
class CheckInfo:
    """One strict check: ``name`` (to enable or disable it), ``rfc`` (the
    section that states the rule) and ``summary`` (the rule in one line)."""

    name: str
    rfc: str
    summary: str


def _info(name: str, rfc: str, summary: str) -> tuple[str, CheckInfo]:
    return name, CheckInfo(name, rfc, summary)


CHECKS: dict[str, CheckInfo] = dict([
    _info("literal-without-continuation", "RFC 3501 §7.5",
          "a synchronizing literal's octets must wait for the server's '+' continuation"),
    _info("non-synchronizing-literal", "RFC 7888 §3, §4",
          "{n+} literals only when the server offers LITERAL+ (or LITERAL- and n <= 4096)"),
    _info("command-during-idle", "RFC 2177 §3",
          "while IDLE is in progress the client may only send DONE"),
    _info("done-outside-idle", "RFC 2177 §3",
          "DONE only ends an IDLE the server has accepted with '+'"),
    _info("sequence-number-beyond-exists", "RFC 3501 §9 (seq-number), §7.3.1, §7.4.1",
          "message sequence numbers must be ones the server has reported (EXISTS/EXPUNGE)"),
    _info("uid-as-sequence-number", "RFC 3501 §2.3.1.1, §6.4.8",
          "a plain FETCH/STORE/COPY/MOVE takes sequence numbers, not UIDs"),
    _info("sequence-number-as-uid", "RFC 3501 §2.3.1.1, §6.4.8",
          "a UID command takes UIDs, not the sequence numbers of a plain SEARCH"),
    _info("mailbox-name-not-modified-utf7", "RFC 3501 §5.1.3",
          "mailbox names are modified UTF-7 unless UTF8=ACCEPT is enabled (RFC 6855 §3)"),
    _info("command-in-wrong-state", "RFC 3501 §3, §6",
          "each command is valid only in some states (e.g. FETCH needs a selected mailbox)"),
    _info("tag-reused", "RFC 3501 §2.2.1",
          "each command needs a tag not used by a command still in progress"),
    _info("line-not-crlf", "RFC 3501 §2.2",
          "command lines end in CRLF, not a bare LF"),
    _info("recent-flag-set", "RFC 3501 §2.3.2",
          "\\Recent is set by the server only; STORE and APPEND must not name it"),
    _info("eight-bit-in-quoted-string", "RFC 3501 §4.3, §9",
          "quoted strings are 7-bit; 8-bit text goes in a literal (or after UTF8=ACCEPT)"),
    _info("login-disabled", "RFC 3501 §6.2.3",
          "no LOGIN while the server announces LOGINDISABLED"),
    _info("qresync-not-enabled", "RFC 7162 §3.2.5, §3.2.6",
          "SELECT (QRESYNC ...) and FETCH's VANISHED need ENABLE QRESYNC first"),
])


@dataclass(frozen=True)
class Violation:
    """One client protocol mistake: the check that caught it, the RFC
    section, a message for the client's author, the connection (1, 2, ...
    in accept order) and the offending line (at most ``MAX_LINE_KEPT``
    octets, without its line end)."""

    check: str
    rfc: str
    message: str
    connection: int
    line: bytes

    def describe(self) -> str:
        """Several lines: the check, the RFC, what happened, what was sent."""
        shown = self.line.decode("utf-8", "backslashreplace")
        return (f"{self.check} ({self.rfc}), connection {self.connection}:\n"
                f"    {self.message}\n"
                f"    client sent: {shown}")


def violation(check: str, message: str, connection: int, line: bytes) -> Violation:
    """A Violation of the named check, its line cut to ``MAX_LINE_KEPT``."""
    kept = line[:MAX_LINE_KEPT] + (b"..." if len(line) > MAX_LINE_KEPT else b"")
    return Violation(check, CHECKS[check].rfc, message, connection, kept)


class ClientProtocolError(AssertionError):
    """The client broke IMAP protocol rules the strict server checks.

    ``violations`` lists every mistake; ``str()`` explains each one with its
    RFC section and the line the client sent, and says how to switch a check
    off when a rule is broken on purpose."""

    def __init__(self, violations: Iterable[Violation], dropped: int = 0) -> None:
        self.violations = list(violations)
        self.dropped = dropped
        super().__init__(self._text())

    def _text(self) -> str:
        count = len(self.violations) + self.dropped
        noun = "mistake" if count == 1 else "mistakes"
        parts = [f"imapd strict checks: the client made {count} protocol {noun}"]
        for number, item in enumerate(self.violations, 1):
            parts.append(f"{number}. {item.describe()}")
        if self.dropped:
            parts.append(f"(... and {self.dropped} more of the same kinds, not listed)")
        names = sorted({item.check for item in self.violations})
        parts.append(
            "A check broken on purpose can be switched off, e.g. "
            f"@pytest.mark.imapd_strict(disabled=[{', '.join(repr(n) for n in names)}]).")
        return "\n".join(parts)
