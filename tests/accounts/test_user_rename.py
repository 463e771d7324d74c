"""``UserStore.rename`` (``imapd user rename``) on both stores: the password
and the SCRAM keys move to the new name, the old name is gone, a taken or
unknown name is refused and changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from imapd.accounts.store import UserStore
from imapd.accounts.users import UnknownUser, UserDatabase, UserDatabaseError, UserExists
from imapd.core.model import Secret
from tests.support.context import cheap_hasher


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserStore]:
    users: UserStore
    if request.param == "file":
        users = UserDatabase.in_data_dir(tmp_path, cheap_hasher())
    else:
        from imapd.storage.postgres.users import PostgresUserStore
        from tests.support.postgres import shared_cluster

        cluster = shared_cluster()
        dsn = cluster.fresh_database()
        request.addfinalizer(lambda: cluster.drop_database(dsn))
        users = PostgresUserStore(dsn, cheap_hasher())
    yield users
    users.close()


def pw(text: str) -> Secret:
    return Secret(text.encode())


def test_rename_keeps_password_and_scram_keys(store: UserStore) -> None:
    store.add("alice", pw("wonderland"))
    store.add("bob", pw("builder"))
    keys = store.scram_keys("alice")
    field = store.password_field("alice")
    assert keys is not None and field is not None
    store.rename("alice", "carol")
    assert sorted(store.names()) == ["bob", "carol"] and not store.exists("alice")
    assert store.verify("carol", pw("wonderland")) and not store.verify("alice", pw("wonderland"))
    assert store.scram_keys("carol") == keys and store.scram_keys("alice") is None
    assert store.password_field("carol") == field


def test_rename_refusals_change_nothing(store: UserStore) -> None:
    store.add("alice", pw("wonderland"))
    store.add("bob", pw("builder"))
    with pytest.raises(UserExists):
        store.rename("alice", "bob")
    with pytest.raises(UnknownUser):
        store.rename("nobody", "dave")
    with pytest.raises(UserDatabaseError):
        store.rename("alice", "bad:name")
    assert sorted(store.names()) == ["alice", "bob"]
    assert store.verify("alice", pw("wonderland")) and store.verify("bob", pw("builder"))
    assert store.scram_keys("alice") is not None
