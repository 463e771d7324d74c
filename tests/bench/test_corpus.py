"""The benchmark corpus is a pure function of (seed, index)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import subprocess
import sys
from pathlib import Path

from bench import corpus

REPO = Path(__file__).resolve().parents[2]


def _digest(count: int) -> str:
    h = hashlib.sha256()
    for item in corpus.corpus(count):
        h.update(item.data)
    return h.hexdigest()


def test_same_bytes_in_another_process_with_another_hash_seed() -> None:
    code = "from tests.bench.test_corpus import _digest; print(_digest(60))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}, timeout=60, check=True)
    assert out.stdout.strip() == _digest(60)


def test_seed_changes_the_corpus() -> None:
    assert corpus.message(3, seed=1).data != corpus.message(3, seed=2).data
    assert corpus.message(3).data == corpus.message(3).data


def test_every_kind_parses_and_carries_its_id() -> None:
    for index, kind in enumerate(corpus.KINDS):
        data = corpus.message(index, kind).data
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert corpus.bench_id(data) == index
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        if kind in ("alternative", "attachment", "large"):
            assert parsed.is_multipart()
        if kind == "nonascii":
            assert "=?UTF-8?" in str(parsed.get("Subject", "")) or b"=?UTF-8?" in data
    assert len(corpus.message(9, "large").data) > 1_000_000


def test_default_mix_has_every_kind_and_rare_words() -> None:
    items = corpus.corpus(300)
    assert {item.kind for item in items} == set(corpus.KINDS)
    rare = [item.index for item in items if corpus.RARE_WORD.encode() in item.data]
    assert rare == [i for i in range(300) if i % corpus.RARE_EVERY == corpus.RARE_EVERY // 2]


def test_sized_and_small_messages() -> None:
    for size in (10 * 1024, 1024 * 1024):
        data = corpus.sized_message(4, size)
        assert len(data) == size and corpus.bench_id(data) == 4
        assert data == corpus.sized_message(4, size)
    assert corpus.small_message(77) == corpus.small_message(77)
    assert corpus.bench_id(corpus.small_message(77)) == 77


def test_write_corpus(tmp_path: Path) -> None:
    paths = corpus.write_corpus(tmp_path, 5)
    assert [p.name for p in paths] == [f"{i:06d}.eml" for i in range(5)]
    assert paths[2].read_bytes() == corpus.message(2).data
