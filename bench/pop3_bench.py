"""POP3 (issue 16): imapd's POP3 wing against Dovecot's POP3, in one run.

    .venv/bin/python -m bench.pop3_bench                       # full (~3 min)
    .venv/bin/python -m bench.pop3_bench --quick               # small (~30 s)
    .venv/bin/python -m bench.pop3_bench --update-doc docs/benchmarks.md --json /tmp/pop3.json

Both servers come from ``bench.peers`` with ``PeerOptions(pop3=True)``:
``imapd serve --pop3`` (SQLite, synchronous=FULL) and a private Dovecot
(Maildir, ``protocols = imap pop3``). The mail is put in over IMAP
(APPEND); the client is Python's ``poplib``, one connection at a time,
USER/PASS on loopback (argon2id, the cheap cost of ``bench.peers``). The
two servers run side by side and the rounds and sessions alternate between
them, so a change in the shared machine's load hits both alike.

(a) RETR throughput: ``--retr-messages`` messages of about ``--size``
octets (fixed-seed text with dot-leading lines, so byte-stuffing is
exercised); each round is one session that RETRs every message; the time
from the first RETR to the last message's end. MB/s and messages/s of the
median round; the server's CPU time per MB over all rounds (all its
processes: Dovecot's login, pop3 and auth too), which moves less with the
machine's load than the wall-clock figures. Every retrieved message is compared with what was appended
(a benchmark that returns wrong bytes fails). Then DELE of every message
and QUIT: the time to expunge them durably (RFC 1939 §6).

(b) A ``--maildrop``-message maildrop (small messages): connect + USER/PASS
+ STAT, a full LIST, a full UIDL; each the median (and p90) of
``--iterations`` sessions, after one untimed warm-up session.

poplib reads line by line in Python, the same client cost for both servers:
the ratios (imapd/Dovecot) hold better than the absolute figures on the
shared 2-core machine, whose load is recorded before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import imaplib
import json
import os
import poplib
import random
import statistics
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.hallway_report import fmt, fmt_ratio, ratio
from bench.peers import Peer, PeerOptions, running_peer, unavailable, versions
from bench.report import machine

BEGIN_MARK = "<!-- pop3-bench:latest:begin -->"
END_MARK = "<!-- pop3-bench:latest:end -->"
SECTION = "## POP3 (issue 16)"
PEERS = ("imapd", "dovecot")
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Scale:
    retr_messages: int = 200
    size: int = 50_000
    rounds: int = 5
    maildrop: int = 1000
    iterations: int = 21


FULL = Scale()
QUICK = Scale(retr_messages=20, size=20_000, rounds=2, maildrop=100, iterations=3)


def make_message(number: int, size: int, seed: int = 16) -> bytes:
    """A text message of about ``size`` octets, the same for every server;
    one body line in eight starts with a dot (stuffed on the wire)."""
    rng = random.Random(seed * 1_000_003 + number)
    head = (f"From: bench{number % 7}@example.org\r\nTo: bench@example.org\r\n"
            f"Subject: pop3 bench {number}\r\nMessage-ID: <{number}.{seed}@bench.example>\r\n\r\n").encode()
    lines: list[bytes] = []
    total = len(head)
    while total < size:
        word = "".join(rng.choices(string.ascii_letters + "  ", k=72))
        line = ("." + word if rng.random() < 0.125 else word).encode() + b"\r\n"
        lines.append(line)
        total += len(line)
    return head + b"".join(lines)


def fill(peer: Peer, messages: list[bytes]) -> None:
    """APPEND ``messages`` to the peer's INBOX over IMAP."""
    client = imaplib.IMAP4(peer.host, peer.port)
    try:
        client.login(peer.user, peer.password)
        for message in messages:
            typ, data = client.append("INBOX", None, None, message)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
    finally:
        client.logout()


def pop3(peer: Peer) -> poplib.POP3:
    """A logged-in POP3 session (USER/PASS, RFC 1939 §7)."""
    assert peer.pop3_port is not None
    client = poplib.POP3(peer.host, peer.pop3_port, timeout=120)
    client.user(peer.user)
    client.pass_(peer.password)
    return client


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def retr_round(peer: Peer, expected: list[bytes]) -> float:
    """One session RETRs every message; seconds from the first RETR to the
    end of the last one. The bytes are checked after the clock stops."""
    client = pop3(peer)
    got: list[list[bytes]] = []
    start = time.perf_counter()
    for number in range(1, len(expected) + 1):
        got.append(client.retr(number)[1])
    elapsed = time.perf_counter() - start
    client.quit()
    for number, (lines, message) in enumerate(zip(got, expected), 1):
        if b"\r\n".join(lines) + b"\r\n" != message:  # poplib drops CRLFs and undoes the dot-stuffing
            raise RuntimeError(f"{peer.name}: RETR {number} returned other bytes than were appended")
    return elapsed


def retr_throughput(peers: list[Peer], scale: Scale) -> dict[str, dict[str, Any]]:
    """(a) on every peer, the rounds interleaved (imapd, Dovecot, imapd, ...)
    so that a change of the machine's load hits both alike."""
    messages = [make_message(n, scale.size) for n in range(scale.retr_messages)]
    for peer in peers:
        fill(peer, messages)
    octets = sum(len(m) for m in messages)
    rounds: dict[str, list[float]] = {peer.name: [] for peer in peers}
    cpu = {peer.name: 0.0 for peer in peers}  # server CPU seconds over all rounds (every process)
    for _ in range(scale.rounds):
        for peer in peers:
            before = peer.cpu_seconds()
            rounds[peer.name].append(retr_round(peer, messages))
            cpu[peer.name] += peer.cpu_seconds() - before
    out: dict[str, dict[str, Any]] = {}
    for peer in peers:
        seconds = statistics.median(rounds[peer.name])
        client = pop3(peer)
        start = time.perf_counter()
        for number in range(1, len(messages) + 1):
            client.dele(number)
        client.quit()  # UPDATE state: the deletions are expunged before +OK
        out[peer.name] = {"messages": len(messages), "mb": octets / MB, "mb_per_s": octets / MB / seconds,
                          "messages_per_s": len(messages) / seconds,
                          "cpu_ms_per_mb": cpu[peer.name] * 1000 / (octets / MB * scale.rounds),
                          "dele_quit_ms": (time.perf_counter() - start) * 1000}
    return out


def one_session(peer: Peer, count: int) -> dict[str, float]:
    """Seconds for connect+USER/PASS+STAT, a full LIST, a full UIDL (then QUIT, untimed)."""
    holder: list[poplib.POP3] = []

    def login_stat() -> None:
        holder.append(pop3(peer))
        found, _ = holder[0].stat()
        if found != count:
            raise RuntimeError(f"{peer.name}: STAT says {found} messages, not {count}")

    figures = {"login_stat": timed(login_stat)}
    client = holder[0]
    figures["list"] = timed(lambda: _full_listing(client.list(), count))
    figures["uidl"] = timed(lambda: _full_listing(client.uidl(), count))
    client.quit()
    return figures


def session_latencies(peers: list[Peer], scale: Scale) -> dict[str, dict[str, Any]]:
    """(b): login+STAT, LIST, UIDL on a ``scale.maildrop``-message maildrop,
    the sessions interleaved across peers; the first (warm-up: Dovecot's
    index, SQLite's pages) is not counted."""
    for peer in peers:
        fill(peer, [make_message(n, 2_000) for n in range(scale.maildrop)])
    samples: dict[str, dict[str, list[float]]] = {
        peer.name: {"login_stat": [], "list": [], "uidl": []} for peer in peers}
    for iteration in range(scale.iterations + 1):
        for peer in peers:
            figures = one_session(peer, scale.maildrop)
            if iteration:
                for key, value in figures.items():
                    samples[peer.name][key].append(value * 1000)
    out: dict[str, dict[str, Any]] = {}
    for name, by_key in samples.items():
        out[name] = {"maildrop": scale.maildrop, "iterations": scale.iterations}
        for key, values in by_key.items():
            ordered = sorted(values)
            out[name][f"{key}_p50_ms"] = statistics.median(ordered)
            out[name][f"{key}_p90_ms"] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return out


def _full_listing(reply: object, count: int) -> None:
    assert isinstance(reply, tuple)
    if len(reply[1]) != count:
        raise RuntimeError(f"a listing of {len(reply[1])} lines, not {count}")


def measure(names: tuple[str, ...], scale: Scale) -> dict[str, dict[str, Any]]:
    """Both parts against fresh servers ``names``, running side by side; a
    server that cannot run is recorded as skipped, a failure as an error."""
    results: dict[str, dict[str, Any]] = {}
    runnable = []
    for name in names:
        reason = unavailable("dovecot-pop3" if name == "dovecot" else name)
        if reason:
            results[name] = {"skipped": reason}
        else:
            runnable.append(name)
    load_before = _load()
    try:
        with contextlib.ExitStack() as stack:
            peers = [stack.enter_context(running_peer(name, PeerOptions(pop3=True))) for name in runnable]
            throughput, latency = retr_throughput(peers, scale), session_latencies(peers, scale)
            for peer in peers:
                results[peer.name] = {"version": peer.version, "notes": peer.notes, **throughput[peer.name],
                                      **latency[peer.name], "load_before": load_before, "load_after": _load()}
    except (OSError, RuntimeError, poplib.error_proto, imaplib.IMAP4.error) as error:
        for name in runnable:
            results[name] = {"error": f"{type(error).__name__}: {error}", "load_before": load_before}
    return {name: results[name] for name in names}


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# --- the report -----------------------------------------------------------------------

THROUGHPUT = (("mb_per_s", "RETR MB/s"), ("messages_per_s", "RETR messages/s"),
              ("cpu_ms_per_mb", "server CPU ms per MB"), ("dele_quit_ms", "DELE all + QUIT ms"))
LATENCY = (("login_stat_p50_ms", "connect+USER/PASS+STAT p50 ms"), ("list_p50_ms", "LIST p50 ms"),
           ("uidl_p50_ms", "UIDL p50 ms"), ("login_stat_p90_ms", "login+STAT p90"), ("list_p90_ms", "LIST p90"),
           ("uidl_p90_ms", "UIDL p90"))


def _table(columns: tuple[tuple[str, str], ...], results: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| | " + " | ".join(label for _, label in columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name, figures in results.items():
        if "skipped" in figures or "error" in figures:
            lines.append(f"| {name} | " + " | ".join("–" for _ in columns) + " |")
            continue
        lines.append(f"| {name} | " + " | ".join(fmt(figures.get(key)) for key, _ in columns) + " |")
    mine, theirs = results.get("imapd"), results.get("dovecot")
    lines.append("| imapd/Dovecot | " + " | ".join(fmt_ratio(ratio(mine, theirs, key)) for key, _ in columns) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    header, servers, scale = results["header"], results["servers"], results["scale"]
    out = [f"Run {header['date']} on {header['machine'].get('cores', '?')} cores "
           f"({header['machine'].get('cpu', '?')}, {header['machine'].get('memory', '?')}); "
           f"load {header['load_before']} before, {header['load_after']} after; "
           f"imapd {header['versions'].get('imapd', '?')}, Dovecot {header['versions'].get('dovecot', '–')}.",
           "",
           f"(a) RETR of {scale['retr_messages']} messages of ~{scale['size'] // 1000} KB in one poplib session "
           f"(median of {scale['rounds']} rounds; bytes checked), then DELE of all and QUIT "
           "(the expunge is durable before +OK):", ""]
    out += _table(THROUGHPUT, servers)
    out += ["", f"(b) A {scale['maildrop']}-message maildrop (2 KB messages), median and p90 of "
            f"{scale['iterations']} sessions after a warm-up (ratio > 1: imapd slower):", ""]
    out += _table(LATENCY, servers)
    for name, figures in servers.items():
        if "skipped" in figures:
            out.append(f"\n{name} skipped: {figures['skipped']}")
        elif "error" in figures:
            out.append(f"\n{name} failed: {figures['error']}")
        else:
            out.append(f"\n{name}: {'; '.join(figures.get('notes', []))}.")
    return "\n".join(out) + "\n"


def update_doc(text: str, block: str) -> str:
    """``text`` with the POP3 block replaced (the section and markers are appended if absent)."""
    if BEGIN_MARK not in text or END_MARK not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{BEGIN_MARK}\n{END_MARK}\n"
    head, _, rest = text.partition(BEGIN_MARK)
    _, _, tail = rest.partition(END_MARK)
    return f"{head}{BEGIN_MARK}\n{block.rstrip()}\n{END_MARK}{tail}"


def run(peers: tuple[str, ...], scale: Scale) -> dict[str, Any]:
    header: dict[str, Any] = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                              "machine": machine(), "versions": versions(), "load_before": _load()}
    servers = measure(peers, scale)
    header["load_after"] = _load()
    return {"header": header, "scale": {k: getattr(scale, k) for k in Scale.__slots__}, "servers": servers}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pop3_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (~30 s)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated, of imapd,dovecot")
    for field in Scale.__slots__:
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--update-doc", type=Path, help="write the result into this Markdown file")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    scale = Scale(**{f: getattr(args, f) if getattr(args, f) is not None else getattr(base, f)
                     for f in Scale.__slots__})
    results = run(tuple(p for p in args.peers.split(",") if p), scale)
    block = markdown(results)
    print(block)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.update_doc:
        args.update_doc.write_text(update_doc(args.update_doc.read_text(), block))
    return results


if __name__ == "__main__":
    main()
