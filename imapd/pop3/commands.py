"""Parsing one POP3 command line (RFC 1939 §3, RFC 2449 §4).

A command is a case-insensitive keyword of three or four letters and
arguments separated by single spaces, ending in CRLF (a bare LF is taken
too). The parser never raises: it returns a ``Command`` or a
``SyntaxProblem`` whose reason goes to the client after ``-ERR``.

Arguments are printable; USER, PASS and AUTH answers may be UTF-8 (RFC
6856 style names; passwords are octets the user typed). PASS takes the
rest of the line as its one argument, spaces included (RFC 1939 §7: "a
POP3 server may treat spaces in the argument as part of the password").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Message numbers above this are refused as syntax (no maildrop is that
# large): int() of a 10,000-digit argument costs CPU for nothing.
MAX_NUMBER_DIGITS = 10
_KEYWORD = re.compile(r"[A-Za-z]{3,4}\Z")
# Controls other than the line end have no place in a command (and a NUL
# or a CR in the middle would confuse logs and downstream checks).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Command:
    """``name`` upper-case; ``args`` as sent (PASS: the whole rest of the line)."""

    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    reason: str


def strip_line_end(line: bytes) -> bytes:
    """The line without its CRLF (or bare LF)."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line.removesuffix(b"\n")


def parse_command(line: bytes) -> Command | SyntaxProblem:
    """See the module docstring."""
    try:
        text = strip_line_end(line).decode("utf-8")
    except UnicodeDecodeError:
        return SyntaxProblem("Invalid characters in command")
    if _CONTROL.search(text):
        return SyntaxProblem("Invalid characters in command")
    keyword, space, rest = text.partition(" ")
    if not _KEYWORD.match(keyword):
        return SyntaxProblem("Unknown command")
    name = keyword.upper()
    if not space:
        return Command(name)
    if name == "PASS":
        return Command(name, (rest,)) if rest else SyntaxProblem("Missing password")
    args = tuple(rest.split(" "))
    if any(arg == "" for arg in args):
        return SyntaxProblem("Arguments are separated by one space")
    return Command(name, args)


def parse_number(text: str) -> int | None:
    """A message number or line count (RFC 1939 §3: digits); None if not one."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_NUMBER_DIGITS:
        return None
    return int(text)
