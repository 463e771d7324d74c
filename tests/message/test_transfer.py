"""Content-transfer-encoding decoding for FETCH BINARY (RFC 3516 §4.2,
RFC 2045 §6.7, §6.8): round trips, chunked == whole, the RFC's edge cases."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.message.transfer import UnknownEncoding, decode, decode_chunks

_CHUNKINGS = st.lists(st.integers(min_value=1, max_value=40), max_size=20)


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, pos = [], 0
    for size in sizes:
        pieces.append(data[pos:pos + size])
        pos += size
    pieces.append(data[pos:])
    return pieces


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_base64_round_trip(data: bytes) -> None:
    assert decode(b"base64", base64.encodebytes(data)) == data
    assert decode(b"BASE64", base64.b64encode(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_quoted_printable_round_trip(data: bytes) -> None:
    encoded = binascii.b2a_qp(data, istext=False)
    assert decode(b"quoted-printable", encoded) == data
    crlf = encoded.replace(b"\n", b"\r\n")
    assert decode(b"Quoted-Printable", crlf) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), _CHUNKINGS,
       st.sampled_from([b"base64", b"quoted-printable", b"7bit", b"binary"]))
def test_chunked_decoding_equals_whole(data: bytes, sizes: list[int], encoding: bytes) -> None:
    """Arbitrary input (valid or not) decodes the same whatever the chunking."""
    whole = decode(encoding, data)
    assert b"".join(decode_chunks(encoding, _split(data, sizes))) == whole


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=" \t=AB\r\n0F", max_size=200), _CHUNKINGS)
def test_chunked_qp_on_tricky_text(text: str, sizes: list[int]) -> None:
    data = text.encode("ascii")
    whole = decode(b"quoted-printable", data)
    assert b"".join(decode_chunks(b"quoted-printable", _split(data, sizes))) == whole


def test_qp_rules() -> None:
    """RFC 2045 §6.7: trailing white space goes, soft breaks join (white
    space before the ``=`` stays, after it goes), ``=XX`` decodes."""
    source = (b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\n"
              b"foo = \t\r\nbar\r\nfoo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n")
    assert decode(b"quoted-printable", source) == (
        b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n")
    assert decode(b"quoted-printable", b"a=3Db=zz=4") == b"a=b=zz=4"


def test_qp_long_line_is_decoded_in_bounded_pieces() -> None:
    line = (b"x=41 \t" * 40000) + b"end=\r\n"
    pieces = list(decode_chunks(b"quoted-printable", _split(line, [4096] * 60)))
    assert b"".join(pieces) == b"xA \t" * 40000 + b"end"
    assert max(len(p) for p in pieces) < 200 * 1024


def test_base64_ignores_junk_and_stops_at_padding() -> None:
    assert decode(b"base64", b"  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n") == b"hello world"
    assert decode(b"base64", b"aGk=garbage") == b"hi"
    assert decode(b"base64", b"aGk") == b"hi"  # unpadded final quantum


def test_identity_and_unknown() -> None:
    assert decode(b"8bit", b"\x00\xff\r\n") == b"\x00\xff\r\n"
    with pytest.raises(UnknownEncoding):
        decode(b"x-uuencode", b"abc")


def test_encode_nul_parts_rewrites_only_parts_with_nul() -> None:
    """RFC 3516 §4.3 storage: the NUL part becomes base64 (its old
    Content-Transfer-Encoding field replaced), the rest is untouched."""
    from imapd.message.transfer import encode_nul_parts

    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\n\r\nplain\r\n"
           b"--B\r\nContent-Transfer-Encoding: binary\r\nX-Keep: 1\r\n\r\n\x00\xff\r\n"
           b"--B--\r\n")
    assert encode_nul_parts(b"no nul") is None
    assert encode_nul_parts(raw) == (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\n\r\nplain\r\n"
        b"--B\r\nX-Keep: 1\r\nContent-Transfer-Encoding: base64\r\n\r\nAP8=\r\n"
        b"--B--\r\n")
