"""The auth cache (``imapd.accounts.authcache``, issue 17): a verified
password is accepted again without argon2 for ``ttl`` seconds; a wrong one
never is; ``user passwd``/``user del`` (the stored field changes or goes)
invalidate it even from another process; bounded in time and size. argon2
verifications are counted with a counting hasher, never timed. The end to
end checks with the real CLI and server are in tests/e2e/test_authcache.py."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

import argon2
import pytest

from imapd.accounts.authcache import AuthCache, CachedLogins
from imapd.accounts.store import UserStore
from imapd.accounts.users import UserDatabase
from imapd.core.model import Secret


class CountingHasher(argon2.PasswordHasher):
    """argon2id at the cheapest cost that counts its verifications."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:  # noqa: A002
        self.verifications += 1
        return super().verify(hash, password)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def pw(text: str) -> Secret:
    return Secret(text.encode())


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["file", "postgres"])
def inner(request: pytest.FixtureRequest, tmp_path: Path,
          hasher: CountingHasher) -> Iterator[UserStore]:
    store: UserStore
    if request.param == "file":
        store = UserDatabase.in_data_dir(tmp_path, hasher)
    else:
        from imapd.storage.postgres.users import PostgresUserStore
        from tests.support.postgres import shared_cluster

        cluster = shared_cluster()
        dsn = cluster.fresh_database()
        request.addfinalizer(lambda: cluster.drop_database(dsn))
        store = PostgresUserStore(dsn, hasher)
    store.add("alice", pw("wonderland"))
    store.add("bob", pw("builder"))
    yield store
    store.close()


def cached(store: UserStore, clock: FakeClock, ttl: float = 300.0,
           entries: int = 100) -> CachedLogins:
    return CachedLogins(store, AuthCache(ttl, entries, now=clock))


def test_second_login_skips_argon2(inner: UserStore, hasher: CountingHasher,
                                   clock: FakeClock) -> None:
    users = cached(inner, clock)
    hasher.verifications = 0
    assert users.verify("alice", pw("wonderland"))
    assert hasher.verifications == 1
    for _ in range(5):
        assert users.verify("alice", pw("wonderland"))
    assert hasher.verifications == 1


def test_wrong_password_after_a_cached_right_one_fails_with_a_full_check(
        inner: UserStore, hasher: CountingHasher, clock: FakeClock) -> None:
    users = cached(inner, clock)
    assert users.verify("alice", pw("wonderland"))
    hasher.verifications = 0
    assert not users.verify("alice", pw("wonderlanD"))
    assert not users.verify("alice", pw("builder"))  # bob's password, not alice's
    assert not users.verify("bob", pw("wonderland"))  # alice's password, not bob's
    assert hasher.verifications == 3
    assert not users.verify("alice", pw("wonderlanD"))  # failures are never remembered
    assert hasher.verifications == 4


def test_passwd_from_another_process_invalidates(
        inner: UserStore, hasher: CountingHasher, clock: FakeClock, tmp_path: Path) -> None:
    """Another store object on the same file or database stands for the
    CLI (the real CLI against a real server: tests/e2e/test_authcache.py)."""
    users = cached(inner, clock)
    assert users.verify("alice", pw("wonderland"))
    other = _other(inner, tmp_path)
    other.set_password("alice", pw("rabbit"))
    assert not users.verify("alice", pw("wonderland"))
    assert users.verify("alice", pw("rabbit"))
    other.close()


def test_del_invalidates(inner: UserStore, clock: FakeClock, tmp_path: Path) -> None:
    users = cached(inner, clock)
    assert users.verify("alice", pw("wonderland"))
    other = _other(inner, tmp_path)
    other.delete("alice")
    assert not users.verify("alice", pw("wonderland"))
    other.add("alice", pw("wonderland"))  # a new account of that name: a new field
    hasher_before = _count(inner)
    assert users.verify("alice", pw("wonderland"))
    assert _count(inner) == hasher_before + 1  # verified afresh, not from the cache
    other.close()


def _other(inner: UserStore, tmp_path: Path) -> UserStore:
    if isinstance(inner, UserDatabase):
        return UserDatabase.in_data_dir(tmp_path, argon2.PasswordHasher(1, 8, 1))
    from imapd.storage.postgres.users import PostgresUserStore

    assert isinstance(inner, PostgresUserStore)
    return PostgresUserStore(inner.dsn, argon2.PasswordHasher(1, 8, 1))


def _count(inner: UserStore) -> int:
    hasher = getattr(inner, "checker").hasher
    assert isinstance(hasher, CountingHasher)
    return hasher.verifications


def test_entries_expire_after_the_ttl(tmp_path: Path, hasher: CountingHasher,
                                      clock: FakeClock) -> None:
    users = cached(UserDatabase.in_data_dir(tmp_path, hasher), clock, ttl=60)
    users.add("alice", pw("wonderland"))
    assert users.verify("alice", pw("wonderland"))
    clock.t += 59.9
    assert users.verify("alice", pw("wonderland"))
    assert hasher.verifications == 1
    clock.t += 0.1
    assert users.verify("alice", pw("wonderland"))
    assert hasher.verifications == 2


def test_ttl_zero_turns_the_cache_off(tmp_path: Path, hasher: CountingHasher,
                                      clock: FakeClock) -> None:
    users = cached(UserDatabase.in_data_dir(tmp_path, hasher), clock, ttl=0)
    users.add("alice", pw("wonderland"))
    assert users.verify("alice", pw("wonderland")) and users.verify("alice", pw("wonderland"))
    assert hasher.verifications == 2 and len(users.cache) == 0


def test_memory_is_bounded_least_recently_used_leaves_first(clock: FakeClock) -> None:
    cache = AuthCache(300, 3, now=clock)
    for name in ("a", "b", "c"):
        cache.remember(name, "{X}1", pw("p"))
    assert cache.hit("a", "{X}1", pw("p"))  # a is now the most recent
    cache.remember("d", "{X}1", pw("p"))
    assert len(cache) == 3
    assert not cache.hit("b", "{X}1", pw("p"))  # the least recently used left
    assert all(cache.hit(name, "{X}1", pw("p")) for name in ("a", "c", "d"))
    for index in range(1000):
        cache.remember(f"u{index}", "{X}1", pw("p"))
    assert len(cache) == 3


def test_the_cache_holds_no_password(clock: FakeClock) -> None:
    cache = AuthCache(300, 10, now=clock)
    cache.remember("alice", "{X}1", pw("wonderland-7f3a"))
    stored = repr(cache._entries)  # noqa: SLF001
    assert "wonderland" not in stored and b"wonderland-7f3a" not in stored.encode()
    assert not AuthCache(300, 10, now=clock).hit("alice", "{X}1", pw("wonderland-7f3a"))
