"""``imapd serve --workers N``: N server processes sharing the listening sockets.

The parent binds every listener once (the same Twisted endpoints, backlog
and error messages as one process; ports below 1024 need the same
privileges), then starts N workers: fresh interpreters running the same
``imapd serve`` command line, with the bound sockets passed as inherited
file descriptors (``subprocess`` ``pass_fds``) and described in the
environment (``IMAPD_WORKER``). Each worker adopts them
(``reactor.adoptStreamPort``) and accepts on them itself: the kernel hands
each new connection to one of the processes blocked in ``accept``/epoll on
the shared queue. Workers share the store as separate processes always
could (SQLite: WAL in one data directory, the engine's poller rings other
processes' changes; PostgreSQL: LISTEN/NOTIFY).

Why not fork after binding: a forked Twisted process inherits the parent's
reactor, threads and locks half-way; a fresh interpreter starts clean. Why
not ``SO_REUSEPORT``: every worker would bind its own queue, the kernel
hashes connections over them by address, so one busy or stuck worker keeps
its share of new clients waiting while others idle, a worker that dies
loses the connections queued on its socket, and a port 0 (tests) or a
privileged port would need each worker to bind again. One shared queue has
none of these; ``docs/architecture.md`` records the choice.

The parent (``Supervisor``) runs no reactor and serves nobody. It
restarts a worker that exits (crash, ``kill -9``) after a back-off that
grows while it keeps failing fast; forwards SIGTERM/SIGINT (stop: each
worker says BYE and closes its store) and SIGHUP (certificate reload);
exits when every worker is gone. Each worker holds the read end of a pipe
only the parent writes to: when the parent dies, even by SIGKILL, the
workers see end-of-file and stop, so no orphan keeps serving.
Readiness: each worker writes one line to a status pipe once it listens;
the parent logs ``listening on ...`` when all N have, so a client that sees
that line can reach every worker.

UNIX sockets (``--lmtp unix:PATH:mode=660``): the parent binds the path and
owns it; it removes it when it exits. A worker adopts the socket
(``adopt_unix_port``) without touching the path: Twisted's own adoption
would chmod it to 0666 (over the operator's ``mode=``) when the worker
starts and unlink it when the worker stops, taking it from the others.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, cast

from twisted.internet import tcp, unix
from twisted.internet.address import UNIXAddress
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from imapd.net.peer import format_peer, split_proxy
from imapd.net.service import ListenError, bottom_description, describe_listen_failure

log = Logger(namespace="imapd")

WORKER_ENV = "IMAPD_WORKER"
# A worker that lived at least this long counts as having worked: its next
# restart is immediate and its failure count starts again.
HEALTHY_SECONDS = 10.0
MAX_BACKOFF = 10.0
# Consecutive fast failures of a worker that never got ready before the
# parent gives up (a configuration the parent could not check).
MAX_FAILED_STARTS = 5
STOP_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker is told (``IMAPD_WORKER``): its number (1..count),
    the status pipe to report readiness on, the parent's lifeline pipe, and
    one inherited listening descriptor per listener, in listener order."""

    index: int
    count: int
    status_fd: int
    lifeline_fd: int
    fds: tuple[int, ...]

    def encode(self) -> str:
        return (f"{self.index}/{self.count};{self.status_fd};{self.lifeline_fd};"
                + ",".join(map(str, self.fds)))

    @classmethod
    def decode(cls, text: str) -> WorkerSpec:
        number, status, lifeline, fds = text.split(";")
        index, count = number.split("/")
        return cls(int(index), int(count), int(status), int(lifeline),
                   tuple(int(fd) for fd in fds.split(",") if fd))


def worker_spec(environ: Mapping[str, str] | None = None) -> WorkerSpec | None:
    """This process's ``WorkerSpec`` when a supervisor started it."""
    text = (os.environ if environ is None else environ).get(WORKER_ENV)
    return WorkerSpec.decode(text) if text else None


@dataclass(frozen=True, slots=True)
class BoundSocket:
    """One listener's socket, bound and listening in the parent."""

    kind: str
    description: str
    fd: int
    address: str
    path: str | None = None  # a UNIX socket's file, removed when the parent exits


class _Nobody(Factory):
    """The parent never runs its reactor, so never accepts: this factory
    only satisfies ``listen``."""

    protocol = Protocol
    noisy = False


def bind_all(
    reactor: Any, listeners: Sequence[tuple[str, str, bool]], backlog: int
) -> list[BoundSocket]:
    """Bind ``(kind, description, implicit_tls)`` listeners with Twisted's
    endpoints (same syntax and options as one process) without running the
    reactor; return duplicates of their descriptors for the workers.
    ``ListenError`` (one line) if one cannot be bound."""
    bound: list[BoundSocket] = []
    for kind, description, implicit_tls in listeners:
        endpoint = serverFromString(  # type: ignore[no-untyped-call]
            reactor, bottom_description(description, implicit_tls, backlog))
        result: list[Any] = []
        endpoint.listen(_Nobody()).addBoth(result.append)
        outcome = result[0] if result else None
        if isinstance(outcome, Failure):
            raise ListenError(describe_listen_failure(description, outcome))
        if outcome is None:
            raise ListenError(f"imapd: cannot listen on {description} before the server runs "
                              f"(with --workers, use tcp:, tcp6: or unix: endpoints)")
        fd = os.dup(outcome.fileno())
        host = outcome.getHost()
        path = _filesystem_path(host.name) if isinstance(host, UNIXAddress) else None
        bound.append(BoundSocket(kind, description, fd, format_peer(host), path))
    return bound


def _filesystem_path(name: bytes | str | None) -> str | None:
    """A UNIX socket's path, None for an abstract (``@name``) socket."""
    if not name:
        return None
    text = os.fsdecode(name)
    return None if text.startswith("\0") else text


def remove_socket_files(sockets: Sequence[BoundSocket]) -> None:
    """The parent is done: remove the UNIX socket files it bound (as one
    process's Twisted port does when it stops), if they are still sockets."""
    for bound in sockets:
        if bound.path is None:
            continue
        try:
            if stat.S_ISSOCK(os.lstat(bound.path).st_mode):
                os.unlink(bound.path)
        except OSError:
            pass  # gone already, or replaced by something that is not ours


@dataclass
class _Slot:
    """One worker position: its current process, when it started, and
    how often in a row it failed fast."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready: bool = False
    ever_ready: bool = False
    fast_failures: int = 0
    restart_at: float | None = None
    pid_history: list[int] = field(default_factory=list)


class Supervisor:
    """Starts and keeps ``count`` workers running ``command`` (see the
    module docstring); ``run`` returns the exit status."""

    def __init__(
        self, command: Sequence[str], sockets: Sequence[BoundSocket], count: int,
        *, clock: Callable[[], float] = time.monotonic, backoff: float = 0.25,
    ) -> None:
        self.command = list(command)
        self.sockets = list(sockets)
        self.slots = [_Slot(i + 1) for i in range(count)]
        self.clock = clock
        self.backoff = backoff  # first restart delay of a worker that failed fast
        self.stopping = False
        self.status = 0
        self._announced = False
        self._signals: list[int] = []
        self._stop_deadline = 0.0

    # --- the loop ------------------------------------------------------------

    def run(self) -> int:
        wake_r, wake_w = _pipe()
        self._status_r, self._status_w = _pipe()
        self._lifeline_r, self._lifeline_w = _pipe()
        previous_wakeup = signal.set_wakeup_fd(wake_w)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            for slot in self.slots:
                self._start(slot)
            while any(slot.process is not None for slot in self.slots) or not self.stopping:
                self._wait(wake_r)
                self._handle_signals()
                self._read_status()
                self._reap()
                self._restart_due()
                self._enforce_stop_deadline()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for fd in (wake_r, wake_w, self._status_r, self._status_w,
                       self._lifeline_r, self._lifeline_w):
                os.close(fd)
            remove_socket_files(self.sockets)
        log.info("imapd: all workers stopped")
        return self.status

    def _wait(self, wake_r: int) -> None:
        timeout = 1.0
        pending = [s.restart_at for s in self.slots if s.restart_at is not None]
        if pending:
            timeout = max(0.0, min(timeout, min(pending) - self.clock()))
        try:
            readable, _, _ = select.select([wake_r, self._status_r], [], [], timeout)
        except InterruptedError:
            return
        if wake_r in readable:
            _drain(wake_r)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT) and not self.stopping:
                self.stop(f"signal {signal.Signals(signum).name}")
            elif signum == signal.SIGHUP:
                self._send_all(signal.SIGHUP)  # each worker reloads its certificate

    def stop(self, why: str, status: int = 0) -> None:
        """Stop every worker (SIGTERM: BYE to clients, store closed); the
        loop ends when all are gone, SIGKILL after ``STOP_GRACE_SECONDS``."""
        log.info("imapd: stopping {n} worker(s) ({why})", n=len(self.slots), why=why)
        self.stopping = True
        self.status = status
        self._stop_deadline = self.clock() + STOP_GRACE_SECONDS
        for slot in self.slots:
            slot.restart_at = None
        self._send_all(signal.SIGTERM)

    def _send_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                try:
                    slot.process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def _enforce_stop_deadline(self) -> None:
        if self.stopping and self.clock() > self._stop_deadline:
            log.warn("imapd: workers did not stop in {s} s; killing them", s=STOP_GRACE_SECONDS)
            self._send_all(signal.SIGKILL)
            self._stop_deadline = self.clock() + STOP_GRACE_SECONDS

    # --- workers -------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        spec = WorkerSpec(slot.index, len(self.slots), self._status_w, self._lifeline_r,
                          tuple(s.fd for s in self.sockets))
        env = dict(os.environ)
        env[WORKER_ENV] = spec.encode()
        fds = (*spec.fds, self._status_w, self._lifeline_r)
        # A process group of its own: a terminal's Ctrl-C (or a group kill)
        # reaches only the parent, which stops each worker once.
        slot.process = subprocess.Popen(self.command, env=env, pass_fds=fds,
                                        stdin=subprocess.DEVNULL, process_group=0)
        slot.started, slot.ready, slot.restart_at = self.clock(), False, None
        slot.pid_history.append(slot.process.pid)
        log.info("imapd: started worker {i}/{n} (pid {pid})", i=slot.index, n=len(self.slots),
                 pid=slot.process.pid)

    def _read_status(self) -> None:
        """Lines ``ready PID`` from workers that listen now."""
        try:
            data = os.read(self._status_r, 65536)
        except BlockingIOError:
            return
        for line in data.decode("ascii", "replace").splitlines():
            word, _, pid = line.partition(" ")
            for slot in self.slots:
                if word == "ready" and slot.process is not None and str(slot.process.pid) == pid:
                    slot.ready = slot.ever_ready = True
        if not self._announced and all(slot.ready for slot in self.slots):
            self._announced = True
            for bound in self.sockets:
                proxy = " PROXY protocol," if split_proxy(bound.description)[0] else ""
                log.info("imapd: listening on {kind} {address} ({proxy}{n} workers)",
                         kind=bound.kind, address=bound.address, proxy=proxy.lstrip(),
                         n=len(self.slots))

    def _reap(self) -> None:
        for slot in self.slots:
            process = slot.process
            if process is None or process.poll() is None:
                continue
            slot.process = None
            code = process.returncode
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
            if self.stopping:
                log.info("imapd: worker {i} (pid {pid}) {how}", i=slot.index, pid=process.pid,
                         how=how)
                continue
            self._schedule_restart(slot, process.pid, how, code)

    def _schedule_restart(self, slot: _Slot, pid: int, how: str, code: int) -> None:
        lived = self.clock() - slot.started
        slot.fast_failures = 0 if lived >= HEALTHY_SECONDS else slot.fast_failures + 1
        if not slot.ever_ready and slot.fast_failures >= MAX_FAILED_STARTS:
            log.error("imapd: worker {i} {how} {n} times at start-up; giving up",
                      i=slot.index, how=how, n=slot.fast_failures)
            self.stop("a worker cannot start", code if code > 0 else 1)
            return
        delay = 0.0 if slot.fast_failures == 0 else min(
            MAX_BACKOFF, self.backoff * 2 ** (slot.fast_failures - 1))
        log.warn("imapd: worker {i} (pid {pid}) {how}; restarting in {d:.2f} s",
                 i=slot.index, pid=pid, how=how, d=delay)
        slot.restart_at = self.clock() + delay

    def _restart_due(self) -> None:
        now = self.clock()
        for slot in self.slots:
            if slot.restart_at is not None and slot.restart_at <= now and not self.stopping:
                self._start(slot)


def _pipe() -> tuple[int, int]:
    """A non-blocking pipe, not inherited unless passed explicitly."""
    read_end, write_end = os.pipe()
    for fd in (read_end, write_end):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    return read_end, write_end


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


# --- the worker side --------------------------------------------------------------

class _SharedUnixPort(unix.Port):
    """A worker's share of a UNIX listening socket the parent bound and
    owns (module docstring): stopping does not unlink the path."""

    def connectionLost(self, reason: Failure) -> None:
        # unix.Port's own connectionLost would unlink the path first.
        tcp.Port.connectionLost(self, reason)  # type: ignore[no-untyped-call]


def adopt_unix_port(reactor: Any, fd: int, factory: Any) -> IListeningPort:
    """Listen on an inherited UNIX listening socket (``fd`` stays open: the
    caller closes it). Twisted chmods the path as it starts listening, to
    the port's ``mode``: set to the path's current mode, it changes nothing,
    with no moment at Twisted's default 0666."""
    port = _SharedUnixPort._fromListeningDescriptor(  # type: ignore[no-untyped-call]
        reactor, fd, factory)
    with socket.socket(fileno=os.dup(fd)) as probe:
        path = _filesystem_path(probe.getsockname())
    if path is not None:
        port.mode = stat.S_IMODE(os.stat(path).st_mode)
    port.startListening()
    return cast(IListeningPort, port)


def report_ready(spec: WorkerSpec) -> None:
    """Tell the parent this worker listens (one short line: pipe writes
    below PIPE_BUF are atomic, so lines of several workers never mix)."""
    try:
        os.write(spec.status_fd, f"ready {os.getpid()}\n".encode("ascii"))
    except OSError as error:
        if error.errno not in (errno.EPIPE, errno.EAGAIN):
            raise
    finally:
        os.close(spec.status_fd)


class Lifeline:
    """The read end of the parent's lifeline pipe as a reactor reader: the
    parent never writes, so the only event is end-of-file when it is gone;
    then ``on_parent_gone`` runs (the worker stops)."""

    def __init__(self, fd: int, on_parent_gone: Callable[[], None]) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.on_parent_gone = on_parent_gone
        self.parent_gone = False

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "imapd-lifeline"

    def doRead(self) -> object:
        try:
            if os.read(self.fd, 1) == b"":
                from twisted.internet.error import ConnectionDone

                self.parent_gone = True
                return ConnectionDone()
        except BlockingIOError:
            pass
        return None

    def connectionLost(self, reason: Failure) -> None:
        # Called after doRead saw end-of-file, when epoll reports the hang-up
        # itself (without a read), and for every reader at shutdown: only
        # the first two mean the parent is gone.
        if not self.parent_gone:
            try:
                self.parent_gone = os.read(self.fd, 1) == b""
            except BlockingIOError:
                pass
        if self.parent_gone:
            log.warn("imapd: the supervising process is gone; stopping this worker")
            self.on_parent_gone()


def watch_parent(reactor: Any, spec: WorkerSpec) -> None:
    """Stop the reactor when the supervisor dies (``Lifeline``)."""

    def stop() -> None:
        if reactor.running:
            reactor.stop()

    reactor.addReader(Lifeline(spec.lifeline_fd, stop))


def worker_command(serve_args: Sequence[str]) -> list[str]:
    """The command line of a worker: this interpreter, ``imapd serve`` and
    the parent's own serve options (``--workers`` is ignored by workers)."""
    return [sys.executable, "-m", "imapd", "serve", *serve_args]
