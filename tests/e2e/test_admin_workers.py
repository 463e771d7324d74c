"""The admin socket under ``imapd serve --workers 2``: each worker
listens on its own ``DATA/admin-PID.sock``, ``ask`` (and so ``imapd
status`` and the kick of ``imapd user del``) adds their answers up, and the
sockets go away with the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imapd.net import admin
from tests.support.operated import Client
from tests.support.server import running_server, stop_process, subprocess_env


def test_status_and_kick_across_workers(tmp_path: Path) -> None:
    with running_server(tmp_path, {"alice": "wonderland"}, ["--workers", "2"]) as server:
        sockets = admin.sockets_of(server.data_dir)
        assert len(sockets) == 2 and all(p.name.startswith("admin-") for p in sockets)
        clients = []
        try:
            for n in range(6):
                client = Client(server.port)
                assert client.line().startswith(b"* OK")
                assert client.say(f"a{n} LOGIN alice wonderland").startswith(b"a")
                clients.append(client)
            reply = admin.ask(server.data_dir, {"command": "status"})
            assert reply is not None and reply["users"] == {"alice": 6}
            assert len(reply["sessions"]) == 6
            done = subprocess.run([sys.executable, "-m", "imapd", "status", "--data",
                                   str(server.data_dir)], capture_output=True, text=True,
                                  timeout=60, env=subprocess_env())
            assert done.returncode == 0 and "6 session(s), 1 user(s)" in done.stdout
            assert admin.ask(server.data_dir, {"command": "kick", "user": "alice"}) == {
                "closed": 6}
            for client in clients:
                assert client.until(b"* BYE").startswith(b"* BYE Disconnected by the admin")
        finally:
            for client in clients:
                client.close()
        stop_process(server.process)
        assert admin.sockets_of(server.data_dir) == []
        assert admin.ask(server.data_dir, {"command": "status"}) is None
