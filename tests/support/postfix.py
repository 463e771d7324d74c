"""A private Postfix instance for the end-to-end delivery tests (Debian's ``postfix``).

``running_postfix(settings)`` writes a ``main.cf`` and a ``master.cf`` into a
fresh directory, starts ``postfix -c DIR start`` and yields a
:class:`Postfix` whose SMTP server listens on 127.0.0.1 on a free port; on
exit it runs ``postfix -c DIR stop`` (``abort``, then SIGKILL of the master,
if that does not end it) and removes the directory. Nothing of the system's
own Postfix (``/etc/postfix``, port 25, ``/var/spool/postfix``) is used: the
instance has its own config, queue and data directories, every daemon runs
unchrooted (so socket paths are plain absolute paths), and it logs to
``DIR/maillog`` through postlogd (``maillog_file``, Postfix >= 3.4: a
container has no syslog), which :meth:`Postfix.log` returns for failure
messages.

The directory is world-searchable (0755) because Postfix's delivery agents
run as the ``postfix`` user (lmtp) or as the recipient (local's
``mailbox_command``): an LMTP socket for imapd belongs in it
(:attr:`Postfix.lmtp_socket`), not in pytest's root-only ``tmp_path``.

Postfix's master must start as root (it binds ports and switches to the
``postfix`` user); CI runs as root. Without the package, or without root,
the tests SKIP with ``MISSING``/``NOT_ROOT`` (pinned with ``in_ci=False`` in
tests/support/pinned_skips.py); under CI (``CI=true``), which installs the
package (.ci/run), they FAIL instead.

    with running_postfix(lmtp_settings(sock)) as postfix:
        refused = postfix.submit("carol@lmtp.test", ["alice@lmtp.test"], message)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

from tests.support.launcher import imapd_launcher  # noqa: F401 (the tests import it from here)
from tests.support.pinned_skips import in_ci, require_tool
from tests.support.waiting import wait_until

MISSING = "Postfix (Debian package postfix) is not installed; .ci/run installs it"
NOT_ROOT = "a private Postfix instance needs root (its master binds ports and drops to the postfix user)"
HOSTNAME = "mx.imapd.test"
LMTP_DOMAIN = "lmtp.test"  # virtual_mailbox_domains: delivered over LMTP
LOCAL_DOMAIN = "local.test"  # mydestination: local(8), mailbox_command

# Every service a mail's path needs (smtpd -> cleanup -> qmgr -> lmtp/local,
# bounces), none chrooted ("n" in the 5th column); the smtpd line is added
# with the instance's port.
MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
smtp      unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def require_postfix() -> str:
    """The ``postfix`` command; skips (fails under CI) without the package or root."""
    path = require_tool(shutil.which("postfix") or _sbin("postfix"), MISSING)
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail(NOT_ROOT + " (CI=true: CI runs as root, so this test must run)")
        pytest.skip(NOT_ROOT)
    return path


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name  # not on a non-root user's PATH
    return str(path) if path.exists() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_settings(root: Path) -> dict[str, str]:
    """main.cf for an isolated instance that delivers nothing off the host."""
    return {
        "compatibility_level": "3.6",
        "queue_directory": f"{root}/queue",
        "data_directory": f"{root}/data",
        "meta_directory": "/etc/postfix",  # postfix-files, dynamicmaps.cf of the package
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": HOSTNAME,
        "mydomain": "imapd.test",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mydestination": "",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject",
        "alias_maps": "",
        "alias_database": "",
        "default_transport": "error:5.7.1 no mail leaves the test instance",
        "smtp_dns_support_level": "disabled",
        "maillog_file": f"{root}/maillog",
        "maillog_file_prefixes": str(root),
        "biff": "no",
    }


@dataclass
class Postfix:
    """A running instance (see the module docstring)."""

    root: Path
    smtp_port: int

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def lmtp_socket(self) -> Path:
        """Where imapd's LMTP socket goes (``--lmtp unix:PATH:mode=666``)."""
        return self.root / "imapd.lmtp"

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog)"

    def submit(self, sender: str, recipients: Sequence[str], message: bytes) -> dict[str, tuple[int, bytes]]:
        """Send ``message`` to the instance's smtpd (8BITMIME); returns the
        recipients it refused at RCPT, as ``smtplib.SMTP.sendmail`` does."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            return client.sendmail(sender, list(recipients), message, mail_options=["BODY=8BITMIME"])

    def master_pid(self) -> int | None:
        path = self.root / "queue" / "pid" / "master.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([require_postfix(), "-c", str(self.config_dir), *args],
                              capture_output=True, text=True, timeout=60)

    def start(self, settings: Mapping[str, str]) -> None:
        self.config_dir.mkdir(parents=True)
        (self.root / "queue").mkdir()
        data = self.root / "data"
        data.mkdir()
        owner = pwd.getpwnam("postfix")
        os.chown(data, owner.pw_uid, owner.pw_gid)
        main = {**base_settings(self.root), **settings}
        (self.config_dir / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        smtpd = f"127.0.0.1:{self.smtp_port} inet n - n - - smtpd\n"
        (self.config_dir / "master.cf").write_text(smtpd + MASTER_CF)
        started = self._postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {started.stdout}{started.stderr}\n{self.log()}")
        wait_until(self._accepts, f"Postfix's smtpd on port {self.smtp_port}\n{self.log()}")

    def _accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.smtp_port), 1):
            return True
        return False

    def stop(self) -> None:
        """``postfix stop``; ``abort`` and then SIGKILL of the master if it lingers."""
        pid = self.master_pid()
        self._postfix("stop")
        if pid is None or _wait_gone(pid):
            return
        self._postfix("abort")
        if not _wait_gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, not a zombie (a daemonised master is reaped by whoever is PID 1)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _wait_gone(pid: int) -> bool:
    try:
        wait_until(lambda: not _alive(pid), f"Postfix master {pid} to exit", timeout=15)
    except AssertionError:
        return False
    return True


@contextlib.contextmanager
def running_postfix(settings: Mapping[str, str]) -> Iterator[Postfix]:
    """A started instance with ``settings`` over :func:`base_settings`;
    stopped and removed on exit. ``settings`` may use ``{root}`` for the
    instance's directory (e.g. the LMTP socket's path)."""
    require_postfix()
    root = Path(tempfile.mkdtemp(prefix="imapd-pf-"))
    os.chmod(root, 0o755)
    postfix = Postfix(root, _free_port())
    try:
        postfix.start({key: value.format(root=root) for key, value in settings.items()})
        yield postfix
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)


def lmtp_settings() -> dict[str, str]:
    """Every address of ``LMTP_DOMAIN`` to imapd's LMTP socket; imapd decides
    which users exist (``static:`` accepts any at SMTP time; imapd's 550 at
    RCPT turns into a bounce)."""
    return {
        "virtual_mailbox_domains": LMTP_DOMAIN,
        "virtual_mailbox_maps": "static:imapd",
        "virtual_transport": "lmtp:unix:{root}/imapd.lmtp",
    }


def mailbox_command_settings(command: str) -> dict[str, str]:
    """``LOCAL_DOMAIN``'s users (unix accounts) get their mail through
    ``command`` (local(8) runs it as the recipient, with $SENDER and
    $RECIPIENT in its environment)."""
    return {
        "mydestination": LOCAL_DOMAIN,
        "local_recipient_maps": "unix:passwd.byname",
        "mailbox_command": command,
    }


def ensure_unix_user(name: str) -> None:
    """A system account (no home, no login) for local(8) to deliver to.
    Kept afterwards: parallel test processes may use it at the same time."""
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        return
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", name], capture_output=True, timeout=60)
    pwd.getpwnam(name)  # KeyError (a test error) if useradd failed
