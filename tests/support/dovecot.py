"""A private Dovecot (Debian's dovecot-imapd) for tests that talk to a real
other IMAP server: own config, base_dir, state_dir, log, port, passwd-file
and Maildir in a temp directory; never touches the system instance.

Unlike the benchmark peer (bench/peers.py, whose process helpers this
reuses) the account here looks like a real one: hierarchy delimiter ``.``
(Maildir++), RFC 6154 special-use folders (``Sent Messages`` is ``\\Sent``,
as Apple Mail names it), a plain-text password, plaintext IMAP on loopback
(and TLS when asked).
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
from typing import Iterator, Mapping

from bench.peers import _wait_for_port, free_port, stop_process
from imapd.net.tls import generate_self_signed

MISSING = "dovecot (Debian package dovecot-imapd) is not installed or we are not root; .ci/run installs it"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/server.log
info_log_path = /dev/null
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
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
  prefix = {prefix}
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
    address = 127.0.0.1
    port = {imaps_port}
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
    imaps_port: int | None = None  # implicit TLS (RFC 8314), when started with tls=True
    certificate: Path | None = None  # self-signed, names 127.0.0.1 and localhost


def unavailable() -> str | None:
    if shutil.which("dovecot") is None or os.geteuid() != 0:
        return MISSING
    return None


@contextlib.contextmanager
def running_dovecot(user: str = "olduser", password: str = "old-pass-1", *,
                    tls: bool = False, prefix: str = "",
                    more_users: Mapping[str, str] | None = None) -> Iterator[Dovecot]:
    """Start Dovecot with one account (and ``more_users``, name: password);
    stop it and remove everything on exit.
    ``tls``: also STARTTLS on the IMAP port and implicit TLS on another one,
    with a new self-signed certificate. ``prefix``: the personal namespace's
    (RFC 2342), e.g. ``INBOX.`` as Courier and cPanel's Dovecot have it."""
    root = Path(tempfile.mkdtemp(prefix="imapd-test-dovecot-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        root.chmod(0o755)  # the mail processes run as nobody and must reach home/
        for name in ("run", "state", "home"):
            (root / name).mkdir()
        shutil.chown(root / "home", "nobody", "nogroup")
        accounts = {user: password, **(more_users or {})}
        (root / "passwd").write_text("".join(f"{name}:{secret}\n" for name, secret in accounts.items()))
        port = free_port()
        imaps_port, certificate, ssl = None, None, "no"
        if tls:
            certificate, key = root / "tls" / "cert.pem", root / "tls" / "key.pem"
            generate_self_signed(certificate, key, "localhost")
            imaps_port, ssl = free_port(), f"yes\nssl_cert = <{certificate}\nssl_key = <{key}"
        (root / "dovecot.conf").write_text(CONFIG.format(root=root, port=port, ssl=ssl, imaps_port=imaps_port or 0,
                                                            prefix=prefix))
        (root / "server.log").touch()
        process = subprocess.Popen(["dovecot", "-F", "-c", str(root / "dovecot.conf")],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT, cwd=root)
        _wait_for_port(process, port, root / "server.log")
        yield Dovecot("127.0.0.1", port, user, password, root, imaps_port, certificate)
    finally:
        if process is not None:
            stop_process(process)
        shutil.rmtree(root, ignore_errors=True)
