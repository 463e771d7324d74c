"""Deterministic mail corpus for the benchmarks (issue 8).

Every message is a function of ``(seed, index)`` only, so two runs (and two
servers) see byte-identical mail. Kinds, in the proportions a real mailbox
shows:

* ``plain``        text/plain, 1-8 KB of words, 7bit;
* ``alternative``  multipart/alternative (text + HTML);
* ``attachment``   multipart/mixed with a base64 attachment (20-200 KB);
* ``nonascii``     RFC 2047 encoded-word Subject/From (UTF-8, B and Q), an
                   8bit UTF-8 body;
* ``large``        multipart/mixed with a ~1 MB base64 attachment.

Each message carries ``X-Bench-Id: <index>``, so a load client that fetches
``BODY[]`` can check the bytes against ``message(index)`` whatever UID the
server gave it (see ``bench.load.checks``). About 1 % of the messages contain
the rare word ``zebracorn`` (in the body) for ``SEARCH TEXT`` timings.

Usage: ``python -m bench.corpus --count 200 --out DIR`` writes ``NNNNNN.eml``
files; the benchmarks call ``message()``/``corpus()`` directly instead.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import random
import re
from dataclasses import dataclass
from pathlib import Path

SEED = 20240808
RARE_WORD = "zebracorn"
RARE_EVERY = 100  # one message in RARE_EVERY carries RARE_WORD

KINDS: tuple[str, ...] = ("plain", "alternative", "attachment", "nonascii", "large")
# Weights per kind for the mixed corpus (large messages are rare but present).
DEFAULT_WEIGHTS: tuple[int, ...] = (60, 20, 10, 9, 1)

_WORDS = (
    "the quarterly report meeting agenda budget project deadline review draft "
    "please find attached thanks regards update schedule customer invoice "
    "server release notes minutes action items follow up next week friday "
    "holiday team lunch proposal contract signed approval pending question "
    "answer summary details numbers figures chart estimate travel booking"
).split()
_NAMES = (
    ("Alice Example", "alice@example.org"), ("Bob Sample", "bob@example.net"),
    ("Carol Test", "carol@example.com"), ("Dave Demo", "dave@example.org"),
    ("Eve Eavesdrop", "eve@example.net"), ("Frank Fixture", "frank@example.com"),
)
_UNICODE_NAMES = ("Jürgen Müller", "Łukasz Żółć", "Søren Kierkegård", "山田 太郎", "Zoë Brontë")
_UNICODE_SUBJECTS = ("Grüße aus München", "Résumé du projet", "Встреча в пятницу", "会議の議事録", "Ζήτω!")
_BASE_DATE = datetime.datetime(2023, 1, 2, 9, 0, 0, tzinfo=datetime.timezone.utc)
_BENCH_ID = re.compile(rb"^X-Bench-Id: (\d+)\r?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class CorpusMessage:
    index: int
    kind: str
    data: bytes


def _rng(seed: int, index: int, salt: str = "") -> random.Random:
    # A string seed is hashed deterministically (sha512) by random.Random,
    # unlike hash(), which is salted per process.
    return random.Random(f"{seed}:{index}:{salt}")


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def _text_body(rng: random.Random, size: int, rare: bool) -> str:
    """Lines of words (at most 76 characters, CRLF) up to about ``size`` bytes."""
    lines: list[str] = []
    total = 0
    while total < size:
        line = _words(rng, rng.randint(6, 11))[:76]
        lines.append(line)
        total += len(line) + 2
    if rare:
        lines.insert(rng.randrange(len(lines) + 1), f"note the {RARE_WORD} in here")
    return "\r\n".join(lines) + "\r\n"


def _encoded_word(text: str, rng: random.Random) -> str:
    """RFC 2047 encoded-word, B or Q encoding, UTF-8."""
    raw = text.encode("utf-8")
    if rng.random() < 0.5:
        return "=?UTF-8?B?" + base64.b64encode(raw).decode("ascii") + "?="
    quoted = "".join(
        chr(b) if (0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A) else
        ("_" if b == 0x20 else f"={b:02X}")
        for b in raw
    )
    return "=?UTF-8?Q?" + quoted + "?="


def _base64_lines(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + "\r\n"


def _headers(index: int, rng: random.Random, kind: str, subject: str) -> list[str]:
    sender = rng.choice(_NAMES)
    recipient = rng.choice(_NAMES)
    date = _BASE_DATE + datetime.timedelta(minutes=37 * index)
    if kind == "nonascii":
        from_field = f"{_encoded_word(rng.choice(_UNICODE_NAMES), rng)} <{sender[1]}>"
    else:
        from_field = f'"{sender[0]}" <{sender[1]}>'
    headers = [
        f"Return-Path: <{sender[1]}>",
        f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"From: {from_field}",
        f"To: {recipient[0]} <{recipient[1]}>",
        f"Subject: {subject}",
        f"Message-ID: <bench.{index}@example.org>",
        f"X-Bench-Id: {index}",
        "MIME-Version: 1.0",
    ]
    if rng.random() < 0.3:
        other = rng.choice(_NAMES)
        headers.insert(4, f"Cc: {other[0]} <{other[1]}>")
    return headers


def _subject(rng: random.Random, kind: str, index: int) -> str:
    if kind == "nonascii":
        return _encoded_word(f"{rng.choice(_UNICODE_SUBJECTS)} #{index}", rng)
    return f"{_words(rng, rng.randint(2, 6))} #{index}"


def _plain(rng: random.Random, size: int, rare: bool) -> tuple[list[str], str]:
    return ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"], \
        _text_body(rng, size, rare)


def _nonascii(rng: random.Random, size: int, rare: bool) -> tuple[list[str], str]:
    body = rng.choice(_UNICODE_SUBJECTS) + "\r\n" + _text_body(rng, size, rare)
    return ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"], body


def _alternative(rng: random.Random, size: int, rare: bool, index: int) -> tuple[list[str], str]:
    boundary = f"=_alt_{index}_{rng.getrandbits(32):08x}"
    text = _text_body(rng, size // 2, rare)
    html = "<html><body>\r\n" + "".join(f"<p>{line}</p>\r\n" for line in text.splitlines()) + "</body></html>\r\n"
    body = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}"
        f"--{boundary}\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n{html}"
        f"--{boundary}--\r\n"
    )
    return [f'Content-Type: multipart/alternative; boundary="{boundary}"'], body


def _with_attachment(
    rng: random.Random, text_size: int, attachment_size: int, rare: bool, index: int
) -> tuple[list[str], str]:
    boundary = f"=_mix_{index}_{rng.getrandbits(32):08x}"
    payload = rng.randbytes(attachment_size)
    body = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"{_text_body(rng, text_size, rare)}"
        f"--{boundary}\r\nContent-Type: application/pdf; name=\"report-{index}.pdf\"\r\n"
        f"Content-Disposition: attachment; filename=\"report-{index}.pdf\"\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{_base64_lines(payload)}"
        f"--{boundary}--\r\n"
    )
    return [f'Content-Type: multipart/mixed; boundary="{boundary}"'], body


def message(index: int, kind: str | None = None, seed: int = SEED) -> CorpusMessage:
    """Message ``index`` of the corpus: its kind is drawn from the default
    weights unless given. Pure function of ``(seed, index, kind)``."""
    rng = _rng(seed, index)
    if kind is None:
        kind = rng.choices(KINDS, weights=DEFAULT_WEIGHTS)[0]
    elif kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    rare = index % RARE_EVERY == RARE_EVERY // 2
    subject = _subject(rng, kind, index)
    headers = _headers(index, rng, kind, subject)
    if kind == "plain":
        content, body = _plain(rng, rng.randint(1000, 8000), rare)
    elif kind == "nonascii":
        content, body = _nonascii(rng, rng.randint(800, 4000), rare)
    elif kind == "alternative":
        content, body = _alternative(rng, rng.randint(2000, 10000), rare, index)
    elif kind == "attachment":
        content, body = _with_attachment(rng, 1500, rng.randint(20_000, 150_000), rare, index)
    else:
        content, body = _with_attachment(rng, 2000, 750_000, rare, index)
    return CorpusMessage(index, kind, ("\r\n".join(headers + content) + "\r\n\r\n" + body).encode("utf-8"))


def sized_message(index: int, size: int, seed: int = SEED) -> bytes:
    """A text/plain message of exactly ``size`` bytes (for APPEND throughput:
    10 KB, 1 MB). Deterministic; carries ``X-Bench-Id``."""
    rng = _rng(seed, index, f"sized{size}")
    headers = _headers(index, rng, "plain", f"sized {size} #{index}")
    head = ("\r\n".join(headers + ["Content-Type: text/plain; charset=us-ascii"]) + "\r\n\r\n").encode()
    if size < len(head) + 2:
        raise ValueError(f"size {size} is smaller than the headers ({len(head)} bytes)")
    body = _text_body(rng, size - len(head), rare=False).encode()
    body = body[: size - len(head) - 2].rstrip(b"\r") + b"\r\n"
    data = head + body
    return data + b"x" * (size - len(data))  # pad the short final line


def corpus(count: int, seed: int = SEED, start: int = 0) -> list[CorpusMessage]:
    """Messages ``start .. start+count-1`` with kinds by the default weights."""
    return [message(i, seed=seed) for i in range(start, start + count)]


def small_message(index: int, seed: int = SEED) -> bytes:
    """A cheap small message (plain or non-ASCII, 1-4 KB) for filling large
    mailboxes quickly: generating 100k of the default mix would take long."""
    kind = "nonascii" if index % 10 == 3 else "plain"
    rng = _rng(seed, index, "small")
    rare = index % RARE_EVERY == RARE_EVERY // 2
    headers = _headers(index, rng, kind, _subject(rng, kind, index))
    content, body = (_nonascii if kind == "nonascii" else _plain)(rng, rng.randint(600, 3000), rare)
    return ("\r\n".join(headers + content) + "\r\n\r\n" + body).encode("utf-8")


def bench_id(raw: bytes) -> int | None:
    """The ``X-Bench-Id`` of a message in its header, or None."""
    # Tolerates LF line ends: a server that rewrote them is caught by the
    # BODY[] comparison, not here.
    end = raw.find(b"\n\r\n") if b"\n\r\n" in raw else raw.find(b"\n\n")
    match = _BENCH_ID.search(raw, 0, end + 1 if end >= 0 else len(raw))
    return int(match.group(1)) if match else None


def write_corpus(out: Path, count: int, seed: int = SEED) -> list[Path]:
    """Write ``count`` messages as ``NNNNNN.eml`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for item in corpus(count, seed):
        path = out / f"{item.index:06d}.eml"
        path.write_bytes(item.data)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = write_corpus(args.out, args.count, args.seed)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} messages, {total} bytes, into {args.out}")


if __name__ == "__main__":
    main()
