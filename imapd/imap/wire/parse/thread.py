"""THREAD and UID THREAD arguments (RFC 5256 §4)::

    thread          = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
    thread-alg      = "ORDEREDSUBJECT" / "REFERENCES" / thread-alg-ext
    search-criteria = charset 1*(SP search-key)

As in SORT, the charset is mandatory and has no ``CHARSET`` keyword. An
algorithm imapd does not implement is a syntax error (BAD), as a thread-alg
the server did not advertise cannot be run.
"""

from __future__ import annotations

from imapd.imap.wire.lexer import ParseError, Reader
from imapd.imap.wire.parse.search import SearchParser, parse_charset
from imapd.imap.wire.thread_command import Thread, ThreadAlgorithm

_ALGORITHMS = {algorithm.value: algorithm for algorithm in ThreadAlgorithm}


def parse_thread(reader: Reader, tag: str, uid: bool) -> Thread:
    """The arguments after ``THREAD`` (see the module docstring)."""
    reader.sp("thread algorithm")
    name = reader.atom("thread algorithm").decode("ascii", errors="replace").upper()
    algorithm = _ALGORITHMS.get(name)
    if algorithm is None:
        raise ParseError(f"Unknown thread algorithm {name[:40]}")
    reader.sp("charset")
    charset = parse_charset(reader)
    reader.sp("search criteria")
    return Thread(tag, uid, algorithm, charset, SearchParser(reader, charset).criteria())
