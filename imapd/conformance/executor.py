"""Running a script: command groups, tagged replies, untagged matching (conformance README §7–§8.4).

Groups run strictly one after another. All commands of a group are sent at
once (pipelining), then only the group's connection is read until every
command has its tagged reply; responses other connections sent meanwhile are
read in the next group that runs on them, as imaptest does.

Like imaptest, a failed group does not stop the script: later groups still
run and every failure is reported. Timeouts, disconnections and protocol
errors end the script, because the connection's state is unknown after them.
"""

from __future__ import annotations

import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

from .connection import Connection, ConnectionClosed, Response, ResponseTimeout, ViewError
from .matcher import MATCHED, is_prefix_response, match_args
from .mbox import MboxError, MboxSource
from .report import Failure, Outcome, ScriptResult
from .script import Expectation, Group, Script, ScriptCommand, ScriptError, parse_script_file
from .preparation import SetupFailed, SetupSkipped, choose_logins, define_variables, imap_quote, prepare, skip_and_logout
from .tokens import ArgKind, format_args, printable, tokenize_response
from .variables import ExpansionError, Variables, expand_command, expand_for_display


@dataclass
class RunnerConfig:
    """Where and as whom to run (imaptest's host=, port=, user=, user2=, pass=, box=)."""

    host: str = "127.0.0.1"
    port: int = 143
    user: str = "testuser"
    user2: str | None = None
    password: str = "pass"
    mailbox: str = "imaptest"
    timeout: float = 15.0  # seconds per response
    trace: Callable[[str], None] | None = None  # receives every line sent and received
    # "tls": implicit TLS from the first byte (IMAPS); "starttls": STARTTLS after
    # the greeting (RFC 3501 §6.2.1), before anything else. imaptest has neither.
    security: Literal["plain", "tls", "starttls"] = "plain"
    tls_context: ssl.SSLContext | None = None  # None: the system's CAs, host name checked

    def context(self) -> ssl.SSLContext:
        """The TLS context connections use (only when ``security`` is not "plain")."""
        if self.tls_context is None:
            self.tls_context = ssl.create_default_context()
        return self.tls_context


class _Abort(Exception):
    """Stop the script: the failure has been recorded."""


@dataclass
class _GroupState:
    """Bookkeeping of the group that is running."""

    group: Group
    number: int  # 1-based
    conn: Connection
    pending: dict[bytes, tuple[ScriptCommand, bytes]] = field(default_factory=dict)
    first_tag: bytes = b""
    found: list[bool] = field(default_factory=list)
    best: list[tuple[int, str]] = field(default_factory=list)
    mismatches: int = 0
    first_extra: str = ""
    received: list[str] = field(default_factory=list)
    failed: bool = False
    command_text: str = ""  # first command as sent, for messages
    idle_done: bool = False  # DONE already sent for this group's IDLE


class TestRun:
    """One execution of one script against one server."""

    __test__ = False  # not a pytest test class

    def __init__(self, script: Script, config: RunnerConfig) -> None:
        self.script = script
        self.config = config
        self.variables = Variables()
        self.mailbox = config.mailbox.encode("utf-8")
        implicit = config.context() if config.security == "tls" else None
        self.connections = [
            Connection(index, config.host, config.port, config.timeout, mailbox=self.mailbox, tls_context=implicit)
            for index in range(1, script.connections + 1)
        ]
        self.logins: dict[int, str] = {}
        self.capabilities: set[str] = set()
        self.greeting_capabilities: set[str] | None = None
        self.result = ScriptResult(script.path, script.name, script.is_extension)
        self._source: MboxSource | None = None
        self._state: _GroupState | None = None

    # --- helpers used by setup -----------------------------------------------------

    def trace(self, line: str) -> None:
        if self.config.trace is not None:
            self.config.trace(line)

    def has_capability(self, name: str) -> bool:
        return name.upper() in self.capabilities

    def source(self) -> MboxSource:
        """The per-test mbox cursor, loaded on first use."""
        if self._source is None:
            self._source = MboxSource.from_file(self.script.mbox_path)
        return self._source

    # --- running -------------------------------------------------------------------

    def run(self) -> ScriptResult:
        try:
            self.logins = choose_logins(self)
            define_variables(self)
            prepare(self)
        except SetupSkipped as skip:
            skip_and_logout(self, str(skip))
            self._close_all()
            return self.result
        except SetupFailed as failure:
            self._fail_setup(str(failure), failure.connection, failure.command, failure.received)
        except (MboxError, OSError) as exc:
            self._fail_setup(f"initialization failed: {exc}", 1, "", [])
        if self.result.outcome is Outcome.FAILED:
            self._close_all()
            return self.result
        try:
            for number, group in enumerate(self.script.groups, start=1):
                self._run_group(number, group)
        except _Abort:
            pass
        finally:
            self._close_all()
        return self.result

    def _close_all(self) -> None:
        for conn in self.connections:
            conn.close()

    def _fail_setup(self, message: str, connection: int, command: str, received: list[str]) -> None:
        self.result.outcome = Outcome.FAILED
        self.result.failures.append(
            Failure(self.script.path, 0, message, connection=connection, command=command, received=received)
        )

    def _fail(self, line: int, message: str, **details: str) -> None:
        """Record a failure of the running group."""
        state = self._state
        assert state is not None
        if not state.failed:
            state.failed = True
            self.result.groups_failed += 1
        self.result.outcome = Outcome.FAILED
        self.result.failures.append(
            Failure(
                self.script.path,
                line,
                message,
                group=state.number,
                group_count=len(self.script.groups),
                connection=state.conn.index,
                command=details.get("command", state.command_text),
                expected=details.get("expected", ""),
                expanded=details.get("expanded", ""),
                best_match=details.get("best_match", ""),
                received=list(state.received),
            )
        )

    def _abort(self, line: int, message: str, **details: str) -> NoReturn:
        self._fail(line, message, **details)
        raise _Abort

    # --- one command group (§7.1) --------------------------------------------------

    def _run_group(self, number: int, group: Group) -> None:
        conn = self.connections[group.connection - 1]
        state = _GroupState(group, number, conn)
        state.found = [False] * len(group.expectations)
        state.best = [(-1, "")] * len(group.expectations)
        self._state = state
        self.result.groups_run += 1
        if conn.closed:
            self._abort(group.line, f"connection {conn.index} is already closed (it logged out or was dropped)")
        self.variables.reset_seqmap(conn.count)
        try:
            for command in group.commands:
                self._send(state, command)
            while state.pending:
                self._handle(state, conn.read_response())
        except ResponseTimeout as exc:
            self._abort(self._pending_line(state), f"timed out waiting for the tagged reply: {exc}")
        except ConnectionClosed:
            self._disconnected(state)
        except ViewError as exc:
            self._abort(group.line, f"protocol error (imaptest disconnects here): {exc}")
        self._finish_group(state)

    def _pending_line(self, state: _GroupState) -> int:
        for command, _ in state.pending.values():
            return command.line
        return state.group.line

    def _send(self, state: _GroupState, command: ScriptCommand) -> None:
        conn = state.conn
        try:
            text, literal_plus = self._command_bytes(conn, command)
        except ExpansionError as exc:
            self._abort(command.line, f"variable expansion failed: {exc}", command=printable(command.text))
        if command.implicit or text.lower() == b"logout" or state.group.has_bye:
            conn.logging_out = True
        conn.track_sent(text)
        tag = conn.next_tag()
        if not state.first_tag:
            state.first_tag = tag
            state.command_text = printable(text)
        state.pending[tag] = (command, text)
        self.trace(f"C{conn.index}: {tag.decode()} {printable(text)}")
        conn.send_command(tag, text, literal_plus=literal_plus, on_response=lambda r: self._handle(state, r))

    def _command_bytes(self, conn: Connection, command: ScriptCommand) -> tuple[bytes, bool]:
        """Expanded command text; bare ``append`` forms get an mbox message (§7.2)."""
        text = expand_command(command.text, self.variables)
        literal_plus = self.has_capability("LITERAL+")
        if text.lower() == b"append":
            message = self.source().next_message()
            head = b"APPEND %s \"%s\" " % (imap_quote(conn.mailbox), message.internal_date.encode())
            return head + b"{%d}\r\n" % len(message.data) + message.data, literal_plus
        if text[:7].lower() == b"append " and not append_has_body(text[7:]):
            message = self.source().next_message()
            return text + b" {%d}\r\n" % len(message.data) + message.data, literal_plus
        return text, literal_plus

    # --- responses (§7.3, §7.4, §8.4) ----------------------------------------------

    def _handle(self, state: _GroupState, response: Response) -> None:
        state.received.append(response.display())
        self.trace(f"S{state.conn.index}: {response.display()}")
        if response.kind == "untagged":
            state.conn.track_untagged(response)
            self._match_untagged(state, response)
            args = response.args
            if len(args) >= 2 and args[0].kind is ArgKind.ATOM and args[1].kind is ArgKind.ATOM:
                if args[1].text.upper() == b"EXPUNGE" and args[0].text.isdigit():
                    self.variables.apply_expunge(int(args[0].text))
        elif response.kind == "tagged":
            self._tagged_reply(state, response)
        elif self._idling(state):
            # Extension (RFC 2177): the "+" that starts IDLE is answered with DONE at once.
            state.idle_done = True
            self.trace(f"C{state.conn.index}: DONE")
            state.conn.send(b"DONE\r\n")
        else:
            self._abort(state.group.line, "unexpected continuation request from the server")

    @staticmethod
    def _idling(state: _GroupState) -> bool:
        """A command ``idle`` of this group awaits its reply and has not been ended yet."""
        return not state.idle_done and any(text.lower() == b"idle" for _, text in state.pending.values())

    def _tagged_reply(self, state: _GroupState, response: Response) -> None:
        entry = state.pending.pop(response.tag, None)
        if entry is None:
            self._abort(state.group.line, f"tagged reply with an unknown tag {printable(response.tag)!r}")
        command, text = entry
        state.conn.track_tagged(text, response)
        expected = command.reply or []
        with self.variables.temporary("tag", response.tag):
            saved = self.variables.snapshot()
            result = match_args(expected, response.args, self.variables, prefix=True)
            if result != MATCHED:
                self.variables.restore(saved)
        expected_text = format_args(expected) or '""'
        bad_unexpected = response.status == b"BAD" and not (
            expected and expected[0].kind is ArgKind.ATOM and expected[0].text.lower() == b"bad"
        )
        if result != MATCHED:
            self._fail(command.reply_line, f"expected tagged reply '{expected_text}', got '{format_args(response.args)}'",
                       command=printable(text), expected=expected_text)
        elif bad_unexpected:
            self._fail(command.reply_line, "server answered BAD where the script does not expect BAD "
                       "(imaptest treats this as a protocol error and disconnects)",
                       command=printable(text), expected=expected_text)
        if bad_unexpected:
            raise _Abort

    def _match_untagged(self, state: _GroupState, response: Response) -> None:
        """Try every unsatisfied expectation in script order; one response may satisfy several."""
        group = state.group
        if not group.expectations and (self.script.ignore_extra_untagged or state.conn.logging_out):
            return
        prefix = is_prefix_response(response.args)
        tag = state.first_tag if state.first_tag in state.pending else None
        found_some = False
        for index, expectation in enumerate(group.expectations):
            if state.found[index]:
                continue
            saved = self.variables.snapshot()
            with self.variables.temporary("tag", tag):
                result = match_args(expectation.args, response.args, self.variables, prefix=prefix)
            if result == MATCHED:
                if expectation.existence == "!":
                    self._fail(expectation.line, "unexpected untagged match (a '!' line matched)",
                               expected="! " + printable(expectation.text), best_match=response.display())
                    return
                state.found[index] = True
                found_some = True
                continue
            self.variables.restore(saved)
            if result > state.best[index][0]:
                state.best[index] = (result, response.display())
        if not found_some:
            state.mismatches += 1
            if not self.script.ignore_extra_untagged and not state.first_extra:
                state.first_extra = response.display()

    def _disconnected(self, state: _GroupState) -> None:
        """Server closed the connection while replies were pending (§7.3)."""
        conn = state.conn
        if not (state.group.has_bye and conn.seen_bye):
            self._abort(self._pending_line(state), "unexpected disconnection")
        for command, _ in state.pending.values():
            reply = command.reply or []
            if not (len(reply) == 1 and reply[0].kind is ArgKind.ATOM and reply[0].text == b""):
                self._fail(command.reply_line, f"command expected '{format_args(reply)}' as tagged reply - "
                           'only "" allowed when BYE happens')
        state.pending.clear()

    def _finish_group(self, state: _GroupState) -> None:
        """Missing ``*`` lines, extra responses, ``!output``, ``!sleep``; close after LOGOUT (§7.1)."""
        missing = [(index, exp) for index, exp in enumerate(state.group.expectations)
                   if exp.existence == "*" and not state.found[index]]
        if missing:
            self._report_missing(state, missing)
        if state.first_extra:
            self._fail(state.group.line, f"{state.mismatches} unexpected untagged replies received "
                       "(ignore_extra_untagged: no)", best_match=state.first_extra)
        for output in state.group.outputs:
            try:
                line = expand_command(output, self.variables)
            except ExpansionError as exc:
                self._fail(state.group.line, f"!output: {exc}")
                continue
            self.result.outputs.append(printable(line))
        if state.group.sleep_ms:
            time.sleep(state.group.sleep_ms / 1000)
        if state.conn.logging_out:
            state.conn.close()

    def _report_missing(self, state: _GroupState, missing: list[tuple[int, Expectation]]) -> None:
        index, first = missing[0]
        lines = ", ".join(str(exp.line) for _, exp in missing)
        self._fail(
            first.line,
            f"missing {len(missing)} untagged replies ({state.mismatches} mismatches); "
            f"expected at script line(s) {lines}",
            expected="* " + printable(first.text),
            expanded="* " + printable(expand_for_display(first.text, self.variables)),
            best_match=state.best[index][1],
        )


def append_has_body(args_text: bytes) -> bool:
    """Does ``append <args>`` carry its message (a literal or CATENATE after box [flags] [date])? (§7.2)"""
    args = tokenize_response(args_text)
    if not args:
        return False
    position = 0
    if len(args) > position + 1 and args[position + 1].kind is ArgKind.LIST:
        position += 1
    if len(args) > position + 1 and args[position + 1].kind is ArgKind.STRING:
        position += 1
    if len(args) <= position + 1:
        return False
    following = args[position + 1]
    if following.kind is ArgKind.LITERAL:
        return True
    return following.kind is ArgKind.ATOM and following.text.lower() == b"catenate"


def run_script(script: Script, config: RunnerConfig) -> ScriptResult:
    """Run one parsed script against the configured server."""
    return TestRun(script, config).run()


def run_script_file(path: str | Path, config: RunnerConfig) -> ScriptResult:
    """Parse and run one script file; a parse error is a failed result."""
    try:
        script = parse_script_file(path)
    except ScriptError as exc:
        result = ScriptResult(str(path), Path(path).name, False, Outcome.FAILED)
        result.failures.append(Failure(str(path), exc.line, f"script parse error: {exc.message}"))
        return result
    return run_script(script, config)


def default_trace(line: str) -> None:
    print(line, file=sys.stderr)
