"""The protocol-neutral login checks (``imapd.accounts.authenticator``):
verdicts, the password check off the reactor thread, penalties before the
check (issue 6), the failure delay, SCRAM (RFC 5802 §5) through the same
gates, and credentials never in the logs. On a ``task.Clock``: nothing here
waits for wall-clock time."""

from __future__ import annotations

import base64
from typing import Any, Callable, Coroutine, Iterator, ParamSpec, TypeVar, cast

import pytest
import scramp  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from imapd.accounts.authenticator import (
    Authenticator, Client, Outcome, Verdict, may_act_as, plaintext_allowed, split_plain,
)
from imapd.accounts.penalty import LoginGuard
from imapd.accounts.scram import ScramKeys, derive_keys
from imapd.core.config import Limits
from imapd.core.model import Secret
from imapd.net.runtime import InlineRuntime

P = ParamSpec("P")
T = TypeVar("T")

PASSWORD = "wonderland-7f3a"  # distinctive, so a leak in a log line is found
CLIENT = Client("192.0.2.7", "session 9 (192.0.2.7:4711)")
LIMITS = Limits(failed_login_delay=1.0, auth_penalty_initial=2.0, auth_penalty_max=15.0)
ALICE_KEYS = derive_keys(PASSWORD.encode(), 4096)


class Users:
    """Alice only; records each check and whether it ran "in a thread"."""

    def __init__(self, runtime: ThreadRecordingRuntime) -> None:
        self.runtime = runtime
        self.checks: list[tuple[str, bool]] = []

    def verify(self, name: str, password: Secret) -> bool:
        self.checks.append((name, self.runtime.in_worker))
        return name == "alice" and password.value == PASSWORD.encode()

    def scram_keys(self, name: str) -> ScramKeys | None:
        self.checks.append(("scram:" + name, self.runtime.in_worker))
        return ALICE_KEYS if name == "alice" else None


class ThreadRecordingRuntime(InlineRuntime):
    """Inline "threads", but it knows when work runs in one."""

    in_worker = False

    def in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        self.in_worker = True
        try:
            return super().in_thread(fn, *args, **kwargs)
        finally:
            self.in_worker = False


class Rig:
    def __init__(self, limits: Limits = LIMITS) -> None:
        self.clock = Clock()
        self.runtime = ThreadRecordingRuntime(self.clock)
        self.users = Users(self.runtime)
        self.guard = LoginGuard(limits, self.clock.seconds)
        self.auth = Authenticator(
            self.users, self.runtime, limits, guard=self.guard, now=self.clock.seconds)

    def start(self, coro: Coroutine[Any, Any, T]) -> list[T]:
        """Run ``coro``; the returned list gets its result when it ends."""
        results: list[T] = []

        def failed(failure: Failure) -> None:
            failure.raiseException()

        Deferred.fromCoroutine(coro).addCallbacks(results.append, failed)
        return results

    def now(self, coro: Coroutine[Any, Any, T]) -> T:
        """The result of a check that must not wait at all."""
        results = self.start(coro)
        assert results, "the check waited"
        return results[0]

    def password(self, user: str, password: str) -> Coroutine[Any, Any, Verdict]:
        return self.auth.check_password(CLIENT, user, Secret(password.encode()))


def test_right_password_is_ok_and_checked_in_a_thread() -> None:
    rig = Rig()
    verdict = rig.now(rig.password("alice", PASSWORD))
    assert verdict == Verdict(Outcome.OK, "alice") and verdict.ok
    assert rig.users.checks == [("alice", True)]  # argon2 never on the reactor thread


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("mallory", PASSWORD)])
def test_wrong_password_and_unknown_user_fail_alike_after_the_delay(user: str, password: str) -> None:
    rig = Rig()
    results = rig.start(rig.password(user, password))
    rig.clock.advance(0.99)
    assert results == []
    rig.clock.advance(0.01)
    assert results == [Verdict(Outcome.FAILED)]  # no name, no reason: nothing to tell apart


def test_a_failure_penalises_the_next_attempt_before_its_check() -> None:
    rig = Rig()
    rig.start(rig.password("alice", "wrong"))
    rig.clock.advance(1.0)
    # Even the right password waits out the penalty (2 s) before it is checked.
    results = rig.start(rig.password("alice", PASSWORD))
    rig.clock.advance(1.99)
    assert results == [] and len(rig.users.checks) == 1
    rig.clock.advance(0.01)
    assert results == [Verdict(Outcome.OK, "alice")] and len(rig.users.checks) == 2


def test_success_clears_the_users_penalty_and_the_addresss() -> None:
    rig = Rig()
    rig.start(rig.password("alice", "wrong"))
    rig.clock.advance(1.0)
    rig.start(rig.password("alice", PASSWORD))
    rig.clock.advance(2.0)
    assert rig.guard.delay_for("198.51.100.1", "alice") == 0.0
    # Others behind the same address (NAT, webmail) do not wait (issue 13).
    assert rig.guard.delay_for(CLIENT.address, "bob") == 0.0
    assert rig.now(rig.password("alice", PASSWORD)).ok  # no wait at all


def test_without_a_guard_there_is_no_penalty() -> None:
    clock = Clock()
    runtime = ThreadRecordingRuntime(clock)
    auth = Authenticator(Users(runtime), runtime, LIMITS, now=clock.seconds)
    failed: list[Verdict] = []
    Deferred.fromCoroutine(auth.check_password(CLIENT, "alice", Secret(b"x"))).addCallback(
        failed.append)
    clock.advance(1.0)
    assert failed == [Verdict(Outcome.FAILED)]
    ok: list[Verdict] = []
    Deferred.fromCoroutine(auth.check_password(CLIENT, "alice", Secret(PASSWORD.encode()))
                           ).addCallback(ok.append)
    assert ok == [Verdict(Outcome.OK, "alice")]


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log event while the test runs: its text and its repr."""
    seen: list[str] = []

    def observe(event: LogEvent) -> None:
        seen.append(f"{formatEvent(event)} {event!r}")

    observer = cast(ILogObserver, observe)
    globalLogPublisher.addObserver(observer)
    try:
        yield seen
    finally:
        globalLogPublisher.removeObserver(observer)


def test_failures_are_logged_with_the_client_never_the_secret_or_name(
    log_lines: list[str],
) -> None:
    rig = Rig()
    rig.start(rig.password("alice-typo" + PASSWORD, PASSWORD + "x"))
    rig.clock.advance(1.0)
    failures = [line for line in log_lines if "authentication failed" in line]
    assert failures and CLIENT.label in failures[0]
    assert not any(PASSWORD in line for line in log_lines)


# --- SCRAM-SHA-256 (RFC 7677, RFC 5802 §5) -------------------------------------------


def scram_client(user: str = "alice", password: str = PASSWORD) -> Any:
    return scramp.ScramClient(["SCRAM-SHA-256"], user, password)


def test_scram_exchange_logs_in_only_when_done() -> None:
    rig = Rig()
    rig.guard.record_failure("203.0.113.1", "alice")  # a penalty done() must clear
    client = scram_client()
    login = rig.auth.scram(CLIENT)
    first = rig.start(login.first(client.get_client_first().encode()))
    rig.clock.advance(2.0)  # the user's penalty, waited out before server-first
    assert first and first[0].ok and first[0].user == "alice"
    client.set_server_first(first[0].data.decode())
    final = rig.now(login.final(client.get_client_final().encode()))
    assert final.ok
    client.set_server_final(final.data.decode())  # raises if the server's proof is wrong
    assert rig.guard.delay_for("198.51.100.1", "alice") == 2.0  # not yet: IMAP may still say BAD
    assert login.done() == Verdict(Outcome.OK, "alice")
    assert rig.guard.delay_for("198.51.100.1", "alice") == 0.0


def test_scram_keys_are_looked_up_in_a_thread() -> None:
    """The user store may be a database round trip away (issue 14): the
    keys are fetched off the reactor thread, for known and unknown users."""
    rig = Rig(Limits(auth_penalty_initial=0.0))
    for user in ("alice", "mallory"):
        login = rig.auth.scram(CLIENT)
        assert rig.now(login.first(scram_client(user).get_client_first().encode())).ok
    assert rig.users.checks == [("scram:alice", True), ("scram:mallory", True)]


def test_scram_wrong_password_fails_like_a_wrong_password(log_lines: list[str]) -> None:
    rig = Rig()
    client = scram_client(password="not-" + PASSWORD)
    login = rig.auth.scram(CLIENT)
    first = rig.now(login.first(client.get_client_first().encode()))
    client.set_server_first(first.data.decode())
    results = rig.start(login.final(client.get_client_final().encode()))
    rig.clock.advance(0.99)
    assert results == []
    rig.clock.advance(0.01)
    assert results == [Verdict(Outcome.FAILED)]
    assert rig.guard.delay_for("198.51.100.1", "alice") == 2.0
    assert any("authentication failed" in line for line in log_lines)


@pytest.mark.parametrize("message,outcome", [
    (b"x,,n=alice,r=abc", Outcome.MALFORMED),          # not n, y or p=
    (b"n,a=bob,n=alice,r=abc", Outcome.UNAUTHORIZED),  # act as another user
    (b"p=tls-exporter,,n=alice,r=abc", Outcome.REFUSED),  # binding without -PLUS
])
def test_scram_refusals_answer_at_once_with_their_kind(message: bytes, outcome: Outcome) -> None:
    rig = Rig()
    verdict = rig.now(rig.auth.scram(CLIENT).first(message))
    assert verdict.outcome is outcome and verdict.reason and verdict.data == b""
    assert rig.guard.tracked() == 0  # no name was accepted yet: nothing to penalise


def test_a_refused_binding_after_the_name_counts_for_the_penalty(log_lines: list[str]) -> None:
    rig = Rig()
    login = rig.auth.scram(CLIENT, plus=True, bindings={"tls-exporter": b"this channel"})
    first = rig.now(login.first(b"p=tls-exporter,,n=alice,r=abc"))
    nonce = first.data.decode().split(",")[0][2:]
    other = base64.b64encode(b"p=tls-exporter,," + b"another channel").decode()
    proof = base64.b64encode(bytes(32)).decode()
    verdict = rig.now(login.final(f"c={other},r={nonce},p={proof}".encode()))
    assert verdict.outcome is Outcome.REFUSED and "channel binding" in verdict.reason
    assert rig.guard.delay_for("198.51.100.1", "alice") == 2.0
    assert any("SCRAM refused" in line and CLIENT.label in line for line in log_lines)


# --- the pure rules -----------------------------------------------------------------


@pytest.mark.parametrize("secure,local,allowed,expected", [
    (False, False, False, False), (True, False, False, True),
    (False, True, False, True), (False, False, True, True),
])
def test_plaintext_policy(secure: bool, local: bool, allowed: bool, expected: bool) -> None:
    assert plaintext_allowed(secure, local, allowed) is expected


@pytest.mark.parametrize("message,expected", [
    (b"\0alice\0pw", ("", "alice", b"pw")),
    (b"alice\0alice\0pw", ("alice", "alice", b"pw")),
    (b"alice\0pw", None), (b"\0\0pw", None), (b"\0alice\0", None),
    (b"\0al\xffice\0pw", None), (b"\0a\0b\0c", None),
])
def test_split_plain(message: bytes, expected: tuple[str, str, bytes] | None) -> None:
    parts = split_plain(message)
    assert (None if parts is None else (parts[0], parts[1], parts[2].value)) == expected


def test_may_act_as_only_itself() -> None:
    assert may_act_as("alice", "") and may_act_as("alice", "alice")
    assert not may_act_as("alice", "bob")



class LoginEvents:
    """A telemetry sink recording ``logged_in`` only (the rest: no-ops)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool]] = []

    def logged_in(self, protocol: str, mechanism: str, success: bool) -> None:
        self.events.append((protocol, mechanism, success))

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@pytest.fixture
def login_events() -> Iterator[LoginEvents]:
    from imapd.core import telemetry

    recorder = LoginEvents()
    previous = telemetry.install(cast(telemetry.Telemetry, recorder))
    yield recorder
    telemetry.install(previous)


def test_every_verdict_is_reported_with_protocol_and_mechanism(
        login_events: LoginEvents) -> None:
    rig = Rig()
    rig.now(rig.auth.check_password(CLIENT, "alice", Secret(PASSWORD.encode()), "PLAIN"))
    rig.auth.protocol = "pop3"
    wrong = rig.start(rig.auth.check_password(CLIENT, "alice", Secret(b"nope"), "USER"))
    rig.clock.advance(1.0)
    assert wrong and not wrong[0].ok
    rig.guard.record_success(CLIENT.address, "alice")
    client = scram_client()
    login = rig.auth.scram(CLIENT, plus=False)
    first = rig.now(login.first(client.get_client_first().encode()))
    client.set_server_first(first.data.decode())
    rig.now(login.final(client.get_client_final().encode()))
    login.done()
    assert login_events.events == [
        ("imap", "PLAIN", True), ("pop3", "USER", False), ("pop3", "SCRAM-SHA-256", True)]
