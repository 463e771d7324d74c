"""CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS as
byte-exact transcripts (RFC 3501 §6.3.3–§6.3.10), including the RFC's
examples re-enacted with our "/" delimiter and RFC 3348 child attributes."""

from __future__ import annotations

from tests.imap.commands.harness import Client, MailServer, message

INBOX = '* LIST (\\HasNoChildren) "/" INBOX'


def test_rfc3501_section_6_3_3_create_example(client: Client) -> None:
    client.transcript(
        """
        C: A003 CREATE owatagusiam/
        S: A003 OK CREATE completed
        C: A004 CREATE owatagusiam/blurdybloop
        S: A004 OK CREATE completed
        C: A005 LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" owatagusiam
        S: * LIST (\\HasNoChildren) "/" owatagusiam/blurdybloop
        S: A005 OK LIST completed
        """
    )


def test_create_makes_missing_superiors(client: Client) -> None:
    client.transcript(
        """
        C: a CREATE foo/bar/zap
        S: a OK CREATE completed
        C: b LIST "" foo*
        S: * LIST (\\HasChildren) "/" foo
        S: * LIST (\\HasChildren) "/" foo/bar
        S: * LIST (\\HasNoChildren) "/" foo/bar/zap
        S: b OK LIST completed
        """
    )
    assert client.ok("c SELECT foo/bar")[-1] == b"c OK [READ-WRITE] SELECT completed"


def test_create_errors(client: Client) -> None:
    client.transcript(
        """
        C: a CREATE Work
        S: a OK CREATE completed
        C: b CREATE Work
        S: b NO [ALREADYEXISTS] Mailbox already exists: Work
        C: c CREATE INBOX
        S: c NO [ALREADYEXISTS] Mailbox already exists: INBOX
        C: d CREATE inbox
        S: d NO [ALREADYEXISTS] Mailbox already exists: INBOX
        C: e CREATE "a%b"
        S: e NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        C: f CREATE "a*"
        S: f NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        C: g CREATE ""
        S: g NO [CANNOT] Invalid mailbox name: the name is empty
        C: h CREATE "/etc"
        S: h NO [CANNOT] Invalid mailbox name: empty hierarchy level (leading, trailing or double '/')
        C: i CREATE "Work/../../bob"
        S: i NO [CANNOT] Invalid mailbox name: '.' and '..' are not allowed as hierarchy levels
        C: j CREATE "x//y"
        S: j NO [CANNOT] Invalid mailbox name: empty hierarchy level (leading, trailing or double '/')
        """
    )
    # A control character encoded in modified UTF-7 reaches the store's name
    # check; raw control and 8-bit octets are refused by the parser, also NO.
    client.transcript(
        """
        C: k CREATE a&AAE-b
        S: k NO [CANNOT] Invalid mailbox name: control characters are not allowed
        C: l CREATE "a&AH8-b"
        S: l NO [CANNOT] Invalid mailbox name: control characters are not allowed
        """
    )
    assert client.exchange(b"m CREATE {3+}\r\na\x01b\r\n") == (
        b"m NO [CANNOT] Invalid mailbox name: raw 8-bit or control octet in mailbox name\r\n")


def test_create_and_list_international_names_in_modified_utf7(client: Client) -> None:
    # RFC 3501 §5.1.3: "~peter/mail/台北/日本語" is "~peter/mail/&U,BTFw-/&ZeVnLIqe-".
    client.transcript(
        """
        C: a CREATE ~peter/mail/&U,BTFw-/&ZeVnLIqe-
        S: a OK CREATE completed
        C: b LIST ~peter/mail/ *
        S: * LIST (\\HasChildren) "/" ~peter/mail/&U,BTFw-
        S: * LIST (\\HasNoChildren) "/" ~peter/mail/&U,BTFw-/&ZeVnLIqe-
        S: b OK LIST completed
        """
    )


def test_rfc3501_section_6_3_4_delete_example_with_noselect_parent(
    server: MailServer, client: Client
) -> None:
    """The RFC's first DELETE example. One difference: a ``\\Noselect``
    placeholder disappears with its last inferior (the store's contract), so
    after ``DELETE foo/bar`` there is no ``foo`` left to list or delete."""
    server.create("blurdybloop")
    server.create("foo/bar")
    client.ok("x DELETE foo")
    client.transcript(
        """
        C: A682 LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren) "/" blurdybloop
        S: * LIST (\\Noselect \\HasChildren) "/" foo
        S: * LIST (\\HasNoChildren) "/" foo/bar
        S: A682 OK LIST completed
        C: A683 DELETE blurdybloop
        S: A683 OK DELETE completed
        C: A684 DELETE foo
        S: A684 NO [HASCHILDREN] foo has inferior mailboxes and is already \\Noselect
        C: A685 DELETE foo/bar
        S: A685 OK DELETE completed
        C: A686 LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: A686 OK LIST completed
        C: A687 DELETE foo
        S: A687 NO [NONEXISTENT] Mailbox does not exist: foo
        """
    )


def test_rfc3501_section_6_3_4_delete_example_keeps_inferiors(
    server: MailServer, client: Client
) -> None:
    """The RFC's second DELETE example ("." there, "/" here): deleting a
    mailbox with inferiors keeps them and leaves a \\Noselect name."""
    server.create("blurdybloop")
    server.create("foo/bar")
    server.append("foo", message(1))
    client.transcript(
        """
        C: A82 LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren) "/" blurdybloop
        S: * LIST (\\HasChildren) "/" foo
        S: * LIST (\\HasNoChildren) "/" foo/bar
        S: A82 OK LIST completed
        C: A83 DELETE blurdybloop
        S: A83 OK DELETE completed
        C: A84 DELETE foo
        S: A84 OK DELETE completed
        C: A85 LIST "" foo/*
        S: * LIST (\\HasNoChildren) "/" foo/bar
        S: A85 OK LIST completed
        C: A86 LIST "" %
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\Noselect \\HasChildren) "/" foo
        S: A86 OK LIST completed
        C: A87 STATUS foo (MESSAGES)
        S: A87 NO [NONEXISTENT] Mailbox does not exist: foo
        """
    )


def test_delete_errors(client: Client) -> None:
    client.transcript(
        """
        C: a DELETE INBOX
        S: a NO [CANNOT] INBOX cannot be deleted
        C: b DELETE inbox
        S: b NO [CANNOT] INBOX cannot be deleted
        C: c DELETE nosuch
        S: c NO [NONEXISTENT] Mailbox does not exist: nosuch
        C: d DELETE "bad%name"
        S: d NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        """
    )


def test_delete_then_create_gets_a_new_uidvalidity(server: MailServer, client: Client) -> None:
    server.create("Box")
    server.append("Box", message(1))
    old = server.uidvalidity("Box")
    client.ok("a DELETE Box")
    client.ok("b CREATE Box")
    assert server.uidvalidity("Box") != old
    client.transcript(
        """
        C: c STATUS Box (MESSAGES UIDNEXT)
        S: * STATUS Box (MESSAGES 0 UIDNEXT 1)
        S: c OK STATUS completed
        """
    )


def test_rfc3501_section_6_3_5_rename_example(server: MailServer, client: Client) -> None:
    server.create("blurdybloop")
    server.create("foo/bar")
    client.ok("x DELETE foo")
    client.transcript(
        """
        C: A683 RENAME blurdybloop sarasoop
        S: A683 OK RENAME completed
        C: A684 RENAME foo zowie
        S: A684 OK RENAME completed
        C: A685 LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren) "/" sarasoop
        S: * LIST (\\Noselect \\HasChildren) "/" zowie
        S: * LIST (\\HasNoChildren) "/" zowie/bar
        S: A685 OK LIST completed
        """
    )


def test_rfc3501_section_6_3_5_rename_inbox_example(server: MailServer, client: Client) -> None:
    server.create("INBOX/bar")
    server.append_many("INBOX", [message(1), message(2)])
    inbox_uidvalidity = server.uidvalidity("INBOX")
    client.transcript(
        """
        C: Z432 LIST "" *
        S: * LIST (\\HasChildren) "/" INBOX
        S: * LIST (\\HasNoChildren) "/" INBOX/bar
        S: Z432 OK LIST completed
        C: Z433 RENAME INBOX old-mail
        S: Z433 OK RENAME completed
        C: Z434 LIST "" *
        S: * LIST (\\HasChildren) "/" INBOX
        S: * LIST (\\HasNoChildren) "/" INBOX/bar
        S: * LIST (\\HasNoChildren) "/" old-mail
        S: Z434 OK LIST completed
        C: Z435 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)
        S: * STATUS INBOX (MESSAGES 0 UIDNEXT 3 UIDVALIDITY ${uidvalidity})
        S: Z435 OK STATUS completed
        C: Z436 STATUS old-mail (MESSAGES UIDNEXT)
        S: * STATUS old-mail (MESSAGES 2 UIDNEXT 3)
        S: Z436 OK STATUS completed
        """,
        uidvalidity=inbox_uidvalidity,
    )


def test_rename_moves_subtree_and_creates_superiors(server: MailServer, client: Client) -> None:
    server.create("a/b/c")
    server.append("a/b", message(1))
    client.ok("r RENAME a/b x/y")
    assert server.mailbox_names() == ["INBOX", "a", "x", "x/y", "x/y/c"]
    assert server.status("x/y").messages == 1


def test_rename_errors(server: MailServer, client: Client) -> None:
    server.create("Work/Sub")
    server.create("Play")
    client.transcript(
        """
        C: a RENAME nosuch other
        S: a NO [NONEXISTENT] Mailbox does not exist: nosuch
        C: b RENAME Work Play
        S: b NO [ALREADYEXISTS] Mailbox already exists: Play
        C: c RENAME Work INBOX
        S: c NO [ALREADYEXISTS] Mailbox already exists: INBOX
        C: d RENAME Work Work/Sub/Deeper
        S: d NO [CANNOT] Cannot rename a mailbox into its own inferiors
        C: e RENAME Work "We*rd"
        S: e NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        """
    )


def test_rfc3501_section_6_3_6_and_6_3_7_subscribe_examples(client: Client) -> None:
    client.transcript(
        """
        C: A002 SUBSCRIBE #news.comp.mail.mime
        S: A002 OK SUBSCRIBE completed
        C: A003 LSUB "" *
        S: * LSUB () "/" #news.comp.mail.mime
        S: A003 OK LSUB completed
        C: A004 UNSUBSCRIBE #news.comp.mail.mime
        S: A004 OK UNSUBSCRIBE completed
        C: A005 LSUB "" *
        S: A005 OK LSUB completed
        C: A006 UNSUBSCRIBE #news.comp.mail.mime
        S: A006 OK UNSUBSCRIBE completed
        C: A007 SUBSCRIBE "x%"
        S: A007 NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        """
    )


def test_subscriptions_survive_delete(server: MailServer, client: Client) -> None:
    """RFC 3501 §6.3.6: the server MUST NOT unilaterally remove a name
    from the subscription list."""
    server.create("Lists")
    client.ok("a SUBSCRIBE Lists")
    client.ok("b DELETE Lists")
    client.transcript(
        """
        C: c LSUB "" *
        S: * LSUB () "/" Lists
        S: c OK LSUB completed
        """
    )


def test_rfc3501_section_6_3_8_list_examples(server: MailServer, client: Client) -> None:
    server.create("~/Mail/meetings")
    server.create("~/Mail/foo/bar")
    client.ok("x DELETE ~/Mail/foo")
    client.transcript(
        """
        C: A101 LIST "" ""
        S: * LIST (\\Noselect) "/" ""
        S: A101 OK LIST completed
        C: A102 LIST #news.comp.mail.misc ""
        S: * LIST (\\Noselect) "/" ""
        S: A102 OK LIST completed
        C: A103 LIST /usr/staff/jones ""
        S: * LIST (\\Noselect) "/" /
        S: A103 OK LIST completed
        C: A104 LIST Work/Projects ""
        S: * LIST (\\Noselect) "/" Work/
        S: A104 OK LIST completed
        C: A202 LIST ~/Mail/ %
        S: * LIST (\\Noselect \\HasChildren) "/" ~/Mail/foo
        S: * LIST (\\HasNoChildren) "/" ~/Mail/meetings
        S: A202 OK LIST completed
        """
    )


def test_list_wildcards_and_references(server: MailServer, client: Client) -> None:
    for name in ("Archive/2023/Q1", "Archive/2024", "Arch", "Work"):
        server.create(name)
    client.transcript(
        """
        C: a LIST "" %
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren) "/" Arch
        S: * LIST (\\HasChildren) "/" Archive
        S: * LIST (\\HasNoChildren) "/" Work
        S: a OK LIST completed
        C: b LIST Archive/ %
        S: * LIST (\\HasChildren) "/" Archive/2023
        S: * LIST (\\HasNoChildren) "/" Archive/2024
        S: b OK LIST completed
        C: c LIST Archive/ *
        S: * LIST (\\HasChildren) "/" Archive/2023
        S: * LIST (\\HasNoChildren) "/" Archive/2023/Q1
        S: * LIST (\\HasNoChildren) "/" Archive/2024
        S: c OK LIST completed
        C: d LIST "" Arch%
        S: * LIST (\\HasNoChildren) "/" Arch
        S: * LIST (\\HasChildren) "/" Archive
        S: d OK LIST completed
        C: e LIST "" %/%/%
        S: * LIST (\\HasNoChildren) "/" Archive/2023/Q1
        S: e OK LIST completed
        C: f LIST "" inbox
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: f OK LIST completed
        C: g LIST "" work
        S: g OK LIST completed
        C: h LIST "" nosuch*
        S: h OK LIST completed
        """
    )


def test_nothing_outside_the_users_own_tree(server: MailServer, client: Client) -> None:
    server.create("Secret", user="bob")
    server.append("Secret", message(1), user="bob")
    server.append("INBOX", message(2), user="bob")
    client.transcript(
        """
        C: a LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: a OK LIST completed
        C: b SELECT Secret
        S: b NO [NONEXISTENT] Mailbox does not exist: Secret
        C: c STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 0)
        S: c OK STATUS completed
        C: d CREATE ~bob/Secret
        S: d OK CREATE completed
        C: e STATUS ~bob/Secret (MESSAGES)
        S: * STATUS ~bob/Secret (MESSAGES 0)
        S: e OK STATUS completed
        C: f RENAME Secret Mine
        S: f NO [NONEXISTENT] Mailbox does not exist: Secret
        C: g DELETE Secret
        S: g NO [NONEXISTENT] Mailbox does not exist: Secret
        """
    )
    assert server.status("Secret", user="bob").messages == 1
    assert server.mailbox_names("bob") == ["INBOX", "Secret"]


def test_rfc3501_section_6_3_9_lsub_example(client: Client) -> None:
    """The RFC's example with "/" for its "." delimiter."""
    client.ok("a SUBSCRIBE #news/comp/mail/mime")
    client.ok("b SUBSCRIBE #news/comp/mail/misc")
    client.transcript(
        """
        C: A002 LSUB "#news/" "comp/mail/*"
        S: * LSUB () "/" #news/comp/mail/mime
        S: * LSUB () "/" #news/comp/mail/misc
        S: A002 OK LSUB completed
        C: A003 LSUB "#news/" "comp/%"
        S: * LSUB (\\Noselect) "/" #news/comp/mail
        S: A003 OK LSUB completed
        """
    )


def test_lsub_lists_subscribed_names_only(server: MailServer, client: Client) -> None:
    server.create("Work/Reports")
    server.create("Play")
    client.ok("a SUBSCRIBE INBOX")
    client.ok("b SUBSCRIBE Work/Reports")
    client.transcript(
        """
        C: c LSUB "" *
        S: * LSUB () "/" INBOX
        S: * LSUB () "/" Work/Reports
        S: c OK LSUB completed
        C: d LSUB "" %
        S: * LSUB () "/" INBOX
        S: * LSUB (\\Noselect) "/" Work
        S: d OK LSUB completed
        C: e LSUB "" P*
        S: e OK LSUB completed
        """
    )


def test_rfc3501_section_6_3_10_status_example(server: MailServer, client: Client) -> None:
    server.create("blurdybloop")
    server.append_many("blurdybloop", [message(n) for n in range(1, 232)])
    client.transcript(
        """
        C: A042 STATUS blurdybloop (UIDNEXT MESSAGES)
        S: * STATUS blurdybloop (UIDNEXT 232 MESSAGES 231)
        S: A042 OK STATUS completed
        """
    )


def test_status_all_items_and_recent_not_consumed(server: MailServer, client: Client) -> None:
    server.append_many(
        "INBOX", [message(n) for n in range(1, 5)], [["\\Seen"], [], ["\\Seen"], []]
    )
    expected = """
        C: s STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)
        S: * STATUS INBOX (MESSAGES 4 RECENT 4 UIDNEXT 5 UIDVALIDITY ${uidvalidity} UNSEEN 2)
        S: s OK STATUS completed
        """
    uidvalidity = server.uidvalidity("INBOX")
    client.transcript(expected, uidvalidity=uidvalidity)
    # STATUS MUST NOT cause messages to lose \Recent (RFC 3501 §6.3.10).
    client.transcript(expected, uidvalidity=uidvalidity)
    assert b"* 4 RECENT" in client.ok("t SELECT INBOX")


def test_status_of_the_selected_mailbox_is_allowed(server: MailServer, client: Client) -> None:
    server.append("INBOX", message(1))
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: a STATUS INBOX (MESSAGES UNSEEN)
        S: * STATUS INBOX (MESSAGES 1 UNSEEN 1)
        S: a OK STATUS completed
        """
    )


def test_status_errors(server: MailServer, client: Client) -> None:
    server.create("a/b")
    client.ok("x DELETE a")
    client.transcript(
        """
        C: a STATUS nosuch (MESSAGES)
        S: a NO [NONEXISTENT] Mailbox does not exist: nosuch
        C: b STATUS a (MESSAGES)
        S: b NO [NONEXISTENT] Mailbox does not exist: a
        C: c STATUS INBOX (MAILBOXID)
        S: c BAD Unknown status item MAILBOXID
        C: d STATUS INBOX (BOGUS)
        S: d BAD Unknown status item BOGUS
        """
    )


def test_mailbox_commands_need_authentication(server: MailServer) -> None:
    anonymous = server.connect(None)
    for line in ("a CREATE x", "b DELETE x", "c RENAME x y", "d SUBSCRIBE x",
                 "e UNSUBSCRIBE x", 'f LIST "" *', 'g LSUB "" *', "h STATUS x (MESSAGES)"):
        tag = line.split()[0].encode()
        assert anonymous.lines(line) == [tag + b" BAD Command not allowed in this state"]
