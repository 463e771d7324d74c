"""Checkpoint comparisons of the stress checker: a client's model against
the store's truth (a fresh EXAMINE), and the ``\\Recent`` rules across
sessions. Pure functions of the models, so tests can feed them crafted
pictures.
"""

from __future__ import annotations

from tests.support.stress_model import MailboxModel, keywords

Finding = tuple[str, str]  # (kind, detail)
EXAMPLES = 3


def _examples(items: list[str]) -> str:
    more = f" (+{len(items) - EXAMPLES} more)" if len(items) > EXAMPLES else ""
    return "; ".join(items[:EXAMPLES]) + more


def compare_with_truth(model: MailboxModel, truth: MailboxModel) -> list[Finding]:
    """After the client's NOOP: same EXISTS, the same UID at every seq it
    knows, the same flags for every UID whose flags it knows, and a FLAGS
    list naming every keyword in use (RFC 3501 §7.2.6, §7.3.1, §7.4.2)."""
    found: list[Finding] = []
    if len(model.messages) != len(truth.messages):
        found.append(("exists-differs", f"client EXISTS {len(model.messages)}, store {len(truth.messages)}"))
    wrong_uid = [f"seq {seq}: client UID {mine.uid}, store {real.uid}"
                 for seq, (mine, real) in enumerate(zip(model.messages, truth.messages), 1)
                 if mine.uid is not None and mine.uid != real.uid]
    if wrong_uid:
        found.append(("seq-uid-differs", _examples(wrong_uid)))
    real_by_uid = truth.by_uid()
    gone = sorted(uid for uid in model.by_uid() if uid not in real_by_uid)
    if gone:
        found.append(("uid-not-in-store", _examples([f"UID {uid}" for uid in gone])))
    stale = [f"UID {uid}: client {sorted(mine.flags)}, store {sorted(real_by_uid[uid].flags or ())}"
             for uid, mine in sorted(model.by_uid().items())
             if uid in real_by_uid and mine.flags is not None and mine.flags != real_by_uid[uid].flags]
    if stale:
        found.append(("flags-differ", _examples(stale)))
    in_use: set[str] = set()
    for message in truth.messages:
        in_use |= keywords(message.flags or frozenset())
    missing = sorted(in_use - (model.flags_list or frozenset()))
    if missing:
        found.append(("flags-list-incomplete", f"keywords in use but not in the last FLAGS: {missing}"))
    return found


def recent_checks(models: dict[str, MailboxModel], truth: MailboxModel) -> list[tuple[str, str, str]]:
    """After every client fetched ``1:* FLAGS``: its RECENT equals the
    number of messages it sees with ``\\Recent`` (RFC 3501 §7.3.2); among
    read-write sessions a message is recent in at most one (§2.3.2) and the
    RECENT counts add up to at most the mailbox size; once a read-write
    session was told of every message, a fresh EXAMINE sees none recent."""
    found: list[tuple[str, str, str]] = []
    owner: dict[int, str] = {}
    total = 0
    read_write = {name: model for name, model in models.items() if model.selected and not model.readonly}
    for name, model in models.items():
        flagged = [m.uid for m in model.messages if m.recent]
        if model.recent != len(flagged):
            found.append((name, "recent-count",
                          f"RECENT {model.recent} but {len(flagged)} messages fetched with \\Recent"))
        if name not in read_write:
            continue
        total += model.recent or 0
        for uid in flagged:
            if uid is not None and uid in owner:
                found.append((name, "recent-shared", f"UID {uid} is \\Recent here and in {owner[uid]}"))
            elif uid is not None:
                owner[uid] = name
    if total > len(truth.messages):
        found.append(("all", "recent-sum", f"RECENT over read-write sessions {total} > {len(truth.messages)}"))
    if read_write and truth.recent:
        found.append(("truth", "fresh-examine-recent",
                      f"a fresh EXAMINE sees RECENT {truth.recent} after read-write sessions saw every message"))
    return found
