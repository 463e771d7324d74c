"""The contract suite runs unchanged on every backend, on a real reactor.

Every test in this directory runs once per ``KINDS`` entry: the in-memory
reference backend, SQLite with inline writes, SQLite with its writer thread,
and each of those wrapped in ``YieldingBackend`` (tests/support/yielding.py)
so that every call yields to the reactor before and after it (the contract:
"every call may really await"). Test functions are ``async def``; the
``pytest_pyfunc_call`` hook below runs them on the test reactor
(tests/support/reactor_thread.py), so the threaded and yielding variants
really await while other coroutines run.

A ``Site`` is one store's data (a MemoryData, an SQLite data directory);
``site.open()`` opens another backend instance on it, as another process
(or node) would.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Coroutine, Iterable, Iterator, TypeVar

import pytest

from imapd.mail.backend import MailBackend
from imapd.mail.errors import MailError
from imapd.mail.records import AppendItem, AppendResult, MailboxInfo
from imapd.mail.service import MailService
from imapd.mail.watch import MailboxWatch
from tests.support.reactor_thread import on_reactor, reactor_hop
from tests.support.yielding import YieldingBackend, reactor_sleep

U = "alice"
E = TypeVar("E", bound=MailError)
T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """One way to run a backend: the engine, and how its calls await."""

    name: str
    engine: str  # "memory", "sqlite" or "postgres"
    threaded: bool = False  # sqlite: writes on the writer thread, results hop back
    yielding: bool = False  # wrapped in YieldingBackend


KINDS: tuple[Kind, ...] = (
    Kind("memory", "memory"),
    Kind("memory-yield", "memory", yielding=True),
    Kind("sqlite", "sqlite"),
    Kind("sqlite-yield", "sqlite", yielding=True),
    Kind("sqlite-thread", "sqlite", threaded=True),
    Kind("sqlite-thread-yield", "sqlite", threaded=True, yielding=True),
    # A database of the test cluster (tests/support/postgres.py) per site.
    Kind("postgres", "postgres", threaded=True),
    Kind("postgres-yield", "postgres", threaded=True, yielding=True),
)

# The one place where a backend still missing its implementation is marked
# (engine -> pinned reason); empty when every engine is in.
PENDING: dict[str, str] = {}


def kind_params() -> list[Any]:
    return [
        pytest.param(kind, id=kind.name, marks=(
            [pytest.mark.xfail(reason=PENDING[kind.engine], strict=True)]
            if kind.engine in PENDING else []))
        for kind in KINDS
    ]


def scratch_root() -> str | None:
    # tmpfs makes fsync nearly free; durability is tested in tests/storage/sqlite.
    return "/dev/shm" if Path("/dev/shm").is_dir() else None


@dataclass(eq=False)
class Site:
    """One store's data, and the backend instances opened on it."""

    kind: Kind
    directory: Path
    shared: Any = None  # memory: the MemoryData every instance shares; postgres: the DSN
    instances: list[MailBackend] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)

    async def open(self) -> MailBackend:
        """Another backend instance on this data (another process)."""
        if self.kind.engine == "memory":
            from imapd.storage.memory import MemoryBackend, MemoryData

            if self.shared is None:
                self.shared = MemoryData()
            backend: MailBackend = MemoryBackend(self.shared)
        elif self.kind.engine == "postgres":
            from twisted.internet.defer import Deferred

            from imapd.storage.postgres import open_backend as open_postgres

            # A short catch-up interval: the tests wait for rings, and the
            # catch-up is what rings when a NOTIFY was missed.
            backend = open_postgres(self.shared, hop=reactor_hop(), make_waiter=Deferred,
                                    poll_interval=0.2, pool_size=4)
        else:
            from twisted.internet.defer import Deferred

            from imapd.storage.sqlite import open_backend

            if self.kind.threaded:
                backend = open_backend(self.directory, hop=reactor_hop(), make_waiter=Deferred)
            else:
                backend = open_backend(self.directory)
        if self.kind.yielding:
            backend = YieldingBackend(backend, reactor_sleep())
        self.instances.append(backend)
        return backend

    async def close(self, backend: MailBackend) -> None:
        """Close one instance (a process stopping); the data stays."""
        if id(backend) not in self.closed:
            self.closed.add(id(backend))
            await backend.close()

    async def close_all(self) -> None:
        for backend in self.instances:
            await self.close(backend)


def make_site(kind: Kind) -> Site:
    site = Site(kind, Path(tempfile.mkdtemp(prefix="imapd-contract-", dir=scratch_root())))
    if kind.engine == "postgres":
        # On the test thread: the cluster starts here (or the test skips,
        # pinned; under CI it fails), and a fresh database is made per site.
        from tests.support.postgres import shared_cluster

        site.shared = shared_cluster().fresh_database()
    return site


def remove_site(site: Site) -> None:
    try:
        on_reactor(site.close_all)
    finally:
        shutil.rmtree(site.directory, ignore_errors=True)
        if site.kind.engine == "postgres" and site.shared is not None:
            from tests.support.postgres import shared_cluster

            shared_cluster().release_database(site.shared)


# --- fixtures ------------------------------------------------------------------

@pytest.fixture(params=kind_params())
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def site(kind: Kind) -> Iterator[Site]:
    s = make_site(kind)
    yield s
    remove_site(s)


@pytest.fixture
def backend(site: Site) -> MailBackend:
    return on_reactor(site.open)


def make_service(backend: MailBackend, **options: Any) -> MailService:
    """The service as the server builds it: on the reactor's runtime (it
    sleeps and runs large analyses in threads through it)."""
    from imapd.net.runtime import ReactorRuntime

    from tests.support.reactor_thread import reactor

    return MailService(backend, runtime=ReactorRuntime(reactor()), **options)


@pytest.fixture
def service(backend: MailBackend) -> MailService:
    return make_service(backend)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on the test reactor."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    on_reactor(lambda: function(**kwargs), timeout=120.0)
    return True


# --- helpers tests share ---------------------------------------------------------

async def settle(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T | BaseException]:
    """Run the coroutines concurrently on the reactor; each one's result or
    exception, in the order given."""
    from twisted.internet.defer import DeferredList, ensureDeferred

    results: list[tuple[bool, Any]] = await DeferredList(
        [ensureDeferred(c) for c in calls], consumeErrors=True)
    return [value if ok else value.value for ok, value in results]


async def together(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """``settle``, raising the first exception."""
    outcomes = await settle(calls)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


async def refused(kind: type[E], call: Awaitable[object]) -> E:
    """Await ``call``, which must raise ``kind``; return the error."""
    try:
        await call
    except MailError as error:
        assert isinstance(error, kind), f"expected {kind.__name__}, got {type(error).__name__}: {error}"
        return error
    raise AssertionError(f"expected {kind.__name__}, but the call succeeded")


async def deliver(
    service: MailService, name: str, raw: bytes, flags: tuple[str, ...] | list[str] = (),
    user: str = U, **extra: Any,
) -> AppendResult:
    return await service.deliver(user, name, [AppendItem(raw, tuple(flags), **extra)])


async def fill(service: MailService, count: int, name: str = "INBOX") -> list[int]:
    return [(await deliver(service, name, b"message %d\r\n" % i)).uid for i in range(count)]


async def listing(
    service: MailService, pattern: str = "*", reference: str = "", user: str = U
) -> dict[str, tuple[str, ...]]:
    infos = await service.list_mailboxes(user, reference, pattern)
    return {i.name: i.list_attributes() for i in infos}


async def names_of(service: MailService, pattern: str = "*", reference: str = "") -> list[str]:
    infos: list[MailboxInfo] = await service.list_mailboxes(U, reference, pattern)
    return [i.name for i in infos]


async def flags_by_uid(watch: MailboxWatch) -> dict[int, tuple[str, ...]]:
    return {r.uid: r.flags for r in await watch.fetch_records()}

