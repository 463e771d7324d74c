"""Delivery analyses a spooled message in place: ``analysis_blob`` of a
``SpooledLiteral`` equals that of the same bytes, for every fixture
message, for generated multipart messages and for arbitrary bytes (the
message model uses only bytes methods the spooled literal has)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.mail.service import analysis_blob
from imapd.core.spool import SpooledLiteral, SpoolWriter
from tests.support.server import REPO_ROOT
from tests.support.spool import big_message

FIXTURES = sorted((REPO_ROOT / "fixtures" / "messages").glob("*.eml"))


def spool(data: bytes) -> SpooledLiteral:
    writer = SpoolWriter(len(data))
    writer.write(data)
    return writer.finish()


def same_analysis(data: bytes) -> None:
    literal = spool(data)
    try:
        assert analysis_blob(literal) == analysis_blob(data)
    finally:
        literal.close()


def test_fixtures_exist() -> None:
    assert len(FIXTURES) >= 10


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_messages(path: Path) -> None:
    same_analysis(path.read_bytes())


@pytest.mark.parametrize("size", [300 * 1024, 3 * 1024 * 1024])
def test_large_multipart_messages(size: int) -> None:
    same_analysis(big_message(size))


def test_bare_lf_and_nested_parts() -> None:
    data = (b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: message/rfc822\n\n"
            b"Subject: inner\nContent-Type: multipart/alternative; boundary=y\n\n--y\n\nA\n--y--\n"
            b"--x--\n")
    same_analysis(data)


parts = st.sampled_from([
    b"\r\n", b"\n", b"\r\n\r\n", b"--b\r\n", b"--b--\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n", b"Subject: =?utf-8?q?x?=\r\n", b"From: a@b\r\n", b"text ",
])


@settings(max_examples=200, deadline=None)
@given(st.lists(parts | st.binary(max_size=20), min_size=1, max_size=30).map(b"".join))
def test_arbitrary_messages(data: bytes) -> None:
    if data:
        same_analysis(data)
