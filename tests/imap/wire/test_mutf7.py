"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.wire.mutf7 import decode_mutf7, encode_mutf7

KNOWN = [
    ("INBOX", b"INBOX"),
    ("", b""),
    ("&", b"&-"),
    ("a&b&&c", b"a&-b&-&-c"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # the RFC's example
    ("Entwürfe", b"Entw&APw-rfe"),
    ("Gelöschte Elemente", b"Gel&APY-schte Elemente"),
    ("ä&", b"&AOQ-&-"),
    ("\U0001f600", b"&2D3eAA-"),  # astral plane: a surrogate pair
    ("tab\there", b"tab&AAk-here"),  # controls are encoded, never raw
    ("\x7f", b"&AH8-"),
    ("-", b"-"),
    ("a-&AOQ-", b"a-&-AOQ-"),
]


@pytest.mark.parametrize("text, encoded", KNOWN)
def test_known_encodings(text: str, encoded: bytes) -> None:
    assert encode_mutf7(text) == encoded
    assert decode_mutf7(encoded) == text


@pytest.mark.parametrize(
    "malformed",
    [
        b"&",                # unterminated
        b"a&AOQ",            # unterminated shift
        b"\xc3\xa4",         # raw 8-bit (UTF-8)
        b"tab\there",        # raw control
        b"\x7f",
        b"&AGE-",            # "a" must not be encoded
        b"&ACY-",            # "&" must not be encoded (it is "&-")
        b"&AOQ-&AOQ-",       # null shift: adjacent runs must be merged
        b"&AOQ=-",           # padding is not used
        b"&A-",              # truncated base64
        b"&AOR-",            # non-zero padding bits
        b"&AOQA-",           # odd number of UTF-16 octets
        b"&2D0-",            # unpaired high surrogate
        b"&3gA-",            # unpaired low surrogate
        b"&AO/-",            # "/" is replaced by "," in modified BASE64
        b"&AO!-",
    ],
)
def test_malformed_is_rejected(malformed: bytes) -> None:
    with pytest.raises(ValueError):
        decode_mutf7(malformed)


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        encode_mutf7("\ud800")


names = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=400)
@given(names)
def test_round_trip(name: str) -> None:
    encoded = encode_mutf7(name)
    assert all(0x20 <= b <= 0x7E for b in encoded)
    assert decode_mutf7(encoded) == name


@settings(max_examples=400)
@given(st.binary(max_size=40))
def test_decode_is_strict_and_canonical(data: bytes) -> None:
    """Whatever decodes must encode back to exactly the same bytes: there is
    only one spelling of each name."""
    try:
        name = decode_mutf7(data)
    except ValueError:
        return
    assert encode_mutf7(name) == data


@settings(max_examples=300)
@given(st.text(alphabet="&-AOQ,+abZ09é", max_size=20).map(lambda t: t.encode("latin-1")))
def test_decode_is_canonical_on_shift_heavy_input(data: bytes) -> None:
    try:
        name = decode_mutf7(data)
    except ValueError:
        return
    assert encode_mutf7(name) == data
