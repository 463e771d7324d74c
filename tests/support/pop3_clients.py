"""Real POP3 clients for end-to-end tests: fetchmail and getmail6.

Both are Debian packages (``fetchmail``, ``getmail6``; ``.ci/run`` installs
them). Each runner writes the client's own configuration into a work
directory, runs the client once against a server on loopback, and returns
the messages it delivered, in retrieval order, as the client stored them:

* ``Fetchmail`` hands each message to an MDA (``mda`` option: a tiny shell
  script writing one numbered file per message). ``keep`` leaves the mail on
  the server; ``uidl`` makes fetchmail remember the UIDL unique-ids (RFC 1939
  §7) it has seen in its ``idfile`` and skip them on the next poll. With
  ``--invisible``, ``no rewrite`` and ``no stripcr`` it passes the message
  through untouched (no Received: line, CRLF kept). ``sslproto ''`` stops
  it from trying STLS: loopback, plain USER/PASS, as imapd allows there
  (or STLS / POP3S on request).
* ``Getmail`` uses a ``SimplePOP3Retriever`` and a ``Maildir`` destination.
  getmail's Maildir writes LF line ends and puts a ``Return-Path:`` line on
  top (``<unknown>``: POP3 has no envelope sender); ``delivered_to`` and
  ``received`` are turned off so it adds nothing else. getmail refuses to
  write a Maildir as root, so under root the Maildir belongs to ``nobody``
  (destination ``user = nobody``) in a directory that user can reach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FETCHMAIL = shutil.which("fetchmail")
GETMAIL = shutil.which("getmail")
FETCHMAIL_MISSING = "fetchmail (Debian package fetchmail) is not installed; .ci/run installs it"
GETMAIL_MISSING = "getmail (Debian package getmail6) is not installed; .ci/run installs it"
CLIENT_TIMEOUT = 60.0

# fetchmail exit statuses (fetchmail(1) "EXIT CODES"): 0 mail retrieved, 1 no new mail.
FETCHMAIL_GOT_MAIL, FETCHMAIL_NO_MAIL = 0, 1

# fetchmail 6.4 user options: sslproto '' turns opportunistic STLS off; a
# version like tls1.2+ makes STLS mandatory; ssl is implicit TLS.
FETCHMAIL_TLS = {"none": "sslproto ''", "stls": "sslproto 'tls1.2+' no sslcertck", "pop3s": "ssl no sslcertck"}

MDA_SCRIPT = """#!/bin/sh
# One file per message, numbered in delivery order (fetchmail runs the MDA once per message, in turn).
n=$(ls "$1" | wc -l)
exec cat > "$1/$(printf %05d "$n")"
"""


@dataclass
class Run:
    """One client run: its exit status, its log (stdout and stderr) and the messages it delivered this time."""

    status: int
    log: str
    messages: list[bytes]


class Fetchmail:
    """fetchmail polling one account with ``uidl`` and ``keep`` (or, with
    ``keep=False``, deleting what it retrieved); the UIDL state (``idfile``)
    lives in ``workdir`` and survives between runs. ``tls``: ``"none"``
    (plain, no STLS), ``"stls"`` (STLS required, RFC 2595) or ``"pop3s"``
    (implicit TLS, RFC 8314), the certificate not checked (imapd's
    self-signed one)."""

    def __init__(self, workdir: Path, host: str, port: int, user: str, password: str,
                 *, keep: bool = True, tls: str = "none") -> None:
        assert FETCHMAIL is not None
        self.workdir = workdir
        self.out = workdir / "delivered"
        self.out.mkdir(parents=True)
        mda = workdir / "mda.sh"
        mda.write_text(MDA_SCRIPT)
        mda.chmod(0o755)
        self.idfile = workdir / "fetchids"
        self.rcfile = workdir / "fetchmailrc"
        self.rcfile.write_text(
            "set no syslog\n"
            f"poll {host} service {port} protocol pop3 uidl auth password\n"
            f'  user "{user}" there with password "{password}" is root here\n'
            f"  options {'keep' if keep else 'no keep'} no rewrite no stripcr {FETCHMAIL_TLS[tls]}\n"
            f'  mda "{mda} {self.out}"\n')
        self.rcfile.chmod(0o600)  # fetchmail refuses an rcfile others can read (it holds a password)

    def remember(self, account: str, unique_ids: list[str]) -> None:
        """Write fetchmail's ``idfile`` as if it had already seen these UIDL
        ids (one ``user@host id`` line each, fetchmail 6's format): the
        state a client carries over from a previous server."""
        self.idfile.write_text("".join(f"{account} {uid}\n" for uid in unique_ids))
        self.idfile.chmod(0o600)  # fetchmail refuses an idfile others may read

    def run(self) -> Run:
        """Poll once (``--nodetach``: no daemon); the messages new to this run."""
        assert FETCHMAIL is not None
        before = set(os.listdir(self.out))
        env = dict(os.environ, FETCHMAILHOME=str(self.workdir), HOME=str(self.workdir))
        argv = [FETCHMAIL, "-f", str(self.rcfile), "--nodetach", "--nosyslog", "-v", "--invisible",
                "-i", str(self.idfile), "--pidfile", str(self.workdir / "fetchmail.pid")]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.workdir,
                              timeout=CLIENT_TIMEOUT, stdin=subprocess.DEVNULL)
        new = sorted(set(os.listdir(self.out)) - before)
        return Run(done.returncode, done.stdout + done.stderr, [(self.out / n).read_bytes() for n in new])


class Getmail:
    """getmail6 retrieving one account into a fresh Maildir (``delete``
    as given; ``tls``: POP3S, RFC 8314); its state directory (``oldmail``
    files) is in ``workdir``."""

    def __init__(self, workdir: Path, host: str, port: int, user: str, password: str,
                 *, delete: bool, tls: bool = False) -> None:
        assert GETMAIL is not None
        self.workdir = workdir
        self.state = workdir / "getmail-state"
        self.state.mkdir(parents=True)
        # Under root the Maildir must be reachable by nobody: a 0755 temp directory of its own.
        self.root = Path(tempfile.mkdtemp(prefix="imapd-getmail-"))
        self.root.chmod(0o755)
        self.maildir = self.root / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        as_root = os.geteuid() == 0
        if as_root:
            for path in (self.maildir, *(self.maildir / s for s in ("cur", "new", "tmp"))):
                shutil.chown(path, "nobody")
        self.rcfile = workdir / "getmailrc"
        self.rcfile.write_text(
            f"[retriever]\ntype = {'SimplePOP3SSLRetriever' if tls else 'SimplePOP3Retriever'}\n"
            f"server = {host}\nport = {port}\nusername = {user}\npassword = {password}\n\n"
            f"[destination]\ntype = Maildir\npath = {self.maildir}/\n"
            + ("user = nobody\n" if as_root else "")
            + f"\n[options]\ndelete = {str(delete).lower()}\nread_all = false\n"
            "delivered_to = false\nreceived = false\nverbose = 2\n")
        self.rcfile.chmod(0o600)

    def run(self) -> Run:
        """Retrieve once; the messages delivered, in getmail's order (its
        Maildir names start with the time and a per-run counter ``Q<n>``)."""
        assert GETMAIL is not None
        before = set(os.listdir(self.maildir / "new"))
        argv = [GETMAIL, f"--getmaildir={self.state}", f"--rcfile={self.rcfile}"]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.workdir,
                              timeout=CLIENT_TIMEOUT, stdin=subprocess.DEVNULL)
        new = sorted(set(os.listdir(self.maildir / "new")) - before, key=_maildir_order)
        return Run(done.returncode, done.stdout + done.stderr,
                   [(self.maildir / "new" / n).read_bytes() for n in new])

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _maildir_order(name: str) -> tuple[int, int]:
    """getmail names files ``<seconds>.M<usec>P<pid>Q<counter>R<random>.<host>``:
    order by the seconds then the per-run delivery counter."""
    seconds, _, rest = name.partition(".")
    counter = rest.partition("Q")[2].partition("R")[0]
    return int(seconds), int(counter) if counter.isdigit() else 0


def as_getmail_stores(message: bytes) -> bytes:
    """What getmail's Maildir holds for ``message`` retrieved over POP3: a
    ``Return-Path: <unknown>`` line, then the message with LF line ends."""
    return b"Return-Path: <unknown>\n" + message.replace(b"\r\n", b"\n")
