"""Spooling a large LMTP message (``imapd.lmtp.data``): the spool file is
created and written only inside ``Runtime.in_thread`` (never on the
reactor thread, where blocking file I/O would stall every connection), in
a few large writes rather than one per line; the bytes stay exact."""

from __future__ import annotations

import tempfile
import types
from typing import Any, Callable, TypeVar

import pytest

from imapd.lmtp import data as data_module
from imapd.lmtp.session import LmtpSession, LmtpSettings
from imapd.mail.service import MailService
from tests.lmtp.test_session import NOW, Recording, bdat, converse, exists, trace

T = TypeVar("T")
BODY = (b"y" * 998 + b"\r\n") * 3000  # ~3 MB: three batches and a tail


class ThreadRecorder:
    """A Runtime whose ``in_thread`` runs inline but records that the
    function runs "in a thread"."""

    def __init__(self) -> None:
        self.inside = False
        self.calls = 0

    async def in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.inside, self.calls = True, self.calls + 1
        try:
            return fn(*args, **kwargs)
        finally:
            self.inside = False


class WatchedFile:
    """A temporary file whose writes must happen inside ``in_thread``."""

    def __init__(self, runtime: ThreadRecorder, real: Any) -> None:
        self.runtime = runtime
        self.real = real
        self.writes = 0

    def write(self, data: Any) -> int:
        assert self.runtime.inside, "a spool file write on the reactor thread"
        self.writes += 1
        return int(self.real.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> tuple[ThreadRecorder, list[WatchedFile]]:
    runtime = ThreadRecorder()
    files: list[WatchedFile] = []

    def opener(real: Callable[..., Any]) -> Callable[..., WatchedFile]:
        def make(*args: Any, **kwargs: Any) -> WatchedFile:
            assert runtime.inside, "a spool file created on the reactor thread"
            files.append(WatchedFile(runtime, real(*args, **kwargs)))
            return files[-1]
        return make

    fake = types.SimpleNamespace(TemporaryFile=opener(tempfile.TemporaryFile),
                                 NamedTemporaryFile=opener(tempfile.NamedTemporaryFile))
    monkeypatch.setattr(data_module, "tempfile", fake)
    return runtime, files


@pytest.mark.parametrize("framing", ["DATA", "BDAT"])
def test_a_large_message_is_spooled_in_a_thread_in_few_writes(
        watched: tuple[ThreadRecorder, list[WatchedFile]], framing: str) -> None:
    runtime, files = watched
    backend = Recording()
    lmtp = LmtpSession(MailService(backend), exists, LmtpSettings(hostname="mx.test"),
                       runtime=runtime, now=lambda: NOW)  # type: ignore[arg-type]
    head = b"LHLO mta\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice>\r\n"
    if framing == "DATA":
        out = converse(lmtp, head + b"DATA\r\n" + BODY + b".\r\n")
    else:
        half = len(BODY) // 2
        out = converse(lmtp, head + bdat(BODY[:half]) + bdat(BODY[half:], last=True))
    assert out.endswith(b"250 2.0.0 <alice> Saved\r\n")
    assert backend.stored == [("alice", "INBOX", trace(b"alice") + BODY)]
    assert len(files) == 1
    assert files[0].writes <= len(BODY) // data_module.BATCH + 1
