"""imapd.testing.users: the in-memory UserStore of test servers."""

from __future__ import annotations

import pytest

from imapd.accounts.scram import derive_keys
from imapd.accounts.store import UserStore
from imapd.accounts.users import UnknownUser, UserDatabaseError, UserEntry, UserExists
from imapd.core.model import Secret
from imapd.testing.users import SCRAM_ITERATIONS, TestUsers


def test_add_verify_and_change_password() -> None:
    users: UserStore = TestUsers()
    users.add("alice", Secret(b"wonderland"))
    assert users.names() == ["alice"] and users.exists("alice")
    assert users.verify("alice", Secret(b"wonderland"))
    assert not users.verify("alice", Secret(b"wonderlan"))
    assert not users.verify("nobody", Secret(b"wonderland"))
    field = users.password_field("alice")
    assert field is not None and "wonderland" not in field
    users.set_password("alice", Secret(b"looking-glass"))
    assert users.password_field("alice") != field  # the auth cache keys on it
    assert users.verify("alice", Secret(b"looking-glass"))
    assert not users.verify("alice", Secret(b"wonderland"))


def test_refusals_are_the_user_store_errors() -> None:
    users = TestUsers()
    users.add_user("alice", "pw")
    with pytest.raises(UserExists):
        users.add_user("alice", "other")
    with pytest.raises(UnknownUser):
        users.delete("bob")
    with pytest.raises(UnknownUser):
        users.set_password("bob", Secret(b"x"))
    with pytest.raises(UserDatabaseError):
        users.add_user("has space", "pw")
    with pytest.raises(UserDatabaseError):
        users.add_user("bob", "")


def test_rename_keeps_the_password_and_delete_removes() -> None:
    users = TestUsers()
    users.add_user("alice", "pw")
    users.add_user("bob", "pw2")
    with pytest.raises(UserExists):
        users.rename("alice", "bob")
    users.rename("alice", "carol")
    assert users.verify("carol", Secret(b"pw")) and not users.exists("alice")
    users.delete("carol")
    assert users.names() == ["bob"]


def test_scram_keys_are_cheap_and_match_the_password() -> None:
    users = TestUsers()
    users.add_user("alice", "pw")
    keys = users.scram_keys("alice")
    assert keys is not None and keys.iterations == SCRAM_ITERATIONS
    again = derive_keys(b"pw", SCRAM_ITERATIONS)
    assert again is not None
    import hashlib
    import hmac
    salted = hashlib.pbkdf2_hmac("sha256", b"pw", keys.salt, keys.iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert hashlib.sha256(client_key).digest() == keys.stored_key
    assert users.scram_keys("alice") is keys  # derived once per password
    assert users.scram_keys("nobody") is None


def test_imported_hashed_entries_verify_by_their_scheme() -> None:
    users = TestUsers()
    users.add_user("alice", "pw")
    skipped = users.import_entries(
        [UserEntry("alice", "{PLAIN}x"), UserEntry("bob", "{PLAIN}builder")], False)
    assert skipped == ["alice"]
    assert users.verify("bob", Secret(b"builder")) and not users.verify("bob", Secret(b"x"))
    assert users.scram_keys("bob") is None
