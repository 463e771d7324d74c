"""``imapd deliver``'s input handling (``imapd.lmtp.lda.prepare``)."""

from __future__ import annotations

import pytest

from imapd.lmtp.lda import BadMessage, prepare


@pytest.mark.parametrize("raw, sender, stored", [
    (b"A: b\n\nx\n", None, b"A: b\r\n\r\nx\r\n"),
    (b"A: b\r\n\r\nx", None, b"A: b\r\n\r\nx\r\n"),
    (b"From s@x Sun Dec  6 12:00:00 2026\nA: b\n\nx\n", None, b"A: b\r\n\r\nx\r\n"),
    (b"A: b\n\nx\n", "s@x", b"Return-Path: <s@x>\r\nA: b\r\n\r\nx\r\n"),
    (b"Return-Path: <m@x>\nA: b\n\n", "s@x", b"Return-Path: <m@x>\r\nA: b\r\n\r\n"),
    (b"A: \xff\n\n", None, b"A: \xff\r\n\r\n"),
])
def test_prepare(raw: bytes, sender: str | None, stored: bytes) -> None:
    assert prepare(raw, sender, 1000) == stored


@pytest.mark.parametrize("raw", [b"", b"\n\n", b"From x\n", b"x" * 1001])
def test_bad_input(raw: bytes) -> None:
    with pytest.raises(BadMessage):
        prepare(raw, None, 1000)
