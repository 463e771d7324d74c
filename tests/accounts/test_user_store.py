"""The user store protocol (``imapd.accounts.store.UserStore``) on both
stores: the passwd file in the data directory and the ``users`` table of a
PostgreSQL database (``imapd.storage.postgres.users``). The same checks
run on each, so ``imapd user ...`` and logins behave the same whatever
``--store`` says; then what only the database store has (SCRAM rows kept
out of the names, a database that cannot be reached is ``Unavailable``,
two stores on one database see each other's changes at once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from imapd.accounts.store import UserStore
from imapd.accounts.users import UnknownUser, UserDatabase, UserEntry, UserExists
from imapd.core.model import Secret
from imapd.mail.errors import Unavailable
from tests.support.context import cheap_hasher


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    from tests.support.postgres import shared_cluster

    cluster = shared_cluster()
    dsn = cluster.fresh_database()
    yield dsn
    cluster.drop_database(dsn)


def pg_store(dsn: str) -> UserStore:
    from imapd.storage.postgres.users import PostgresUserStore

    return PostgresUserStore(dsn, cheap_hasher())


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserStore]:
    if request.param == "file":
        users: UserStore = UserDatabase.in_data_dir(tmp_path, cheap_hasher())
    else:
        users = pg_store(request.getfixturevalue("pg_dsn"))
    yield users
    users.close()


def pw(text: str) -> Secret:
    return Secret(text.encode())


def test_add_verify_passwd_delete(store: UserStore) -> None:
    assert store.names() == [] and not store.exists("alice")
    store.add("alice", pw("wonderland"))
    store.add("bob", pw("builder"))
    with pytest.raises(UserExists):
        store.add("alice", pw("again"))
    assert sorted(store.names()) == ["alice", "bob"] and store.exists("alice")
    assert store.verify("alice", pw("wonderland")) and not store.verify("alice", pw("builder"))
    assert not store.verify("carol", pw("wonderland"))  # unknown: a dummy check, False
    store.set_password("alice", pw("rabbit"))
    assert store.verify("alice", pw("rabbit")) and not store.verify("alice", pw("wonderland"))
    with pytest.raises(UnknownUser):
        store.set_password("carol", pw("x"))
    store.delete("bob")
    with pytest.raises(UnknownUser):
        store.delete("bob")
    assert store.names() == ["alice"] and not store.verify("bob", pw("builder"))


def test_scram_keys_follow_the_password(store: UserStore) -> None:
    store.add("alice", pw("wonderland"))
    first = store.scram_keys("alice")
    assert first is not None and store.scram_keys("carol") is None
    store.set_password("alice", pw("rabbit"))
    second = store.scram_keys("alice")
    assert second is not None and second.stored_key != first.stored_key
    store.delete("alice")
    assert store.scram_keys("alice") is None


def test_import_skips_or_replaces_and_keeps_extra_fields(store: UserStore) -> None:
    store.add("alice", pw("wonderland"))
    entries = [UserEntry("alice", "{PLAIN}other"), UserEntry("dave", "{PLAIN}secret", "1000:1000::")]
    assert store.import_entries(entries, replace_existing=False) == ["alice"]
    assert store.verify("dave", pw("secret")) and store.verify("alice", pw("wonderland"))
    assert store.scram_keys("dave") is None  # imported: no keys until a password is set
    assert store.import_entries(entries, replace_existing=True) == []
    assert store.verify("alice", pw("other")) and store.scram_keys("alice") is None
    store.set_password("dave", pw("new"))  # the extra fields survive a password change
    assert store.verify("dave", pw("new"))


def test_database_store_keeps_one_row_per_user_with_its_scram_keys(pg_dsn: str) -> None:
    import psycopg

    store = pg_store(pg_dsn)
    store.add("alice", pw("wonderland"))
    with psycopg.connect(pg_dsn) as conn:
        rows = {str(r[0]): (str(r[1]), r[2])
                for r in conn.execute("SELECT name, entry, scram FROM users").fetchall()}
    assert set(rows) == {"alice"}  # one row per user: counting users counts rows
    entry, scram = rows["alice"]
    assert entry.startswith("alice:{ARGON2ID}$argon2id$")  # the users-file line
    assert isinstance(scram, str) and scram.startswith("{SCRAM-SHA-256}")
    assert store.scram_keys("alice") is not None
    # Keys bound to another password field are inert (a hand-edited entry).
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE users SET entry = %s WHERE name = 'alice'",
                     (entry.replace("$argon2id$", "$argon2id$x", 1),))
    assert store.scram_keys("alice") is None
    store.close()


def test_two_database_stores_see_each_other_at_once(pg_dsn: str) -> None:
    cli, server = pg_store(pg_dsn), pg_store(pg_dsn)
    assert not server.verify("alice", pw("wonderland"))  # the server's connection is open
    cli.add("alice", pw("wonderland"))
    assert server.verify("alice", pw("wonderland"))
    cli.delete("alice")
    assert not server.exists("alice")
    cli.close()
    server.close()


def test_an_unreachable_database_is_unavailable_without_the_password() -> None:
    store = pg_store("postgresql://imapd:hunter2@127.0.0.1:1/mail?connect_timeout=5")
    with pytest.raises(Unavailable) as caught:
        store.verify("alice", pw("x"))
    assert caught.value.text == "user database unavailable, try again later"  # what IMAP says
    detail = getattr(caught.value, "detail")
    assert detail.startswith("user database unavailable: ") and "127.0.0.1" in detail
    assert "hunter2" not in detail


def test_a_restarted_database_costs_no_failed_login(pg_dsn: str) -> None:
    """The store's connection broke (the server restarted, here: its
    backend is terminated): the next call reconnects instead of failing."""
    import psycopg

    store = pg_store(pg_dsn)
    store.add("alice", pw("wonderland"))
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert store.verify("alice", pw("wonderland"))
    store.close()
