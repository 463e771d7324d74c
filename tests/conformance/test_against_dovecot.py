"""Opt-in check of the runner's fidelity: the shipped scripts against a private Dovecot.

The conformance README (§13) records what Dovecot 2.3.19.1 (Debian 12) gives
with real imaptest: 61 scripts pass, none fail, 4 are skipped (sort-partial:
no CONTEXT=SORT; urlauth, urlauth-binary, urlauth2: no URLAUTH). This runner
must reproduce that exactly. Enable with ``IMAPD_CONFORMANCE_DOVECOT=1`` on a
machine with Debian's ``dovecot-imapd`` installed, run as root (Dovecot
switches to the ``nobody`` user for mail access); see docs/conformance.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapd.conformance.report import Outcome, Totals
from imapd.conformance import RunnerConfig, list_script_files, run_script_file
from tests.support.pinned_skips import Pin

SHIPPED = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "imaptest"
EXPECTED_SKIPS = {"sort-partial", "urlauth", "urlauth-binary", "urlauth2"}

OPT_IN = "opt-in: set IMAPD_CONFORMANCE_DOVECOT=1, install dovecot-imapd and run as root"
pytestmark = pytest.mark.skipif(
    os.environ.get("IMAPD_CONFORMANCE_DOVECOT") != "1" or shutil.which("dovecot") is None or os.geteuid() != 0,
    reason=OPT_IN,
)
#: Read by tests/support/pinned_skips.py: the one skip of this module, allowed under CI too (opt-in).
PINNED_SKIPS = (Pin.exact(OPT_IN, "Dovecot fidelity check is opt-in"),)

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 100
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def dovecot_port() -> Iterator[int]:
    root = Path(tempfile.mkdtemp(prefix="imapd-dovecot-"))
    root.chmod(0o755)  # the mail processes run as nobody and must reach home/
    for name in ("run", "state", "home"):
        (root / name).mkdir()
    shutil.chown(root / "home", "nobody", "nogroup")
    (root / "passwd").write_text("testuser:{PLAIN}pass\nuser2:{PLAIN}pass\n")
    port = _free_port()
    (root / "dovecot.conf").write_text(CONFIG.format(root=root, port=port))
    process = subprocess.Popen(["dovecot", "-F", "-c", str(root / "dovecot.conf")])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def test_runner_reproduces_imaptest_results_against_dovecot(dovecot_port: int) -> None:
    config = RunnerConfig(port=dovecot_port, user="testuser", user2="user2", password="pass", timeout=15)
    totals = Totals()
    outcomes: dict[str, Outcome] = {}
    reports: list[str] = []
    for path in list_script_files(SHIPPED):
        result = run_script_file(path, config)
        totals.add(result)
        outcomes[path.name] = result.outcome
        if result.outcome is Outcome.FAILED:
            reports.append(result.format())
    assert reports == []
    assert {name for name, outcome in outcomes.items() if outcome is Outcome.SKIPPED} == EXPECTED_SKIPS
    assert (totals.scripts, totals.passed, totals.failed, totals.skipped) == (65, 61, 0, 4)
