"""Mail store benchmark (issue 3): figures recorded in docs/storage.md.

    .venv/bin/python bench/store_bench.py [--messages 100000] [--dir PATH]

Measures, on a real disk (not tmpfs) with durability on:

* SELECT of a large mailbox (building a SelectedView), median of 5;
* reading (uid, flags) of every message, as ``UID FETCH 1:* (UID FLAGS)``
  needs it (resolve + fetch_records + FETCH response values);
* STORE of one flag while another session has the mailbox selected;
* APPEND of 1,000 messages of 10 KB, each its own durable transaction: one
  writer, then 10 writer processes at once on the same mailbox;
* bodies in the database versus immutable files beside it (a prototype of
  the file layout written the way it would have to be for durability:
  write, fsync, rename, fsync the directory, then commit the row).

Everything goes through ``MailService(open_backend(dir))`` in inline mode
(each call commits synchronously on the caller's thread, as the old store
did; the server runs the threaded mode, whose writer thread and group
commit this does not measure: see docs/benchmarks.md § Hallway). Messages carry their MIME analysis
precomputed, so the APPEND figures are the store's, not the analyser's.
The large mailbox is built through ``deliver`` (5,000 messages per call,
one transaction) with 1 KB messages: SELECT and flag reads touch only the
``messages`` table, so body size does not change them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imapd.mail.flags import FlagOp  # noqa: E402
from imapd.mail.records import AppendItem  # noqa: E402
from imapd.core.model import SeqRange, SequenceSet  # noqa: E402
from imapd.imap.session.view import SelectedView  # noqa: E402
from imapd.imap.wire.responses import FetchResponse  # noqa: E402
from imapd.mail.service import MailService, analysis_blob  # noqa: E402
from imapd.storage.sqlite import open_backend  # noqa: E402

T = TypeVar("T")
USER = "bench"
BIG = "Big"
TEN_KB = (b"Subject: benchmark\r\n\r\n" + b"0123456789abcdef" * 640)[:10240]
TEN_KB_META = analysis_blob(TEN_KB)


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise RuntimeError("inline backend coroutine awaited something")


def open_mail(data_dir: Path) -> MailService:
    """The mail service on an inline (synchronous) SQLite backend."""
    return MailService(open_backend(data_dir))


def append_ten_kb(mail: MailService, name: str) -> object:
    return run(mail.deliver(USER, name, [AppendItem(TEN_KB, (), None, TEN_KB_META)]))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(label: str, value: str) -> None:
    print(f"{label:<58} {value}", flush=True)


def build_big_mailbox(data_dir: Path, count: int) -> None:
    mail = open_mail(data_dir)
    run(mail.create_mailbox(USER, BIG))
    small = b"Subject: filler\r\n\r\n" + b"x" * 1000
    meta = analysis_blob(small)
    batch = 5000
    elapsed = 0.0
    for start in range(0, count, batch):
        items = [AppendItem(small, ("\\Seen",) if i % 3 else (), None, meta)
                 for i in range(min(batch, count - start))]
        elapsed += timed(lambda: run(mail.deliver(USER, BIG, items)))
    report(f"build {count} messages via deliver (bulk path)", f"{elapsed:.1f} s")
    run(mail.close())


def bench_select_and_read(data_dir: Path) -> None:
    mail = open_mail(data_dir)
    run(SelectedView.open(mail, USER, BIG, readonly=False)).close()  # claims \Recent once
    times = []
    for _ in range(5):
        start = time.perf_counter()
        view = run(SelectedView.open(mail, USER, BIG, readonly=False))
        times.append(time.perf_counter() - start)
        view.close()
    report(f"SELECT {BIG} ({len(view.uids)} messages), median of 5", f"{statistics.median(times) * 1000:.1f} ms")

    view = run(SelectedView.open(mail, USER, BIG, readonly=False))
    other = run(SelectedView.open(mail, USER, BIG, readonly=False))

    def fetch_all_flags() -> None:
        pairs = view.resolve(SequenceSet((SeqRange(1, None),)), uid=True)
        states = run(view.watch.fetch_flags([uid for _, uid in pairs]))
        by_uid = {s.uid: s for s in states}
        responses = [
            FetchResponse(seq, (("UID", uid), ("FLAGS", view.flags_value(uid, by_uid[uid].flags))))
            for seq, uid in pairs
        ]
        assert len(responses) == len(pairs)

    times = [timed(fetch_all_flags) for _ in range(3)]
    report("UID FETCH 1:* (UID FLAGS): store read + response values", f"{min(times) * 1000:.0f} ms")

    target = view.uids[len(view.uids) // 2]
    times = []
    for i in range(50):
        op = FlagOp.ADD if i % 2 == 0 else FlagOp.REMOVE
        times.append(timed(lambda: run(view.watch.store_flags([target], op, ["\\Flagged"]))))
        run(other.catch_up())  # the other session learns of it (the doorbell rang)
        other.drain(allow_expunge=False)
    report("STORE one flag (another session selected), median of 50", f"{statistics.median(times) * 1000:.2f} ms")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report("process max RSS after two 100k views", f"{rss_mb:.0f} MB")
    view.close()
    other.close()
    run(mail.close())


def bench_append_one_writer(data_dir: Path, count: int = 1000) -> None:
    mail = open_mail(data_dir)
    watcher = run(SelectedView.open(mail, USER, BIG, readonly=False))
    elapsed = timed(lambda: [append_ten_kb(mail, BIG) for _ in range(count)])
    watcher.close()
    report(f"APPEND {count} x 10 KB durable, 1 writer", f"{count / elapsed:.0f} msg/s")
    run(mail.close())


def _writer_process(data_dir: str, count: int, ready: Any, go: Any, out: Any) -> None:
    mail = open_mail(Path(data_dir))
    ready.release()
    go.wait()
    start = time.perf_counter()
    for _ in range(count):
        append_ten_kb(mail, BIG)
    out.put((start, time.perf_counter()))
    run(mail.close())


def bench_append_concurrent(data_dir: Path, writers: int = 10, each: int = 100) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer_process, args=(str(data_dir), each, ready, go, out))
             for _ in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    go.set()
    spans = [out.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    total = writers * each
    report(f"APPEND {total} x 10 KB durable, {writers} writer processes", f"{total / elapsed:.0f} msg/s")


def bench_body_layouts(root: Path, count: int = 1000) -> None:
    """Bodies in SQLite (what the store does) against files beside it."""
    db_dir = root / "layout-db"
    mail = open_mail(db_dir)
    db_write = timed(lambda: [append_ten_kb(mail, "INBOX") for _ in range(count)])
    watch = run(mail.open(USER, "INBOX", readonly=True))
    uids = list(watch.snapshot.uids)
    db_read = timed(lambda: [run(watch.read_message(uid)) for uid in uids])
    db_range = timed(lambda: [run(watch.read_message(uid, 5000, 100)) for uid in uids])
    watch.close()
    run(mail.close())

    files_dir = root / "layout-files"
    bodies = files_dir / "bodies"
    bodies.mkdir(parents=True)
    conn = sqlite3.connect(files_dir / "meta.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE messages(uid INTEGER PRIMARY KEY, size INTEGER)")
    dir_fd = os.open(bodies, os.O_RDONLY)

    def write_files() -> None:
        for uid in range(1, count + 1):
            path = bodies / str(uid)
            fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, TEN_KB)
            os.fsync(fd)
            os.close(fd)
            os.rename(f"{path}.tmp", path)
            os.fsync(dir_fd)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO messages VALUES(?, ?)", (uid, len(TEN_KB)))
            conn.execute("COMMIT")

    def read_files(offset: int = 0, length: int = -1) -> None:
        for uid in range(1, count + 1):
            with open(bodies / str(uid), "rb") as handle:
                handle.seek(offset)
                handle.read(length)

    files_write = timed(write_files)
    files_read = timed(read_files)
    files_range = timed(lambda: read_files(5000, 100))
    os.close(dir_fd)
    conn.close()
    report("bodies in DB:    durable 10 KB appends", f"{count / db_write:.0f} msg/s")
    report("bodies in files: durable 10 KB appends", f"{count / files_write:.0f} msg/s")
    report("bodies in DB:    read whole 10 KB body", f"{db_read / count * 1e6:.0f} us/msg")
    report("bodies in files: read whole 10 KB body", f"{files_read / count * 1e6:.0f} us/msg")
    report("bodies in DB:    read 100-byte range", f"{db_range / count * 1e6:.0f} us/msg")
    report("bodies in files: read 100-byte range", f"{files_range / count * 1e6:.0f} us/msg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: a temp dir)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="imapd-bench-", dir=args.dir))
    try:
        data_dir = root / "data"
        print(f"data directory: {data_dir} (SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs)")
        build_big_mailbox(data_dir, args.messages)
        bench_select_and_read(data_dir)
        bench_append_one_writer(data_dir)
        bench_append_concurrent(data_dir)
        bench_body_layouts(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
