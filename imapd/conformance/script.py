"""Parsing imaptest script files (conformance README §2–§4, defaults of §8.3).

A script is a header (``key: value`` lines up to the first empty line) and a
body of command groups. Each group holds one command, or several pipelined
``tagN`` commands, with their expected tagged replies and the untagged
responses expected (``*``), banned (``!``) or allowed (``?``) while it runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .directives import add_default_directives, reply_name
from .tokens import Arg, TokenizeError, atom, tokenize_script

STATES = ("nonauth", "auth", "created", "appended", "selected")
REPLY_WORDS = {b"ok": b"ok", b"no": b"no", b"bad": b"bad", b'""': b""}
MAX_CONNECTIONS = 100


class ScriptError(ValueError):
    """The script file cannot be parsed (README §10: imaptest aborts the run)."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass
class Expectation:
    """An expected (``*``), banned (``!``) or optional (``?``) untagged response."""

    line: int
    existence: str  # "*", "!" or "?"
    text: bytes  # the line after "* ", for messages
    args: list[Arg]  # tokenised, with default directives inserted (§8.3)


@dataclass
class ScriptCommand:
    """One command of a group and its expected tagged reply (None until a reply line)."""

    line: int  # 0 for the implicit LOGOUT
    text: bytes
    label: int = 0  # the N of a script "tagN" label; 0 for an unlabelled command
    reply: list[Arg] | None = None
    reply_line: int = 0

    @property
    def implicit(self) -> bool:
        return self.line == 0


@dataclass
class Group:
    """A command group (README §4): commands sent together on one connection."""

    connection: int  # 1-based
    commands: list[ScriptCommand] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    outputs: list[bytes] = field(default_factory=list)
    sleep_ms: int = 0
    has_bye: bool = False

    @property
    def line(self) -> int:
        return self.commands[0].line if self.commands else 0

    def pending_replies(self) -> int:
        return sum(1 for cmd in self.commands if cmd.reply is None)


@dataclass
class Script:
    """A parsed script file with its header settings (README §3)."""

    path: str
    name: str
    mbox_path: str
    capabilities: list[str] = field(default_factory=list)
    connections: int = 1
    messages: int | None = 0  # None means "all"
    state: str = "selected"
    users: dict[int, str] = field(default_factory=dict)  # connection -> user ("$user2" kept)
    ignore_extra_untagged: bool = True
    groups: list[Group] = field(default_factory=list)

    @property
    def is_extension(self) -> bool:
        """Scripts with a ``capabilities:`` header count as extension tests (§3, §10)."""
        return bool(self.capabilities)

    @property
    def needs_user2(self) -> bool:
        return any(user in ("$user2", "${user2}") for user in self.users.values())


NOT_TESTS = {"LICENSE", "COPYING", "COPYING.MIT", "AUTHORS"}


def list_script_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Test files of a directory, sorted: not ``*.mbox``, dot-files, directories or licences (§1)."""
    result = []
    for entry in sorted(Path(directory).iterdir()):
        if entry.name.startswith(".") or entry.name.endswith(".mbox") or not entry.is_file():
            continue
        if entry.name in NOT_TESTS:
            continue
        result.append(entry)
    return result


def mbox_for(path: Path) -> Path:
    """``X.mbox`` next to test ``X`` if it exists, else ``default.mbox`` there (§1)."""
    own = path.with_name(path.name + ".mbox")
    return own if own.exists() else path.with_name("default.mbox")


def parse_script_file(path: str | os.PathLike[str]) -> Script:
    file_path = Path(path)
    return parse_script(file_path.read_bytes(), str(file_path), str(mbox_for(file_path)))


def parse_script(data: bytes, path: str = "<script>", mbox_path: str = "default.mbox") -> Script:
    """Parse script bytes (README §2–§4); raises ScriptError with the offending line."""
    script = Script(path=path, name=os.path.basename(path), mbox_path=mbox_path)
    parser = _BodyParser(script)
    header = True
    for line_number, line in logical_lines(data, path):
        if line == b"":
            header = False
            continue
        if header:
            _parse_header_line(script, line, line_number)
        else:
            parser.parse_line(line, line_number)
    parser.finish()
    _add_implicit_logout(script)
    return script


def logical_lines(data: bytes, path: str) -> list[tuple[int, bytes]]:
    """Split into logical lines: drop comments, fold ``{{{``/``~{{{`` literals (§2).

    Returns (number of the line that started it, text). Empty lines are kept so
    the caller can find the end of the header.
    """
    if data and not data.endswith(b"\n"):
        raise ScriptError(path, data.count(b"\n") + 1, "last line doesn't end with LF")
    physical = data.split(b"\n")[:-1]
    result: list[tuple[int, bytes]] = []
    index = 0
    while index < len(physical):
        line = physical[index]
        start = index + 1
        index += 1
        if line.startswith(b"#"):
            continue
        if not line.endswith(b"{{{"):
            result.append((start, line))
            continue
        logical = bytearray()
        while line.endswith(b"{{{"):
            binary = line.endswith(b"~{{{")
            logical += line[: -4 if binary else -3]
            content: list[bytes] = []
            while True:
                if index >= len(physical):
                    raise ScriptError(path, start, "multi-line literal not ended with }}}")
                inner = physical[index]
                index += 1
                if inner.startswith(b"}}}"):
                    line = inner[3:]
                    break
                content.append(inner)
            # Binary literals join with bare LF, text literals with CRLF (§2).
            body = (b"\n" if binary else b"\r\n").join(content)
            logical += b"%s{%d}\r\n%s" % (b"~" if binary else b"", len(body), body)
        logical += line
        result.append((start, bytes(logical)))
    return result


def _parse_header_line(script: Script, line: bytes, line_number: int) -> None:
    """One ``key: value`` header line (README §3); unknown keys are errors."""
    text = line.decode("utf-8", "replace")
    if ":" not in text:
        raise ScriptError(script.path, line_number, "missing ':' in header line")
    key, value = text.split(":", 1)
    key = key.rstrip(" ").lower()
    value = value.lstrip(" ")
    if key == "capabilities":
        script.capabilities = value.split()
    elif key == "connections":
        count = 2 if value.strip() == "n" else _leading_int(value)
        if not 0 < count <= MAX_CONNECTIONS:
            raise ScriptError(script.path, line_number, f"invalid connections: {value!r}")
        script.connections = count
    elif key == "messages":
        script.messages = None if value.strip() == "all" else _leading_int(value)
    elif key == "state":
        if value.strip().lower() not in STATES:
            raise ScriptError(script.path, line_number, f"unknown state value {value!r}")
        script.state = value.strip().lower()
    elif key == "ignore_extra_untagged":
        script.ignore_extra_untagged = value.startswith("y")
    elif re.fullmatch(r"user \d+", key) and int(key[5:]) > 0:
        index = int(key[5:])
        if index > MAX_CONNECTIONS:
            raise ScriptError(script.path, line_number, "too many connections")
        script.users[index] = value
    else:
        raise ScriptError(script.path, line_number, f"unknown setting {key!r}")


def _leading_int(value: str) -> int:
    """strtoul-style: the leading digits, 0 if none."""
    match = re.match(r"\s*(\d+)", value)
    return int(match.group(1)) if match else 0


def _split_word(line: bytes) -> tuple[bytes, bytes | None]:
    """(first space-separated word, rest after the space or None when there is no space)."""
    word, space, rest = line.partition(b" ")
    return word, (rest if space else None)


def _parse_reply_word(line: bytes) -> tuple[int, bytes | None, bytes]:
    """``[tagN ][status ]rest`` → (label, status or None, rest) (test_get_cmd_reply)."""
    label = 0
    word, rest = _split_word(line)
    if word[:3].lower() == b"tag" and rest is not None and word[3:].isdigit() and int(word[3:]) > 0:
        label = int(word[3:])
        line = rest
        word, rest = _split_word(line)
    status = REPLY_WORDS.get(word.lower())
    if status is None:
        return label, None, line
    return label, status, rest if rest is not None else b""


class _BodyParser:
    """State machine over body lines: groups, pending replies, directives (§4)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.group: Group | None = None
        self.ifenv_stack: list[tuple[int, bool]] = []  # (line, skip state before)
        self.skip = False

    def error(self, line_number: int, message: str) -> ScriptError:
        return ScriptError(self.script.path, line_number, message)

    def parse_line(self, line: bytes, line_number: int) -> None:
        if self._handle_ifenv(line, line_number) or self.skip:
            return
        group = self.group
        if group is not None:
            if self._handle_directive(group, line, line_number):
                return
            if line[:2] in (b"* ", b"! ", b"? "):
                self._add_expectation(group, line, line_number)
                return
            if group.pending_replies() > 0:
                label, status, _ = _parse_reply_word(line)
                if status is not None:
                    self._add_reply(group, label, line, line_number)
                    return
        self._add_command(line, line_number)

    def _handle_ifenv(self, line: bytes, line_number: int) -> bool:
        """``!ifenv``/``!ifnenv``/``!else``/``!endif`` (§4; §11: ``!ifnenv`` never skips)."""
        if line.startswith(b"!ifenv ") or line.startswith(b"!ifnenv "):
            self.ifenv_stack.append((line_number, self.skip))
            if line.startswith(b"!ifenv "):
                name = line[7:].decode("utf-8", "replace")
                if os.environ.get(name) is None:
                    self.skip = True
            # imaptest reads the !ifnenv name from the wrong offset, so it never skips.
            return True
        if line == b"!else":
            if not self.ifenv_stack:
                raise self.error(line_number, "!else without !ifenv")
            if not self.ifenv_stack[-1][1]:
                self.skip = not self.skip
            return True
        if line == b"!endif":
            if not self.ifenv_stack:
                raise self.error(line_number, "!endif without !ifenv")
            self.skip = self.ifenv_stack.pop()[1]
            return True
        return False

    def _handle_directive(self, group: Group, line: bytes, line_number: int) -> bool:
        if line.startswith(b"!sleep "):
            group.sleep_ms = parse_interval_ms(line[7:].decode("ascii", "replace"), self, line_number)
            return True
        if line.startswith(b"!output "):
            group.outputs.append(line[8:])
            return True
        return False

    def _add_expectation(self, group: Group, line: bytes, line_number: int) -> None:
        existence = line[:1].decode()
        text = line[2:]
        try:
            args = tokenize_script(text)
        except TokenizeError as exc:
            raise self.error(line_number, f"cannot parse expected response: {exc}") from None
        try:
            args = add_default_directives(args)
        except ValueError as exc:
            raise self.error(line_number, str(exc)) from None
        name = reply_name(args)
        if name.lower().startswith(b"bye"):
            if existence == "*":
                group.has_bye = True
            elif existence == "?":
                raise self.error(line_number, "? BYE not currently supported")
        group.expectations.append(Expectation(line_number, existence, text, args))

    def _add_reply(self, group: Group, label: int, line: bytes, line_number: int) -> None:
        command = next((cmd for cmd in group.commands if cmd.label == label), None)
        if command is None:
            raise self.error(line_number, "reply for unknown tag")
        if command.reply is not None:
            raise self.error(line_number, "command already has a reply")
        try:
            args = tokenize_script(line)
        except TokenizeError as exc:
            raise self.error(line_number, f"cannot parse reply: {exc}") from None
        command.reply = args[1:] if label else args
        command.reply_line = line_number

    def _add_command(self, line: bytes, line_number: int) -> None:
        group = self.group
        if group is None or group.pending_replies() == 0:
            group = None
        connection = 1
        if self.script.connections > 1:
            word, rest = _split_word(line)
            if not word.isdigit() or int(word) == 0:
                raise self.error(line_number, "missing client index")
            connection = int(word)
            if connection > MAX_CONNECTIONS:
                raise self.error(line_number, "too many connections")
            if group is not None and group.connection != connection:
                raise self.error(line_number, "all pipelined commands must use the same connection")
            self.script.connections = max(self.script.connections, connection)
            line = rest if rest is not None else b""
        label, status, text = _parse_reply_word(line)
        if label == 0 and group is not None:
            raise self.error(line_number, "missing reply from previous command group")
        if group is None:
            group = Group(connection=connection)
            self.group = group
            self.script.groups.append(group)
        if label and any(cmd.label == label for cmd in group.commands):
            raise self.error(line_number, "tag reused within command group")
        reply = [atom(status)] if status is not None else None
        group.commands.append(ScriptCommand(line_number, text, label, reply, line_number))

    def finish(self) -> None:
        if self.ifenv_stack:
            raise self.error(self.ifenv_stack[0][0], "!ifenv not closed with !endif")
        if self.group is None:
            raise self.error(0, "no commands in file")
        for command in self.group.commands:
            if command.reply is None:
                raise self.error(command.line, "missing reply for the command at this line")


_INTERVAL_UNITS = {
    "ms": 1, "msec": 1, "msecs": 1, "s": 1000, "sec": 1000, "secs": 1000,
    "m": 60000, "min": 60000, "mins": 60000, "h": 3600000, "hour": 3600000, "hours": 3600000,
}


def parse_interval_ms(value: str, parser: _BodyParser, line_number: int) -> int:
    """Dovecot time interval (``500ms``, ``2s``, ``1min``); a unitless non-zero number is an error."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-z]*)\s*", value)
    if match is None:
        raise parser.error(line_number, f"invalid !sleep value {value!r}")
    number, unit = int(match.group(1)), match.group(2)
    if unit == "":
        if number != 0:
            raise parser.error(line_number, f"invalid !sleep value {value!r}: time unit missing")
        return 0
    if unit not in _INTERVAL_UNITS:
        raise parser.error(line_number, f"invalid !sleep value {value!r}: unknown unit")
    return number * _INTERVAL_UNITS[unit]


def _add_implicit_logout(script: Script) -> None:
    """Append ``1 ok logout`` unless some command is ``logout`` or a group expects BYE (§4)."""
    for group in script.groups:
        if group.has_bye:
            return
        if any(cmd.text.lower() == b"logout" for cmd in group.commands):
            return
    logout = ScriptCommand(0, b"logout", 0, [atom(b"ok")], 0)
    script.groups.append(Group(connection=1, commands=[logout]))
