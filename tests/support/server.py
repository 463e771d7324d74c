"""Start the real server as a subprocess, for end-to-end and conformance tests.

    with running_server(tmp_path, users={"alice": "wonderland"}) as server:
        host, port, data_dir = server
        imaplib.IMAP4(host, port).login("alice", "wonderland")

Users are created through the CLI (``imapd user add --password-stdin``), the
server runs ``python -m imapd serve --data D --imap tcp:0:interface=127.0.0.1``
and the helper learns the port from its ``listening on IMAP host:port`` log
line. On exit it sends SIGTERM and waits. Works without installing the
package (the repo root is put on PYTHONPATH). ``server.log()`` returns what
the server logged so far (stdout and stderr).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on IMAP (\[[^\]]+\]|[^\s:]+):(\d+)")
LOOPBACK_ENDPOINT = "tcp:0:interface=127.0.0.1"


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("IMAPD_DATA", None)
    # The suite runs as root in containers and CI, where the server would
    # refuse to keep root (imapd.net.privileges); tests of that unset it.
    env["IMAPD_ALLOW_ROOT"] = "1"
    return env


def imapd_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "imapd", *args]


def twistd_command(*args: str) -> list[str]:
    runner = "from twisted.scripts.twistd import run; run()"
    return [sys.executable, "-c", runner, "--nodaemon", "--pidfile=", "imapd", *args]


def run_cli(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m imapd ARGS`` and return the completed process."""
    return subprocess.run(
        imapd_command(*args), input=stdin, capture_output=True, text=True,
        env=subprocess_env(), timeout=60, check=check,
    )


def add_user(data_dir: Path, name: str, password: str) -> None:
    run_cli("user", "add", name, "--password-stdin", "--data", str(data_dir), stdin=password + "\n")


@dataclass
class RunningServer:
    host: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[object]:
        return iter((self.host, self.port, self.data_dir))

    def log(self) -> str:
        return "".join(self.lines)


def _pump_output(process: subprocess.Popen[bytes], sink: list[str], events: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace")
        sink.append(line)
        events.put(line)


@contextlib.contextmanager
def running_server(
    tmp_dir: Path,
    users: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    *,
    twistd: bool = False,
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Start ``imapd serve`` (or ``twistd -n imapd``) on a loopback
    ephemeral port with a fresh data directory under ``tmp_dir``."""
    data_dir = tmp_dir / "imapd-data"
    for name, password in (users if users is not None else {"alice": "wonderland"}).items():
        add_user(data_dir, name, password)
    args = ["--data", str(data_dir), "--imap", LOOPBACK_ENDPOINT, *extra_args]
    argv = twistd_command(*args) if twistd else imapd_command("serve", *args)
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=subprocess_env(), cwd=tmp_dir,
    )
    lines: list[str] = []
    events: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump_output, args=(process, lines, events), daemon=True).start()
    try:
        host, port = _wait_for_listening(process, events, lines, startup_timeout)
        yield RunningServer(host, port, data_dir, process, lines)
    finally:
        stop_process(process)


def _wait_for_listening(
    process: subprocess.Popen[bytes], events: queue.Queue[str], lines: list[str], timeout: float
) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = events.get(timeout=0.1)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        match = LISTENING.search(line)
        if match:
            return match.group(1).strip("[]"), int(match.group(2))
    raise RuntimeError("server did not start listening:\n" + "".join(lines))


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, wait; SIGKILL if it does not stop. Returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
