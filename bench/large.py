"""Scenario 3: one large mailbox (100k messages by default).

imapd is filled through its store's bulk path (``append_many`` with the
message model's analysis, exactly what APPEND stores); the other servers
through IMAP: MULTIAPPEND (RFC 3502) batches when advertised, else
pipelined APPENDs. Filling stops at the time budget; a server measured
with fewer messages says so in its notes.

Timed (median of 3, each on a fresh connection): SELECT, ``UID FETCH 1:*
(FLAGS)`` (every message answered, each response well-formed) and
``SEARCH TEXT zebracorn`` (exact count); then, if the server advertises
QRESYNC (RFC 7162 §3.2.5), a resync after another session changed the
flags of 100 messages (every N/100th) and expunged 10 of them.

Bulk replies are read raw and checked with whole-buffer regular
expressions, so the Python client's parsing does not dominate the timing.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time

from pathlib import Path

from bench import corpus, profiling
from bench.load import Target, append_pipelined, login
from bench.load.checks import CheckFailed, require_ok
from bench.load.client import ImapClient
from bench.load.workload import quote
from bench.peers import Peer, PeerOptions, running_peer
from bench.report import Column, PeerFigures, ScenarioReport, progress

MAILBOX = "large"
BATCH = 500
REPEATS = 3
MEASURE_BUDGET = 120.0  # seconds of timed rounds per server
_FETCH_LINE = re.compile(rb"^\* \d+ FETCH \(", re.MULTILINE)
_FETCH_FLAGS_LINE = re.compile(
    rb"^\* \d+ FETCH \((?:UID \d+ FLAGS \([^()\r\n]*\)|FLAGS \([^()\r\n]*\) UID \d+)"
    rb"(?: MODSEQ \(\d+\))?\)\r$", re.MULTILINE)
_SEARCH_LINE = re.compile(rb"^\* SEARCH((?: \d+)*)\r$", re.MULTILINE)

COLUMNS = [
    Column("messages", "messages", compared=False), Column("select_s", "SELECT s", False),
    Column("fetch_flags_s", "FETCH FLAGS s", False), Column("search_text_s", "SEARCH TEXT s", False),
    Column("qresync_s", "QRESYNC s", False),
]


def expected_rare(count: int) -> int:
    return sum(1 for i in range(count) if i % corpus.RARE_EVERY == corpus.RARE_EVERY // 2)


async def populate_imapd(peer: Peer, count: int) -> int:
    """Bulk-insert through imapd's own mail service on an inline SQLite
    backend (the server sees the new messages through its cross-process
    poller)."""
    from imapd.mail.records import AppendItem
    from imapd.mail.service import MailService
    from imapd.message import analyze
    from imapd.storage.sqlite import open_backend

    mail = MailService(open_backend(peer.workdir / "imapd-data"))
    try:
        await mail.create_mailbox(peer.user, MAILBOX)
        for start in range(0, count, BATCH):
            raws = [corpus.small_message(i) for i in range(start, min(count, start + BATCH))]
            items = [AppendItem(raw, meta=analyze(raw).to_bytes()) for raw in raws]
            await mail.deliver(peer.user, MAILBOX, items)
    finally:
        await mail.close()
    return count


async def _multiappend(client: ImapClient, messages: list[bytes]) -> None:
    tag = client.new_tag()
    parts = [tag, b" APPEND ", quote(MAILBOX)]
    for data in messages:
        parts += [b" {%d+}\r\n" % len(data), data]
    parts.append(b"\r\n")
    await client.send_raw(b"".join(parts))
    while True:
        response = await client.read_response()
        if response.kind == "tagged":
            if response.tag != tag or response.name != b"OK":
                raise CheckFailed(f"MULTIAPPEND: {response.raw[:100]!r}")
            return


async def populate_via_imap(target: Target, count: int, budget: float) -> int:
    """APPEND corpus.small_message(0..count-1) until done or out of time;
    returns how many are in the mailbox."""
    client = await login(target)
    require_ok(await client.command(b"CREATE " + quote(MAILBOX)), "CREATE")
    multi = b"MULTIAPPEND" in client.capabilities and b"LITERAL+" in client.capabilities
    deadline = time.monotonic() + budget
    done = 0
    while done < count and time.monotonic() < deadline:
        batch = [corpus.small_message(i) for i in range(done, min(count, done + BATCH))]
        if multi:
            await _multiappend(client, batch)
        else:
            await append_pipelined(client, MAILBOX, batch)
        done += len(batch)
    await client.command(b"LOGOUT")
    await client.close()
    return done


async def bulk_command(client: ImapClient, text: bytes, timeout: float = 600.0) -> tuple[float, bytes]:
    """Send a command whose reply has no literals; return (seconds until
    the tagged reply, every byte received). Raises unless tagged OK."""
    tag = client.new_tag()
    marker = b"\r\n" + tag + b" "
    chunks: list[bytes] = []
    tail = b"\r\n"
    start = time.perf_counter()
    await client.send_raw(tag + b" " + text + b"\r\n")
    async with asyncio.timeout(timeout):
        while True:
            chunk = await client.reader.read(1 << 20)
            if not chunk:
                raise CheckFailed("connection closed during a bulk reply")
            chunks.append(chunk)
            window = tail + chunk
            at = window.rfind(marker)
            if at >= 0 and window.endswith(b"\r\n"):
                break
            tail = window[-(len(marker) + 200):]
    elapsed = time.perf_counter() - start
    data = b"".join(chunks)
    cut = data.rfind(b"\r\n", 0, len(data) - 2)
    status_line = data[cut + 2:] if cut >= 0 else data  # the tagged reply is the last line
    if not status_line.startswith(tag + b" OK"):
        raise CheckFailed(f"{text[:40]!r}: {status_line[:100]!r}")
    return elapsed, data


async def _timed_round(target: Target, messages: int) -> tuple[float, float, float]:
    client = await login(target)
    reply = require_ok(await client.command(b"SELECT " + quote(MAILBOX), timeout=600), "SELECT")
    exists = [r.number for r in reply.of(b"EXISTS")]
    if exists != [messages]:
        raise CheckFailed(f"SELECT {MAILBOX}: EXISTS {exists}, want {messages}")
    fetch_s, data = await bulk_command(client, b"UID FETCH 1:* (FLAGS)")
    answered, good = len(_FETCH_LINE.findall(data)), len(_FETCH_FLAGS_LINE.findall(data))
    if answered != messages or good != messages:
        raise CheckFailed(f"UID FETCH 1:* (FLAGS): {answered} responses, {good} well-formed, want {messages}")
    search_s, data = await bulk_command(client, b"SEARCH TEXT " + quote(corpus.RARE_WORD))
    found = _SEARCH_LINE.findall(data)
    if len(found) != 1 or len(found[0].split()) != expected_rare(messages):
        got = len(found[0].split()) if found else None
        raise CheckFailed(f"SEARCH TEXT: {got} results, want {expected_rare(messages)}")
    await client.command(b"LOGOUT")
    await client.close()
    return reply.elapsed, fetch_s, search_s


async def _qresync(target: Target, messages: int) -> float:
    """RFC 7162 §3.2.5: resync after another session changed the flags of
    100 messages and expunged 10 of them. Returns the SELECT (QRESYNC) time."""
    first = await login(target)
    require_ok(await first.command(b"ENABLE QRESYNC"), "ENABLE QRESYNC")
    reply = require_ok(await first.command(b"SELECT " + quote(MAILBOX), timeout=600), "SELECT")
    codes = [r.code.split() for r in reply.untagged if r.code]
    uidvalidity = next(int(c[1]) for c in codes if c[0].upper() == b"UIDVALIDITY")
    modseq = next(int(c[1]) for c in codes if c[0].upper() == b"HIGHESTMODSEQ")
    await first.command(b"LOGOUT")
    await first.close()
    step = max(1, messages // 100)
    changed = list(range(1, messages + 1, step))
    doomed = changed[::10]
    other = await login(target)
    require_ok(await other.command(b"SELECT " + quote(MAILBOX), timeout=600), "SELECT")
    uid_set = b",".join(b"%d" % u for u in changed)
    require_ok(await other.command(b"UID STORE " + uid_set + b" +FLAGS.SILENT (\\Flagged)"), "STORE")
    doomed_set = b",".join(b"%d" % u for u in doomed)
    require_ok(await other.command(b"UID STORE " + doomed_set + b" +FLAGS.SILENT (\\Deleted)"), "STORE")
    require_ok(await other.command(b"EXPUNGE", timeout=600), "EXPUNGE")
    await other.command(b"LOGOUT")
    await other.close()
    again = await login(target)
    require_ok(await again.command(b"ENABLE QRESYNC"), "ENABLE QRESYNC")
    seconds, data = await bulk_command(
        again, b"SELECT %s (QRESYNC (%d %d))" % (quote(MAILBOX), uidvalidity, modseq))
    fetched = len(_FETCH_LINE.findall(data))
    if b"* VANISHED (EARLIER)" not in data or fetched < len(changed) - len(doomed):
        raise CheckFailed(f"QRESYNC: {fetched} FETCH responses (want {len(changed) - len(doomed)}), "
                          f"VANISHED {'present' if b'VANISHED' in data else 'missing'}")
    await again.command(b"LOGOUT")
    await again.close()
    return seconds


async def _profiled_round(peer: Peer, target: Target, messages: int, seconds: float, out: Path) -> str:
    """One more timed round with py-spy sampling imapd."""
    spy = profiling.start(peer.process.pid, seconds, out)
    await asyncio.sleep(0.5)
    await _timed_round(target, messages)
    return "large mailbox (SELECT, FETCH FLAGS, SEARCH TEXT) " + profiling.finish(spy)


async def scenario_large(peers: list[str], count: int, budget: float, profile_dir: Path | None = None) -> list[ScenarioReport]:
    report = ScenarioReport(f"3. large mailbox, {count:,} messages (median of {REPEATS})", COLUMNS)
    for name in peers:
        # Reads only (QRESYNC's few changes aside): no fsync while filling.
        with running_peer(name, PeerOptions(durable=False)) as peer:
            target = Target(peer.host, peer.port, peer.user, peer.password)
            began = time.monotonic()
            if name == "imapd":
                filled = await populate_imapd(peer, count)
                await asyncio.sleep(1.0)  # one store poll: the server sees the new mailbox
            else:
                filled = await populate_via_imap(target, count, budget)
            row = PeerFigures(name, {"messages": float(filled)}, 0, [n for n in peer.notes if "fsync" in n])
            row.notes.append(f"filled in {time.monotonic() - began:.0f} s"
                             + (" (store bulk path)" if name == "imapd" else " (IMAP APPEND)"))
            if filled < count:
                row.notes.append(f"measured at {filled:,} messages: filling {count:,} exceeds the "
                                 f"{budget:.0f} s budget; not comparable with a full-size row")
            try:
                rounds: list[tuple[float, float, float]] = []
                measuring = time.monotonic()
                while len(rounds) < REPEATS and (not rounds or time.monotonic() - measuring < MEASURE_BUDGET):
                    rounds.append(await _timed_round(target, filled))
                if len(rounds) < REPEATS:
                    row.notes.append(f"{len(rounds)} timed round(s) only (slow: {MEASURE_BUDGET:.0f} s budget)")
                if profile_dir is not None and name == "imapd":
                    seconds = sum(rounds[0]) + 2.0
                    report.details.append(await _profiled_round(
                        peer, target, filled, seconds, profile_dir / "imapd-large.txt"))
                for key, values in zip(("select_s", "fetch_flags_s", "search_text_s"), zip(*rounds)):
                    row.values[key] = statistics.median(values)
                probe = await login(target)
                has_qresync = b"QRESYNC" in probe.capabilities
                await probe.command(b"LOGOUT")
                await probe.close()
                if has_qresync:
                    row.values["qresync_s"] = await _qresync(target, filled)
                else:
                    row.notes.append(f"QRESYNC skipped: {name} does not advertise QRESYNC")
            except (CheckFailed, OSError, TimeoutError) as exc:
                row.errors += 1
                row.notes.append(f"error: {type(exc).__name__}: {exc}")
            report.rows.append(row)
            progress(row)
    return [report]
