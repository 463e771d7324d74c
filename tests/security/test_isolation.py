"""Mailbox-name traversal and isolation between users, at the IMAP level
over real sockets: no name a client can send (``../``, absolute paths,
modified-UTF-7 encodings of dots and slashes, NUL and control characters,
over-long names, deep hierarchies) escapes the user's own tree, creates a
file, or reaches another user's mail."""

from __future__ import annotations

import imaplib
import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.security.helpers import Raw, SecureServer, secure_server

MARKER = b"X-Marker: alice-private-7f3a"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    with secure_server(tmp_path_factory.mktemp("iso"), {"alice": "wonderland", "bob": "builder"},
                       imaps=False) as s:
        alice = login(s, "alice", "wonderland")
        for name in ("Private", "Private/Deep"):
            assert alice.create(name)[0] == "OK"
        message = b"Subject: secret\r\n" + MARKER + b"\r\n\r\nalice only\r\n"
        for mailbox in ("INBOX", "Private", "Private/Deep"):
            assert alice.append(mailbox, "", None, message)[0] == "OK"
        alice.logout()
        yield s


def login(server: SecureServer, user: str, password: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login(user, password)
    return imap


def files_under(root: Path) -> set[Path]:
    return {Path(d) / f for d, _, names in os.walk(root) for f in names}


def raw_bob(server: SecureServer) -> Raw:
    raw = Raw(server.host, server.port)
    raw.line()
    assert raw.command(b"l", b"LOGIN bob builder")[-1].startswith(b"l OK")
    return raw


TRAVERSAL_NAMES = [
    b'"../alice/INBOX"', b'"../../etc/passwd"', b'"/etc/passwd"', b'"/"', b'".."', b'"."',
    b'"INBOX/../../alice"', b'"a//b"', b'"~alice/INBOX"', b'"#users/alice"', b'"alice/INBOX"',
    b'"&AC4ALg-/alice"',  # modified UTF-7 for ".." (decoded, still refused or contained)
    b'"&AC8-etc&AC8-passwd"',  # "/etc/passwd" spelled in modified UTF-7
    b'"..&AC8-alice"', b'"&-AC4-"', b'"&Jjo-"',
    b'"\\\\..\\\\alice"', b'"C:\\\\Windows"',
    b'{5}\r\na\x00b/c',  # NUL inside a literal
    b'{4}\r\na\x01\x7fb', b'{3}\r\na\rb', b'{3}\r\na\nb',
    b'"' + b"x" * 2000 + b'"',  # over-long name
    b'"' + b"/".join([b"d"] * 40) + b'"',  # deeper than the store allows
    b'"' + b"y" * 300 + b'"',  # one level longer than 255
]


@pytest.mark.parametrize("name", TRAVERSAL_NAMES, ids=lambda n: repr(n[:30]))
def test_hostile_names_never_escape_or_reach_another_user(server: SecureServer, name: bytes) -> None:
    root = server.data_dir.parent
    before = files_under(root)
    raw = raw_bob(server)
    seen = b""
    for tag, verb in ((b"c", b"CREATE"), (b"s", b"SELECT"), (b"t", b"STATUS"), (b"d", b"DELETE")):
        literal = name.startswith(b"{")
        if literal:
            head, _, body = name.partition(b"\r\n")
            raw.send(tag + b" " + verb + b" " + head + b"\r\n")
            if not raw.line().startswith(b"+"):
                continue
            raw.send(body + (b" (MESSAGES)" if verb == b"STATUS" else b"") + b"\r\n")
        else:
            suffix = b" (MESSAGES)" if verb == b"STATUS" else b""
            raw.send(tag + b" " + verb + b" " + name + suffix + b"\r\n")
        lines = raw.until_tagged(tag)
        seen += b"".join(lines)
        if verb == b"SELECT" and lines[-1].startswith(b"s OK"):
            # Whatever bob selected is bob's own (new, empty) mailbox.
            assert any(line == b"* 0 EXISTS\r\n" for line in lines), lines
            fetched = raw.command(b"f", b"FETCH 1:* (BODY.PEEK[])")
            seen += b"".join(fetched)
            raw.command(b"u", b"CLOSE")
    assert MARKER not in seen
    assert b"SERVERBUG" not in seen
    raw.close()
    created = files_under(root) - before
    # Only the store's own database files may change, never a new path
    # named after the mailbox.
    assert all(p.parent == server.data_dir or "tls" in p.parts for p in created), created


def test_another_users_mailboxes_are_invisible_and_unreachable(server: SecureServer) -> None:
    bob = login(server, "bob", "builder")
    typ, listed = bob.list('""', "*")
    names = b" ".join(x for x in listed if isinstance(x, bytes))
    assert typ == "OK" and b"Private" not in names
    for pattern in ("%", "*/*", "../*", "~alice/*", "#users/*"):
        typ, listed = bob.list('""', pattern)
        assert not any(b"Private" in x for x in listed if isinstance(x, bytes)), (pattern, listed)
    assert bob.select("Private")[0] == "NO"
    assert bob.status("Private", "(MESSAGES)")[0] == "NO"
    assert bob.select("INBOX")[0] == "OK"
    typ, data = bob.search(None, "ALL")
    assert data == [b""]  # bob's INBOX is his own, empty
    assert bob.append("INBOX", "", None, b"Subject: from bob\r\n\r\nhi\r\n")[0] == "OK"
    bob.noop()
    typ, data = bob.copy("1", "Private")
    assert typ == "NO" and b"TRYCREATE" in data[0]  # alice's Private does not exist for bob
    assert bob.append("Private", "", None, b"Subject: x\r\n\r\nx\r\n")[0] == "NO"
    bob.logout()
    alice = login(server, "alice", "wonderland")
    assert alice.select("Private")[0] == "OK"
    typ, data = alice.search(None, "ALL")
    assert data == [b"1"]  # untouched by bob
    alice.logout()


def test_user_names_cannot_smuggle_paths(server: SecureServer) -> None:
    for name in ("../alice", "alice/../alice", "/alice", "alice\x00", "ALICE"):
        imap = imaplib.IMAP4(server.host, server.port)
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(name, "wonderland")
        imap.shutdown()
