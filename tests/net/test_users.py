"""The user database: format, hashing, atomic rewrites, reload on change."""

from __future__ import annotations

import os
from pathlib import Path

import argon2
import pytest

from imapd.core.model import Secret
from imapd.accounts.users import (
    UnknownUser, UserDatabase, UserDatabaseError, UserExists, parse_users_file,
)
from tests.support.context import cheap_hasher


def pw(text: str) -> Secret:
    return Secret(text.encode())


def test_added_user_verifies_and_wrong_password_does_not(users: UserDatabase) -> None:
    assert users.verify("alice", pw("wonderland"))
    assert not users.verify("alice", pw("wonderlanD"))
    assert not users.verify("alice", pw(""))
    assert not users.verify("Alice", pw("wonderland"))  # names are exact


def test_file_holds_dovecot_style_argon2id_lines(users: UserDatabase) -> None:
    lines = users.path.read_text().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["alice", "bob"]
    for line in lines:
        name, field = line.split(":")
        assert field.startswith("{ARGON2ID}$argon2id$v=19$")
    assert "wonderland" not in users.path.read_text()
    assert (users.path.stat().st_mode & 0o777) == 0o600


def test_duplicate_unknown_and_invalid_names_are_refused(users: UserDatabase) -> None:
    with pytest.raises(UserExists):
        users.add("alice", pw("x"))
    with pytest.raises(UnknownUser):
        users.delete("carol")
    with pytest.raises(UnknownUser):
        users.set_password("carol", pw("x"))
    for bad in ["", "a:b", "#x", "a b", "tab\t", "nl\n", "x" * 256]:
        with pytest.raises(UserDatabaseError):
            users.add(bad, pw("x"))
    for bad_password in [b"", b"a\0b"]:
        with pytest.raises(UserDatabaseError):
            users.add("carol", Secret(bad_password))
    assert users.names() == ["alice", "bob"]


def test_passwd_and_delete(users: UserDatabase) -> None:
    users.set_password("alice", pw("looking-glass"))
    assert users.verify("alice", pw("looking-glass"))
    assert not users.verify("alice", pw("wonderland"))
    users.delete("alice")
    assert users.names() == ["bob"]
    assert not users.verify("alice", pw("looking-glass"))


def test_a_second_instance_sees_changes_at_once(users: UserDatabase) -> None:
    """The server's instance must see what the CLI (another process, another
    instance) wrote, without restarting."""
    other = UserDatabase(users.path, hasher=cheap_hasher())
    assert other.names() == ["alice", "bob"]
    users.add("carol", pw("c"))
    assert other.verify("carol", pw("c"))
    other.delete("bob")
    assert users.names() == ["alice", "carol"]


def test_rewrite_keeps_comments_and_dovecot_extra_fields(tmp_path: Path) -> None:
    hasher = cheap_hasher()
    dave_hash = hasher.hash("pw")
    path = tmp_path / "users.passwd"
    path.write_text(
        "# imported from dovecot\n"
        f"dave:{{ARGON2ID}}{dave_hash}:1000:1000::/home/dave::userdb_quota_rule=*:storage=1G\n"
        "\n"
        "erin:{SHA512-CRYPT}$6$abc$def:1001:1001::/home/erin::\n"
    )
    db = UserDatabase(path, hasher=hasher)
    assert db.names() == ["dave", "erin"]
    assert db.verify("dave", pw("pw"))
    assert not db.verify("erin", pw("anything"))  # scheme not supported (yet)
    db.add("frank", pw("f"))
    text = path.read_text()
    assert text.startswith("# imported from dovecot\n")
    assert ":1000:1000::/home/dave::userdb_quota_rule=*:storage=1G\n" in text
    assert "erin:{SHA512-CRYPT}$6$abc$def:1001:1001::/home/erin::\n" in text
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temp left


def test_unknown_users_cost_one_argon2_verification(tmp_path: Path) -> None:
    """Timing must not reveal whether a user exists: the unknown-user path
    and the unsupported-scheme path still run a full argon2 verify."""
    calls: list[str] = []

    class SpyHasher(argon2.PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # type: ignore[override]
            calls.append("verify")
            return super().verify(hash, password)

    spy = SpyHasher(time_cost=1, memory_cost=8, parallelism=1)
    db = UserDatabase(tmp_path / "users.passwd", hasher=spy)
    db.add("alice", pw("a"))
    with (tmp_path / "users.passwd").open("a") as extra:
        extra.write("erin:{CRAM-MD5}secret\n")  # a scheme imapd does not verify
    assert not db.verify("nobody", pw("a"))
    assert not db.verify("erin", pw("secret"))
    assert not db.verify("alice", pw("b"))
    assert db.verify("alice", pw("a"))
    assert calls == ["verify"] * 4


def test_parse_keeps_unparseable_lines_as_text() -> None:
    lines = parse_users_file("# c\n\nnot a user line\nx:{ARGON2ID}h\n")
    assert lines[:3] == ["# c", "", "not a user line"]
    entry = lines[3]
    assert not isinstance(entry, str)
    assert (entry.name, entry.scheme, entry.hash_data, entry.extra) == ("x", "ARGON2ID", "h", None)


def test_missing_file_is_an_empty_database(tmp_path: Path) -> None:
    db = UserDatabase(tmp_path / "nope" / "users.passwd", hasher=cheap_hasher())
    assert db.names() == []
    assert not db.verify("alice", pw("x"))
