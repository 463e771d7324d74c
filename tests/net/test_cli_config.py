"""The configuration file with real processes: ``imapd serve --config``,
``twistd imapd --config``, ``imapd user``/``deliver`` reading the server's
file, ``imapd config check``, and what a wrong file prints."""

from __future__ import annotations

import imaplib
import queue
import subprocess
import threading
from pathlib import Path

from imapd import __version__
from tests.support.server import (
    LOOPBACK_ENDPOINT, _pump_output, _wait_for_listening, imapd_command, run_cli, running_server,
    stop_process, subprocess_env,
)


def id_response(host: str, port: int) -> str:
    """The server's ID (RFC 2971 §3.1) answer, after logging in as alice."""
    imap = imaplib.IMAP4(host, port)
    try:
        imap.login("alice", "wonderland")
        typ, _ = imap.xatom("ID", "NIL")  # imaplib has no ID method
        assert typ == "OK"
        _, data = imap._untagged_response(typ, [None], "ID")
        return repr(data)
    finally:
        imap.logout()


def test_one_file_serves_adds_users_and_delivers(tmp_path: Path) -> None:
    data = tmp_path / "mail"
    config = tmp_path / "imapd.toml"
    config.write_text(f'data = "{data}"\nimap = ["{LOOPBACK_ENDPOINT}"]\n'
                      "id-send-version = true\n[limits]\nmax-line = 8192\n", encoding="utf-8")
    # imapd user and imapd deliver find the server's store through the same file.
    run_cli("user", "add", "alice", "--password-stdin", "--config", str(config),
            stdin="wonderland\n")
    delivered = run_cli("deliver", "--config", str(config), "-a", "alice",
                        stdin="Subject: hi\r\n\r\nfrom the file\r\n", check=False)
    assert delivered.returncode == 0, delivered.stderr
    process = subprocess.Popen(
        imapd_command("serve", "--config", str(config)), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=subprocess_env(), cwd=tmp_path)
    lines: list[str] = []
    events: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump_output, args=(process, lines, events), daemon=True).start()
    try:
        host, port = _wait_for_listening(process, events, lines, 30.0)
        assert __version__ in id_response(host, port)  # id-send-version came from the file
        imap = imaplib.IMAP4(host, port)
        imap.login("alice", "wonderland")
        assert imap.select("INBOX") == ("OK", [b"1"])
        imap.logout()
    finally:
        stop_process(process)


def test_twistd_reads_the_file_too(tmp_path: Path) -> None:
    config = tmp_path / "imapd.toml"
    config.write_text("id-send-version = true\n", encoding="utf-8")
    with running_server(tmp_path, twistd=True, extra_args=["--config", str(config)]) as server:
        assert __version__ in id_response(server.host, server.port)
    with running_server(tmp_path / "b", extra_args=[]) as plain:
        assert __version__ not in id_response(plain.host, plain.port)


def test_a_wrong_file_is_one_line_per_mistake_and_status_2(tmp_path: Path) -> None:
    config = tmp_path / "imapd.toml"
    config.write_text('max-lin = 10\nworkers = "2"\n[pop3]\nuidl-format = "x"\n',
                      encoding="utf-8")
    for command in (["serve"], ["config", "check"], ["user", "list"]):
        done = run_cli(*command, "--config", str(config), check=False)
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == (f"{config}:max-lin: unknown key (did you mean max-line?)\n"
                               f"{config}:workers: expected an integer, got a string\n"
                               f"{config}:pop3.uidl-format: must be one of imapd, dovecot\n")


def test_config_check_prints_the_effective_settings(tmp_path: Path) -> None:
    config = tmp_path / "imapd.toml"
    config.write_text('store = "postgresql://imapd:hunter2@db.example/mail"\n'
                      "[limits]\nmax-line = 8192\n", encoding="utf-8")
    done = run_cli("config", "check", "--config", str(config), "--max-line", "9000")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == f"# imapd: {config}: OK; effective settings:"
    assert 'store = "postgresql://imapd:***@db.example/mail"' in lines
    assert "max-line = 9000" in lines  # the command line wins
    assert "hunter2" not in done.stdout
    syntax = tmp_path / "broken.toml"
    syntax.write_text("max-line = \n", encoding="utf-8")
    broken = run_cli("config", "check", "--config", str(syntax), check=False)
    assert (broken.returncode, broken.stderr) == (2, f"{syntax}:1: Invalid value (column 12)\n")
