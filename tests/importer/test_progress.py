"""The progress bar is drawn on terminals only; notes never tear it."""

from __future__ import annotations

import io

from imapd.importer.progress import Progress, human_bytes


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_in_a_pipe() -> None:
    out = io.StringIO()
    progress = Progress(10, out)
    progress.advance(3, 3000)
    progress.note("imapd import: x: broken")
    progress.close()
    assert out.getvalue() == "imapd import: x: broken\n"
    assert not progress.drawing and progress.size == 3000


def test_a_bar_on_a_terminal_with_counts_rate_and_bytes() -> None:
    out = Terminal()
    progress = Progress(10, out)
    assert progress.drawing
    progress.advance(4, 5 * 1024 * 1024)
    progress.note("imapd import: y: broken")
    progress.close()
    text = out.getvalue()
    assert "4/10" in text and "msg/s" in text and "5.0 MiB" in text
    assert "imapd import: y: broken" in text


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**4) == "3.0 TiB"
