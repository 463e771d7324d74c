"""Base subject extraction (RFC 5256 §2.1), for SORT SUBJECT and THREAD.

The algorithm, step by step as the RFC numbers it:

1. decode RFC 2047 encoded words (to text; UTF-8 on the wire), turn tabs
   and line continuations into spaces and runs of spaces into one;
2. strip ``subj-trailer`` (``"(fwd)"`` or a blank) from the end, repeatedly;
3. strip ``subj-leader`` from the front: a blank, or any number of
   ``subj-blob`` (``[...]`` and blanks) followed by ``subj-refwd``
   (``re``/``fw``/``fwd``, blanks, an optional blob, ``:``);
4. strip one leading ``subj-blob`` if what remains is not empty;
5. repeat 3 and 4 until neither removes anything;
6. if the text is ``"[fwd:" ... "]"``, drop that wrapper and go back to 2;
7. the result is the base subject.

Literal strings in the RFC's ABNF are case-insensitive (RFC 5234 §2.3).

THREAD (RFC 5256 §2.1, last paragraph; REFERENCES step 5) also needs to know
whether the subject marked a reply or forward: that is when the extraction
removed a ``subj-refwd``, a ``"(fwd)"`` trailer or a ``[fwd: ...]`` wrapper.

Cost is linear in the subject's length: every step only removes text, and
the one place a naive loop would rescan (a run of blobs that is not followed
by ``re:``, which step 4 then removes blob by blob) is removed in one go,
with the same result, because no suffix of such a run can be followed by a
``subj-refwd`` either.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from imapd.message.headers import decode_words, unfold

# subj-blob = "[" *BLOBCHAR "]" *WSP; after step 1 the only WSP is " ".
# Possessive quantifiers: a blob is delimited, so backtracking into it can
# never produce another match, only cost time.
_BLOB: Final = r"\[[^\[\]]*+\][ ]*+"
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_REFWD: Final = r"(?:re|fwd?)[ ]*+(?:" + _BLOB + r")?:"
# One subj-leader = (*subj-blob subj-refwd) / WSP.
_LEADER: Final = re.compile(r"(?:" + _BLOB + r")*+" + _REFWD + r"|[ ]", re.IGNORECASE)
_BLOB_RUN: Final = re.compile(r"(?:" + _BLOB + r")++")
_ONE_BLOB: Final = re.compile(_BLOB)
_WHITESPACE: Final = re.compile(r"[ \t\r\n]+")
_TRAILER_FWD: Final = "(fwd)"
_FWD_HEADER: Final = "[fwd:"


class BaseSubject(NamedTuple):
    """The base subject and whether the original marked a reply/forward."""

    text: str
    is_reply_or_forward: bool


def base_subject(subject: bytes | str | None) -> BaseSubject:
    """RFC 5256 §2.1 base subject of a Subject field value.

    ``bytes`` is the raw (possibly folded) field value: it is unfolded and
    its encoded words decoded (step 1). ``str`` is taken as already decoded.
    A missing subject has the empty base subject. Never raises.
    """
    if subject is None:
        return BaseSubject("", False)
    text = decode_words(unfold(subject)) if isinstance(subject, bytes) else subject
    text = _WHITESPACE.sub(" ", text)  # step 1
    marked = False
    while True:
        text, removed = _strip_trailers(text)  # step 2
        marked = marked or removed
        text, removed = _strip_leaders_and_blobs(text)  # steps 3-5
        marked = marked or removed
        # step 6: "[fwd:" subject "]"
        if len(text) > len(_FWD_HEADER) and text[:len(_FWD_HEADER)].lower() == _FWD_HEADER \
                and text.endswith("]"):
            text = text[len(_FWD_HEADER):-1]
            marked = True
            continue
        return BaseSubject(text, marked)  # step 7


def _strip_trailers(text: str) -> tuple[str, bool]:
    """Step 2: remove ``subj-trailer`` (``"(fwd)"`` / WSP) from the end until
    none is left; True if a ``"(fwd)"`` was among them."""
    end = len(text)
    forwarded = False
    width = len(_TRAILER_FWD)
    while end:
        if text[end - 1] == " ":
            end -= 1
        elif end >= width and text[end - width:end].lower() == _TRAILER_FWD:
            end -= width
            forwarded = True
        else:
            break
    return text[:end], forwarded


def _strip_leaders_and_blobs(text: str) -> tuple[str, bool]:
    """Steps 3 to 5; True if a ``subj-refwd`` was removed."""
    pos = 0
    replied = False
    while True:
        # step 3: every leading subj-leader
        while (match := _LEADER.match(text, pos)) is not None:
            replied = replied or match.end() - pos > 1  # not just a blank
            pos = match.end()
        # step 4: a leading subj-blob, if a non-empty subj-base remains.
        run = _BLOB_RUN.match(text, pos)
        if run is None:
            return text[pos:], replied
        if run.end() < len(text):
            # Step 3 just failed before this run, so it fails before every
            # suffix of it too: step 4 would remove the blobs one at a time.
            pos = run.end()
            continue
        # The run is all that is left: keep its last blob as the subj-base.
        last = pos
        while (blob := _ONE_BLOB.match(text, last)) is not None and blob.end() < len(text):
            last = blob.end()
        if last == pos:
            return text[pos:], replied
        pos = last
