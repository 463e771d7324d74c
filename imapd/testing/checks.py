"""Strict client checks: the server reports a client's protocol mistakes.

A strict test server does not only answer a wrong command with BAD (which
a client may ignore); it fails the test, naming the rule and its RFC
section. ``CheckSuite`` holds the checks switched on for one server and
collects what they find on every connection; the wiretap gives each
connection a ``ConnectionChecker``
(``suite.connection("imap", number)``) and feeds it both byte streams.
After the test, ``suite.raise_if_violated()`` raises
``ClientProtocolError`` listing every mistake.

The checks (``CHECKS`` lists them with their RFC sections):

* ``literal-without-continuation``: a synchronizing literal's octets sent
  before the server's ``+`` (RFC 3501 §7.5); a ``{n+}`` literal where the
  server offers LITERAL+ is fine, and so is not sending the octets at all
  after a tagged NO;
* ``non-synchronizing-literal``: ``{n+}`` without LITERAL+ (or over 4096
  octets with only LITERAL-; RFC 7888);
* ``command-during-idle`` and ``done-outside-idle`` (RFC 2177 §3);
* ``sequence-number-beyond-exists``: a message number the server has not
  reported, counting EXISTS, EXPUNGE and VANISHED on this connection
  (RFC 3501 §9, §7.4.1), ``*`` in an empty mailbox; a client that
  pipelines is judged against the highest count since it was last idle
  (RFC 3501 §5.5);
* ``uid-as-sequence-number``: the same, when the number is a UID of the
  mailbox (plain FETCH meant as UID FETCH); ``sequence-number-as-uid``:
  a UID command given exactly the numbers a plain SEARCH returned;
* ``mailbox-name-not-modified-utf7`` (RFC 3501 §5.1.3; UTF-8 once
  UTF8=ACCEPT is enabled, RFC 6855);
* ``command-in-wrong-state`` (RFC 3501 §3; also ENABLE after SELECT,
  RFC 5161), ``tag-reused`` while the first command is in progress
  (§2.2.1), ``line-not-crlf`` (§2.2), ``recent-flag-set`` (§2.3.2);
* ``eight-bit-in-quoted-string`` (RFC 3501 §4.3: e.g. SEARCH text, which
  belongs in a literal), ``login-disabled`` (§6.2.3),
  ``qresync-not-enabled`` (RFC 7162 §3.2.5, §3.2.6).

Checks judge only what the client could know from what the server had
sent on the connection. Syntax errors are the server's (it answers BAD): a
check that cannot read a command says nothing, except that an unquoted
mailbox name with 8-bit octets is explained by the name check. Each check
reports at most 5 times per connection.
Cost: about 20 µs per client command and 10 µs per response line, memory
bounded per connection (a 256 KiB command frame, 200,000 UIDs).
POP3 and LMTP connections are not checked.
"""

from __future__ import annotations

import threading
from typing import Iterable

from imapd.testing.checks_catalogue import (
    CHECKS, CheckInfo, ClientProtocolError, Violation,
)
from imapd.testing.checks_connection import ConnectionChecker

# Shown under the public module's name in tracebacks and reprs (a client
# author imports them from here; checks_catalogue is how the code is split).
for _public in (CheckInfo, ClientProtocolError, Violation, ConnectionChecker):
    _public.__module__ = __name__

# Violations kept per suite; more are counted, not listed (each check reports
# at most 5 times per connection, so only a long session-scoped server with
# many faulty connections gets here; clear() between tests starts over).
MAX_VIOLATIONS = 10_000

__all__ = [
    "CHECKS", "CheckInfo", "CheckSuite", "ClientProtocolError", "ConnectionChecker",
    "Violation",
]


def _names(names: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(names, str):
        names = [names]   # a single name, not its letters
    chosen = frozenset(names)
    unknown = sorted(chosen - CHECKS.keys())
    if unknown:
        raise ValueError(f"unknown strict check{'s' if len(unknown) > 1 else ''} in {what}: "
                         f"{', '.join(unknown)}; the checks are: {', '.join(sorted(CHECKS))}")
    return chosen


class CheckSuite:
    """The strict checks of one server: ``enabled`` names the checks to run
    (None: all of them), ``disabled`` the ones not to run. Unknown names
    raise ValueError listing the known ones. Thread-safe: connections report
    on the reactor thread, the test reads from its own."""

    def __init__(self, enabled: Iterable[str] | None = None, disabled: Iterable[str] = ()) -> None:
        chosen = frozenset(CHECKS) if enabled is None else _names(enabled, "enabled")
        self.enabled: frozenset[str] = chosen - _names(disabled, "disabled")
        self._lock = threading.Lock()
        self._violations: list[Violation] = []
        self._dropped = 0
        self._checkers: list[ConnectionChecker] = []

    def connection(self, protocol: str, number: int) -> ConnectionChecker:
        """The checker for connection ``number`` (1, 2, ... in accept order)
        of ``protocol`` ("imap", "pop3", "lmtp"); only IMAP is checked (the
        others get a checker that ignores what it is fed)."""
        if protocol.lower() != "imap":
            return ConnectionChecker(number, frozenset(), self._add, active=False)
        checker = ConnectionChecker(number, self.enabled, self._add)
        with self._lock:
            self._checkers.append(checker)
        return checker

    def _add(self, found: Violation) -> None:
        with self._lock:
            if len(self._violations) < MAX_VIOLATIONS:
                self._violations.append(found)
            else:
                self._dropped += 1

    @property
    def violations(self) -> list[Violation]:
        """Every violation so far, in the order found (a copy)."""
        with self._lock:
            return list(self._violations)

    @property
    def internal_errors(self) -> list[str]:
        """Bugs of the checks themselves (a connection stops being checked
        after one); empty unless something is wrong in imapd.testing."""
        with self._lock:
            return [error for checker in self._checkers for error in checker.internal_errors]

    def clear(self) -> None:
        """Forget the violations found so far (e.g. between the phases of a
        session-scoped server's tests)."""
        with self._lock:
            self._violations.clear()
            self._dropped = 0

    def raise_if_violated(self) -> None:
        """Raise ``ClientProtocolError`` if any check found a mistake."""
        with self._lock:
            found, dropped = list(self._violations), self._dropped
        if found:
            raise ClientProtocolError(found, dropped)
