"""imapd.testing.plugin, run the way a client developer's suite runs it:
a test file in a fresh pytest process (``pytester``), with the fixtures,
markers and the transcript section of a failed test's report."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

CLIENT_TESTS = '''
import imaplib
import socket

import pytest

from imapd.testing.faults import close_at

PASSWORD = "Tr0ub4dor-3"  # module level: a traceback shows the function, not this line


def test_passes(imap_server, mail_user, mailbox):
    assert mailbox("INBOX", b"Subject: one\\r\\n\\r\\nx\\r\\n") == [1]
    with imaplib.IMAP4(*imap_server.address) as client:
        client.login(mail_user.name, mail_user.password)
        assert client.select("INBOX") == ("OK", [b"1"])
        client.store("1", "+FLAGS", "(\\\\Seen)")
        client.logout()
    assert imap_server.mailbox("INBOX").messages[0].flags == {"\\\\Seen"}


def test_fails_with_a_transcript(imap_server, make_mail_user):
    make_mail_user("alice", PASSWORD)
    with imaplib.IMAP4(*imap_server.address) as client:
        client.login("alice", PASSWORD)
        client.select("INBOX")
        assert client.list()[0] == "NO", "deliberate failure"


@pytest.mark.imapd(backend="sqlite", pop3=True)
def test_marker_picks_the_backend(imap_server):
    assert imap_server.backend == "sqlite" and imap_server.pop3_port
    assert (imap_server.data_dir / "mail.sqlite3").exists()


@pytest.mark.imapd_faults(close_at("SELECT"), close_at("FETCH", 2))
def test_faults_from_a_marker(imap_server):
    # What the faults do is the wiretap's (tests/testing/test_wiretap.py);
    # here: the marker's faults are in the server's plan from the start.
    assert imap_server.faults.faults == [close_at("SELECT"), close_at("FETCH", 2)]


def _wrong_client(address):
    """FETCH before SELECT: a client mistake (RFC 3501 §6.4.5 needs the
    selected state)."""
    with socket.create_connection(address, timeout=30) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        for tag, command in (("a1", b"LOGIN user secret"), ("a2", b"FETCH 1 FLAGS"),
                             ("a3", b"LOGOUT")):
            sock.sendall(tag.encode() + b" " + command + b"\\r\\n")
            while not reader.readline().startswith(tag.encode()):
                pass


def test_strict_catches_a_wrong_client(imap_server, mail_user):
    _wrong_client(imap_server.address)


@pytest.mark.imapd_strict(disabled=["command-in-wrong-state"])
def test_strict_check_switched_off(imap_server, mail_user):
    _wrong_client(imap_server.address)


def test_session_server_is_shared(imap_server_session):
    imap_server_session.add_user("shared", "pw-shared")
    with imaplib.IMAP4(*imap_server_session.address) as client:
        client.login("shared", "pw-shared")
        client.logout()


def test_session_server_keeps_users(imap_server_session):
    assert imap_server_session.users.exists("shared")


def test_session_strict_mistake(imap_server_session):
    imap_server_session.add_user("user", "secret")
    _wrong_client(imap_server_session.address)


def test_session_after_a_mistake_is_judged_alone(imap_server_session):
    with imaplib.IMAP4(*imap_server_session.address) as client:
        client.login("user", "secret")
        client.logout()


def test_two_servers(imap_server, imap_server_session):
    assert imap_server.imap_port != imap_server_session.imap_port
'''


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    # Installed, the plugin comes through its entry point (tested from a
    # fresh virtualenv in test_fresh_project.py); here it is named, with
    # autoloading off, so the run is the same whether or not this checkout
    # is installed.
    pytester.makepyfile(test_client=source)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        return pytester.runpytest_subprocess("-p", "imapd.testing.plugin", "-p", "no:cacheprovider",
                                             *args, timeout=120)


def test_the_entry_point_and_extra_are_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"imapd": "imapd.testing.plugin"}
    assert any(r.startswith("pytest") for r in project["optional-dependencies"]["testing"])


def test_fixtures_markers_and_the_transcript_of_a_failure(pytester: pytest.Pytester) -> None:
    result = _run(pytester, CLIENT_TESTS)
    result.assert_outcomes(passed=8, failed=3)
    output = result.stdout.str()
    assert "FAILED test_client.py::test_strict_catches_a_wrong_client" in output
    assert "command-in-wrong-state" in output and "RFC 3501 §3, §6" in output
    assert "FAILED test_client.py::test_session_strict_mistake" in output
    # The session server's report holds only that test's connections.
    session_failure = output[output.index("_ test_session_strict_mistake _"):]
    assert "LOGIN shared" not in session_failure
    assert session_failure.count("=== imap connection") == 1
    assert "FAILED test_client.py::test_fails_with_a_transcript" in output
    assert "deliberate failure" in output
    section = output[output.index("imapd transcript"):]
    assert "C: " in section and "S: * OK" in section and "SELECT INBOX" in section
    assert "LOGIN alice ***" in section
    assert "Tr0ub4dor-3" not in output  # redacted everywhere, the traceback's locals included


def test_a_passing_suite_shows_no_transcript(pytester: pytest.Pytester) -> None:
    result = _run(pytester, CLIENT_TESTS, "-k", "passes or backend")
    result.assert_outcomes(passed=2)
    assert "imapd transcript" not in result.stdout.str()


def test_importing_the_plugin_starts_no_reactor() -> None:
    code = ("import sys, imapd.testing.plugin, imapd.testing; "
            "assert 'twisted.internet.reactor' not in sys.modules, 'reactor imported'; "
            "assert 'imapd.testing.server' not in sys.modules, 'server imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


BODY_FAILS_AFTER_A_MISTAKE = '''
import imaplib


def test_client_error_hides_the_reason(imap_server, mail_user):
    mail_user.seed("INBOX", b"Subject: one\\r\\n\\r\\nx\\r\\n")
    with imaplib.IMAP4(*imap_server.address) as client:
        client.login(mail_user.name, mail_user.password)
        client.select("INBOX")
        client.fetch("99", "(FLAGS)")  # 1 message: BAD, and imaplib raises


def test_strict_failure_alone(imap_server, mail_user):
    mail_user.seed("INBOX", b"Subject: one\\r\\n\\r\\nx\\r\\n")
    with imaplib.IMAP4(*imap_server.address) as client:
        client.login(mail_user.name, mail_user.password)
        client.select("INBOX")
        try:
            client.fetch("99", "(FLAGS)")
        except imaplib.IMAP4.error:
            pass  # the client copes with the BAD; the strict check still fails the test
'''


def test_strict_findings_are_reported_when_the_test_failed_for_another_reason(
        pytester: pytest.Pytester) -> None:
    """A client that raises on the server's BAD fails the test with its own
    error; the report still says which protocol rule the client broke, and
    a strict failure's traceback shows the violations, not the kit's frames."""
    result = _run(pytester, BODY_FAILS_AFTER_A_MISTAKE)
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    first = output[output.index("_ test_client_error_hides_the_reason _"):
                   output.index("_ test_strict_failure_alone _")]
    assert "Invalid message sequence number 99" in first  # the client's own error
    assert "- imapd strict checks -" in first and "RFC 3501" in first
    second = output[output.index("_ test_strict_failure_alone _"):]
    assert "imapd.testing.checks.ClientProtocolError" in second or "ClientProtocolError" in second
    assert "- imapd strict checks -" not in second  # said once, as the failure itself
    for kit_frame in ("testing/plugin.py", "testing/reactor.py", "checks_catalogue"):
        assert kit_frame not in second, kit_frame
