"""SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154): the RFC's §5 examples as
transcripts, ``NO [USEATTR]``, the attributes across RENAME and sessions,
and the default mailboxes every account gets once (Drafts, Sent, Trash,
Junk, Archive), durably and without duplicates across processes."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import pytest

from imapd.core.config import DEFAULT_MAILBOXES
from imapd.core.errors import ImapError
from imapd.mail.records import MailboxInfo
from imapd.mail.service import MailService
from imapd.storage.sqlite.backend import open_backend
from tests.imap.commands.harness import Client, MailServer, run


@pytest.fixture
def rfc_boxes(client: Client) -> Client:
    """RFC 6154 §5.1's mailboxes, made over IMAP with CREATE ... (USE ...)."""
    for line in ["a CREATE ToDo", "b CREATE Projects", "c CREATE SentMail (USE (\\Sent))",
                 "d CREATE MyDrafts (USE (\\Drafts))", "e CREATE Trash (use (\\trash))"]:
        client.ok(line)
    return client


def test_rfc6154_example_1_return_special_use(rfc_boxes: Client) -> None:
    rfc_boxes.transcript('''
        C: t1 LIST "" "%" RETURN (SPECIAL-USE)
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren \\Drafts) "/" MyDrafts
        S: * LIST (\\HasNoChildren) "/" Projects
        S: * LIST (\\HasNoChildren \\Sent) "/" SentMail
        S: * LIST (\\HasNoChildren) "/" ToDo
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
        S: t1 OK LIST completed
    ''')


def test_rfc6154_example_2_special_use_selection(rfc_boxes: Client) -> None:
    rfc_boxes.transcript('''
        C: t1 LIST (SPECIAL-USE) "" "*"
        S: * LIST (\\HasNoChildren \\Drafts) "/" MyDrafts
        S: * LIST (\\HasNoChildren \\Sent) "/" SentMail
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
        S: t1 OK LIST completed
        C: t2 LIST (SPECIAL-USE SUBSCRIBED) "" "*"
        S: t2 OK LIST completed
        C: t3 SUBSCRIBE Trash
        S: t3 OK SUBSCRIBE completed
        C: t4 SUBSCRIBE ToDo
        S: t4 OK SUBSCRIBE completed
        C: t5 LIST (SUBSCRIBED SPECIAL-USE) "" "*"
        S: * LIST (\\HasNoChildren \\Trash \\Subscribed) "/" Trash
        S: t5 OK LIST completed
    ''')


def test_rfc6154_example_3_create_with_uses(client: Client) -> None:
    """§5.3: CREATE with two uses; the plain LIST shows them too (§2)."""
    client.transcript('''
        C: t1 CREATE MySpecial (USE (\\Drafts \\Sent))
        S: t1 OK CREATE completed
        C: t2 LIST "" MySpecial
        S: * LIST (\\HasNoChildren \\Drafts \\Sent) "/" MySpecial
        S: t2 OK LIST completed
        C: t3 LIST "" "%" RETURN (SPECIAL-USE)
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren \\Drafts \\Sent) "/" MySpecial
        S: t3 OK LIST completed
    ''')


@pytest.mark.parametrize("use", ["\\All", "\\Flagged", "\\Important", "\\X-Custom"])
def test_uses_we_cannot_give_are_useattr_and_create_nothing(client: Client, use: str) -> None:
    """§3: NO with [USEATTR] and the mailbox is not created. ``\\All`` and
    ``\\Flagged`` would be virtual mailboxes, which we do not have."""
    client.transcript(f'''
        C: t1 CREATE Everything (USE (\\Archive {use}))
        S: t1 NO [USEATTR] Special use not supported: {use}
        C: t2 LIST "" "*"
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: t2 OK LIST completed
    ''')


def test_create_use_follows_create_rules(client: Client) -> None:
    client.transcript('''
        C: a CREATE Box (USE ())
        S: a OK CREATE completed
        C: b CREATE Box (USE (\\Junk))
        S: b NO [ALREADYEXISTS] Mailbox already exists: Box
        C: c CREATE Deep/er/ (USE (\\Archive))
        S: c OK CREATE completed
        C: d CREATE Second (USE (\\Junk))
        S: d OK CREATE completed
        C: e CREATE Third (USE (\\Junk))
        S: e OK CREATE completed
        C: f LIST (SPECIAL-USE) "" "*"
        S: * LIST (\\HasNoChildren \\Archive) "/" Deep/er
        S: * LIST (\\HasNoChildren \\Junk) "/" Second
        S: * LIST (\\HasNoChildren \\Junk) "/" Third
        S: f OK LIST completed
    ''')


def test_attributes_move_with_rename_and_reach_other_sessions(server: MailServer, client: Client) -> None:
    other = server.connect("alice")
    client.ok("a CREATE Outbox (USE (\\Sent))")
    other.transcript('''
        C: b LIST "" Outbox
        S: * LIST (\\HasNoChildren \\Sent) "/" Outbox
        S: b OK LIST completed
    ''')
    client.ok("c RENAME Outbox Sent/Mail")
    other.transcript('''
        C: d LIST "" "Sent*"
        S: * LIST (\\HasChildren) "/" Sent
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent/Mail
        S: d OK LIST completed
    ''')
    client.ok("e DELETE Sent/Mail")
    client.ok("f CREATE Sent/Mail")
    other.transcript('''
        C: g LIST "" "Sent/Mail"
        S: * LIST (\\HasNoChildren) "/" Sent/Mail
        S: g OK LIST completed
    ''')


def test_special_uses_of_a_mailbox_info() -> None:
    assert MailboxInfo("a", True, True, False, False).special_uses == ()
    info = MailboxInfo("a", True, True, False, False, "\\Drafts \\Sent")
    assert info.special_uses == ("\\Drafts", "\\Sent")
    assert info.list_attributes() == ("\\HasNoChildren", "\\Drafts", "\\Sent")


# --- the default mailboxes ------------------------------------------------------------------

DEFAULT_LIST = '''
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren \\Archive) "/" Archive
        S: * LIST (\\HasNoChildren \\Drafts) "/" Drafts
        S: * LIST (\\HasNoChildren \\Junk) "/" Junk
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
'''


@pytest.fixture
def provisioned(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path, default_mailboxes=DEFAULT_MAILBOXES)
    yield server
    server.close()


def test_a_new_account_gets_the_default_mailboxes_subscribed(provisioned: MailServer) -> None:
    client = provisioned.connect("alice")
    client.transcript('''
        C: a LIST "" "*"
    ''' + DEFAULT_LIST + '''
        S: a OK LIST completed
        C: b LSUB "" "*"
        S: * LSUB () "/" Archive
        S: * LSUB () "/" Drafts
        S: * LSUB () "/" Junk
        S: * LSUB () "/" Sent
        S: * LSUB () "/" Trash
        S: b OK LSUB completed
    ''')
    assert "Sent" in provisioned.mailbox_names("bob")  # every account


def test_the_first_command_can_select_a_default_mailbox(provisioned: MailServer) -> None:
    client = provisioned.connect("alice")
    out = client.lines("a SELECT Drafts")
    assert out[-1] == b"a OK [READ-WRITE] SELECT completed"


def open_store(data_dir: Path, defaults: Sequence[tuple[str, str | None]] = ()) -> MailService:
    """A mail service over its own SQLite backend (what a server process opens)."""
    return MailService(open_backend(data_dir), None, defaults)


def test_defaults_are_created_once_a_deleted_one_stays_deleted(tmp_path: Path) -> None:
    server = MailServer(tmp_path, default_mailboxes=DEFAULT_MAILBOXES)
    client = server.connect("alice")
    client.ok("a DELETE Junk")
    client.ok("b RENAME Sent Outbox")
    server.close()
    # A new process (a restart) with the same defaults.
    store = open_store(tmp_path / "data", DEFAULT_MAILBOXES)
    try:
        infos = run(store.list_mailboxes("alice", "", "*"))
        assert [(i.name, i.special_uses) for i in infos] == [
            ("INBOX", ()), ("Archive", ("\\Archive",)), ("Drafts", ("\\Drafts",)),
            ("Outbox", ("\\Sent",)), ("Trash", ("\\Trash",)),
        ]
    finally:
        run(store.close())


def test_two_processes_provision_each_account_once(tmp_path: Path) -> None:
    first = open_store(tmp_path, DEFAULT_MAILBOXES)
    second = open_store(tmp_path, DEFAULT_MAILBOXES)
    try:
        run(first.subscriptions("carol"))
        run(second.subscriptions("carol"))
        names = [i.name for i in run(second.list_mailboxes("carol", "", "*"))]
        assert names == ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
        assert run(first.subscriptions("carol")) == ["Archive", "Drafts", "Junk", "Sent", "Trash"]
    finally:
        run(first.close())
        run(second.close())


def test_existing_mailboxes_keep_their_place(tmp_path: Path) -> None:
    """An account from before (or one whose names already exist): a mailbox
    named like a default gets its attribute; a use another mailbox already
    has is not given out again; a ``\\Noselect`` placeholder becomes real."""
    plain = open_store(tmp_path)
    run(plain.create_mailbox("dave", "Sent"))
    run(plain.create_mailbox("dave", "Bin", "\\Trash"))
    run(plain.create_mailbox("dave", "Drafts/Old"))
    run(plain.delete_mailbox("dave", "Drafts"))
    run(plain.close())
    store = open_store(tmp_path, DEFAULT_MAILBOXES)
    try:
        infos = run(store.list_mailboxes("dave", "", "*"))
        assert [(i.name, i.selectable, i.special_uses) for i in infos] == [
            ("INBOX", True, ()), ("Archive", True, ("\\Archive",)), ("Bin", True, ("\\Trash",)),
            ("Drafts", True, ("\\Drafts",)), ("Drafts/Old", True, ()), ("Junk", True, ("\\Junk",)),
            ("Sent", True, ("\\Sent",)),
        ]
    finally:
        run(store.close())


def test_configured_names(tmp_path: Path) -> None:
    store = open_store(tmp_path, [("Sent Items", "\\Sent"), ("Mail/Spam", "\\Junk")])
    try:
        infos = run(store.list_mailboxes("erin", "", "*"))
        assert [(i.name, i.special_uses) for i in infos] == [
            ("INBOX", ()), ("Mail", ()), ("Mail/Spam", ("\\Junk",)), ("Sent Items", ("\\Sent",)),
        ]
    finally:
        run(store.close())


@pytest.mark.parametrize("name", ["INBOX", "inbox", "a//b", "x*"])
def test_invalid_default_names_are_refused_at_open(tmp_path: Path, name: str) -> None:
    with pytest.raises((ValueError, ImapError)):
        open_store(tmp_path, [(name, "\\Sent")])
