"""Start the servers the benchmarks compare, on 127.0.0.1 (issue 8).

Peers:

* ``imapd``: this repository, ``python -m imapd serve`` on a fresh data
  directory; users via ``python -m imapd user add --password-stdin``.
* ``pymap-dict`` / ``pymap-maildir``: pymap (PyPI) in its own virtualenv
  (``PYMAP_VENV``, default ``/tmp/imapd-bench-peers/pymap-venv``; made by
  ``python -m bench.peers install``), with passlib + argon2-cffi so it
  verifies the same argon2id hashes as imapd.
* ``dovecot``: Debian's ``dovecot-imapd``, a private instance (own config,
  base_dir, state_dir, log, port) in a temp directory; Maildir; passdb
  passwd-file with the same argon2id hashes. Needs root (it drops to
  ``nobody`` for mail). Never touches the system instance. With
  ``PeerOptions(pop3=True)`` it serves POP3 too (Debian's
  ``dovecot-pop3d``; ``protocols = imap pop3``) with Dovecot's default
  ``pop3_uidl_format = %08Xu%08Xv``; imapd then gets ``--pop3``.

Every peer gets one user (``PeerOptions.user``) whose password hash has the
argon2id cost ``PeerOptions.hash_cost``: ``real`` is imapd's default
(t=3, m=64 MiB, p=4), ``cheap`` (t=1, m=64 KiB, p=1) keeps hashing out of
the non-login scenarios. All peers verify the very same kind of hash.

``running_peer(name, options)`` is a context manager yielding a ``Peer``
(host, port, pids, memory and CPU accounting); ``unavailable(name)`` says
why a peer cannot run here (None if it can).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("IMAPD_BENCH_PEERS", "/tmp/imapd-bench-peers"))
PYMAP_VENV = Path(os.environ.get("PYMAP_VENV", str(PEERS_DIR / "pymap-venv")))
PYMAP_PACKAGES = ("pymap==0.36.7", "passlib==1.7.4", "argon2-cffi")
TOOLS_VENV = Path(os.environ.get("BENCH_TOOLS_VENV", str(PEERS_DIR / "tools-venv")))
TOOLS_PACKAGES = ("py-spy",)
PEER_NAMES = ("imapd", "pymap-dict", "pymap-maildir", "dovecot")
HASH_COSTS = {"real": (3, 65536, 4), "cheap": (1, 64, 1)}  # argon2id (t, m KiB, p)
START_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class PeerOptions:
    user: str = "bench"
    password: str = "bench-pass-1"
    hash_cost: str = "cheap"
    max_connections: int = 12000
    durable: bool = True  # False: Dovecot mail_fsync=never (for filling big read-only mailboxes)
    pop3: bool = False  # also listen for POP3 (RFC 1939) on Peer.pop3_port


@dataclass
class Peer:
    """A running server. ``pids()`` are its processes now (Dovecot: the
    master and its children)."""

    name: str
    host: str
    port: int
    user: str
    password: str
    version: str
    workdir: Path
    process: subprocess.Popen[bytes]
    notes: list[str] = field(default_factory=list)
    pop3_port: int | None = None

    def pids(self) -> list[int]:
        return [self.process.pid, *_children(self.process.pid)]

    def memory_kib(self) -> tuple[int, int]:
        """(RSS, PSS) summed over the peer's processes, KiB. PSS shares
        common pages fairly between Dovecot's many processes."""
        rss = pss = 0
        for pid in self.pids():
            values = _smaps_rollup(pid)
            rss += values.get("Rss", 0)
            pss += values.get("Pss", 0)
        return rss, pss

    def cpu_seconds(self) -> float:
        """CPU time of the server: its processes plus their reaped children."""
        tick = os.sysconf("SC_CLK_TCK")
        main = _stat_fields(self.process.pid)
        # utime stime cutime cstime (proc(5) fields 14-17)
        total = sum(int(v) for v in main[11:15]) if main else 0
        for pid in _children(self.process.pid):
            fields = _stat_fields(pid)
            if fields:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def log_tail(self, lines: int = 20) -> str:
        log = self.workdir / "server.log"
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- process accounting ------------------------------------------------------

def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat fields after the command name (index 0 = state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2:].split()


def _children(pid: int) -> list[int]:
    """All descendants of ``pid``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def _smaps_rollup(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return values
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0])
    return values


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path, greeting: bytes = b"* OK") -> None:
    """Until ``port`` answers with ``greeting`` (IMAP ``* OK``; POP3 ``+OK``)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.settimeout(5)
                if sock.recv(64).startswith(greeting):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer on port {port}:\n{log.read_text(errors='replace')[-2000:]}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def argon2_hash(password: str, cost: str) -> str:
    """An argon2id hash in the PHC format (``$argon2id$v=19$...``)."""
    import argon2  # imapd's own dependency

    t, m, p = HASH_COSTS[cost]
    return argon2.PasswordHasher(time_cost=t, memory_cost=m, parallelism=p).hash(password)


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file soft limit towards ``wanted``
    (children inherit it); returns the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# --- availability ------------------------------------------------------------

def unavailable(name: str) -> str | None:
    """Why peer ``name`` cannot run on this machine, or None."""
    if name == "imapd":
        return None
    if name.startswith("pymap"):
        if not (PYMAP_VENV / "bin" / "pymap").exists():
            return f"pymap not installed in {PYMAP_VENV} (run: python -m bench.peers install)"
        return None
    if name == "dovecot":
        if shutil.which("dovecot") is None:
            return "dovecot not installed (apt-get install -y dovecot-imapd)"
        if os.geteuid() != 0:
            return "dovecot needs root (it switches to nobody for mail access)"
        return None
    if name == "dovecot-pop3":
        return unavailable("dovecot") or (
            None if Path(DOVECOT_POP3).exists() else "dovecot's POP3 not installed (apt-get install -y dovecot-pop3d)")
    return f"unknown peer {name!r}"


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        out["imapd"] = f"git {head}"
    if unavailable("pymap-dict") is None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out["pymap"] = subprocess.run([str(PYMAP_VENV / "bin" / "pymap"), "--version"],
                                          capture_output=True, text=True, timeout=30).stdout.strip()
    if shutil.which("dovecot"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out["dovecot"] = subprocess.run(["dovecot", "--version"], capture_output=True,
                                            text=True, timeout=10).stdout.strip()
    return out


# --- imapd -------------------------------------------------------------------

def _imapd_env() -> dict[str, str]:
    env = dict(os.environ, IMAPD_ALLOW_ROOT="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("IMAPD_DATA", None)
    return env


def _start_imapd(workdir: Path, options: PeerOptions) -> Peer:
    data = workdir / "imapd-data"
    t, m, p = HASH_COSTS[options.hash_cost]
    subprocess.run(
        [sys.executable, "-m", "imapd", "user", "add", options.user, "--password-stdin",
         "--data", str(data), "--argon2", f"t={t},m={m},p={p}"],
        input=options.password + "\n", text=True, env=_imapd_env(), check=True,
        capture_output=True, timeout=120,
    )
    port = free_port()
    limit = str(options.max_connections)
    log = workdir / "server.log"
    argv = [
        sys.executable, "-m", "imapd", "serve", "--data", str(data),
        "--imap", f"tcp:{port}:interface=127.0.0.1", "--imaps", "none", "--log-level", "warn",
        "--max-connections", limit, "--max-connections-per-ip", limit,
        "--max-connections-per-user", limit,
    ]
    pop3_port = free_port() if options.pop3 else None
    if pop3_port is not None:
        argv += ["--pop3", f"tcp:{pop3_port}:interface=127.0.0.1"]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=_imapd_env(), cwd=workdir)
    _wait_for_port(process, port, log)
    if pop3_port is not None:
        _wait_for_port(process, pop3_port, log, b"+OK")
    return Peer("imapd", "127.0.0.1", port, options.user, options.password,
                versions().get("imapd", "?"), workdir, process,
                ["SQLite store, synchronous=FULL (fsync on every commit)"], pop3_port)


# --- pymap -------------------------------------------------------------------

PASSLIB_CFG = """[passlib]
schemes = argon2
default = argon2
argon2__type = ID
argon2__rounds = {t}
argon2__memory_cost = {m}
argon2__parallelism = {p}
"""


def _start_pymap(workdir: Path, options: PeerOptions, backend: str) -> Peer:
    t, m, p = HASH_COSTS[options.hash_cost]
    cfg = workdir / "passlib.ini"
    cfg.write_text(PASSLIB_CFG.format(t=t, m=m, p=p))
    port = free_port()
    argv = [str(PYMAP_VENV / "bin" / "pymap"), "--passlib-cfg", str(cfg), "--no-tls",
            "--host", "127.0.0.1", "--port", str(port), backend]
    notes: list[str] = []
    if backend == "dict":
        argv += ["--demo-user", options.user, "--demo-password", options.password]
        notes.append("in-memory backend: not durable")
    else:
        base = workdir / "maildir-base"
        base.mkdir()
        (base / "pymap-etc-passwd").write_text(f"{options.user}:x::::{options.user}:\r\n")
        (base / "pymap-etc-shadow").write_text(f"{options.user}:{argon2_hash(options.password, options.hash_cost)}\r\n")
        argv += [str(base)]
        notes.append("Maildir backend (no fsync of message files)")
    log = workdir / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
    _wait_for_port(process, port, log)
    return Peer(f"pymap-{backend}", "127.0.0.1", port, options.user, options.password,
                versions().get("pymap", "?"), workdir, process, notes)


# --- dovecot -----------------------------------------------------------------

DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/server.log
info_log_path = /dev/null
protocols = imap{pop3_protocol}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
default_process_limit = {limit}
default_client_limit = {clients}
mail_fsync = {fsync}
passdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
protocol imap {{
  mail_max_userip_connections = {clients}
}}
service imap-login {{
  chroot =
  service_count = 0
  process_min_avail = 2
  client_limit = {clients}
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service imap {{
  process_limit = {limit}
}}
service auth {{
  client_limit = {clients}
}}
service anvil {{
  chroot =
  client_limit = {anvil}
}}
"""

DOVECOT_POP3 = "/usr/lib/dovecot/pop3"

# Appended when PeerOptions.pop3: Dovecot's default UIDL format, written out
# (imapd's --pop3-uidl-format dovecot gives the same ids).
DOVECOT_POP3_CONF = """\
pop3_uidl_format = %08Xu%08Xv
protocol pop3 {{
  mail_max_userip_connections = {clients}
}}
service pop3-login {{
  chroot =
  service_count = 0
  process_min_avail = 2
  client_limit = {clients}
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service pop3 {{
  process_limit = {limit}
}}
"""


def _start_dovecot(workdir: Path, options: PeerOptions) -> Peer:
    workdir.chmod(0o755)  # mail processes run as nobody and must reach home/
    for name in ("run", "state", "home"):
        (workdir / name).mkdir()
    shutil.chown(workdir / "home", "nobody", "nogroup")
    password_hash = argon2_hash(options.password, options.hash_cost)
    (workdir / "passwd").write_text(f"{options.user}:{{ARGON2ID}}{password_hash}\n")
    port = free_port()
    limit = options.max_connections + 100
    conf = workdir / "dovecot.conf"
    fsync = "optimized" if options.durable else "never"
    pop3_port = free_port() if options.pop3 else None
    text = DOVECOT_CONF.format(root=workdir, port=port, limit=limit, clients=limit * 2, anvil=limit * 2 + 100,
                               fsync=fsync, pop3_protocol=" pop3" if pop3_port else "")
    if pop3_port is not None:
        text += DOVECOT_POP3_CONF.format(port=pop3_port, limit=limit, clients=limit * 2)
    conf.write_text(text)
    raise_fd_limit(limit * 2 + 1000)
    process = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=workdir)
    (workdir / "server.log").touch()
    _wait_for_port(process, port, workdir / "server.log")
    if pop3_port is not None:
        _wait_for_port(process, pop3_port, workdir / "server.log", b"+OK")
    return Peer("dovecot", "127.0.0.1", port, options.user, options.password,
                versions().get("dovecot", "?"), workdir, process,
                [f"Maildir, mail_fsync={fsync}, login service_count=0 (high-performance mode), "
                 "one imap process per connection, no hibernation"]
                + (["POP3: one pop3 process per connection, pop3_uidl_format=%08Xu%08Xv"] if pop3_port else []),
                pop3_port)


@contextlib.contextmanager
def running_peer(name: str, options: PeerOptions = PeerOptions()) -> Iterator[Peer]:
    """Start peer ``name`` in a fresh temp directory; stop and remove it on exit."""
    reason = unavailable("dovecot-pop3" if name == "dovecot" and options.pop3 else name)
    if reason:
        raise RuntimeError(f"{name} unavailable: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix=f"imapd-bench-{name}-"))
    peer: Peer | None = None
    try:
        if name == "imapd":
            peer = _start_imapd(workdir, options)
        elif name == "pymap-dict":
            peer = _start_pymap(workdir, options, "dict")
        elif name == "pymap-maildir":
            peer = _start_pymap(workdir, options, "maildir")
        else:
            peer = _start_dovecot(workdir, options)
        yield peer
    finally:
        if peer is not None:
            stop_process(peer.process)
        shutil.rmtree(workdir, ignore_errors=True)


def install(dovecot: bool) -> None:
    """Create pymap's virtualenv and the tools one (py-spy), and apt-get
    install Dovecot if asked."""
    if not (PYMAP_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PYMAP_VENV)], check=True)
    subprocess.run([str(PYMAP_VENV / "bin" / "pip"), "install", "-q", *PYMAP_PACKAGES], check=True)
    if not (TOOLS_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
    subprocess.run([str(TOOLS_VENV / "bin" / "pip"), "install", "-q", *TOOLS_PACKAGES], check=True)
    if dovecot and shutil.which("dovecot") is None:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(["apt-get", "install", "-y", "dovecot-imapd", "dovecot-pop3d"], check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install pymap and py-spy into their own venvs (and Dovecot with --dovecot)")
    inst.add_argument("--dovecot", action="store_true")
    sub.add_parser("status", help="which peers can run here")
    serve = sub.add_parser("serve", help="start one peer and wait (Ctrl-C stops it)")
    serve.add_argument("name", choices=PEER_NAMES)
    serve.add_argument("--hash-cost", choices=sorted(HASH_COSTS), default="cheap")
    args = parser.parse_args(argv)
    if args.command == "install":
        install(args.dovecot)
    elif args.command == "status":
        for name in PEER_NAMES:
            print(f"{name:<15} {unavailable(name) or 'available'}")
        for key, value in versions().items():
            print(f"{key:<15} {value}")
    else:
        options = PeerOptions(hash_cost=args.hash_cost)
        with running_peer(args.name, options) as peer:
            print(f"{peer.name} on {peer.host}:{peer.port} user {peer.user} password {peer.password}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while peer.process.poll() is None:
                    time.sleep(1)


if __name__ == "__main__":
    main()
