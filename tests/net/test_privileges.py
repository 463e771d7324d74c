"""Running as an unprivileged user (``imapd.net.privileges``, issue 17 §
Service): started as root, ``imapd serve --user`` (and ``twistd imapd
--user``) binds a port below 1024, then runs as that user, who owns the data
directory; root without ``--user`` is refused; a server not started as root
refuses a data directory that is not its own. Real processes on real
sockets, checked from /proc."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from imapd.net import privileges
from tests.support.launcher import imapd_launcher
from tests.support.pinned_skips import Pin
from tests.support.postfix import ensure_unix_user
from tests.support.server import (
    RunningServer, add_user, imapd_command, running_server, subprocess_env,
)
from tests.support.waiting import wait_until

NOT_ROOT = "switching users needs root (the suite runs as root in CI)"
PINNED_SKIPS = (Pin.exact(NOT_ROOT, "only root can bind below 1024 and change user", in_ci=False),)
ACCOUNT = "imapd-test"
MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def account() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    ensure_unix_user(ACCOUNT)
    return pwd.getpwnam(ACCOUNT)


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the unprivileged account can reach (pytest's tmp_path
    sits below a root-only 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="imapd-priv-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def free_privileged_port() -> int:
    for port in range(1023, 600, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 1024")


def ids(pid: int) -> tuple[int, int]:
    """The real uid and gid of ``pid`` (``/proc/PID/status``)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def check_serving(server: RunningServer, port: int, user: pwd.struct_passwd) -> None:
    """Login and APPEND work (the store is writable by the user) and every
    file of the data directory is the user's."""
    imap = imaplib.IMAP4("127.0.0.1", port)
    try:
        assert imap.login("alice", "wonderland")[0] == "OK"
        assert imap.append("INBOX", None, None, MESSAGE)[0] == "OK"
        assert imap.select("INBOX") == ("OK", [b"1"])
    finally:
        imap.logout()
    paths = [server.data_dir, *server.data_dir.rglob("*")]
    assert len(paths) > 3
    assert {p: (p.lstat().st_uid, p.lstat().st_gid) for p in paths} == {
        p: (user.pw_uid, user.pw_gid) for p in paths}


@pytest.mark.parametrize("twistd", [False, True])
def test_serve_binds_below_1024_then_runs_as_the_user(
    account: pwd.struct_passwd, base: Path, twistd: bool
) -> None:
    port = free_privileged_port()
    args = ["--imap", f"tcp:{port}:interface=127.0.0.1", "--user", ACCOUNT]
    with running_server(base, {"alice": "wonderland"}, args, twistd=twistd) as server:
        wait_until(lambda: "running as user imapd-test" in server.log(), "the switch to the user")
        assert ids(server.process.pid) == (account.pw_uid, account.pw_gid)
        groups = Path(f"/proc/{server.process.pid}/status").read_text().split("Groups:")[1]
        assert "0" not in groups.splitlines()[0].split()  # root's group given up too
        check_serving(server, port, account)


def test_workers_run_as_the_user(account: pwd.struct_passwd, base: Path) -> None:
    """The parent stays root (it only restarts workers, like Dovecot's
    master); every worker, which serves clients, runs as the user."""
    port = free_privileged_port()
    args = ["--imap", f"tcp:{port}:interface=127.0.0.1", "--user", ACCOUNT, "--workers", "2"]
    with running_server(base, {"alice": "wonderland"}, args) as server:
        wait_until(lambda: server.log().count("running as user imapd-test") == 2,
                   "both workers switched")
        workers = children(server.process.pid)
        assert len(workers) == 2
        for pid in workers:
            assert ids(pid) == (account.pw_uid, account.pw_gid)
        check_serving(server, port, account)


def test_root_without_user_is_refused(base: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    env = subprocess_env()
    del env["IMAPD_ALLOW_ROOT"]
    # A public listener (every interface), or a loopback one beside a public one.
    for endpoints in (["--imap", "tcp:0"], ["--imap", "tcp:0:interface=127.0.0.1",
                                            "--pop3", "tcp:0:interface=0.0.0.0"]):
        done = subprocess.run(imapd_command("serve", "--data", str(base / "d"), *endpoints),
                              capture_output=True, text=True, env=env, timeout=60)
        assert (done.returncode, done.stderr) == (2, (
            "imapd: refusing to run as root: give --user NAME (ports are bound first, then root "
            "is given up) or --allow-root (or IMAPD_ALLOW_ROOT=1)\n"))
        assert not (base / "d").exists()  # refused before anything was made


def test_root_on_loopback_only_runs_with_a_warning(base: Path) -> None:
    """The README's quick start, run by root: every listener on loopback (or
    a UNIX socket), so nobody on the network reaches it: it serves, and says
    once that a service wants --user."""
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    env = subprocess_env()
    del env["IMAPD_ALLOW_ROOT"]
    process = subprocess.Popen(
        imapd_command("serve", "--data", str(base / "d"), "--imap", "tcp:0:interface=127.0.0.1",
                      "--lmtp", f"unix:{base / 'lmtp.sock'}"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "listening on IMAP" in line:
                break
        assert any("listening on IMAP 127.0.0.1:" in line for line in lines), lines
        assert lines[0] == ("imapd: warning: running as root, which only a server on loopback "
                            "may do; for a service give --user NAME\n")
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def launcher() -> Iterator[Path]:
    """An imapd command unprivileged accounts can run (the checkout may be
    out of their reach: ``tests.support.launcher``)."""
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    with imapd_launcher("nobody") as command:
        yield command


def as_user(launcher: Path, uid: int, gid: int, *args: str) -> list[str]:
    """``imapd ARGS`` run by ``uid`` (``setpriv``)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", str(launcher), *args]


def test_a_data_dir_owned_by_someone_else_is_refused(
    account: pwd.struct_passwd, base: Path, launcher: Path
) -> None:
    data = base / "d"
    add_user(data, "alice", "wonderland")  # as root: root owns it
    done = subprocess.run(as_user(launcher, account.pw_uid, account.pw_gid, "serve", "--data",
                                  str(data), "--imap", "tcp:0:interface=127.0.0.1"),
                          capture_output=True, text=True, env=subprocess_env(), cwd=base,
                          timeout=60)
    assert (done.returncode, done.stderr) == (2, (
        f"imapd: data directory {data} is owned by root, not by {ACCOUNT} who runs the server "
        f"(chown -R {ACCOUNT} {data}, or start as root with --user {ACCOUNT})\n"))


def test_user_needs_root_and_a_real_account(account: pwd.struct_passwd, base: Path,
                                            launcher: Path) -> None:
    missing = subprocess.run(
        imapd_command("serve", "--data", str(base / "d"), "--user", "no-such-imapd-user"),
        capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert (missing.returncode, missing.stderr) == (
        2, "imapd: --user no-such-imapd-user: no such user\n")
    nobody = pwd.getpwnam("nobody")
    as_other = subprocess.run(
        as_user(launcher, nobody.pw_uid, nobody.pw_gid, "serve", "--data", str(base / "d"),
                "--user", ACCOUNT),
        capture_output=True, text=True, env=subprocess_env(), cwd=base, timeout=60)
    assert (as_other.returncode, as_other.stderr) == (
        2, f"imapd: --user {ACCOUNT} needs root to switch to it (running as nobody, uid "
           f"{pwd.getpwnam('nobody').pw_uid})\n")


@pytest.mark.parametrize("endpoints, local", [
    (["tcp:1143:interface=127.0.0.1"], True),
    (["tcp:0:interface=127.0.0.2", "unix:/run/imapd/lmtp:mode=660"], True),
    ([r"tcp6:0:interface=\:\:1", "haproxy:tcp:1:interface=localhost"], True),
    (["tcp:143"], False),
    (["ssl:993:interface=0.0.0.0"], False),
    (["tcp:1143:interface=127.0.0.1", "tcp:110:interface=192.0.2.1"], False),
    (["tcp:1:interface=mail.example.org"], False),
    (["systemd:domain=INET:index=0"], False),
])
def test_local_only(endpoints: list[str], local: bool) -> None:
    assert privileges.local_only(endpoints) is local
