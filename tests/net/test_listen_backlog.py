"""The listen backlog (issue 13, item 4): ``--listen-backlog`` (default
1024, capped by net.core.somaxconn) reaches every TCP and UNIX listening
port, unless the endpoint names its own ``backlog=``; the twistd plugin
takes the option too. The burst it is for: tests/e2e/test_listen_backlog.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.protocol import ServerFactory
from twisted.internet.testing import MemoryReactor
from twisted.python import usage

from imapd.cli import ServeOptions
from imapd.core.config import Limits
from imapd.net.service import (
    Listener, ListeningService, effective_backlog, kernel_backlog_cap, with_backlog,
)


def test_default_backlog_is_large() -> None:
    assert Limits().listen_backlog == 1024
    options = ServeOptions()
    options.parseOptions([])
    assert options.config().limits.listen_backlog == 1024


def test_option_sets_it_and_refuses_nonsense() -> None:
    options = ServeOptions()
    options.parseOptions(["--listen-backlog", "4096"])
    assert options.config().limits.listen_backlog == 4096
    for bad in ("0", "-5", "many"):
        with pytest.raises((usage.UsageError, ValueError)):
            ServeOptions().parseOptions(["--listen-backlog", bad])


def test_the_twistd_plugin_takes_the_option() -> None:
    import importlib.util

    plugin_path = Path(__file__).resolve().parents[2] / "twisted" / "plugins" / "imapd_plugin.py"
    spec = importlib.util.spec_from_file_location("imapd_plugin_under_test", plugin_path)
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    options = plugin.service_maker.options()
    options.parseOptions(["--listen-backlog", "300"])
    assert options.config().limits.listen_backlog == 300


@pytest.mark.parametrize("description,expected", [
    ("tcp:143", "tcp:143:backlog=1024"),
    ("tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1:backlog=1024"),
    ("tcp6:143:interface=\\:\\:1", "tcp6:143:interface=\\:\\:1:backlog=1024"),
    ("TCP:port=143", "TCP:port=143:backlog=1024"),
    ("unix:/run/imapd.sock", "unix:/run/imapd.sock:backlog=1024"),
    ("tcp:143:backlog=5", "tcp:143:backlog=5"),  # the operator's own value wins
    ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),  # already listening
])
def test_with_backlog(description: str, expected: str) -> None:
    assert with_backlog(description, 1024) == expected


def test_effective_backlog_is_capped_by_the_kernel() -> None:
    assert effective_backlog(1024, 4096) == 1024
    assert effective_backlog(1024, 128) == 128
    assert effective_backlog(1024, None) == 1024
    assert effective_backlog(0, None) == 1


def test_kernel_cap_read_and_missing(tmp_path: Path) -> None:
    cap_file = tmp_path / "somaxconn"
    cap_file.write_text("4096\n")
    assert kernel_backlog_cap(str(cap_file)) == 4096
    assert kernel_backlog_cap(str(tmp_path / "absent")) is None


def listened_backlogs(descriptions: list[str], **kwargs: Any) -> list[int]:
    reactor = MemoryReactor()
    listeners = [Listener("IMAP", d, ServerFactory()) for d in descriptions]
    service = ListeningService(listeners, reactor, **kwargs)
    service.startService()
    return [backlog for _, _, backlog, _ in reactor.tcpServers]


def test_the_service_listens_with_the_backlog() -> None:
    cap = kernel_backlog_cap()
    expected = effective_backlog(1024, cap)
    # Before issue 13 every port listened with Twisted's default, 50.
    assert listened_backlogs(["tcp:0:interface=127.0.0.1"]) == [expected]
    assert listened_backlogs(["tcp:0", "tcp:0:backlog=7"], backlog=200) == [
        effective_backlog(200, cap), 7]
