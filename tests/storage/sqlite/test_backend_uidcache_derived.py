"""The uncached UID list behind ``SqliteBackend.snapshot``
(``uidcache.derived_uids`` / ``read_all_uids``) in the cases
test_backend_uidcache.py does not pin: derived from UIDNEXT and the expunge
history when the totals vouch for it (a fresh or empty mailbox, gaps left by
EXPUNGE), read row by row when the history outweighs the messages, and
always exactly what the database holds (RFC 3501 §2.3.1.1: UIDs ascend and
are never reused)."""

from __future__ import annotations

from pathlib import Path

from imapd.mail.backend import AddMailbox
from tests.storage.sqlite.backend_helpers import USER, inline, run
from tests.storage.sqlite.test_backend_uidcache import append, ref, snapshot_uids, truth, uncached


def test_a_fresh_mailbox_is_derived(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        append(backend, "INBOX", 50)
        uids, derived = uncached(backend, "INBOX")
        assert derived is not None and list(derived) == uids == list(range(1, 51))
        run(backend.edit_tree(USER, lambda rows: [AddMailbox("Empty")]))
        uids, derived = uncached(backend, "Empty")
        assert derived is not None and uids == [] and list(derived) == []
    finally:
        run(backend.close())


def test_expunges_leave_gaps_that_the_derivation_reproduces(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        append(backend, "INBOX", 10)
        append(backend, "INBOX", 3, deleted=True)
        append(backend, "INBOX", 10)
        append(backend, "INBOX", 1, deleted=True)
        run(backend.expunge(ref(backend, "INBOX")))
        uids, derived = uncached(backend, "INBOX")
        expected = list(range(1, 11)) + list(range(14, 24))
        assert derived is not None and list(derived) == uids == expected
        assert snapshot_uids(backend, "INBOX") == expected == truth(backend, "INBOX")
    finally:
        run(backend.close())


def test_mostly_expunged_mailboxes_are_read(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        append(backend, "INBOX", 30, deleted=True)
        append(backend, "INBOX", 5)
        run(backend.expunge(ref(backend, "INBOX")))
        uids, derived = uncached(backend, "INBOX")
        assert derived is None  # 30 expunged UIDs for 5 messages: not worth deriving
        assert uids == list(range(31, 36)) == snapshot_uids(backend, "INBOX")
    finally:
        run(backend.close())
