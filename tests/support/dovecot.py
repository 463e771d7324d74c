"""A private Dovecot (Debian's dovecot-imapd) for tests that talk to a real
other IMAP server: own config, base_dir, state_dir, log, port, passwd-file
and Maildir in a temp directory; never touches the system instance.

Unlike the benchmark peer (bench/peers.py, whose process helpers this
reuses) the account here looks like a real one: hierarchy delimiter ``.``
(Maildir++), RFC 6154 special-use folders (``Sent Messages`` is ``\\Sent``,
as Apple Mail names it), a plain-text password, plaintext IMAP on loopback.
``unavailable()`` says why Dovecot cannot run here (None if it can): it must
be installed and we must be root (it switches to ``nobody`` for the mail).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bench.peers import _wait_for_port, free_port, stop_process

MISSING = "dovecot (Debian package dovecot-imapd) is not installed or we are not root; .ci/run installs it"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/server.log
info_log_path = /dev/null
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_fsync = never
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
  separator = .
  mailbox "Sent Messages" {{
    special_use = \\Sent
  }}
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
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


@dataclass(frozen=True)
class Dovecot:
    host: str
    port: int
    user: str
    password: str
    root: Path


def unavailable() -> str | None:
    if shutil.which("dovecot") is None or os.geteuid() != 0:
        return MISSING
    return None


@contextlib.contextmanager
def running_dovecot(user: str = "olduser", password: str = "old-pass-1") -> Iterator[Dovecot]:
    """Start Dovecot with one account; stop it and remove everything on exit."""
    root = Path(tempfile.mkdtemp(prefix="imapd-test-dovecot-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        root.chmod(0o755)  # the mail processes run as nobody and must reach home/
        for name in ("run", "state", "home"):
            (root / name).mkdir()
        shutil.chown(root / "home", "nobody", "nogroup")
        (root / "passwd").write_text(f"{user}:{password}\n")
        port = free_port()
        (root / "dovecot.conf").write_text(CONFIG.format(root=root, port=port))
        (root / "server.log").touch()
        process = subprocess.Popen(["dovecot", "-F", "-c", str(root / "dovecot.conf")],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT, cwd=root)
        _wait_for_port(process, port, root / "server.log")
        yield Dovecot("127.0.0.1", port, user, password, root)
    finally:
        if process is not None:
            stop_process(process)
        shutil.rmtree(root, ignore_errors=True)
