"""The runner's two extensions of the imaptest format, against the scripted fake server.

* A command ``idle`` (RFC 2177): the server's ``+`` continuation is answered with
  ``DONE`` at once, and the group waits for IDLE's tagged reply.
* ``compress deflate`` (RFC 4978): after its tagged OK both directions are raw
  deflate; plain text from the server after that is a protocol error.
"""

from __future__ import annotations

from pathlib import Path

from imapd.conformance.report import Outcome
from tests.conformance.fakeserver import DEFER, Rule
from tests.conformance.test_runner import run_inline

IDLE_SCRIPT = b"""capabilities: IDLE

ok idle
* 3 exists
ok noop
"""


def test_idle_continuation_is_answered_with_done(tmp_path: Path) -> None:
    rules = [
        # the tagged OK is held back until the next line from the client, which must be DONE
        Rule(rb"idle", [b"+ idling", b"* 3 EXISTS", DEFER, b"{tag} OK IDLE terminated"]),
        Rule(rb"", []),  # "DONE" arrives as a line whose tag is DONE and whose text is empty
    ]
    result, fake = run_inline(tmp_path, IDLE_SCRIPT, rules)
    assert result.outcome is Outcome.PASSED, result.format()
    sent = [text for _, text in fake.commands]
    assert sent[sent.index(b"idle") + 1] == b"", sent  # the line right after IDLE was DONE


def test_idle_refused_fails_at_its_line(tmp_path: Path) -> None:
    rules = [Rule(rb"idle", [b"{tag} NO [CANNOT] not now"])]
    result, _ = run_inline(tmp_path, IDLE_SCRIPT, rules)
    assert result.outcome is Outcome.FAILED
    assert result.failures[0].line == 3, result.format()


def test_continuation_outside_idle_is_still_a_protocol_error(tmp_path: Path) -> None:
    rules = [Rule(rb"noop", [b"+ what now", b"{tag} OK done"])]
    result, _ = run_inline(tmp_path, b"\nok noop\n", rules)
    assert result.outcome is Outcome.FAILED
    assert "unexpected continuation request" in result.failures[0].message


def test_plain_text_after_compress_ok_is_caught(tmp_path: Path) -> None:
    """A server that says OK to COMPRESS but keeps talking plain text fails the script."""
    rules = [Rule(rb"compress deflate", [b"{tag} OK DEFLATE active", b"* OK still plain text"])]
    result, _ = run_inline(tmp_path, b"capabilities: COMPRESS=DEFLATE\n\nok compress deflate\nok noop\n", rules,
                           capabilities=b"IMAP4rev1 LITERAL+ COMPRESS=DEFLATE", timeout=5.0)
    assert result.outcome is Outcome.FAILED
    assert "invalid deflate data" in result.format(), result.format()
