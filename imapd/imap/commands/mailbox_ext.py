"""The mailbox extensions: LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154), and the STATUS items of
STATUS=SIZE (RFC 8438) and APPENDLIMIT (RFC 7889).

``mailbox.handle_list`` hands an extended LIST (selection options, several
patterns or RETURN options) to ``handle_extended_list``; plain LIST and LSUB
stay as RFC 3501 has them. The mail core answers with every name of the user's
hierarchy and the subscription list; selection, RECURSIVEMATCH and the
response attributes are worked out here, so every backend gets them right
the same way.

Response attributes (RFC 5258 §3, §4; RFC 3348; RFC 6154 §2), in this
order: ``\\NonExistent`` for a listed name that does not exist (a
subscription whose mailbox is gone; it implies ``\\Noselect``, which is then
not repeated) or ``\\Noselect`` for a placeholder; ``\\HasChildren`` /
``\\HasNoChildren`` for existing names, as plain LIST always says (RFC 3348),
and for non-existent ones when RETURN (CHILDREN) asks; the special-use
attributes, always (RFC 6154 §2 allows them in any LIST); ``\\Subscribed``
when RETURN (SUBSCRIBED) or the SUBSCRIBED selection asks (RFC 5258 §3:
the selection option implies the return option).
"""

from __future__ import annotations

from dataclasses import dataclass

from imapd.imap.commands import catalogue, condstore
from imapd.imap.commands.context import CommandContext, Completion
from imapd.imap.commands.select import mail_of, user_of
from imapd.core.config import SPECIAL_USES
from imapd.core.errors import ImapError
from imapd.mail import names
from imapd.mail.errors import MailError
from imapd.mail.listpattern import StepBudget
from imapd.mail.records import HAS_CHILDREN, HAS_NO_CHILDREN, NOSELECT, MailboxInfo, MailboxStatus
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import ListResponse, StatusResponse
from imapd.imap.wire.values import IString, PList, Value

NONEXISTENT = "\\NonExistent"
SUBSCRIBED = "\\Subscribed"

# What the store's MailboxStatus answers (RFC 3501 §6.3.10, RFC 7162 §3.1.9
# HIGHESTMODSEQ, RFC 8438 SIZE, RFC 9051 §6.3.11 DELETED: the count of
# messages flagged \Deleted, which a server offering QUOTA=RES-MESSAGE
# answers), and from elsewhere RFC 7889 APPENDLIMIT (the limits) and RFC 9208
# DELETED-STORAGE (QUOTA=RES-STORAGE: what EXPUNGE would free, in the
# STORAGE resource's unit of 1024 octets, rounded up as usage is).
STORE_STATUS_ITEMS = frozenset({
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE",
    "DELETED",
})
STATUS_ITEMS = STORE_STATUS_ITEMS | {"APPENDLIMIT", "DELETED-STORAGE"}
# Distinct patterns in one LIST (RFC 5258 §3 sets no limit; clients send one
# to a few). More is NO [LIMIT] (RFC 5530).
MAX_PATTERNS = 32


# --- STATUS items (shared with STATUS) ------------------------------------------------

def check_status_items(items: tuple[str, ...]) -> None:
    """BAD for an item we cannot answer (the parser knows a few more)."""
    for item in items:
        if item not in STATUS_ITEMS:
            raise ImapError.bad(f"{catalogue.BAD_STATUS_ITEM}: {item}")


def status_values(
    ctx: CommandContext, status: MailboxStatus, items: tuple[str, ...]
) -> tuple[tuple[str, int], ...]:
    """(item, value) in the order asked, each once. ``APPENDLIMIT`` (RFC 7889
    §4) is the largest message APPEND accepts: the literal limit, the same
    for every mailbox (so also advertised as ``APPENDLIMIT=n``)."""
    values: list[tuple[str, int]] = []
    for item in dict.fromkeys(items):
        if item == "APPENDLIMIT":
            values.append((item, ctx.config.limits.max_literal))
        elif item == "DELETED-STORAGE":
            values.append((item, -(-status.deleted_size // 1024)))
        else:
            values.append((item, status.item(item)))
    return tuple(values)


# --- CREATE ... (USE (...)) ----------------------------------------------------------------

def special_use_text(uses: tuple[str, ...] | None) -> str | None:
    """The store's form of CREATE's USE attributes (RFC 6154 §3), or
    ``NO [USEATTR]`` naming the first use this server cannot give: only
    ``\\Archive \\Drafts \\Junk \\Sent \\Trash`` (``\\All`` and
    ``\\Flagged`` describe virtual mailboxes, which we do not have)."""
    if not uses:
        return None
    for use in uses:
        if use not in SPECIAL_USES:
            raise ImapError.no(f"{catalogue.NO_USEATTR}: {use}", catalogue.CODE_USEATTR)
    return " ".join(uses)


# --- extended LIST ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Request:
    """What an extended LIST asks for (RFC 5258 §3, RFC 6154 §2)."""

    subscribed_only: bool       # SUBSCRIBED selection
    special_only: bool          # SPECIAL-USE selection
    recursive: bool             # RECURSIVEMATCH
    show_subscribed: bool       # \Subscribed attributes
    show_children: bool         # RETURN (CHILDREN)
    status_items: tuple[str, ...]

    @classmethod
    def of(cls, cmd: c.List) -> _Request:
        selection = set(cmd.selection or ())
        returns = set(cmd.return_options or ())
        return cls(
            subscribed_only="SUBSCRIBED" in selection,
            special_only="SPECIAL-USE" in selection,
            recursive="RECURSIVEMATCH" in selection,
            show_subscribed="SUBSCRIBED" in selection or "SUBSCRIBED" in returns,
            show_children="CHILDREN" in returns,
            status_items=cmd.status_items if "STATUS" in returns else (),
        )


class _Hierarchy:
    """The user's names and subscriptions, and the selection criteria."""

    def __init__(self, request: _Request, infos: dict[str, MailboxInfo], subscribed: set[str]) -> None:
        self.request = request
        self.infos = infos
        self.subscribed = subscribed

    def candidates(self) -> set[str]:
        """Every name a selection could pick: existing ones, and subscribed
        ones (which may not exist) under the SUBSCRIBED selection."""
        found = set(self.infos)
        if self.request.subscribed_only:
            found |= self.subscribed
        return found

    def meets_criteria(self, name: str) -> bool:
        """RFC 5258 §3: SUBSCRIBED picks subscribed names, existing or not;
        RFC 6154 §2: SPECIAL-USE picks mailboxes with a special use; without
        either, existing names are picked."""
        info = self.infos.get(name)
        if self.request.subscribed_only and name not in self.subscribed:
            return False
        if self.request.special_only and (info is None or not info.special_uses):
            return False
        return info is not None or self.request.subscribed_only

    def has_children(self, name: str) -> bool:
        info = self.infos.get(name)
        if info is not None:
            return info.has_children
        return any(names.is_inferior(other, name) for other in self.infos)

    def attributes(self, name: str) -> tuple[str, ...]:
        """The name attributes, in the order the module docstring gives."""
        info = self.infos.get(name)
        attributes: list[str] = []
        if info is None:
            attributes.append(NONEXISTENT)
            if self.request.show_children:
                attributes.append(HAS_CHILDREN if self.has_children(name) else HAS_NO_CHILDREN)
        else:
            if not info.selectable:
                attributes.append(NOSELECT)
            attributes.append(HAS_CHILDREN if info.has_children else HAS_NO_CHILDREN)
            attributes.extend(info.special_uses)
        if self.request.show_subscribed and name in self.subscribed:
            attributes.append(SUBSCRIBED)
        return tuple(attributes)


def select_names(hierarchy: _Hierarchy, patterns: list[str]) -> tuple[list[str], set[str]]:
    """The names to list, INBOX first then by name, and those that get
    ``CHILDINFO`` (RFC 5258 §3 RECURSIVEMATCH): a name matching a pattern
    whose descendant meets the selection criteria without matching any
    pattern itself (RFC 5258 §5 example 9: ``Foo2`` is listed for its
    subscribed ``Foo2/Bar1`` under ``"*2"``, ``Baz2`` is not listed for its
    children ``Baz2/Bar2``, which ``"*2"`` lists themselves). Such a name is
    listed whether or not it meets the criteria itself."""
    # Each distinct pattern once: the matching cost is one pass over each
    # name per pattern (listpattern), and the patterns are bounded in number.
    budget = StepBudget()
    matchers = [names.compile_pattern(p, budget) for p in dict.fromkeys(patterns) if p != ""]

    def matches(name: str) -> bool:
        return any(match(name) for match in matchers)

    listed: set[str] = set()
    with_childinfo: set[str] = set()
    for name in hierarchy.candidates():
        if not hierarchy.meets_criteria(name):
            continue
        if matches(name):
            listed.add(name)
        elif hierarchy.request.recursive:
            with_childinfo.update(a for a in names.ancestors(name) if matches(a))
    listed |= with_childinfo
    ordered = sorted(listed, key=lambda n: (n != names.INBOX, n))
    return ordered, with_childinfo


async def handle_extended_list(cmd: c.List, ctx: CommandContext) -> Completion:
    """LIST with selection options, several patterns or RETURN options
    (RFC 5258 §3). The reference is prefixed to each pattern; a single empty
    pattern still asks for the delimiter (RFC 3501 §6.3.8). With RETURN
    (STATUS (...)) every selectable listed mailbox's LIST line is followed
    by its STATUS (RFC 5819 §2); ``\\Noselect`` and ``\\NonExistent`` names
    get none, nor does one listed only for its CHILDINFO (RFC 5819 §5's
    second example), and a mailbox deleted meanwhile is skipped. STATUS
    (HIGHESTMODSEQ) enables CONDSTORE here as in STATUS."""
    if len(set(cmd.all_patterns)) > MAX_PATTERNS:
        # Every pattern is matched against every name: bound the product.
        raise ImapError.no(f"Too many mailbox patterns (at most {MAX_PATTERNS})", "LIMIT")
    check_status_items(cmd.status_items)
    if "HIGHESTMODSEQ" in cmd.status_items:
        condstore.enable_condstore(ctx)  # as STATUS (HIGHESTMODSEQ), RFC 7162 §3.1
    if cmd.all_patterns == ("",):
        ctx.send(ListResponse((NOSELECT,), names.DELIMITER, names.list_root(cmd.reference)))
        return Completion(catalogue.OK_LIST)
    mail = mail_of(ctx)
    user = user_of(ctx)
    request = _Request.of(cmd)
    infos = {info.name: info for info in await mail.list_mailboxes(user, "", "*")}
    hierarchy = _Hierarchy(request, infos, set(await mail.subscriptions(user)))
    patterns = [names.combine_reference(cmd.reference, p) for p in cmd.all_patterns]
    ordered, with_childinfo = select_names(hierarchy, patterns)
    childinfo: tuple[Value, ...] = (IString(b"CHILDINFO"), PList((IString(b"SUBSCRIBED"),)))
    for name in ordered:
        extended = childinfo if name in with_childinfo else ()
        ctx.send(ListResponse(hierarchy.attributes(name), names.DELIMITER, name, extended=extended))
        info = infos.get(name)
        wanted = info is not None and info.selectable and hierarchy.meets_criteria(name)
        if request.status_items and wanted:
            await _send_status(ctx, user, name, request.status_items)
    return Completion(catalogue.OK_LIST)


async def _send_status(ctx: CommandContext, user: str, name: str, items: tuple[str, ...]) -> None:
    try:
        status = await mail_of(ctx).status(user, name)
    except MailError:
        return  # deleted between the listing and now: no STATUS (RFC 5819 §2)
    ctx.send(StatusResponse(name, status_values(ctx, status, items)))
