"""Base subject extraction (RFC 5256 §2.1): known answers for every rule of
the ABNF (subj-leader, subj-refwd, subj-blob, subj-trailer, subj-fwd), the
reply/forward flag THREAD needs, RFC 2047 decoding, and properties checked
with hypothesis: never raises, idempotent, and equal to a literal
step-by-step reading of the RFC (one blob at a time, no shortcut)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imapd.message.basesubject import BaseSubject, base_subject


@pytest.mark.parametrize(
    ("subject", "base", "marked"),
    [
        ("", "", False),
        ("Hello", "Hello", False),
        # step 1: whitespace runs and tabs become one space
        ("a \t  b", "a b", False),
        ("  a  ", "a", False),
        # subj-refwd: re / fw / fwd, any case, blanks before ":"
        ("Re: hello", "hello", True),
        ("RE: hello", "hello", True),
        ("re:hello", "hello", True),
        ("Fw: hello", "hello", True),
        ("FWD: hello", "hello", True),
        ("Re : hello", "hello", True),
        ("Re:Re: RE:  hello", "hello", True),
        # subj-refwd with its optional blob: "Re[2]:", "Re [list]:"
        ("Re[2]: hello", "hello", True),
        ("Re [2] : hello", "hello", True),
        # not subj-refwd: no colon, other words, "fwd" prefix of a word
        ("Re hello", "Re hello", False),
        ("Reply: hello", "Reply: hello", False),
        ("Aw: hello", "Aw: hello", False),
        ("Fwdx: hello", "Fwdx: hello", False),
        ("Re[a][b]: hello", "Re[a][b]: hello", False),
        # subj-leader = *subj-blob subj-refwd: blobs before "Re:"
        ("[list] Re: hello", "hello", True),
        ("[a][b] re: [c] fwd: hello", "hello", True),
        # step 4: a leading blob is removed when something remains
        ("[list] hello", "hello", False),
        ("[a] [b] hello", "hello", False),
        ("[a][b]hello", "hello", False),
        # ... but the last blob stays when it is all that is left
        ("[list]", "[list]", False),
        ("[a] [b]", "[b]", False),
        ("Re: [a]", "[a]", True),
        ("[] x", "x", False),
        # step 5: 3 and 4 repeat
        ("[x] Re: [y] Fw: [z] hello", "hello", True),
        # step 2: "(fwd)" and blanks trailing, repeatedly, any case
        ("hello (fwd)", "hello", True),
        ("hello(fwd) (FWD)  ", "hello", True),
        ("hello (fwd) x", "hello (fwd) x", False),
        ("(fwd)", "", True),
        # step 6: the [fwd: ...] wrapper, then back to step 2
        ("[fwd: hello]", "hello", True),
        ("[FWD: Re: hello (fwd)]", "hello", True),
        ("[fwd: [fwd: hello]]", "hello", True),
        ("Re: [fwd: hello]", "hello", True),
        ("[fwd: hello] x", "x", False),
        ("[fwd: a [b] c]", "a [b] c", True),
        ("[fwd:]", "", True),
        ("[fwd", "[fwd", False),
        # blob chars exclude brackets: "[a[b]" is not one blob
        ("[a[b] x", "[a[b] x", False),
        ("Re: ", "", True),
    ],
)
def test_known_answers(subject: str, base: str, marked: bool) -> None:
    assert base_subject(subject) == BaseSubject(base, marked)


def test_missing_subject() -> None:
    assert base_subject(None) == BaseSubject("", False)


def test_bytes_are_unfolded_and_decoded() -> None:
    # step 1: RFC 2047 words decoded, continuation lines joined by a space
    raw = b"Re: =?utf-8?q?caf=C3=A9?=\r\n\t=?iso-8859-1?q?_na=EFve?= (fwd)"
    assert base_subject(raw) == BaseSubject("café naïve", True)
    assert base_subject(b"=?utf-8?b?UmU6IGhlbGxv?=") == BaseSubject("hello", True)
    # undeclared 8-bit: UTF-8 when valid, else Latin-1 (as SEARCH reads it)
    assert base_subject("Re: Grüße".encode()) == BaseSubject("Grüße", True)
    assert base_subject(b"Re: Gr\xfc\xdfe") == BaseSubject("Grüße", True)


def test_long_blob_runs_take_linear_time() -> None:
    # A rescan per removed blob would be quadratic: about 10^11 steps here.
    subject = "[a] " * 200_000 + "x"
    assert base_subject(subject) == BaseSubject("x", False)
    assert base_subject("[a]" * 200_000) == BaseSubject("[a]", False)
    assert base_subject("Re: " * 100_000 + "x") == BaseSubject("x", True)
    assert base_subject("x" + " (fwd)" * 100_000) == BaseSubject("x", True)


# --- a literal reading of §2.1, for comparison -----------------------------

_BLOB = r"\[[^\[\]]*\] *"
_LEADER = re.compile(r"(?:" + _BLOB + r")*(?:re|fwd?) *(?:" + _BLOB + r")?:| ", re.I)
_ONE_BLOB = re.compile(_BLOB)
_TRAILER = re.compile(r"(?:\(fwd\)| )$", re.I)


def literal_base_subject(text: str) -> BaseSubject:
    """RFC 5256 §2.1 transcribed step by step, with no attention to cost."""
    text = re.sub(r"[ \t\r\n]+", " ", text)
    marked = False
    while True:
        while (trailer := _TRAILER.search(text)) is not None:  # (2)
            marked = marked or trailer.group() != " "
            text = text[:trailer.start()]
        while True:  # (5)
            changed = False
            while (leader := _LEADER.match(text)) is not None:  # (3)
                marked = marked or leader.group() != " "
                text = text[leader.end():]
                changed = True
            blob = _ONE_BLOB.match(text)  # (4)
            if blob is not None and text[blob.end():]:
                text = text[blob.end():]
                changed = True
            if not changed:
                break
        if text.lower().startswith("[fwd:") and text.endswith("]") and len(text) > 5:  # (6)
            text = text[5:-1]
            marked = True
            continue
        return BaseSubject(text, marked)


_PIECES = st.sampled_from(
    ["Re", "re", "RE", "Fw", "fwd", "FWD", ":", " ", "  ", "\t", "[", "]", "[x]", "[fwd:",
     "(fwd)", "(FwD)", "a", "hello", "é", "Ö", "\r\n ", "=?utf-8?q?Re:_x?="]
)
_SUBJECTS = st.lists(_PIECES, max_size=14).map("".join)


@settings(max_examples=600, deadline=None)
@given(_SUBJECTS)
@example("[fwd: [a]]")
@example("[a] [fwd: b]")
def test_agrees_with_literal_reading(subject: str) -> None:
    assert base_subject(subject) == literal_base_subject(subject)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_SUBJECTS, st.text(max_size=60)))
def test_idempotent(subject: str) -> None:
    once = base_subject(subject).text
    assert base_subject(once).text == once


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=80), _SUBJECTS.map(str.encode)))
def test_never_raises_on_raw_bytes(raw: bytes) -> None:
    result = base_subject(raw)
    assert isinstance(result.text, str)
    assert result.text == result.text.strip(" ")
