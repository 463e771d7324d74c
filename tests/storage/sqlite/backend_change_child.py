"""Another process changing the store, for test_backend_poller.py.

Usage: python -m tests.storage.sqlite.backend_change_child DATA_DIR OP
OP: ``append`` (a message into INBOX), ``rename`` (Work -> Play),
``remove`` (Play). Prints ``DONE`` after the change committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from imapd.mail.backend import RemoveMailbox, RenameMailbox
from imapd.mail.records import AppendItem
from tests.storage.sqlite.backend_helpers import USER, inline, run


def main(data_dir: Path, op: str) -> None:
    backend = inline(data_dir)
    if op == "append":
        entry = run(backend.lookup(USER, "INBOX"))
        assert entry is not None
        run(backend.append(entry.ref, [AppendItem(b"Subject: from afar\r\n\r\n")]))
    elif op == "rename":
        run(backend.edit_tree(USER, lambda rows: [RenameMailbox("Work", "Play")]))
    else:
        run(backend.edit_tree(USER, lambda rows: [RemoveMailbox("Play")]))
    run(backend.close())
    print("DONE", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
