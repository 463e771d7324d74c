"""swaks (Debian package) speaks LMTP to a real ``imapd serve --lmtp``
(issue 15), over a UNIX socket and over loopback TCP, with and without
``--pipeline``: several recipients, one unknown, each with its own reply in
swaks's transcript (RFC 2033 §4.2: one reply per accepted recipient after
DATA), and the mail read back over IMAP byte for byte.

swaks always ends the DATA it sends with CRLF before the final "."
(its transcript shows it), so it is given the message without its last
line end and the stored message ends with exactly one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.test_lmtp import USERS, last_message, lmtp_port, stored_as_sent
from tests.support.pinned_skips import Pin, require_tool
from tests.support.server import LOOPBACK_ENDPOINT, RunningServer, running_server
from tests.support.waiting import wait_until

MISSING = "swaks (Debian package swaks) is not installed; .ci/run installs it"
PINNED_SKIPS = (Pin.exact(MISSING, "swaks is a Debian package; .ci/run installs it", in_ci=False),)
SENDER = "s@example.org"
SOCKET = "lmtp.sock"


def swaks_command() -> str:
    """The swaks command. Missing: a pinned skip, but a failure under CI."""
    return require_tool(shutil.which("swaks"), MISSING)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    swaks_command()
    directory = tmp_path_factory.mktemp("e2e-swaks")
    args = ["--lmtp", LOOPBACK_ENDPOINT, "--lmtp", f"unix:{directory / SOCKET}"]
    with running_server(directory, USERS, args) as s:
        wait_until(lambda: "listening on LMTP unix:" in s.log(), "the LMTP socket")
        yield s


def swaks(server: RunningServer, transport: str, message: bytes, rcpts: list[str],
          *extra: str) -> subprocess.CompletedProcess[str]:
    """Run swaks with ``message`` as DATA (from a file: swaks keeps its bytes)."""
    path = server.data_dir.parent / "message.eml"
    path.write_bytes(message)
    where = (["--socket", str(server.data_dir.parent / SOCKET)] if transport == "unix"
             else ["--server", server.host, "--port", str(lmtp_port(server))])
    argv = [swaks_command(), "--protocol", "LMTP", *where, "--helo", "e2e.test", "--from", SENDER,
            "--to", ",".join(rcpts), "--data", f"@{path}", "--timeout", "30", *extra]
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=60)


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_swaks_lmtp_per_recipient_replies_and_exact_storage(
        server: RunningServer, transport: str, pipeline: bool) -> None:
    subject = f"swaks {transport} {'pipelined' if pipeline else 'lockstep'}"
    message = (f"From: {SENDER}\r\nSubject: {subject}\r\n\r\n".encode() +
               b".leading dot\r\n..two\r\n.\r\n8-bit: \xc3\xa9t\xc3\xa9\r\nend")
    rcpts = ["alice@example.org", "nobody@example.org", "Bob@example.org"]
    done = swaks(server, transport, message, rcpts, *(["--pipeline"] if pipeline else []))
    transcript = done.stdout
    assert done.returncode == 0, transcript + done.stderr  # some recipients took it
    replies = [line for line in transcript.splitlines() if line.startswith(("<-", "<**"))]
    assert "<** 550 5.1.1 <nobody@example.org> User unknown" in replies, transcript
    # After the message: one reply per accepted recipient, in RCPT order.
    end = replies.index("<-  354 Send message, end with <CRLF>.<CRLF>")
    assert replies[end + 1:end + 3] == ["<-  250 2.0.0 <alice@example.org> Saved",
                                        "<-  250 2.0.0 <Bob@example.org> Saved"], transcript
    sent = [line for line in transcript.splitlines() if line.startswith(" ->")]
    first_reply = transcript.index("<-  250 2.1.0 Sender OK")
    assert (transcript.index(" -> DATA") < first_reply) == pipeline, transcript  # PIPELINING used
    assert " -> ..leading dot" in sent and " -> .." in sent  # swaks dot-stuffs; imapd unstuffs
    stored_as_sent(last_message(server, "alice"), SENDER, "alice@example.org", message + b"\r\n")
    stored_as_sent(last_message(server, "bob"), SENDER, "Bob@example.org", message + b"\r\n")


def test_every_recipient_unknown_is_a_failed_transaction(server: RunningServer) -> None:
    done = swaks(server, "unix", b"Subject: none\r\n\r\nx", ["nobody@example.org", "ghost@example.org"])
    assert done.returncode == 24, done.stdout  # swaks: no recipient accepted
    assert done.stdout.count("<** 550 5.1.1") == 2 and " -> DATA" not in done.stdout
