"""QUOTA (RFC 9208) transcripts: GETQUOTA, GETQUOTAROOT, SETQUOTA, and
NO [OVERQUOTA] from APPEND, MULTIAPPEND, COPY and MOVE."""

from __future__ import annotations

from tests.imap.commands.harness import Client, MailServer, run

MESSAGE = b"Subject: q\r\n\r\n" + b"x" * 1486 + b"\r\n"  # 1502 octets


def limit(server: MailServer, storage: int | None, messages: int | None) -> None:
    run(server.mail.set_quota("alice", storage, messages))


def test_no_limits_no_quota_root(client: Client) -> None:
    """§4.3: a mailbox under no quota root lists none; §4.2: GETQUOTA of a
    root that does not exist is NO."""
    client.transcript("""
        C: a GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX
        S: a OK GETQUOTAROOT completed
        C: b GETQUOTA ""
        S: b NO [NONEXISTENT] No such quota root
    """)


def test_getquotaroot_and_getquota_report_usage_in_kib(server: MailServer, client: Client) -> None:
    """§5.1: STORAGE in units of 1024 octets (1502 octets in use: 2);
    §5.2: MESSAGE counts messages; the RFC 9208 §4.3 example's shape."""
    limit(server, 10 * 1024, 5)
    server.append("INBOX", MESSAGE)
    client.transcript("""
        C: A003 GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX ""
        S: * QUOTA "" (STORAGE 2 10 MESSAGE 1 5)
        S: A003 OK GETQUOTAROOT completed
        C: G0001 GETQUOTA ""
        S: * QUOTA "" (STORAGE 2 10 MESSAGE 1 5)
        S: G0001 OK GETQUOTA completed
        C: G0002 GETQUOTA "other"
        S: G0002 NO [NONEXISTENT] No such quota root
        C: G0003 GETQUOTAROOT Nope
        S: G0003 NO [NONEXISTENT] Mailbox does not exist: Nope
    """)


def test_only_limited_resources_are_listed(server: MailServer, client: Client) -> None:
    limit(server, None, 3)
    client.transcript("""
        C: a GETQUOTA ""
        S: * QUOTA "" (MESSAGE 0 3)
        S: a OK GETQUOTA completed
    """)


def test_setquota_is_refused_without_an_administrator(server: MailServer, client: Client) -> None:
    """§4.1.4: only administrators set limits; none log in over IMAP here."""
    client.transcript("""
        C: S0000 SETQUOTA "" (STORAGE 512)
        S: S0000 NO [NOPERM] Quota limits are set by the administrator
        C: S0001 SETQUOTA "" ()
        S: S0001 NO [NOPERM] Quota limits are set by the administrator
        C: S0002 SETQUOTA "" STORAGE 512
        S: S0002 BAD Invalid quota limits: expected '('
        C: S0003 GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX
        S: S0003 OK GETQUOTAROOT completed
    """)


def test_append_over_quota(server: MailServer, client: Client) -> None:
    limit(server, 2000, None)
    server.append("INBOX", MESSAGE)
    out = client.exchange(b"a APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert out == b"a NO [OVERQUOTA] Over the storage quota\r\n"
    assert server.status("INBOX").messages == 1


def test_multiappend_over_quota_stores_nothing(server: MailServer, client: Client) -> None:
    limit(server, None, 2)
    server.append("INBOX", MESSAGE)
    out = client.exchange(b"a APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE
                          + b" {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert out == b"a NO [OVERQUOTA] Over the message quota\r\n"
    assert server.status("INBOX").messages == 1


def test_copy_over_quota_move_within_the_account_allowed(server: MailServer, client: Client) -> None:
    server.create("Archive")
    server.append("INBOX", MESSAGE)
    limit(server, None, 1)
    client.ok("s SELECT INBOX")
    client.transcript("""
        C: c COPY 1 Archive
        S: c NO [OVERQUOTA] Over the message quota
    """)
    out = client.lines("m MOVE 1 Archive")
    assert out[-1] == b"m OK MOVE completed", out
    assert server.status("Archive").messages == 1 and server.status("INBOX").messages == 0
