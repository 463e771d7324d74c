"""Variables: expansion in commands, binding in expectations (conformance README §9).

* ``$name`` (longest run of ``[A-Za-z0-9_]``) or ``${name}``; ``$$`` is a ``$``.
* In commands every variable is replaced by its value; an unset one fails.
* In expectations a set variable must appear verbatim (case-sensitively); an
  unset one binds to the received text up to the next literal character of
  the pattern (compared case-insensitively) or to the end; ``$`` alone matches
  anything without binding.
* Numeric names (``$1``) are relative sequence numbers: the current number of
  the message that was number N when the group started.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class ExpansionError(Exception):
    """Variable expansion in a command failed (README §10: a test failure)."""


def _is_var_byte(byte: int) -> bool:
    return (0x30 <= byte <= 0x39) or (0x41 <= byte <= 0x5A) or (0x61 <= byte <= 0x7A) or byte == 0x5F


def _upper(byte: int) -> int:
    return byte - 32 if 0x61 <= byte <= 0x7A else byte


def is_relative_seq_name(name: bytes) -> bool:
    """imaptest's str_to_uint32: only digits, fitting 32 bits."""
    return name.isdigit() and int(name) < 2**32


@dataclass
class Variables:
    """All variable bindings of one test run, plus the group's sequence map."""

    values: dict[str, bytes] = field(default_factory=dict)
    seqmap: list[int] = field(default_factory=list)
    overlay: dict[str, bytes] = field(default_factory=dict)  # $tag while a match runs

    def get(self, name: str) -> bytes | None:
        if name in self.overlay:
            return self.overlay[name]
        return self.values.get(name)

    def reset_seqmap(self, count: int) -> None:
        """Identity map ``[1..count]`` recorded at the start of each group (§7.1)."""
        self.seqmap = list(range(1, count + 1))

    def relative_seq(self, number: int) -> bytes:
        if number == 0:
            return b"<zero seq>"
        if number > len(self.seqmap):
            return b"<out of range>"
        current = self.seqmap[number - 1]
        return b"<expunged>" if current == 0 else str(current).encode()

    def apply_expunge(self, seq: int) -> None:
        """``* N EXPUNGE`` (after matching): N becomes 0, larger entries shift down (§8.4)."""
        if seq == 0 or seq > len(self.seqmap):
            return
        for index in range(seq - 1, len(self.seqmap)):
            if self.seqmap[index] == seq:
                self.seqmap[index] = 0
            elif self.seqmap[index] > seq:
                self.seqmap[index] -= 1

    def snapshot(self) -> dict[str, bytes]:
        return dict(self.values)

    def restore(self, saved: dict[str, bytes]) -> None:
        """Undo bindings made by a failed match attempt."""
        self.values = saved

    @contextmanager
    def temporary(self, name: str, value: bytes | None) -> Iterator[None]:
        """Make ``$name`` resolve to ``value`` during a match (used for ``$tag``)."""
        if value is None:
            yield
            return
        self.overlay[name] = value
        try:
            yield
        finally:
            del self.overlay[name]


def _read_name(text: bytes, pos: int) -> tuple[bytes, int] | None:
    """Variable name starting right after a ``$`` at ``pos``; None for a missing ``}``."""
    if text[pos : pos + 1] == b"{":
        end = text.find(b"}", pos + 1)
        if end < 0:
            return None
        return text[pos + 1 : end], end + 1
    end = pos
    while end < len(text) and _is_var_byte(text[end]):
        end += 1
    return text[pos:end], end


def expand_command(text: bytes, variables: Variables) -> bytes:
    """Replace every variable in a command (test_expand_all); raises ExpansionError.

    A ``$`` at the very end stays literal; ``$!…`` directives are dropped.
    Expansion also runs inside literals without recomputing ``{N}`` (README §9).
    """
    out = bytearray()
    pos = 0
    while pos < len(text):
        byte = text[pos]
        if byte != 0x24 or pos == len(text) - 1:
            out.append(byte)
            pos += 1
            continue
        pos += 1
        if text[pos] == 0x24:
            out.append(0x24)
            pos += 1
            continue
        if text[pos] == 0x21:  # "$!directive": skip up to the next space
            while pos < len(text) and text[pos] != 0x20:
                pos += 1
            continue
        parsed = _read_name(text, pos)
        if parsed is None:
            raise ExpansionError("missing '}' in variable reference")
        name, pos = parsed
        out += _command_value(name, variables)
    return bytes(out)


def _command_value(name: bytes, variables: Variables) -> bytes:
    if is_relative_seq_name(name):
        return variables.relative_seq(int(name))
    value = variables.get(name.decode("latin-1"))
    if value is None:
        raise ExpansionError(f"uninitialized variable: ${name.decode('latin-1')}")
    return value


def expand_for_display(text: bytes, variables: Variables) -> bytes:
    """Expand what is known, keep unset variables as written (for failure messages)."""
    out = bytearray()
    pos = 0
    while pos < len(text):
        if text[pos] != 0x24 or pos == len(text) - 1:
            out.append(text[pos])
            pos += 1
            continue
        start = pos
        parsed = _read_name(text, pos + 1)
        if parsed is None or text[pos + 1] in b"$!":
            out.append(text[pos])
            pos += 1
            continue
        name, pos = parsed
        if is_relative_seq_name(name):
            out += variables.relative_seq(int(name))
            continue
        value = variables.get(name.decode("latin-1")) if name else None
        out += value if value is not None else text[start:pos]
    return bytes(out)


def match_text(pattern: bytes, received: bytes, variables: Variables, *, prefix: bool) -> bool:
    """Compare one expected text with one received text (README §8.1, §8.2, §9).

    Both are cut at their first NUL (imaptest compares C strings). Literal
    pattern text compares case-insensitively, set variables case-sensitively;
    unset variables bind. With ``prefix`` the expanded pattern need only be a
    prefix of the received text. Bindings are left in place even on failure;
    the caller undoes them.
    """
    pattern = pattern.split(b"\0", 1)[0]
    received = received.split(b"\0", 1)[0]
    expanded = _expand_against(pattern, received, variables)
    if expanded is None:
        return False
    if prefix:
        return received[: len(expanded)].lower() == expanded.lower()
    return received.lower() == expanded.lower()


def _expand_against(pattern: bytes, received: bytes, variables: Variables) -> bytes | None:
    """Walk pattern and received text together (test_expand_input); None on mismatch."""
    out = bytearray()
    pos = 0  # in pattern
    inp = 0  # in received
    while pos < len(pattern):
        byte = pattern[pos]
        if byte != 0x24 or pattern[pos + 1 : pos + 2] == b"$":
            if byte == 0x24:
                pos += 1
            literal = pattern[pos]
            if inp >= len(received) or _upper(received[inp]) != _upper(literal):
                return None
            out.append(literal)
            pos += 1
            inp += 1
            continue
        parsed = _read_name(pattern, pos + 1)
        if parsed is None:
            return None
        name, pos = parsed
        value = _pattern_value(name, pattern[pos:], received, inp, variables)
        out += value
        # The value must appear verbatim, case-sensitively.
        if received[inp : inp + len(value)] != value:
            return None
        inp += len(value)
    return bytes(out)


def _pattern_value(name: bytes, rest: bytes, received: bytes, inp: int, variables: Variables) -> bytes:
    """Value of one variable in a pattern, binding it when unset."""
    if is_relative_seq_name(name):
        return variables.relative_seq(int(name))
    text_name = name.decode("latin-1")
    value = variables.get(text_name) if name else None
    if value is not None:
        return value
    end = _binding_end(rest, received, inp, variables)
    captured = received[inp:end]
    if name:
        variables.values[text_name] = captured
    return captured


def _binding_end(rest: bytes, received: bytes, inp: int, variables: Variables) -> int:
    """Where an unset variable's text ends: at the next literal pattern character, or the end.

    When the pattern continues with another variable, imaptest stops at the
    first character of that variable's value; if that one is unset too (two
    adjacent unset variables, undefined per README §9) the first binds "".
    """
    if rest == b"":
        return len(received)
    stop = rest[0]
    if stop == 0x24 and rest[1:2] != b"$":
        parsed = _read_name(rest, 1)
        if parsed is None:
            return inp
        name = parsed[0]
        if is_relative_seq_name(name):
            value: bytes | None = variables.relative_seq(int(name))
        else:
            value = variables.get(name.decode("latin-1")) if name else None
        if not value:
            return inp
        stop = value[0]
    end = inp
    while end < len(received) and _upper(received[end]) != _upper(stop):
        end += 1
    return end
