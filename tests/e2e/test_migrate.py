"""``imapd migrate`` from a real Dovecot (tests/support/dovecot.py) into a
running imapd, compared afterwards over IMAP on both sides: folder list,
BODY[] bytes, FLAGS and INTERNALDATE of every message.

The source account: delimiter ``.``, a subfolder, a ``\\Sent`` folder named
``Sent Messages`` (goes to imapd's own ``\\Sent``, ``Sent``), a non-ASCII
folder name, keywords, 8-bit bytes, a message without Message-ID, two
identical messages, a 5 MB message. Needs root and dovecot-imapd (.ci/run
installs it); elsewhere the skip is pinned, under CI it fails.
"""

from __future__ import annotations

import imaplib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from imapd.imap.wire.mutf7 import decode_mutf7, encode_mutf7
from imapd.migrate.client import parse_internal_date
from tests.support.dovecot import MISSING, Dovecot, running_dovecot, unavailable
from tests.e2e.frontends import add_user, frontends, store_url
from tests.support.pinned_skips import Pin, require_tool
from tests.support.postgres import MISSING as PG_MISSING
from tests.support.postgres import postgres_cluster, postgres_dsn  # noqa: F401 (fixtures)
from tests.support.server import RunningServer, imapd_command, run_cli, running_server, subprocess_env

PINNED_SKIPS = (Pin.exact(MISSING, "Dovecot is a Debian package .ci/run installs; it needs root", in_ci=False),
                Pin.exact(PG_MISSING, "PostgreSQL binaries are a CI dependency (.ci/run)", in_ci=False))

BIG = b"From: big@example.org\r\nMessage-ID: <big@example.org>\r\nSubject: big\r\n\r\n" + \
    b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n" * 70_000
# source folder (as Dovecot names it) -> messages (bytes, flags, INTERNALDATE)
SEED: dict[str, list[tuple[bytes, str, str]]] = {
    "INBOX": [
        (b"From: a@example.org\r\nMessage-ID: <1@example.org>\r\nSubject: one\r\n\r\nhello\r\n",
         "(\\Seen $Label1)", '"01-Feb-2020 10:00:00 +0100"'),
        (b"From: b@example.org\r\nSubject: no id, 8-bit\r\n\r\n\xc3\xa9t\xc3\xa9 \xff\r\n",
         "(\\Flagged \\Answered)", '"31-Dec-1999 23:59:59 -0800"'),
        (b"From: c@example.org\r\nMessage-ID: <twin@example.org>\r\n\r\ntwin\r\n", "()",
         '"05-Mar-2021 08:00:00 +0000"'),
        (b"From: c@example.org\r\nMessage-ID: <twin@example.org>\r\n\r\ntwin\r\n", "()",
         '"05-Mar-2021 08:00:00 +0000"'),
    ],
    "Lists.python": [
        (b"From: l@example.org\r\nMessage-ID: <l@example.org>\r\n\r\nlist\r\n", "(\\Seen NonJunk)",
         '"07-Jul-2022 07:07:07 +0700"'),
    ],
    "Sent Messages": [
        (b"From: me@example.org\r\nMessage-ID: <s@example.org>\r\n\r\nsent\r\n", "(\\Seen)",
         '"02-Jan-2023 12:00:00 +0000"'),
    ],
    "Entwürfe": [
        (b"From: me@example.org\r\nMessage-ID: <d@example.org>\r\n\r\ndraft\r\n", "(\\Draft)",
         '"03-Jan-2023 12:00:00 +0000"'),
    ],
    "Archive": [(BIG, "(\\Seen)", '"04-Jan-2023 12:00:00 +0000"')],
}
# where each lands in imapd
TARGETS = {"INBOX": "INBOX", "Lists.python": "Lists/python", "Sent Messages": "Sent",
           "Entwürfe": "Entwürfe", "Archive": "Archive"}
FETCHED = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\) INTERNALDATE \"([^\"]+)\"")


def name(folder: str) -> str:
    return '"' + encode_mutf7(folder).decode("ascii") + '"'


@pytest.fixture(params=[False])
def dovecot(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """A seeded Dovecot (with TLS when parametrized indirectly with True)."""
    require_tool(None if unavailable() else "dovecot", MISSING)
    with running_dovecot(tls=request.param) as server:
        client = imaplib.IMAP4(server.host, server.port)
        client.login(server.user, server.password)
        for folder, messages in SEED.items():
            if folder != "INBOX":
                assert client.create(name(folder))[0] == "OK"
            for body, flags, date in messages:
                assert client.append(name(folder), flags, date, body)[0] == "OK"
        assert client.subscribe(name("Lists.python"))[0] == "OK"
        client.logout()
        yield server


def contents(host: str, port: int, user: str, password: str, folder: str) -> list[tuple[bytes, str, float]]:
    """(BODY[], sorted flags, INTERNALDATE as a POSIX time) of every message,
    sorted (an instant: Dovecot's Maildir keeps no zone, it answers +0000)."""
    client = imaplib.IMAP4(host, port)
    client.login(user, password)
    typ, data = client.select(name(folder), readonly=True)
    assert typ == "OK", (folder, data)
    out: list[tuple[bytes, str, float]] = []
    if int(data[0] or 0):
        typ, fetched = client.fetch("1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        for part in fetched:
            if isinstance(part, tuple):
                match = FETCHED.search(part[0])
                assert match, part[0]
                flags = " ".join(sorted(f for f in match.group(2).decode().split() if f != "\\Recent"))
                out.append((part[1], flags, parse_internal_date(match.group(3).decode()).timestamp()))
    client.logout()
    return sorted(out)


def folder_names(host: str, port: int, user: str, password: str, subscribed: bool = False) -> set[str]:
    client = imaplib.IMAP4(host, port)
    client.login(user, password)
    listed = client.lsub()[1] if subscribed else client.list()[1]
    names = {decode_mutf7(line.rsplit(b' "/" ', 1)[-1].strip(b'"')) for line in listed
             if isinstance(line, bytes)}
    client.logout()
    return names


# ``imapd migrate`` that reports its peak resident memory last on stderr: VmHWM
# in KiB (not ru_maxrss, which on Linux keeps the parent's peak across exec).
MEASURED = ("import sys\nfrom imapd.cli import main\nstatus = main(sys.argv[1:])\n"
            "hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
            "print('peak', hwm, file=sys.stderr)\nsys.exit(status)")


def migrate(server: RunningServer, source: Dovecot, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    secret = tmp_path / "source-password"
    secret.write_text(source.password + "\n")
    done = run_cli("migrate", "--from", f"imap://{source.user}@{source.host}:{source.port}",
                   "--plain-ok-on-loopback", "--password-file", str(secret), "--user", "alice",
                   "--data", str(server.data_dir), *extra, check=False)
    assert source.password not in done.stdout + done.stderr
    return done.returncode, done.stdout, done.stderr


def test_migrate_from_dovecot_copies_everything_once(dovecot: Dovecot, tmp_path: Path) -> None:
    with running_server(tmp_path, {"alice": "alice-pw"}) as server:
        # As if an interrupted run had stored one INBOX message already.
        client = imaplib.IMAP4(server.host, server.port)
        client.login("alice", "alice-pw")
        first, flags, date = SEED["INBOX"][0]
        assert client.append("INBOX", flags, date, first)[0] == "OK"
        client.logout()

        status, out, err = migrate(server, dovecot, tmp_path)
        assert status == 0, out + err
        assert f"{sum(map(len, SEED.values())) - 1} messages copied" in out, out
        local = folder_names(server.host, server.port, "alice", "alice-pw")
        assert set(TARGETS.values()) <= local, local
        assert "Lists/python" in folder_names(server.host, server.port, "alice", "alice-pw", subscribed=True)
        for folder, target in TARGETS.items():
            source_side = contents(dovecot.host, dovecot.port, dovecot.user, dovecot.password, folder)
            assert len(source_side) == len(SEED[folder])
            assert contents(server.host, server.port, "alice", "alice-pw", target) == source_side, folder

        status, out, err = migrate(server, dovecot, tmp_path)  # a re-run copies nothing
        assert status == 0, out + err
        assert "0 messages copied" in out, out
        assert contents(server.host, server.port, "alice", "alice-pw", "INBOX") == \
            contents(dovecot.host, dovecot.port, dovecot.user, dovecot.password, "INBOX")


def test_migrate_folder_map_and_wrong_password(dovecot: Dovecot, tmp_path: Path) -> None:
    with running_server(tmp_path, {"alice": "alice-pw"}) as server:
        status, out, err = migrate(server, dovecot, tmp_path, "--folder-map", "Lists=Old lists",
                                   "--folder-map", "Archive=")
        assert status == 0, out + err
        local = folder_names(server.host, server.port, "alice", "alice-pw")
        assert "Old lists/python" in local and "Lists/python" not in local, local
        assert contents(server.host, server.port, "alice", "alice-pw", "Archive") == []
        assert re.search(r"Archive +\(skipped\)", out), out

        bad = Dovecot(dovecot.host, dovecot.port, dovecot.user, "wrong-password", dovecot.root)
        status, out, err = migrate(server, bad, tmp_path)
        assert status == 2 and "imapd migrate:" in err, out + err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_50_mb_message_is_held_once(dovecot: Dovecot, tmp_path: Path) -> None:
    """Peak memory of a run with a 50 MB message against one without it:
    the bytes are read once (imaplib) and handed to the store as they are.
    Measured: +74 to +83 MB (the fetched copy, +48 MB, and the store's write);
    holding the message twice would be +130 MB or more."""
    size = 50_000_000
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    client = imaplib.IMAP4(dovecot.host, dovecot.port)
    client.login(dovecot.user, dovecot.password)
    assert client.create("Huge")[0] == "OK"
    assert client.append("Huge", None, None, b"Subject: huge\r\n\r\n" + line * (size // len(line)))[0] == "OK"
    client.logout()
    secret = tmp_path / "source-password"
    secret.write_text(dovecot.password + "\n")
    with running_server(tmp_path, {"alice": "alice-pw"}) as server:
        peaks = []
        for skip in (["--folder-map", "Huge="], []):
            done = subprocess.run(
                [sys.executable, "-c", MEASURED, "migrate", "--from",
                 f"imap://{dovecot.user}@{dovecot.host}:{dovecot.port}", "--plain-ok-on-loopback",
                 "--password-file", str(secret), "--user", "alice", "--data", str(server.data_dir), *skip],
                capture_output=True, text=True, env=subprocess_env(), timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            peaks.append(int(done.stderr.split("peak")[-1]) * 1024)
        assert re.search(r"Huge +Huge +1 +1 +1 +ok", done.stdout), done.stdout
        assert peaks[1] - peaks[0] < 2 * size, peaks


@pytest.mark.parametrize("dovecot", [True], indirect=True)
def test_tls_is_verified_unless_insecure(dovecot: Dovecot, tmp_path: Path) -> None:
    """imaps:// and --starttls check the certificate against the system's
    trust store (here $SSL_CERT_FILE: the test's self-signed certificate);
    an untrusted one stops the run unless --insecure, which warns."""
    assert dovecot.imaps_port is not None and dovecot.certificate is not None
    secret = tmp_path / "source-password"
    secret.write_text(dovecot.password + "\n")
    imaps = f"imaps://{dovecot.user}@127.0.0.1:{dovecot.imaps_port}"
    with running_server(tmp_path, {"alice": "alice-pw"}) as server:
        def run(url: str, *extra: str, trust: Path | None = None) -> subprocess.CompletedProcess[str]:
            env = subprocess_env()
            env["SSL_CERT_FILE"] = str(trust or tmp_path / "no-such-ca.pem")
            return subprocess.run(
                imapd_command("migrate", "--from", url, "--password-file", str(secret), "--user", "alice",
                              "--data", str(server.data_dir), "--folder-map", "Archive=", *extra),
                capture_output=True, text=True, env=env, timeout=60)

        refused = run(imaps)
        assert refused.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr
        insecure = run(imaps, "--insecure")
        assert insecure.returncode == 0 and "warning: --insecure" in insecure.stderr, insecure.stderr
        assert "7 messages copied" in insecure.stdout, insecure.stdout
        trusted = run(imaps, trust=dovecot.certificate)
        assert trusted.returncode == 0 and "0 messages copied" in trusted.stdout, trusted.stdout + trusted.stderr
        plain = f"imap://{dovecot.user}@127.0.0.1:{dovecot.port}"
        starttls = run(plain, "--starttls", trust=dovecot.certificate)
        assert starttls.returncode == 0 and "0 messages copied" in starttls.stdout, starttls.stderr
        assert run(plain, "--starttls").returncode == 2
        assert "refusing to send the password in clear" in run(plain).stderr


def test_migrate_into_postgresql_while_a_frontend_serves_it(dovecot: Dovecot, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    # The cluster only once Dovecot is known to run (a session fixture in the
    # signature would be started first, even where this test then skips).
    url = store_url(request.getfixturevalue("postgres_dsn"))
    add_user(url, None, "alice", "alice-pw")
    secret = tmp_path / "source-password"
    secret.write_text(dovecot.password + "\n")
    with frontends(tmp_path, url, 1) as (front,):
        done = run_cli("migrate", "--from", f"imap://{dovecot.user}@{dovecot.host}:{dovecot.port}",
                       "--plain-ok-on-loopback", "--password-file", str(secret), "--user", "alice",
                       "--store", url, "--data", str(tmp_path / "unused"), check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        for folder, target in TARGETS.items():
            assert contents(front.host, front.port, "alice", "alice-pw", target) == \
                contents(dovecot.host, dovecot.port, dovecot.user, dovecot.password, folder), folder


def test_killed_mid_run_and_resumed_copies_each_message_once(dovecot: Dovecot, tmp_path: Path) -> None:
    """SIGKILL while batches are being stored, then the same command: every
    source message is there exactly once (each batch is atomic; the re-run
    skips what was committed by fingerprint)."""
    bulk = 1200
    client = imaplib.IMAP4(dovecot.host, dovecot.port)
    client.login(dovecot.user, dovecot.password)
    assert client.create("Bulk")[0] == "OK"
    for n in range(bulk):
        message = b"Message-ID: <bulk-%d@example.org>\r\nSubject: %d\r\n\r\n%s\r\n" % (n, n, b"x" * (n % 500))
        assert client.append("Bulk", None, None, message)[0] == "OK"
    client.logout()
    secret = tmp_path / "source-password"
    secret.write_text(dovecot.password + "\n")
    with running_server(tmp_path, {"alice": "alice-pw"}) as server:
        argv = imapd_command("migrate", "--from", f"imap://{dovecot.user}@{dovecot.host}:{dovecot.port}",
                             "--plain-ok-on-loopback", "--password-file", str(secret), "--user", "alice",
                             "--data", str(server.data_dir), "--folder-map", "Archive=")
        first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env())
        watcher = imaplib.IMAP4(server.host, server.port)
        watcher.login("alice", "alice-pw")
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and first.poll() is None:
                typ, data = watcher.status("Bulk", "(MESSAGES)")
                if typ == "OK" and int(data[0].split()[-1].rstrip(b")")) >= 100:
                    break
                time.sleep(0.01)
            first.kill()
        finally:
            first.wait(30)
            watcher.logout()
        assert first.returncode == -signal.SIGKILL, "the first run ended before it could be interrupted"
        stored = contents(server.host, server.port, "alice", "alice-pw", "Bulk")
        assert 100 <= len(stored) < bulk
        status, out, err = migrate(server, dovecot, tmp_path, "--folder-map", "Archive=")
        assert status == 0, out + err
        row = re.search(rf"Bulk +Bulk +{bulk} +{bulk} +(\d+) +ok", out)
        assert row and int(row.group(1)) == bulk - len(stored), out
        assert contents(server.host, server.port, "alice", "alice-pw", "Bulk") == \
            contents(dovecot.host, dovecot.port, dovecot.user, dovecot.password, "Bulk")


def test_the_personal_namespace_prefix_is_left_out(tmp_path: Path) -> None:
    """A source whose folders all sit under ``INBOX.`` (RFC 2342 personal
    namespace prefix: Courier, cPanel) gives top-level folders here."""
    require_tool(None if unavailable() else "dovecot", MISSING)
    message = b"From: p@example.org\r\nMessage-ID: <p@example.org>\r\n\r\nprefixed\r\n"
    with running_dovecot(prefix="INBOX.") as source, running_server(tmp_path, {"alice": "alice-pw"}) as server:
        client = imaplib.IMAP4(source.host, source.port)
        client.login(source.user, source.password)
        for folder in ("INBOX.Lists.python", "INBOX.Sent Messages"):
            assert client.create(name(folder))[0] == "OK"
            assert client.append(name(folder), "(\\Seen)", '"01-Feb-2020 10:00:00 +0000"', message)[0] == "OK"
        client.logout()
        status, out, err = migrate(server, source, tmp_path)
        assert status == 0, out + err
        assert re.search(r"INBOX\.Lists\.python +Lists/python +1 +1 +1 +ok", out), out
        assert re.search(r"INBOX\.Sent Messages +Sent +1 +1 +1 +ok", out), out
        assert "INBOX/Lists" not in folder_names(server.host, server.port, "alice", "alice-pw")
        assert contents(server.host, server.port, "alice", "alice-pw", "Lists/python") == \
            contents(source.host, source.port, source.user, source.password, "INBOX.Lists.python")
