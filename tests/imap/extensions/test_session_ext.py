"""ENABLE (RFC 5161), NAMESPACE (RFC 2342), ID (RFC 2971), UNSELECT
(RFC 3691), CHILDREN (RFC 3348), LITERAL+ (RFC 7888) and the capability
list that advertises them: byte-exact transcripts, RFC examples included."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd import __version__
from imapd.imap import capabilities
from imapd.imap.capabilities import Enableable
from imapd.imap.commands import catalogue
from imapd.core.config import Config
from imapd.imap.session.state import Session, State
from tests.imap.commands.harness import Client, MailServer, message
from tests.support import capabilities as caps

# Written out in tests/support/capabilities.py, never built from imapd.imap.capabilities.
EXT = caps.EVERY_STATE.decode()


@pytest.fixture
def enableable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A known ENABLE table whatever other extensions register: X-GOOD-IDEA
    (advertised), X-IMPLIER (implies X-IMPLIED), and X-HIDDEN (enable-able
    but not advertised, so ENABLE must ignore it). Records hook calls."""
    calls: list[str] = []
    monkeypatch.setattr(capabilities, "EXTENSIONS", capabilities.EXTENSIONS + (
        ("X-GOOD-IDEA", ()), ("X-IMPLIER", ()), ("X-IMPLIED", ())))
    monkeypatch.setattr(capabilities, "ENABLEABLE", (
        Enableable("X-GOOD-IDEA", on_enable=lambda s: calls.append("X-GOOD-IDEA")),
        Enableable("X-IMPLIER", implies=("X-IMPLIED",), on_enable=lambda s: calls.append("X-IMPLIER")),
        Enableable("X-IMPLIED", on_enable=lambda s: calls.append("X-IMPLIED")),
        Enableable("X-HIDDEN"),
    ))
    return calls


# --- capabilities ---------------------------------------------------------------

def test_extensions_are_advertised_before_and_after_login(server: MailServer) -> None:
    client = server.connect(None)
    assert client.greeting == (
        b"* OK [CAPABILITY " + caps.PRE_LOGIN + f"] {catalogue.GREETING}\r\n".encode())
    assert b"COMPRESS" not in client.greeting  # only after login (command-auth)
    client.transcript(
        """
        C: l LOGIN alice wonderland
        S: l OK [CAPABILITY IMAP4rev1 LITERAL+ ${ext} COMPRESS=DEFLATE] Logged in
        """, ext=EXT)


def test_check_handlers_refuses_an_extension_without_its_handler() -> None:
    from imapd.imap.commands.context import Features
    from imapd.imap.commands.registry import ALL_SPECS
    from imapd.imap.wire import commands as c

    registered = {spec.command_type for spec in ALL_SPECS}
    capabilities.check_handlers(Features(), registered, ("PLAIN",))
    for missing in (c.Idle, c.Id, c.Enable, c.Namespace, c.Unselect, c.Compress):
        with pytest.raises(capabilities.CapabilityError, match=missing.__name__):
            capabilities.check_handlers(Features(), registered - {missing}, ("PLAIN",))


# --- ENABLE (RFC 5161) -------------------------------------------------------------

def test_rfc_5161_example_capabilities_do_not_change(
    server: MailServer, enableable: list[str]
) -> None:
    """RFC 5161 §3.1: unknown names ignored, only enabled ones listed, the
    CAPABILITY list the same before and after."""
    client = server.connect("alice")
    before = client.command("t1 CAPABILITY")
    client.transcript(
        """
        C: t2 ENABLE CONDSTORE-UNKNOWN X-GOOD-IDEA
        S: * ENABLED X-GOOD-IDEA
        S: t2 OK ENABLE completed
        """
    )
    assert client.command("t3 CAPABILITY").replace(b"t3", b"t1") == before
    assert client.session.enabled == {"X-GOOD-IDEA"}
    assert enableable == ["X-GOOD-IDEA"]


def test_enable_is_additive_and_reports_only_new_names(
    server: MailServer, enableable: list[str]
) -> None:
    client = server.connect("alice")
    client.transcript(
        """
        C: a ENABLE x-good-idea X-GOOD-IDEA X-HIDDEN
        S: * ENABLED X-GOOD-IDEA
        S: a OK ENABLE completed
        C: b ENABLE X-GOOD-IDEA
        S: * ENABLED
        S: b OK ENABLE completed
        C: c ENABLE X-IMPLIER
        S: * ENABLED X-IMPLIER
        S: c OK ENABLE completed
        C: d ENABLE X-IMPLIED X-IMPLIER
        S: * ENABLED
        S: d OK ENABLE completed
        """
    )
    assert client.session.enabled == {"X-GOOD-IDEA", "X-IMPLIER", "X-IMPLIED"}
    assert enableable == ["X-GOOD-IDEA", "X-IMPLIER", "X-IMPLIED"]  # each hook once


def test_enable_with_nothing_enableable(server: MailServer) -> None:
    """RFC 5161 §3.2: the ENABLED response may list nothing."""
    client = server.connect("alice")
    client.transcript(
        """
        C: a ENABLE IDLE NAMESPACE X-NOTHING
        S: * ENABLED
        S: a OK ENABLE completed
        """
    )
    assert client.session.enabled == set()


def test_enable_states_and_syntax(server: MailServer, enableable: list[str]) -> None:
    anonymous = server.connect(None)
    anonymous.read()
    assert anonymous.command("a ENABLE X-GOOD-IDEA") == (
        f"a BAD {catalogue.BAD_WRONG_STATE}\r\n".encode())
    client = server.connect("alice")
    assert client.command("b ENABLE") == b"b BAD Missing capability name\r\n"
    client.ok("s SELECT INBOX")  # servers need not refuse ENABLE here (RFC 5161 §3.1)
    assert client.lines("c ENABLE X-GOOD-IDEA") == [b"* ENABLED X-GOOD-IDEA", b"c OK ENABLE completed"]


def test_enable_function_ignores_names_not_advertised(enableable: list[str]) -> None:
    from imapd.imap.commands.context import Features

    session = Session(peer="p", state=State.AUTHENTICATED, user="alice")
    assert capabilities.enable(session, Features(), ["X-HIDDEN", "x-implier"]) == ("X-IMPLIER",)
    assert session.enabled == {"X-IMPLIER", "X-IMPLIED"}


# --- NAMESPACE (RFC 2342) ------------------------------------------------------------

def test_namespace(server: MailServer) -> None:
    """RFC 2342 §5, the example of a server with only a personal namespace
    (here with "/" as the delimiter)."""
    client = server.connect("alice")
    client.transcript(
        """
        C: A001 NAMESPACE
        S: * NAMESPACE (("" "/")) NIL NIL
        S: A001 OK NAMESPACE completed
        """
    )
    anonymous = server.connect(None)
    anonymous.read()
    assert anonymous.command("n NAMESPACE") == f"n BAD {catalogue.BAD_WRONG_STATE}\r\n".encode()


# --- ID (RFC 2971) ---------------------------------------------------------------------

def test_id_rfc_2971_examples_in_any_state(server: MailServer) -> None:
    """RFC 2971 §3.1, §3.2 examples; the answer names the server, no version."""
    client = server.connect(None)
    client.read()
    client.transcript(
        """
        C: a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")
        S: * ID ("name" "imapd")
        S: a023 OK ID completed
        C: a042 ID NIL
        S: * ID ("name" "imapd")
        S: a042 OK ID completed
        """
    )
    client.login("alice")
    client.ok("s SELECT INBOX")
    assert client.lines('a ID ("name" NIL)') == [b'* ID ("name" "imapd")', b"a OK ID completed"]
    assert __version__.encode() not in client.command("b ID NIL")


def test_id_sends_the_version_only_when_the_operator_allows(tmp_path: Path) -> None:
    server = MailServer(tmp_path)
    server.factory.config = Config(data_dir=server.data_dir, id_send_version=True)
    try:
        client = server.connect(None)
        client.read()
        # The context was built with the factory's config at connect time.
        assert client.lines("a ID NIL") == [
            f'* ID ("name" "imapd" "version" "{__version__}")'.encode(), b"a OK ID completed"]
    finally:
        server.close()


def test_id_accepts_the_rfc_limits_and_literals(server: MailServer) -> None:
    client = server.connect(None)
    client.read()
    pairs = " ".join(f'"{chr(97 + i % 26)}{"2" * 29}" "{"1" * 1024}"' for i in range(30))
    assert client.lines(f"a ID ({pairs})") == [b'* ID ("name" "imapd")', b"a OK ID completed"]
    assert client.exchange(b'b ID ("name" {4+}\r\nm\xc3\xbct "os" NIL)\r\n') == (
        b'* ID ("name" "imapd")\r\nb OK ID completed\r\n')


# --- UNSELECT (RFC 3691) --------------------------------------------------------------

def test_unselect_keeps_deleted_messages_and_leaves_selected_state(server: MailServer) -> None:
    server.append_many("INBOX", [message(1), message(2)], [["\\Deleted"], []])
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    other.ok("x STORE 2 +FLAGS.SILENT (\\Seen)")  # a pending update, dropped by UNSELECT
    client.transcript(
        """
        C: A342 UNSELECT
        S: A342 OK UNSELECT completed
        C: f FETCH 1 (FLAGS)
        S: f BAD Command not allowed in this state
        C: u UNSELECT
        S: u BAD Command not allowed in this state
        """
    )
    assert client.session.state is State.AUTHENTICATED
    assert client.session.selected is None
    assert server.status("INBOX").messages == 2  # nothing expunged
    assert other.lines("n NOOP") == [b"n OK NOOP completed"]  # no EXPUNGE for others


def test_unselect_of_an_examined_mailbox(server: MailServer) -> None:
    client = server.connect("alice")
    client.ok("e EXAMINE INBOX")
    assert client.command("u UNSELECT") == b"u OK UNSELECT completed\r\n"
    client.ok("s SELECT INBOX")  # a new selection works afterwards


# --- CHILDREN (RFC 3348) ----------------------------------------------------------------

def test_children_attributes_in_list(server: MailServer) -> None:
    """RFC 3348 §3: \\HasChildren when the mailbox has inferiors (even only a
    \\Noselect placeholder's), \\HasNoChildren otherwise."""
    for name in ("Work", "Work/Reports", "Deep/Down/Below", "Leaf"):
        server.create(name)
    client = server.connect("alice")
    client.ok("d DELETE Deep/Down")  # has an inferior: becomes a \Noselect placeholder
    client.transcript(
        """
        C: a LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Deep
        S: * LIST (\\Noselect \\HasChildren) "/" Deep/Down
        S: * LIST (\\HasNoChildren) "/" Deep/Down/Below
        S: * LIST (\\HasNoChildren) "/" Leaf
        S: * LIST (\\HasChildren) "/" Work
        S: * LIST (\\HasNoChildren) "/" Work/Reports
        S: a OK LIST completed
        C: b LIST "" %
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Deep
        S: * LIST (\\HasNoChildren) "/" Leaf
        S: * LIST (\\HasChildren) "/" Work
        S: b OK LIST completed
        """
    )
    client.ok("x DELETE Work/Reports")
    assert client.lines('c LIST "" Work') == [
        b'* LIST (\\HasNoChildren) "/" Work', b"c OK LIST completed"]


# --- LITERAL+ (RFC 7888) ----------------------------------------------------------------

def test_literal_plus_everywhere_a_string_is_allowed(server: MailServer) -> None:
    """RFC 7888 §3: ``{n+}`` needs no continuation in any command; the
    server never sends ``+`` for it."""
    client = server.connect(None)
    client.read()
    client.transcript(
        """
        C: a LOGIN {5+}
        C: alice {10+}
        C: wonderland
        S: a OK [CAPABILITY IMAP4rev1 LITERAL+ ${ext} COMPRESS=DEFLATE] Logged in
        C: b CREATE {4+}
        C: Mail
        S: b OK CREATE completed
        C: d STATUS {4+}
        C: Mail (MESSAGES)
        S: * STATUS Mail (MESSAGES 0)
        S: d OK STATUS completed
        C: e ID ({4+}
        C: name {6+}
        C: client)
        S: * ID ("name" "imapd")
        S: e OK ID completed
        """, ext=EXT)
    # APPEND's OK may carry a code (UIDPLUS): compare its start only.
    out = client.exchange(b"c APPEND {4+}\r\nMail (\\Seen) {5+}\r\nhello\r\n")
    assert out.startswith(b"c OK ") and b"+" not in out, out
    assert server.read_messages("Mail")[0][1] == b"hello"


def test_synchronizing_literal_still_gets_a_continuation(client: Client) -> None:
    client.transcript(
        """
        C: a CREATE {4}
        S: + Ready for literal data
        C: Mail
        S: a OK CREATE completed
        """
    )
