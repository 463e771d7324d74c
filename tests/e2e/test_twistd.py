"""``twistd -n imapd`` serves the same protocol with the same options."""

from __future__ import annotations

import imaplib
import subprocess
from pathlib import Path

from tests.support.server import REPO_ROOT, running_server, subprocess_env, twistd_command


def test_twistd_lists_the_plugin() -> None:
    out = subprocess.run(twistd_command()[:-1] + ["--help"], capture_output=True, text=True,
                         env=subprocess_env(), cwd=REPO_ROOT, timeout=60)
    assert "imapd" in out.stdout


def test_twistd_imapd_serves_logins(tmp_path: Path) -> None:
    with running_server(tmp_path, {"alice": "wonderland"}, ["--failed-login-delay", "0.1"],
                        twistd=True) as server:
        imap = imaplib.IMAP4(server.host, server.port)
        assert imap.welcome.endswith(b"] imapd ready")
        assert imap.login("alice", "wonderland")[0] == "OK"
        imap.logout()
