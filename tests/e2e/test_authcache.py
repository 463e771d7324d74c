"""The auth cache with real processes (issue 17): a running server that
has just accepted a password must stop accepting it once ``imapd user
passwd`` or ``imapd user del`` (another process) changed the user, with no
signal to the server; ``--auth-cache-ttl 0`` runs without the cache. The
cache's internals (argon2 counted, TTL, LRU) are tests/accounts/test_authcache.py."""

from __future__ import annotations

import imaplib
from pathlib import Path

import pytest

from tests.support.server import run_cli, running_server


def login(host: str, port: int, name: str, password: str) -> bool:
    client = imaplib.IMAP4(host, port, timeout=30)
    try:
        client.login(name, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()
    return True


@pytest.mark.parametrize("ttl", ["300", "0"])
def test_passwd_and_del_through_the_cli_invalidate_the_servers_cache(
        tmp_path: Path, ttl: str) -> None:
    extra = ["--auth-cache-ttl", ttl, "--failed-login-delay", "0", "--auth-penalty", "0"]
    with running_server(tmp_path, {"alice": "wonderland"}, extra) as server:
        host, port, data = server.host, server.port, str(server.data_dir)
        assert login(host, port, "alice", "wonderland")
        assert login(host, port, "alice", "wonderland")  # from the cache (ttl 300)
        assert not login(host, port, "alice", "wonderlanD")
        run_cli("user", "passwd", "alice", "--password-stdin", "--data", data,
                stdin="rabbit\n")
        assert not login(host, port, "alice", "wonderland")
        assert login(host, port, "alice", "rabbit")
        assert login(host, port, "alice", "rabbit")
        run_cli("user", "del", "alice", "--data", data)
        assert not login(host, port, "alice", "rabbit")
