"""``imapd conformance HOST PORT`` (issue 19): the runner as a command anyone
can point at any IMAP server.

Against the real imapd of this session (conftest: ``imapd serve``, users
``testuser`` and ``user2``, password ``pass``): the shipped scripts all pass
(exit 0, one table row each); a directory with a failing script gives exit 1,
the table and a JUnit failure; operator mistakes (unreachable port, wrong
password, bad arguments) give one line and exit 2. Against a private Dovecot
(tests/support/dovecot.py, installed in CI) over implicit TLS: the command
works on another server, and the own scripts Dovecot fails are pinned, so a
change either way (of Dovecot, the scripts or the runner) fails the test.
"""

from __future__ import annotations

import socket
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imapd.cli import main as imapd_main
from imapd.cli_conformance import PASSWORD_ENV, _options_first
from imapd.conformance import OWN_SCRIPTS_DIR, RunnerConfig, list_script_files
from tests.support.dovecot import MISSING, running_dovecot, unavailable
from tests.support.pinned_skips import Pin, require_tool
from tests.support.server import imapd_command, subprocess_env

PINNED_SKIPS = (Pin.exact(MISSING, "Dovecot is a Debian package .ci/run installs; it needs root", in_ci=False),)

OWN_NAMES = [path.name for path in list_script_files(OWN_SCRIPTS_DIR)]

#: Own scripts Dovecot 2.3.19 (Debian 12) fails, with the first difference of
#: each. Some are Dovecot's leniency (OK where the RFC grammar makes a command
#: BAD), some are our scripts expecting more than the RFC fixes (ESEARCH's
#: order of return data, which RFC 4731's grammar leaves open; INTERNALDATE's zone).
DOVECOT_FAILS = {
    "binary": "BINARY.SIZE of the script's parts: NO [UNKNOWN-CTE]",
    "condstore": "no UID in the FETCH after STORE, which the script expects",
    "enable": "no untagged ENABLED for ENABLE CONDSTORE",
    "esearch": "ESEARCH return data in another order (ALL before COUNT)",
    "id": "OK for ID with an odd-length list (RFC 2971 §3.1 grammar: BAD)",
    "idle": "IDLE with an argument gets '+' (RFC 2177 grammar: BAD)",
    "list-status": "DELETE of a \\Noselect parent: NO [NONEXISTENT]",
    "multiappend": "after a refused APPEND the LITERAL+ literal is read as commands",
    "namespace": "OK for NAMESPACE with an argument (RFC 2342 grammar: BAD)",
    "rfc3501-append": "after APPEND with bad flags the LITERAL+ literal is read as commands",
    "rfc3501-expunge": "COPY changes INTERNALDATE's zone (+0100 -> +0000)",
    "rfc3501-mailboxes": "RENAME onto an existing mailbox name: OK",
    "rfc3501-search": "OK for SEARCH BEFORE 32-Mar-2020 (an invalid date)",
    "rfc3501-select": "STORE in an EXAMINEd mailbox: OK, ignored (RFC 3501 §6.3.2: NO)",
    "rfc3501-syntax": "OK for NOOP with an argument (RFC 3501 §9 grammar: BAD)",
    "special-use": "another set of special-use folders than imapd creates",
}
#: Skipped against that Dovecot: capabilities it does not offer (STARTTLS: not over implicit TLS).
DOVECOT_SKIPS = {"appendlimit", "compress", "create-special-use", "esort-context", "rfc3501-nonauth"}

FAILING_DIR_SCRIPTS = {
    "good": b"messages: 1\n\nok fetch 1 uid\n* 1 fetch (uid $u)\n",
    "bad": b"messages: 1\n\nok search all\n* search 1 2 3\n",
    "skip": b"capabilities: X-NO-SUCH-CAPABILITY\n\nok noop\n",
}


def run_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m imapd conformance ARGS`` as a user runs it."""
    return subprocess.run(imapd_command("conformance", *args), capture_output=True, text=True, timeout=120,
                          env={**subprocess_env(), **(env or {})})


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command in this process (quicker): status, stdout, stderr."""
    status = imapd_main(["conformance", *args])
    out, err = capsys.readouterr()
    return status, out, err


def rows(out: str) -> dict[str, tuple[str, str]]:
    """The table: script -> (result, first failure)."""
    found: dict[str, tuple[str, str]] = {}
    for line in out.split("\n\n", 1)[0].splitlines()[1:]:
        name, result, _seconds, *rest = line.split(None, 3)
        found[name] = (result, rest[0] if rest else "")
    return found


def target(config: RunnerConfig) -> list[str]:
    return [config.host, str(config.port)]


def test_own_scripts_all_pass_against_imapd(conformance_config: RunnerConfig) -> None:
    result = run_command(*target(conformance_config), "--user", "testuser", "--user2", "user2",
                         env={PASSWORD_ENV: "pass"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].split() == ["script", "result", "seconds", "first", "failure"]
    assert rows(result.stdout) == {name: ("pass", "") for name in OWN_NAMES}
    count = len(OWN_NAMES)
    assert f"{count} scripts: {count} passed, 0 failed, 0 skipped" in result.stdout
    assert result.stderr == ""


def test_a_failing_script_fails_the_run_and_the_junit_report(
        conformance_config: RunnerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scripts = tmp_path / "mine"
    scripts.mkdir()
    for name, text in FAILING_DIR_SCRIPTS.items():
        (scripts / name).write_bytes(text)
    (scripts / "default.mbox").write_bytes(b"From a@b  Fri Feb 22 17:06:23 2008\nSubject: s\n\nbody\n\n")
    junit = tmp_path / "report.xml"
    status, out, err = run_main(capsys, *target(conformance_config), "--no-own-scripts", "--scripts", str(scripts),
                                "--junit", str(junit), "--password", "pass")
    assert (status, err) == (1, "")
    table = rows(out)
    assert table["good"] == ("pass", "")
    assert table["bad"][0] == "FAIL" and table["bad"][1].startswith("line 4: missing 1 untagged replies")
    assert table["skip"] == ("skip", "server lacks capability X-NO-SUCH-CAPABILITY (post-login CAPABILITY)")
    assert "3 scripts: 1 passed, 1 failed, 1 skipped" in out
    assert "expected:   * search 1 2 3" in out  # the failure in full below the table
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert sorted(cases) == ["bad", "good", "skip"]
    failure = cases["bad"].find("failure")
    assert failure is not None and failure.text is not None
    assert failure.get("message", "").startswith("line 4: missing 1 untagged replies")
    assert "best match: * SEARCH 1" in failure.text
    assert cases["skip"].find("skipped") is not None and list(cases["good"]) == []


def test_unreachable_server_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        status, out, err = run_main(capsys, "127.0.0.1", str(port))
    assert (status, out) == (2, "")
    assert err.startswith(f"imapd conformance: cannot connect to 127.0.0.1:{port}: ") and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--password", "wrong"], "imapd conformance: login refused for testuser at {where}: "),
    (["--password", "pass", "--user2", "nobody"], "imapd conformance: login refused for nobody at {where}: "),
    (["--password", "pass", "--scripts", "/no/such/dir"], "imapd: --scripts /no/such/dir: no such directory"),
    (["--password", "pass", "--only", "no-such-script"], "imapd conformance: --only: no script named no-such-script"),
    (["--password", "pass", "--insecure"], "imapd: --insecure and --cafile only apply with --tls or --starttls"),
])
def test_operator_mistakes_are_one_line_and_status_2(
        conformance_config: RunnerConfig, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    status, out, err = run_main(capsys, *target(conformance_config), *args)
    where = f"{conformance_config.host}:{conformance_config.port}"
    assert (status, out) == (2, "")
    assert err.startswith(message.format(where=where)) and err.count("\n") == 1


def test_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(capsys, "127.0.0.1", "imap")
    assert (status, out) == (2, "")
    assert err == "imapd: bad port 'imap': give a number from 1 to 65535 (see imapd --help)\n"


def test_password_from_a_file_or_the_environment(
        conformance_config: RunnerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Not on the command line, where ps shows it: the file's first line, else the variable."""
    secret = tmp_path / "password"
    secret.write_text("pass\nignored second line\n")
    status, out, _ = run_main(capsys, *target(conformance_config), "--only", "id", "--password-file", str(secret))
    assert status == 0 and rows(out) == {"id": ("pass", "")}
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    status, _, err = run_main(capsys, *target(conformance_config), "--only", "id")
    assert status == 2 and "login refused for testuser" in err
    monkeypatch.setenv(PASSWORD_ENV, "pass")
    status, out, _ = run_main(capsys, *target(conformance_config), "--only", "id")
    assert status == 0


def test_starttls_checks_the_certificate(conformance_config: RunnerConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """imapd's self-signed certificate: refused unless --insecure (or --cafile), then scripts run over TLS."""
    args = [*target(conformance_config), "--password", "pass", "--starttls", "--only", "idle"]
    status, out, err = run_main(capsys, *args)
    assert (status, out) == (2, "") and "certificate verify failed" in err and err.count("\n") == 1
    status, out, err = run_main(capsys, *args, "--insecure", "--trace")
    assert status == 0 and rows(out) == {"idle": ("pass", "")}
    # both of the script's connections (its setup, not only the login check) went through STARTTLS
    assert "C1: 1.1 STARTTLS" in err and "C2: 2.1 STARTTLS" in err


def test_options_may_follow_host_and_port() -> None:
    """getopt stops at the first positional; the synopsis puts HOST PORT first."""
    def takes_value(name: str) -> bool:
        return name in ("scripts", "junit")

    argv = ["h", "143", "--scripts", "d", "--tls", "--junit=f", "--", "--odd"]
    assert _options_first(argv, takes_value) == ["--scripts", "d", "--tls", "--junit=f", "--", "h", "143", "--odd"]


def test_against_dovecot_over_tls(tmp_path: Path) -> None:
    """The same command on another server: Dovecot's own failures are pinned above."""
    require_tool(None if unavailable() else "dovecot", MISSING)
    junit = tmp_path / "dovecot.xml"
    with running_dovecot("testuser", "pass", tls=True) as dovecot:
        assert dovecot.imaps_port is not None and dovecot.certificate is not None
        result = run_command(dovecot.host, str(dovecot.imaps_port), "--tls", "--cafile", str(dovecot.certificate),
                             "--junit", str(junit), env={PASSWORD_ENV: "pass"})
    assert result.returncode == 1, result.stdout + result.stderr
    table = rows(result.stdout)
    assert sorted(table) == sorted(OWN_NAMES)
    assert {name for name, (word, _) in table.items() if word == "FAIL"} == set(DOVECOT_FAILS)
    assert {name for name, (word, _) in table.items() if word == "skip"} == DOVECOT_SKIPS
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == str(len(DOVECOT_FAILS))


def test_missing_own_scripts_is_one_line_and_status_2(
        conformance_config: RunnerConfig, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An install without the package data (seen when a build dropped it):
    one line that says what is missing and what to do, not a traceback."""
    import imapd.cli_conformance as command

    monkeypatch.setattr(command, "OWN_SCRIPTS_DIR", tmp_path / "scripts")
    status, out, err = run_main(capsys, *target(conformance_config), "--password", "pass")
    assert (status, out) == (2, "")
    assert err.startswith("imapd conformance: the own scripts are not installed (") and err.count("\n") == 1
