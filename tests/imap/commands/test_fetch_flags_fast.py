"""FETCH of FLAGS, UID and MODSEQ only takes a fast path
(``fetch._send_flag_items``): it must answer byte for byte what the general
FETCH loop answers, with \\Recent, held-back expunges, pending flag changes
of other sessions and CONDSTORE in play."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapd.imap.commands import fetch
from tests.imap.commands.harness import Client, MailServer

FLAG_CHOICES = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Work", "Junk")


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=1, max_value=12))
    flags = draw(st.lists(st.lists(st.sampled_from(FLAG_CHOICES), unique=True, max_size=3),
                          min_size=count, max_size=count))
    claimed = draw(st.integers(min_value=0, max_value=count))  # not \Recent for us
    uids = list(range(1, count + 1))
    changed = draw(st.lists(st.sampled_from(uids), unique=True, max_size=count))
    expunged = draw(st.lists(st.sampled_from(uids), unique=True, max_size=count))
    condstore = draw(st.booleans())
    items = draw(st.lists(st.sampled_from(("FLAGS", "UID", "MODSEQ")), min_size=1, max_size=4))
    uid_command = draw(st.booleans())
    low = draw(st.integers(min_value=1, max_value=count))
    high = draw(st.one_of(st.just("*"), st.integers(min_value=low, max_value=count + 2)))
    if not uid_command and high != "*":
        high = min(int(high), count)
    command = "UID FETCH" if uid_command else "FETCH"
    line = f"f {command} {low}:{high} ({' '.join(items)})"
    if draw(st.booleans()) and len(items) == 1:
        line = f"f {command} {low}:{high} {items[0]}"
    return dict(flags=flags, claimed=claimed, changed=changed, expunged=expunged,
                condstore=condstore, line=line)


def prepared_client(server: MailServer, scenario: dict[str, Any]) -> Client:
    flags: list[list[str]] = scenario["flags"]
    messages = [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(len(flags))]
    claimed = scenario["claimed"]
    server.append_many("INBOX", messages[:claimed], flags[:claimed])
    if claimed:
        claimer = server.connect("alice")
        claimer.ok("c SELECT INBOX")
        claimer.ok("c LOGOUT")
    if claimed < len(messages):
        server.append_many("INBOX", messages[claimed:], flags[claimed:])
    client = server.connect("alice")
    if scenario["condstore"]:
        client.ok("e ENABLE CONDSTORE")
    client.ok("s SELECT INBOX")
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    for uid in scenario["changed"]:
        other.ok(f"o UID STORE {uid} +FLAGS (\\Answered $Other)")
    for uid in scenario["expunged"]:
        other.ok(f"o UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
    if scenario["expunged"]:
        other.ok("o EXPUNGE")
    return client


def answer(scenario: dict[str, Any], fast: bool) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        server = MailServer(Path(tmp))
        try:
            client = prepared_client(server, scenario)
            calls: list[int] = []
            real = fetch._send_flag_items

            def spy(*args: Any) -> Any:
                calls.append(1)
                return real(*args)

            with mock.patch.object(fetch, "_send_flag_items", spy):
                if fast:
                    out = client.command(scenario["line"])
                    assert calls, "the fast path was not taken"
                else:
                    with mock.patch.object(fetch, "_flag_items_only", lambda *a: False):
                        out = client.command(scenario["line"])
                    assert not calls
            return out
        finally:
            server.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fast_path_answers_like_the_general_loop(scenario: dict[str, Any]) -> None:
    assert answer(scenario, fast=True) == answer(scenario, fast=False)


def test_known_answer_with_recent_and_a_held_back_expunge(server: MailServer) -> None:
    """UID 2 was expunged by another session: it keeps its sequence number
    (no EXPUNGE during FETCH, RFC 3501 §7.4.1) but has no FETCH response;
    UID 3 arrived after another session's SELECT and is \\Recent here.
    MODSEQ makes the FETCH a CONDSTORE enabling command (RFC 7162 §3.1);
    the HIGHESTMODSEQ it reports stays behind the held-back expunge."""
    server.append_many("INBOX", [b"a\r\n", b"b\r\n"], [["\\Seen"], []])
    other = server.connect("alice")
    other.ok("c SELECT INBOX")
    other.ok("c CLOSE")
    server.append_many("INBOX", [b"c\r\n"], [["$Work", "\\Flagged"]])
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    other.ok("c SELECT INBOX")
    other.ok("c STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("c EXPUNGE")
    client.transcript("""
        C: f UID FETCH 1:* (UID FLAGS)
        S: * 1 FETCH (UID 1 FLAGS (\\Seen))
        S: * 3 FETCH (UID 3 FLAGS (\\Flagged $Work \\Recent))
        S: f OK UID FETCH completed
        C: g FETCH 1:3 (FLAGS MODSEQ UID)
        S: * OK [HIGHESTMODSEQ 3] Highest
        S: * 1 FETCH (FLAGS (\\Seen) MODSEQ (2) UID 1)
        S: * 3 FETCH (FLAGS (\\Flagged $Work \\Recent) MODSEQ (3) UID 3)
        S: g OK FETCH completed
        C: h NOOP
        S: * 2 EXPUNGE
        S: h OK NOOP completed
    """)
