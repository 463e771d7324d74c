"""Transcripts: rendering, the memory bound, and redaction of passwords in
every way a client may send one (hypothesis: no secret survives)."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.testing import transcript as module
from imapd.testing.transcript import Transcript, format_transcripts

# Secrets that cannot be confused with the rendering itself ("C: ", "***")
# nor hold line ends or NUL (no protocol can carry those in a password).
SECRET_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="*:")
secrets = st.text(SECRET_CHARS, min_size=4, max_size=24)
ATOM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&'+,-./;<=>?@^_`|~"
# The fixed words of the conversations below: a secret inside them would be
# "found" in text that never held it.
FRAMING = "a LOGIN user a OK done + go on USER PASS AUTH PLAIN AUTHENTICATE +OK"
atom_secrets = st.text(st.sampled_from(ATOM), min_size=4, max_size=24).filter(
    lambda s: s not in FRAMING)


def conversation(protocol: str, exchange: list[tuple[str, bytes]], cuts: list[int]) -> Transcript:
    """A transcript of ``exchange``, each side's octets cut at ``cuts``
    (TCP may deliver any split)."""
    transcript = Transcript(protocol, 1, "127.0.0.1:1")
    clock = 0.0
    for direction, data in exchange:
        points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
        for start, end in zip(points, points[1:]):
            clock += 0.001
            transcript.record(direction, clock, data[start:end])
    return transcript


def quoted(secret: str) -> bytes:
    return b'"' + secret.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(secret: str) -> bytes:
    raw = secret.encode()
    return b"{%d}\r\n" % len(raw) + raw


def plain_blob(user: str, secret: str) -> bytes:
    return base64.b64encode(b"\0" + user.encode() + b"\0" + secret.encode())


def imap_logins(secret: str, atom: bool) -> list[list[tuple[str, bytes]]]:
    """Every way an IMAP client logs in with ``secret``."""
    ok = ("S", b"a OK done\r\n")
    go = ("S", b"+ go on\r\n")
    forms = [
        [("C", b"a LOGIN user " + quoted(secret) + b"\r\n"), ok],
        [("C", b"a LOGIN user {%d}\r\n" % len(secret.encode())), go,
         ("C", secret.encode() + b"\r\n"), ok],
        [("C", b"a LOGIN {4+}\r\nuser " + literal(secret).replace(b"}", b"+}") + b"\r\n"), ok],
        [("C", b"a AUTHENTICATE PLAIN " + plain_blob("user", secret) + b"\r\n"), ok],
        [("C", b"a AUTHENTICATE PLAIN\r\n"), ("S", b"+ \r\n"),
         ("C", plain_blob("user", secret) + b"\r\n"), ok],
        # Anywhere else too: a message quoting it, cut by TCP mid-literal.
        [("C", b"a APPEND INBOX " + literal("pw: " + secret + " ok") + b"\r\n"), ok],
    ]
    if atom:
        forms.append([("C", b"a LOGIN user " + secret.encode() + b"\r\n"), ok])
    return forms


def pop3_logins(secret: str) -> list[list[tuple[str, bytes]]]:
    ok = ("S", b"+OK\r\n")
    return [
        [("C", b"USER user\r\n"), ok, ("C", b"PASS " + secret.encode() + b"\r\n"), ok],
        [("C", b"AUTH PLAIN " + plain_blob("user", secret) + b"\r\n"), ok],
        [("C", b"AUTH PLAIN\r\n"), ("S", b"+ \r\n"), ("C", plain_blob("user", secret) + b"\r\n"), ok],
    ]


@settings(max_examples=200, deadline=None)
@given(secret=secrets, cuts=st.lists(st.integers(0, 200), max_size=4))
def test_no_secret_survives_any_login_form(secret: str, cuts: list[int]) -> None:
    for protocol, forms in (("imap", imap_logins(secret, atom=False)), ("pop3", pop3_logins(secret))):
        for exchange in forms:
            text = conversation(protocol, exchange, cuts).text([secret])
            assert secret not in text, (protocol, exchange, text)
            assert "***" in text


@settings(max_examples=100, deadline=None)
@given(secret=atom_secrets, cuts=st.lists(st.integers(0, 200), max_size=4))
def test_login_and_pass_arguments_are_hidden_even_without_the_secrets(secret: str, cuts: list[int]) -> None:
    """LOGIN's password (atom, quoted, literal) and PASS's argument are
    redacted by their place, whatever ``secrets`` holds (RFC 3501 §6.2.3,
    RFC 1939 §7)."""
    forms = imap_logins(secret, atom=True)
    for exchange in [forms[0], forms[1], forms[2], forms[-1]]:
        text = conversation("imap", exchange, cuts).text()
        assert secret not in text and "***" in text, text
    text = conversation("pop3", pop3_logins(secret)[0], cuts).text()
    assert secret not in text and "C: PASS ***" in text


def test_rendering_shows_both_sides_in_order_with_literals_and_notes() -> None:
    transcript = Transcript("imap", 3, "127.0.0.1:5")
    transcript.record("S", 0.0, b"* OK ready\r\n")
    transcript.record("C", 0.1, b"a1 APPEND INBOX {11}\r\n")
    transcript.record("S", 0.2, b"+ go\r\n")
    transcript.record("C", 0.3, b"Subject: x\n\r\n")
    transcript.note(0.35, "fault delay: held")
    transcript.record("S", 0.4, b"a1 OK [APPENDUID 1 1] done\r\n")
    assert transcript.text().splitlines() == [
        "S: * OK ready",
        "C: a1 APPEND INBOX {11}",
        "S: + go",
        "C: Subject: x",
        "C: ",
        "-- fault delay: held",
        "S: a1 OK [APPENDUID 1 1] done",
    ]
    both = format_transcripts([transcript, Transcript("pop3", 4, "p")])
    assert both.startswith("=== imap connection 3 (127.0.0.1:5)\nS: * OK ready")
    assert "\n\n=== pop3 connection 4 (p)\n" in both


def test_memory_is_bounded() -> None:
    transcript = Transcript("imap", 1, "p")
    chunk = b"* OK " + b"x" * 1000 + b"\r\n"
    for n in range(2000):
        transcript.record("S", n / 1000, chunk)
    assert transcript.kept == module.MAX_KEPT
    assert transcript.not_kept == 2000 * len(chunk) - module.MAX_KEPT
    assert transcript.text().endswith(f"[... {transcript.not_kept} bytes not kept]")


def test_bytes_that_are_not_utf8_are_shown_escaped() -> None:
    transcript = Transcript("imap", 1, "p")
    transcript.record("C", 0.0, b"a SEARCH TEXT \xff\xfe\r\n")
    assert transcript.text() == "C: a SEARCH TEXT \\xff\\xfe"


def test_a_literal_with_bare_lf_lines_keeps_its_blank_line() -> None:
    """The blank line between header and body is the message's structure;
    a client sending bare LF (a common client bug) must see it in the record."""
    transcript = Transcript("imap", 1, "p")
    transcript.record("C", 0.0, b"a1 APPEND INBOX {13}\r\n")
    transcript.record("S", 0.1, b"+ go\r\n")
    transcript.record("C", 0.2, b"Subject: x\n\nb\r\n")
    assert transcript.text().splitlines() == [
        "C: a1 APPEND INBOX {13}", "S: + go", "C: Subject: x", "C: ", "C: b", "C: ",
    ]
