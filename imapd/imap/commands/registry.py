"""The dispatch table: which handler runs each command type, in which
states it is legal, and whether EXPUNGE may be sent during it.

This file is the single source of truth for that (no name conventions).
To add a command family, write ``imapd/imap/commands/<family>.py`` exporting
``SPECS: tuple[AnySpec, ...]`` and add one line to ``ALL_SPECS`` below.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from imapd.imap.commands import (
    anystate, append, auth, copy, fetch, mailbox, search, select, starttls, store,
)
from imapd.imap.commands import move, uidplus
from imapd.imap.commands import sort
from imapd.imap.commands import compress, idle, quota, searchcontext, session_ext
from imapd.imap.commands import thread
from imapd.imap.commands.context import AnySpec, CommandSpec

__all__ = ["ALL_SPECS", "CommandSpec", "Registry", "default_registry"]

ALL_SPECS: tuple[AnySpec, ...] = (
    *anystate.SPECS,   # CAPABILITY NOOP LOGOUT
    *auth.SPECS,       # LOGIN AUTHENTICATE
    *starttls.SPECS,   # STARTTLS
    *select.SPECS,     # SELECT EXAMINE CHECK CLOSE EXPUNGE
    *mailbox.SPECS,    # CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS
    *append.SPECS,     # APPEND
    *fetch.SPECS,      # FETCH, UID FETCH
    *store.SPECS,      # STORE, UID STORE
    *search.SPECS,     # SEARCH, UID SEARCH
    *sort.SPECS,       # SORT, UID SORT (RFC 5256, RFC 5957)
    *copy.SPECS,       # COPY, UID COPY
    *move.SPECS,       # MOVE, UID MOVE (RFC 6851)
    *uidplus.SPECS,    # UID EXPUNGE (RFC 4315)
    *idle.SPECS,       # IDLE (RFC 2177)
    *session_ext.SPECS,  # ENABLE NAMESPACE ID UNSELECT (RFC 5161, 2342, 2971, 3691)
    *compress.SPECS,   # COMPRESS (RFC 4978)
    *quota.SPECS,      # GETQUOTA GETQUOTAROOT SETQUOTA (RFC 9208)
    *searchcontext.SPECS,  # CANCELUPDATE (RFC 5267)
    *thread.SPECS,     # THREAD, UID THREAD (RFC 5256)
)


class Registry:
    """Command type -> spec. Built once at start-up; refuses duplicates."""

    def __init__(self, specs: Iterable[AnySpec]) -> None:
        table: dict[type, AnySpec] = {}
        for spec in specs:
            if spec.command_type in table:
                raise ValueError(f"{spec.command_type.__name__} registered twice")
            table[spec.command_type] = spec
        self._table: Mapping[type, AnySpec] = table

    def lookup(self, command_type: type) -> AnySpec | None:
        return self._table.get(command_type)

    def command_types(self) -> frozenset[type]:
        return frozenset(self._table)


def default_registry() -> Registry:
    return Registry(ALL_SPECS)
