"""SEARCH, SORT and THREAD with the PostgreSQL store's full-text index
(``pg_trgm`` GIN, ``imapd.storage.postgres.fts``; issue 18).

    BENCH_TMP=/var/tmp .venv/bin/python bench/search_pg_bench.py \\
        [--messages 100000] [--runs 5] [--batch 5000] [--append 1000] [--explain]

The sibling of ``bench/search_bench.py`` (SQLite): the same messages
(``bench.search_bench.mail``: 1 % hold the body word ``zebracorn``, one in
5,000 the sender ``okapi@zoo.example``) are delivered through
``MailService.deliver`` (``--batch`` per delivery, the index built at
delivery) into a private PostgreSQL cluster (``tests.support.postgres.
Cluster``: Debian's server binaries, initdb in a temp dir, fsync and
synchronous_commit on, shared_buffers 32MB). Then ``imapd serve --store
postgresql://...`` answers, over loopback, the commands of both SQLite
benches (median of ``--runs`` after one warm-up). Then: the index's size
on disk per message (``pg_relation_size`` of ``body_text``, its TOAST
table and both trigram indexes), and APPEND throughput (one message per
delivery, each a durable commit) with indexing on and off. imapd has no
switch for the index: "off" patches ``fts.index_bodies`` out in this
process, as the SQLite bench does with its ``index_body``. ``--explain``
prints ``EXPLAIN (ANALYZE, BUFFERS)`` of the SQL ``fts.matches`` and
``fts.candidates`` send for the rare word, the subject, the sender
and the common word, and times BODY's
per-candidate reads against one batched query, and TEXT's query
without parallel workers and with an index on ``messages(body_id)``,
and SORT/THREAD's facts reads. Prints the load average before
and after: figures move with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.corpus import RARE_WORD  # noqa: E402
from bench.message_bench import LISTENING, PASSWORD, USER, Client  # noqa: E402
from bench.search_bench import RARE_SENDER, mail  # noqa: E402
from imapd.core.model import Secret  # noqa: E402
from imapd.mail.records import AppendItem  # noqa: E402
from imapd.mail.service import MailService  # noqa: E402
from imapd.message import analyze  # noqa: E402
from imapd.message.casemap import fold  # noqa: E402
from imapd.storage.postgres import fts, open_backend  # noqa: E402
from imapd.storage.postgres.users import PostgresUserStore  # noqa: E402


class Postgres:
    """A throwaway cluster (tests/support/postgres.py)."""

    def __init__(self) -> None:
        from tests.support.postgres import Cluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL server binaries not installed (apt-get install postgresql)")
        self.version = bindir.parent.name
        self.cluster = Cluster(bindir)
        self.cluster.create()

    def fresh(self) -> tuple[str, str]:
        """A new database with the imapd schema and the bench user:
        (libpq DSN, ``postgresql://`` URL)."""
        dsn = self.cluster.fresh_database()
        parts = dict(item.split("=", 1) for item in dsn.split())
        PostgresUserStore(dsn).add(USER, Secret(PASSWORD.encode()))
        return dsn, f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"


def service(dsn: str) -> MailService:
    from twisted.internet.defer import Deferred

    from tests.support.reactor_thread import reactor_hop

    return MailService(open_backend(dsn, hop=reactor_hop(), make_waiter=Deferred))


def on_reactor(fn: Any) -> Any:
    from tests.support.reactor_thread import on_reactor as call

    return call(fn, timeout=600)


def fill(dsn: str, count: int, batch: int) -> float:
    """The mailbox, ``batch`` messages per delivery; seconds taken."""
    mail_service = service(dsn)
    start = time.perf_counter()
    for first in range(0, count, batch):
        items = []
        for index in range(first, min(count, first + batch)):
            raw = mail(index)
            items.append(AppendItem(raw, ("\\Seen",), None, analyze(raw).to_bytes()))
        on_reactor(lambda: mail_service.deliver(USER, "INBOX", items))
        if (first // batch) % 4 == 3:
            print(f"  .. {first + batch} delivered, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    on_reactor(mail_service.close)
    return elapsed


def sql(dsn: str, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query.encode(), args)
        return list(cursor.fetchall()) if cursor.description else []


def index_size(dsn: str) -> dict[str, int]:
    """Bytes on disk: the text table (heap), its TOAST, each trigram index,
    and the whole database."""
    [(heap, toast, text_ix, hdr_ix, total)] = sql(dsn, """
        SELECT pg_relation_size('body_text'),
               coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0),
               pg_relation_size('body_text_text'), pg_relation_size('body_text_hdr'),
               pg_database_size(current_database())
        FROM pg_class c WHERE c.oid = 'body_text'::regclass""")
    return {"heap": heap, "toast": toast, "text_gin": text_ix, "hdr_gin": hdr_ix, "database": total}


def explain(dsn: str, needle: str) -> None:
    """The plans of the queries ``fts.matches`` (TEXT) and ``fts.candidates``
    (header keys) send, as the engine sends them."""
    [(mailbox_id,)] = sql(dsn, "SELECT id FROM mailboxes WHERE name = 'INBOX'")
    needle = fold(needle)  # as the mail core hands it to the engine (RFC 5051)
    recorded: list[tuple[str, tuple[Any, ...]]] = []

    class Recorder:
        def execute(self, query: str, args: tuple[Any, ...]) -> Any:
            recorded.append((query, args))
            return self

        def fetchall(self) -> list[Any]:
            return []

    fts.matches(Recorder(), mailbox_id, "TEXT", needle)  # type: ignore[arg-type]
    fts.candidates(Recorder(), mailbox_id, "HEADER", needle)  # type: ignore[arg-type]
    for query, args in recorded:
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) {query}\n  -- {args}")
        for (line,) in sql(dsn, "EXPLAIN (ANALYZE, BUFFERS) " + query, args):
            print("  " + line)


def alternatives(dsn: str, needle: str) -> None:
    """Execution time of ``fts.matches``' TEXT query as sent, without
    parallel workers, and with an index on ``messages(body_id)`` (made
    here, in the bench's database only: imapd's schema has none), so
    PostgreSQL can look the candidates' messages up instead of hashing
    the whole mailbox."""
    import psycopg

    [(mailbox_id,)] = sql(dsn, "SELECT id FROM mailboxes WHERE name = 'INBOX'")
    recorded: list[tuple[str, tuple[Any, ...]]] = []

    class Recorder:
        def execute(self, query: str, args: tuple[Any, ...]) -> Any:
            recorded.append((query, args))
            return self

        def fetchall(self) -> list[Any]:
            return []

    fts.matches(Recorder(), mailbox_id, "TEXT", fold(needle))  # type: ignore[arg-type]
    [(query, args)] = recorded

    def run(conn: Any) -> str:
        times = []
        for _ in range(5):
            plan = [line for (line,) in conn.execute(
                ("EXPLAIN (ANALYZE) " + query).encode(), args).fetchall()]
            times.append(float(plan[-1].split()[-2]))
        return f"{statistics.median(times):.1f} ms"

    with psycopg.connect(dsn, autocommit=True) as conn:
        print(f"\nTEXT {needle} query, median of 5 EXPLAIN ANALYZE: as sent {run(conn)}", end="")
        conn.execute(b"SET max_parallel_workers_per_gather = 0")
        print(f"; no parallel workers {run(conn)}", end="")
        conn.execute(b"RESET max_parallel_workers_per_gather")
        conn.execute(b"CREATE INDEX bench_messages_by_body ON messages(body_id)")
        conn.execute(b"ANALYZE messages")
        print(f"; with an index on messages(body_id) {run(conn)}", end="")
        conn.execute(b"SET max_parallel_workers_per_gather = 0")
        print(f"; both {run(conn)}", flush=True)
        conn.execute(b"DROP INDEX bench_messages_by_body")


def facts_cost(dsn: str, batch: int = 2048) -> None:
    """SORT/THREAD's facts reads (``MailBackend.sort_facts``, ``batch`` UIDs
    a call as the commands do) over the whole mailbox, and the plan of one."""
    from imapd.mail.backend import MailboxRef

    [(mailbox_id, uidvalidity)] = sql(dsn, "SELECT id, uidvalidity FROM mailboxes WHERE name = 'INBOX'")
    uids = [int(uid) for (uid,) in sql(
        dsn, "SELECT uid FROM messages WHERE mailbox_id = %s ORDER BY uid", (mailbox_id,))]
    mail_service = service(dsn)
    ref = MailboxRef(int(mailbox_id), int(uidvalidity))

    async def read_all() -> int:
        found = 0
        for first in range(0, len(uids), batch):
            found += len(await mail_service.backend.sort_facts(ref, uids[first:first + batch]))
        return found

    start = time.perf_counter()
    found = on_reactor(read_all)
    print(f"\nsort_facts of {found} messages, {batch} a call: "
          f"{(time.perf_counter() - start) * 1000:.1f} ms", flush=True)
    on_reactor(mail_service.close)
    query = ("SELECT m.uid, f.facts FROM messages m JOIN sort_facts f ON f.body_id = m.body_id "
             "WHERE m.mailbox_id = %s AND m.uid = ANY(%s)")
    for (line,) in sql(dsn, "EXPLAIN (ANALYZE, BUFFERS) " + query, (mailbox_id, uids[:batch])):
        print("  " + (line if len(line) < 160 else line[:150] + " ..."))  # not the 2,048 UIDs


def confirm_cost(dsn: str, needle: str) -> None:
    """What SEARCH BODY's confirmation costs on this engine: the evaluator
    reads each index candidate with ``read_message`` (its own round trips:
    the message's body id, then its chunks), against one batched query
    for the same bodies, and the folding of their text alone."""
    from imapd.mail.backend import MailboxRef
    from imapd.message.searchtext import searchable_text

    [(mailbox_id, uidvalidity)] = sql(dsn, "SELECT id, uidvalidity FROM mailboxes WHERE name = 'INBOX'")
    uids = sorted(int(uid) for (uid,) in sql(
        dsn, "SELECT m.uid FROM messages m JOIN body_text t ON t.body_id = m.body_id "
        "WHERE m.mailbox_id = %s AND t.text LIKE %s", (mailbox_id, f"%{fold(needle)}%")))
    mail_service = service(dsn)
    backend = mail_service.backend
    ref = MailboxRef(int(mailbox_id), int(uidvalidity))

    async def one_by_one() -> list[bytes]:
        return [await backend.read_message(ref, uid, 0, None) or b"" for uid in uids]

    start = time.perf_counter()
    raws = on_reactor(one_by_one)
    each = time.perf_counter() - start
    start = time.perf_counter()
    rows = sql(dsn, "SELECT c.body_id, c.seq, c.data FROM messages m JOIN body_chunks c "
               "ON c.body_id = m.body_id WHERE m.mailbox_id = %s AND m.uid = ANY(%s) "
               "ORDER BY c.body_id, c.seq", (mailbox_id, uids))
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for raw in raws:
        searchable_text(raw, analyze(raw), "BODY")
    folding = time.perf_counter() - start
    on_reactor(mail_service.close)
    print(f"\nBODY confirmation of {len(uids)} candidates: read_message one by one "
          f"{each * 1000:.1f} ms ({each / max(len(uids), 1) * 1000:.3f} ms each); "
          f"one batched query {batched * 1000:.1f} ms ({len(rows)} chunks); "
          f"analysing + folding their text {folding * 1000:.1f} ms", flush=True)


class Server:
    """``python -m imapd serve --store postgresql://...`` on a loopback port."""

    def __init__(self, data_dir: Path, url: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), IMAPD_ALLOW_ROOT="1")
        env.pop("IMAPD_DATA", None)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imapd", "serve", "--data", str(data_dir), "--store", url,
             "--imap", "tcp:0:interface=127.0.0.1", "--imaps", "none"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            found = LISTENING.search(raw.decode("utf-8", "replace"))
            if found:
                self.host, self.port = found.group(1), int(found.group(2))
                break
        else:
            raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def commands(count: int) -> Iterator[tuple[str, str]]:
    subject = f"#{count // 2 + 1}"
    yield f"SEARCH TEXT {RARE_WORD}", f"SEARCH TEXT {RARE_WORD}"
    yield f"SEARCH BODY {RARE_WORD}", f"SEARCH BODY {RARE_WORD}"
    yield f"SEARCH SUBJECT {subject}", f'SEARCH SUBJECT "{subject}"'
    yield "SEARCH TEXT <one Message-ID>", f"SEARCH TEXT bench.{count // 2 + 1}@example.org"
    yield f"SEARCH FROM {RARE_SENDER}", f"SEARCH FROM {RARE_SENDER}"
    yield "SEARCH TEXT the (a common word)", "SEARCH TEXT the"
    yield "SORT (DATE) UTF-8 ALL", "SORT (DATE) UTF-8 ALL"
    yield "THREAD REFERENCES UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"


def searches(server: Server, count: int, runs: int) -> None:
    client = Client(server)  # type: ignore[arg-type]
    client.command(f"LOGIN {USER} {PASSWORD}")
    start = time.perf_counter()
    client.command("SELECT INBOX")
    print(f"{'first SELECT INBOX':<44} {(time.perf_counter() - start) * 1000:8.1f} ms", flush=True)
    client.command(f"SEARCH TEXT {RARE_WORD}")  # warm caches
    for label, command in commands(count):
        times: list[float] = []
        matches = -1
        for _ in range(runs):
            start = time.perf_counter()
            _, _, last = client.command(command)
            times.append(time.perf_counter() - start)
            if last.startswith((b"* SEARCH", b"* SORT")):
                matches = len(last.split()) - 2
        print(f"{label:<44} median {statistics.median(times) * 1000:8.1f} ms  "
              f"min {min(times) * 1000:7.1f}  max {max(times) * 1000:7.1f}  "
              f"({matches} matches)", flush=True)
    client.command("LOGOUT")


def appends_per_second(dsn: str, count: int, indexed: bool) -> float:
    """Single-message deliveries, each its own durable commit."""
    mail_service = service(dsn)
    raws = [mail(index) for index in range(count)]
    items = [AppendItem(raw, (), None, analyze(raw).to_bytes()) for raw in raws]
    on_reactor(lambda: mail_service.deliver(USER, "INBOX", items[:1]))  # provisions INBOX
    off = mock.patch.object(fts, "index_bodies", lambda *args: None)
    with (mock.MagicMock() if indexed else off):
        start = time.perf_counter()
        for item in items[1:]:
            on_reactor(lambda: mail_service.deliver(USER, "INBOX", [item]))
        elapsed = time.perf_counter() - start
    on_reactor(mail_service.close)
    return (count - 1) / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--append", type=int, default=1000)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().nodename,
          os.uname().machine, f"cpus {os.cpu_count()}  python {sys.version.split()[0]}")
    print(f"load before: {os.getloadavg()}", flush=True)
    pg = Postgres()
    try:
        print(f"PostgreSQL {pg.version} (private cluster, fsync on, shared_buffers 32MB)",
              flush=True)
        dsn, url = pg.fresh()
        seconds = fill(dsn, args.messages, args.batch)
        print(f"filled {args.messages} messages in {seconds:.1f} s "
              f"({args.batch} per delivery, index built at delivery)", flush=True)
        sql(dsn, "VACUUM ANALYZE")
        sizes = index_size(dsn)
        index = sizes["heap"] + sizes["toast"] + sizes["text_gin"] + sizes["hdr_gin"]
        print(f"index on disk: {index / args.messages:.0f} bytes/message "
              f"({index / 2**20:.1f} MiB of a {sizes['database'] / 2**20:.1f} MiB database; "
              + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items() if k != "database")
              + ")", flush=True)
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            server = Server(Path(tmp) / "data", url)
            try:
                searches(server, args.messages, args.runs)
            finally:
                server.stop()
        if args.explain:
            for needle in (RARE_WORD, f"#{args.messages // 2 + 1}", RARE_SENDER, "the"):
                explain(dsn, needle)
            confirm_cost(dsn, RARE_WORD)
            alternatives(dsn, RARE_WORD)
            facts_cost(dsn)
        print(f"load between: {os.getloadavg()}", flush=True)
        for indexed in (True, False):
            rate = appends_per_second(pg.fresh()[0], args.append, indexed)
            print(f"APPEND, one message per commit, indexing {'on ' if indexed else 'off'}: "
                  f"{rate:7.1f} messages/s", flush=True)
    finally:
        pg.cluster.destroy()
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
