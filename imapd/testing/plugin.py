"""The pytest plugin of ``imapd[testing]`` (entry point ``pytest11``: ``imapd``).

Fixtures:

* ``imap_server``: a fresh ``TestServer`` for each test (memory store,
  IMAP on ``127.0.0.1``, strict client checks on), stopped after it. A
  start and stop costs milliseconds.
* ``imap_server_session``: one server for the whole session (IMAP, POP3
  and LMTP, memory store, strict checks on). Its users and mail persist
  from test to test; faults added in a test are cleared after it; only
  the connections a test made are checked and reported for it.
* ``mail_user``: the user ``user`` with password ``secret`` on
  ``imap_server`` (a ``MailUser``: ``.name``, ``.password``,
  ``.mailbox(name)``, ``.seed(mailbox, *messages)``).
* ``make_mail_user``: more users, ``make_mail_user("alice", "pw")``.
* ``mailbox``: seeds ``mail_user``'s mailboxes,
  ``mailbox("INBOX", b"...", Path("x.eml"), flags=["\\\\Seen"])`` returns
  the new UIDs (``imapd.testing.seeding`` lists the sources).

Markers (for ``imap_server``):

* ``@pytest.mark.imapd(backend="sqlite", pop3=True, lmtp=True, options={...})``:
  ``TestServer``'s keyword arguments;
* ``@pytest.mark.imapd_faults(close_at("FETCH"), delay(0.5), ...)``: faults
  (``imapd.testing.faults``) in force from the start;
* ``@pytest.mark.imapd_strict(enabled=None, disabled=["check-name"])``:
  which strict checks run (``imapd.testing.checks.CHECKS``; ``enabled=[]``
  turns them all off).

After the test body, a client protocol mistake the strict checks saw fails
the test (``ClientProtocolError``, naming the RFC section). A failed test's
report carries the section "imapd transcript": every connection's octets,
passwords (``server.secrets``) redacted.

Importing this module imports nothing of the server: a suite that never
asks for these fixtures pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator

import pytest

if TYPE_CHECKING:
    from imapd.testing.server import MailUser, TestServer

DEFAULT_USER = "user"
DEFAULT_PASSWORD = "secret"
SECTION = "imapd transcript"
CHECKS_SECTION = "imapd strict checks"
MARKERS = (
    "imapd(backend='memory', pop3=False, lmtp=False, options=None): how the imap_server "
    "fixture's server is built (imapd.testing.TestServer's keyword arguments)",
    "imapd_faults(*faults): faults (imapd.testing.faults) the imap_server fixture applies "
    "from the start",
    "imapd_strict(enabled=None, disabled=()): the strict client checks of the imap_server "
    "fixture (imapd.testing.checks.CHECKS; enabled=[] turns them off)",
)


@dataclass
class _Watched:
    """A server a test used, and where this test's share of it begins."""

    server: TestServer
    first_transcript: int = 0
    first_violation: int = 0


_WATCHED = pytest.StashKey[list[_Watched]]()


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def _watch(item: pytest.Item, server: TestServer) -> None:
    """Check and report ``server`` for ``item``, from this point on."""
    violations = server.checks.violations if server.checks is not None else []
    watched = _Watched(server, len(server.transcripts), len(violations))
    item.stash.setdefault(_WATCHED, []).append(watched)


def _strict_checks(item: pytest.Item) -> Any:
    from imapd.testing.checks import CheckSuite

    marker = item.get_closest_marker("imapd_strict")
    if marker is None:
        return CheckSuite()
    if marker.args:
        raise pytest.UsageError("imapd_strict takes keywords only: enabled=..., disabled=...")
    return CheckSuite(**marker.kwargs)


def _server_for(item: pytest.Item) -> TestServer:
    from imapd.testing.server import TestServer

    marker = item.get_closest_marker("imapd")
    settings = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError("imapd takes keywords only: backend=..., pop3=..., lmtp=..., "
                                "options=...")
    server = TestServer(checks=_strict_checks(item), **settings)
    for marker in item.iter_markers("imapd_faults"):
        server.faults.add(*marker.args)
    return server


@pytest.fixture
def imap_server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    """A fresh imapd for this test (see the module doc)."""
    server = _server_for(request.node)
    server.start()
    try:
        _watch(request.node, server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _imapd_session_server() -> Iterator[TestServer]:
    from imapd.testing.checks import CheckSuite
    from imapd.testing.server import TestServer

    with TestServer(pop3=True, lmtp=True, checks=CheckSuite()) as server:
        yield server


@pytest.fixture
def imap_server_session(request: pytest.FixtureRequest,
                        _imapd_session_server: TestServer) -> Iterator[TestServer]:
    """The session's shared imapd (see the module doc)."""
    _watch(request.node, _imapd_session_server)
    try:
        yield _imapd_session_server
    finally:
        _imapd_session_server.faults.clear()


@pytest.fixture
def make_mail_user(imap_server: TestServer) -> Callable[[str, str], MailUser]:
    """``make_mail_user(name, password)``: a new user of ``imap_server``."""
    return imap_server.add_user


@pytest.fixture
def mail_user(imap_server: TestServer) -> MailUser:
    """The user ``user`` / ``secret`` of ``imap_server``."""
    return imap_server.add_user(DEFAULT_USER, DEFAULT_PASSWORD)


@pytest.fixture
def mailbox(mail_user: MailUser) -> Callable[..., list[int]]:
    """``mailbox(name, *messages, flags=(), internal_date=None)``: seed
    ``mail_user``'s mailbox ``name`` (created if missing); the new UIDs."""
    return mail_user.seed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After a test body that passed: the strict checks' verdict on the
    connections it made (``ClientProtocolError`` fails the test)."""
    __tracebackhide__ = True  # the user reads the violations, not the kit's frames
    result = yield
    for watched in item.stash.get(_WATCHED, []):
        new = _new_violations(watched)
        if new:
            from imapd.testing.checks import ClientProtocolError

            raise ClientProtocolError(new)
    return result


def _new_violations(watched: _Watched) -> list[Any]:
    """The violations the strict checks found since the test began."""
    from imapd.testing.reactor import call_sync

    checks = watched.server.checks
    if checks is None:
        return []
    return call_sync(lambda: list(checks.violations))[watched.first_violation:]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report gets the transcripts of its servers, and,
    when the test failed for another reason (often the client's own error
    about the server's BAD), the strict checks' findings too: they usually
    say why the server answered BAD."""
    report: pytest.TestReport = yield
    watched = item.stash.get(_WATCHED, [])
    if report.failed and watched:
        from imapd.testing.checks import ClientProtocolError

        failed_strictly = call.excinfo is not None and call.excinfo.errisinstance(
            ClientProtocolError)
        found = [] if failed_strictly else [v for w in watched for v in _new_violations(w)]
        if found:
            report.sections.append((CHECKS_SECTION, str(ClientProtocolError(found))))
        text = _transcripts(watched)
        if text:
            report.sections.append((SECTION, text))
    return report


def _transcripts(watched: list[_Watched]) -> str:
    from imapd.testing.transcript import format_transcripts

    parts = []
    for number, entry in enumerate(watched, 1):
        server = entry.server
        text = format_transcripts(server.transcripts[entry.first_transcript:], server.secrets)
        if len(watched) > 1:
            text = f"--- server {number} (IMAP port {server.imap_port}) ---\n{text}"
        parts.append(text)
    return "\n".join(parts)
