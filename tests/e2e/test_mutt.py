"""Stock mutt logs in with SCRAM (issue 11): Debian's ``mutt`` (2.2.12,
GnuTLS and GNU SASL; ``.ci/run`` installs it) run unattended against a real
server, with its own defaults except what a test account needs.

mutt leaves the mechanism to GNU SASL, which picks the strongest one the
server offers and always sends an authorization identity
(``n,a=alice,n=alice,r=...``, RFC 5802 §7). mutt needs a terminal, so it runs
on a pseudo-terminal in its own process group, with ``-d 2``: its debug
file (``~/.muttdebug0``) records the IMAP dialogue as mutt sent and read
it, except passwords. The server's log (debug level) adds its side: who
logged in, and that no attempt failed. It does not name the mechanism.

With ``--scram-plus`` the same mutt shows why that option is off by default
(docs/security.md): it picks SCRAM-SHA-256-PLUS, cannot give GNU SASL the
channel binding data, and falls back to the LOGIN command.
"""

from __future__ import annotations

import base64
import os
import re
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.security.helpers import SecureServer, secure_server
from tests.support.pinned_skips import Pin, require_tool

MUTT = shutil.which("mutt")
MISSING = "mutt (Debian package mutt) is not installed; .ci/run installs it"
PINNED_SKIPS = (Pin.exact(MISSING, "the mutt client tests need the mutt command", in_ci=False),)

PASSWORD = "wonderland"
# Seconds one mutt run may take: it needs well under one on an idle machine;
# the bound is only there so that a prompt nobody answers cannot hang the suite.
MUTT_DEADLINE = 60.0
# mutt's debug lines for what it sent: "[date] 4> a0002 AUTHENTICATE ..."
SENT = re.compile(r"^\[[^\]]*\] \d+> (a\d{4}) (.*)$", re.M)
RECEIVED = re.compile(r"^\[[^\]]*\] \d+< (.*)$", re.M)


@dataclass
class MuttRun:
    returncode: int
    screen: str
    debug: str
    server_log: str

    def sent(self) -> list[tuple[str, str]]:
        """(tag, command) of every tagged command mutt sent."""
        return SENT.findall(self.debug)

    def received(self) -> list[str]:
        return RECEIVED.findall(self.debug)

    def explain(self) -> str:
        return (f"mutt exit {self.returncode}\n--- screen\n{self.screen}\n--- debug\n{self.debug}"
                f"\n--- server log\n{self.server_log}")


@pytest.fixture
def mutt() -> str:
    """The mutt command. Missing: a pinned skip, but a failure under CI."""
    return require_tool(MUTT, MISSING)


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """``imapd serve`` with the default options (and a test certificate)."""
    with secure_server(tmp_path_factory.mktemp("mutt"), {"alice": PASSWORD}, ["--log-level", "debug"]) as s:
        yield s


@pytest.fixture(scope="module")
def plus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """The operator opted in to SCRAM-SHA-256-PLUS."""
    with secure_server(tmp_path_factory.mktemp("mutt-plus"), {"alice": PASSWORD},
                       ["--log-level", "debug", "--scram-plus"]) as s:
        yield s


def write_muttrc(home: Path, server: SecureServer, plaintext: bool) -> Path:
    """mutt's defaults plus what an unattended test account needs: the
    password, the test certificate as the one trusted certificate (so mutt
    asks nothing), no caches. ``plaintext``: no STARTTLS (mutt's defaults
    insist on TLS; loopback plaintext is what imapd allows locally)."""
    certificates = home / "certificates.pem"
    shutil.copyfile(server.cert, certificates)
    (home / "Mail").mkdir()  # else mutt asks whether to create it
    lines = [
        f'set imap_pass="{PASSWORD}"',
        f'set certificate_file="{certificates}"',
        "set connect_timeout=10",
        'set header_cache=""',
        'set message_cachedir=""',
    ]
    if plaintext:
        lines += ["unset ssl_force_tls", "set ssl_starttls=no"]
    muttrc = home / "muttrc"
    muttrc.write_text("\n".join(lines) + "\n")
    return muttrc


def read_terminal(master: int, process: subprocess.Popen[bytes], deadline: float) -> bytes:
    """Everything mutt writes to its terminal until it exits or the deadline."""
    screen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last user closed it
                break
            if not chunk:
                break
            screen += chunk
        elif process.poll() is not None:
            break
    return screen


def run_mutt(mutt: str, server: SecureServer, home: Path, url: str, plaintext: bool = False) -> MuttRun:
    """Open ``url`` (its INBOX), quit at once, and return what happened.
    mutt runs in its own session on a fresh pseudo-terminal; on the
    deadline the whole process group is killed."""
    home.mkdir()
    muttrc = write_muttrc(home, server, plaintext)
    env = {"HOME": str(home), "TERM": "vt100", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "LANG": "C.UTF-8"}
    log_start = len(server.log())
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            [mutt, "-n", "-F", str(muttrc), "-d", "2", "-f", url, "-e", "push <quit>"],
            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=home, start_new_session=True,
        )
    finally:
        os.close(slave)
    try:
        screen = read_terminal(master, process, time.monotonic() + MUTT_DEADLINE)
        try:
            returncode = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = -signal.SIGKILL
    finally:
        os.close(master)
    debug_file = home / ".muttdebug0"
    debug = debug_file.read_text(errors="replace") if debug_file.exists() else ""
    return MuttRun(returncode, screen.decode(errors="replace"), debug, server.log()[log_start:])


def client_first_of(run: MuttRun, mechanism: str) -> tuple[str, str]:
    """(tag, decoded client-first message) of mutt's AUTHENTICATE (SASL-IR, RFC 4959)."""
    commands = [(tag, text) for tag, text in run.sent() if text.startswith("AUTHENTICATE ")]
    assert len(commands) == 1, run.explain()
    tag, text = commands[0]
    name, _, initial = text[len("AUTHENTICATE "):].partition(" ")
    assert name == mechanism, run.explain()
    return tag, base64.b64decode(initial).decode()


def assert_scram_login(run: MuttRun) -> None:
    """mutt authenticated with SCRAM-SHA-256 and an authorization identity,
    never tried anything else, got ``OK [CAPABILITY ...] Logged in`` for
    it, opened INBOX and quit cleanly; the server logged alice in once, with
    no failure, and no password in its log."""
    assert run.returncode == 0, run.explain()
    tag, first = client_first_of(run, "SCRAM-SHA-256")
    assert first.startswith("n,a=alice,n=alice,r="), run.explain()
    answers = [line for line in run.received() if line.startswith(f"{tag} ")]
    assert len(answers) == 1, run.explain()
    assert re.fullmatch(rf"{tag} OK \[CAPABILITY [^\]]*\] Logged in", answers[0]), run.explain()
    assert "Sending LOGIN command" not in run.debug, run.explain()
    assert not any(text.startswith("LOGIN ") for _, text in run.sent()), run.explain()
    assert any(text == 'SELECT "INBOX"' for _, text in run.sent()), run.explain()
    assert run.server_log.count("logged in as alice") == 1, run.explain()
    assert "authentication failed" not in run.server_log, run.explain()
    assert "SCRAM refused" not in run.server_log, run.explain()
    assert PASSWORD not in run.server_log


def test_mutt_logs_in_with_scram_on_loopback_plaintext(
    mutt: str, default_server: SecureServer, tmp_path: Path
) -> None:
    run = run_mutt(mutt, default_server, tmp_path / "home",
                   f"imap://alice@127.0.0.1:{default_server.port}/", plaintext=True)
    assert_scram_login(run)
    assert not any(text == "STARTTLS" for _, text in run.sent()), run.explain()


def test_mutt_logs_in_with_scram_over_starttls_by_default(
    mutt: str, default_server: SecureServer, tmp_path: Path
) -> None:
    """mutt's defaults (STARTTLS required) against imapd's defaults: the TLS
    capability list has no -PLUS, so GNU SASL picks SCRAM-SHA-256."""
    run = run_mutt(mutt, default_server, tmp_path / "home",
                   f"imap://alice@127.0.0.1:{default_server.port}/")
    assert_scram_login(run)
    assert run.sent()[0] == ("a0000", "STARTTLS"), run.explain()
    assert "SSL/TLS connection using TLS1.3" in run.debug, run.explain()
    assert "AUTH=SCRAM-SHA-256-PLUS" not in run.debug, run.explain()


def test_mutt_logs_in_with_scram_over_implicit_tls_by_default(
    mutt: str, default_server: SecureServer, tmp_path: Path
) -> None:
    assert default_server.imaps_port is not None
    run = run_mutt(mutt, default_server, tmp_path / "home",
                   f"imaps://alice@127.0.0.1:{default_server.imaps_port}/")
    assert_scram_login(run)
    assert "SSL/TLS connection using TLS1.3" in run.debug, run.explain()


def test_with_scram_plus_mutt_cannot_bind_and_falls_back_to_login(
    mutt: str, plus_server: SecureServer, tmp_path: Path
) -> None:
    """Why --scram-plus is off by default: offered -PLUS, mutt 2.2.12 picks
    it, never hands GNU SASL the channel binding data, gives up before
    sending AUTHENTICATE and logs in with LOGIN instead. (If this fails
    because mutt now binds, the default can be revisited.)"""
    run = run_mutt(mutt, plus_server, tmp_path / "home",
                   f"imap://alice@127.0.0.1:{plus_server.port}/")
    assert run.returncode == 0, run.explain()
    assert "AUTH=SCRAM-SHA-256-PLUS" in run.debug, run.explain()
    assert "imap_auth_gsasl: using mech SCRAM-SHA-256-PLUS" in run.debug, run.explain()
    assert "channel binding was not provided" in run.debug, run.explain()
    assert "Sending LOGIN command for alice" in run.debug, run.explain()
    assert not any(text.startswith("AUTHENTICATE") for _, text in run.sent()), run.explain()
    assert run.server_log.count("logged in as alice") == 1, run.explain()
