"""THREAD algorithms of RFC 5256 §3 (ORDEREDSUBJECT, REFERENCES), pure.

The input is one :class:`ThreadMessage` per message the search matched,
already reduced to what threading needs (parsed Message-IDs, the base
subject folded for comparison, the sent date); the output is a list of
:class:`ThreadNode` trees, one per thread, in the RFC's order, and
:func:`format_threads` turns them into the ``thread-list`` syntax of
RFC 5256 §4 (``(1 2 (3)(4 5))``).

Nothing here recurses on the depth of a thread: a 100,000-deep reference
chain (each message answering the previous one) is an ordinary input, so
every traversal keeps its own stack. The one step whose cost depends on the
shape of the tree, the loop check of REFERENCES step 1, walks up from the
parent and down from the child at the same time and stops as soon as either
walk ends, so a chain read in either order costs O(1) per link; an input
built to make both walks long is cut off after ``LOOP_CHECK_BUDGET`` steps,
and the link is then refused as if it made a loop (a thread may come out
split, the cost stays bounded).

Message-IDs (RFC 5256 §3 REFERENCES step 1) are parsed with
:func:`parse_msg_ids`: a ``msg-id`` is ``"<" id-left "@" id-right ">"``
(RFC 5322 §3.6.4); comments and white space inside the brackets are
dropped, and the ids compare as the remaining octets, exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

#: Steps one loop check may take before the link is refused (see module doc).
LOOP_CHECK_BUDGET = 100_000
#: A msg-id longer than a header line may be (RFC 5322 §2.1.1: 998 octets;
#: an id cannot be folded) is not a valid id.
MAX_ID_LENGTH = 998
#: Octets of References ids kept per message, the last (nearest) ones: what
#: a mailbox of messages with huge References holds in memory stays bounded
#: (RFC 5322 §3.6.4 already has writers trim long References).
MAX_REFERENCE_OCTETS = 4096

_NONE = -1


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """One message as threading sees it.

    ``number`` is what the response shows (sequence number or UID);
    ``order`` is the sequence number, which breaks ties between equal sent
    dates and decides which of two messages with one Message-ID keeps it
    (RFC 5256 §3: the lowest sequence number). ``sent`` is the sent date in
    seconds since the epoch, UTC (RFC 5256 §3 ORDEREDSUBJECT: the Date
    header, else the internal date). ``subject`` is the base subject
    (RFC 5256 §2.1) folded for comparison; ``is_reply`` says whether the
    extraction removed a reply/forward marker. ``references`` are the
    parents' Message-IDs, oldest first: those of References, or when it has
    no valid one the first valid one of In-Reply-To.
    """

    number: int
    order: int
    sent: float
    subject: str = ""
    is_reply: bool = False
    message_id: bytes | None = None
    references: tuple[bytes, ...] = ()


@dataclass(slots=True, eq=False)
class ThreadNode:
    """A message in a thread (``number``), or a dummy (``number`` None)."""

    number: int | None
    children: list[ThreadNode] = field(default_factory=list)


# --- Message-ID parsing (RFC 5322 §3.6.4) -----------------------------------

_BRACKETED = re.compile(rb"<([^<>]*)>")
_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)")
_SPACE = re.compile(rb"[ \t\r\n]+")


def _clean_id(inner: bytes) -> bytes | None:
    """``id-left "@" id-right`` without CFWS, or None when not one."""
    previous = None
    while previous != inner and b"(" in inner:  # nested comments, innermost first
        previous, inner = inner, _COMMENT.sub(b"", inner)
    inner = _SPACE.sub(b"", inner)
    if len(inner) > MAX_ID_LENGTH:
        return None
    left, at, right = inner.rpartition(b"@")
    if not at or not left or not right or b"(" in inner or b")" in inner:
        return None
    return inner


def parse_msg_ids(value: bytes | None) -> list[bytes]:
    """The valid msg-ids in a header value, in order (RFC 5256 §3 step 1)."""
    if not value:
        return []
    ids = []
    for match in _BRACKETED.finditer(value):
        cleaned = _clean_id(match.group(1))
        if cleaned is not None:
            ids.append(cleaned)
    return ids


def parent_ids(references: bytes | None, in_reply_to: bytes | None) -> tuple[bytes, ...]:
    """The References ids, or the first In-Reply-To id when References has
    none (RFC 5256 §3 REFERENCES step 1); of a References longer than
    ``MAX_REFERENCE_OCTETS``, its last ids up to that size."""
    refs = parse_msg_ids(references)
    if not refs:
        return tuple(parse_msg_ids(in_reply_to)[:1])
    kept = 0
    first = len(refs)
    while first > 0 and kept + len(refs[first - 1]) <= MAX_REFERENCE_OCTETS:
        first -= 1
        kept += len(refs[first])
    return tuple(refs[first:])


# --- ORDEREDSUBJECT (RFC 5256 §3) -------------------------------------------

def _date_key(message: ThreadMessage) -> tuple[float, int]:
    return (message.sent, message.order)


def ordered_subject(messages: Iterable[ThreadMessage]) -> list[ThreadNode]:
    """RFC 5256 §3 ORDEREDSUBJECT: sort by base subject then sent date,
    one thread per base subject whose first message is the parent of all
    the others, threads ordered by their first message's sent date."""
    ordered = sorted(messages, key=lambda m: (m.subject, m.sent, m.order))
    threads: list[tuple[tuple[float, int], ThreadNode]] = []
    last_subject: str | None = None
    for message in ordered:
        if message.subject != last_subject or not threads:
            threads.append((_date_key(message), ThreadNode(message.number)))
            last_subject = message.subject
        else:
            threads[-1][1].children.append(ThreadNode(message.number))
    threads.sort(key=lambda item: item[0])
    return [node for _, node in threads]


# --- REFERENCES (RFC 5256 §3) -----------------------------------------------

class _Forest:
    """The containers of REFERENCES, as parallel arrays indexed by int.

    ``message[c]`` is the index of the message in container ``c`` or
    ``_NONE`` for a dummy; ``children[c]`` is an insertion-ordered set (a
    dict), so unlinking is O(1) and the result deterministic.
    """

    def __init__(self, messages: Sequence[ThreadMessage]) -> None:
        self.messages = messages
        # Each message's sort key, made once: the roots are sorted twice.
        self.date_keys = [(m.sent, m.order) for m in messages]
        self.message: list[int] = []
        self.parent: list[int] = []
        self.children: list[dict[int, None]] = []
        self.by_id: dict[bytes, int] = {}

    def new(self, message: int = _NONE) -> int:
        self.message.append(message)
        self.parent.append(_NONE)
        self.children.append({})
        return len(self.message) - 1

    def container(self, message_id: bytes) -> int:
        found = self.by_id.get(message_id)
        if found is None:
            found = self.by_id[message_id] = self.new()
        return found

    def link(self, parent: int, child: int) -> None:
        self.parent[child] = parent
        self.children[parent][child] = None

    def unlink(self, child: int) -> None:
        parent = self.parent[child]
        if parent != _NONE:
            del self.children[parent][child]
            self.parent[child] = _NONE

    def would_loop(self, parent: int, child: int) -> bool:
        """Would ``parent`` -> ``child`` make a loop? ``child`` has no parent,
        so only if ``parent`` is ``child`` or below it: walk up from
        ``parent`` and down from ``child`` together (see module doc)."""
        if parent == child:
            return True
        up = parent
        below: list[int] = [child]
        for _ in range(LOOP_CHECK_BUDGET):
            up = self.parent[up]
            if up == child:
                return True
            if up == _NONE:
                return False  # reached the root of parent's tree: not child
            if not below:
                return False  # child's whole subtree seen without parent
            node = below.pop()
            if node == parent:
                return True
            below.extend(self.children[node])
        return True  # budget spent: refuse the link (bounded cost)

    def sort_key(self, container: int) -> tuple[float, int]:
        """A message's sent date; a dummy's is its first child's."""
        index = self.message[container]
        while index == _NONE:
            container = next(iter(self.children[container]))
            index = self.message[container]
        return self.date_keys[index]


def _link_references(forest: _Forest) -> None:
    """Step 1: containers for every Message-ID and the links between them."""
    by_id, holds = forest.by_id, forest.message
    for index, message in enumerate(forest.messages):
        own = message.message_id
        this = _NONE if own is None else by_id.get(own, _NONE)
        if this == _NONE or holds[this] != _NONE:
            # No id, or a duplicate (only the first keeps it): a container
            # no other message can name; else a new one for the id.
            this = forest.new(index)
            if own is not None and own not in by_id:
                by_id[own] = this
        else:
            holds[this] = index  # named earlier by a reference
        if not message.references:  # most messages of a big mailbox
            forest.unlink(this)  # 1.B: no reference, no parent
            continue
        refs = [forest.container(ref) for ref in message.references]
        for parent, child in zip(refs, refs[1:]):  # 1.A
            if forest.parent[child] == _NONE and not forest.would_loop(parent, child):
                forest.link(parent, child)
        forest.unlink(this)  # 1.B: the message's own last reference wins
        if refs and not forest.would_loop(refs[-1], this):
            forest.link(refs[-1], this)


def _prune(forest: _Forest, roots: list[int]) -> list[int]:
    """Step 3: drop childless dummies; a dummy's children take its place,
    except that at the top level a dummy with two or more children stays.
    Post-order with an explicit stack (no recursion)."""
    kept: list[int] = []
    for root in roots:
        if not forest.children[root]:  # most roots of a big mailbox: no walk
            if forest.message[root] != _NONE:
                kept.append(root)
            continue
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            if not done:
                stack.append((node, True))
                stack.extend((child, False) for child in forest.children[node])
                continue
            pruned: dict[int, None] = {}
            for child in forest.children[node]:
                if forest.message[child] == _NONE:
                    for grandchild in forest.children[child]:
                        pruned[grandchild] = None
                        forest.parent[grandchild] = node
                else:
                    pruned[child] = None
            forest.children[node] = pruned
        if forest.message[root] != _NONE or len(forest.children[root]) > 1:
            kept.append(root)
        elif forest.children[root]:
            only = next(iter(forest.children[root]))
            forest.parent[only] = _NONE
            kept.append(only)
    return kept


def _sorted_children(forest: _Forest, node: int) -> None:
    forest.children[node] = dict.fromkeys(sorted(forest.children[node], key=forest.sort_key))


def _thread_subject(forest: _Forest, root: int) -> str:
    index = forest.message[root]
    if index == _NONE:
        index = forest.message[next(iter(forest.children[root]))]
    return forest.messages[index].subject


def _is_reply(forest: _Forest, node: int) -> bool:
    return forest.messages[forest.message[node]].is_reply


def _subject_table(forest: _Forest, roots: list[int], subjects: list[str]) -> dict[str, int]:
    """Step 5.A-C: the message or dummy each thread subject goes to."""
    table: dict[str, int] = {}
    for root, subject in zip(roots, subjects):
        if not subject:
            continue
        held = table.get(subject)
        if held is None:
            table[subject] = root
        elif forest.message[held] != _NONE and (
            forest.message[root] == _NONE
            or (_is_reply(forest, held) and not _is_reply(forest, root))
        ):
            table[subject] = root
    return table


def _merge_subjects(forest: _Forest, roots: list[int]) -> list[int]:
    """Step 5.D: merge top-level threads with one thread subject. A root's
    thread subject is taken once: no merge changes another root's first
    child (merges only add children at the end or move a root down)."""
    subjects = [_thread_subject(forest, root) for root in roots]
    table = _subject_table(forest, roots, subjects)
    result: dict[int, None] = dict.fromkeys(roots)
    for root, subject in zip(roots, subjects):
        held = table.get(subject) if subject else None
        if held is None or held == root:
            continue
        del result[root]
        root_dummy = forest.message[root] == _NONE
        if forest.message[held] == _NONE and root_dummy:
            for child in list(forest.children[root]):
                forest.unlink(child)
                forest.link(held, child)
        elif forest.message[held] == _NONE or (
            _is_reply(forest, root) and not _is_reply(forest, held)
        ):
            forest.link(held, root)
        else:
            dummy = forest.new()
            del result[held]
            forest.link(dummy, held)
            forest.link(dummy, root)
            result[dummy] = None
            table[subject] = dummy
    return list(result)


def _sort_all(forest: _Forest, roots: list[int]) -> list[int]:
    """Step 6: sort every set of siblings by sent date, deepest first so a
    dummy is sorted by its already-sorted first child."""
    stack = [root for root in roots if forest.children[root]]  # a leaf has none to sort
    order: list[int] = []
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(forest.children[node])
    for node in reversed(order):
        if len(forest.children[node]) > 1:
            _sorted_children(forest, node)
    return sorted(roots, key=forest.sort_key)


def _to_nodes(forest: _Forest, roots: list[int]) -> list[ThreadNode]:
    """Containers -> :class:`ThreadNode` trees, iteratively."""
    result: list[ThreadNode] = []
    stack: list[tuple[int, list[ThreadNode]]] = [(root, result) for root in reversed(roots)]
    while stack:
        container, siblings = stack.pop()
        index = forest.message[container]
        node = ThreadNode(None if index == _NONE else forest.messages[index].number)
        siblings.append(node)
        stack.extend((child, node.children) for child in reversed(forest.children[container]))
    return result


def _threaded(messages: Sequence[ThreadMessage]) -> tuple[_Forest, list[int]]:
    """RFC 5256 §3 REFERENCES, steps 1 to 6: the forest and its sorted roots."""
    forest = _Forest(messages)
    _link_references(forest)  # step 1
    roots = [c for c, parent in enumerate(forest.parent) if parent == _NONE]  # step 2
    roots = _prune(forest, roots)  # step 3
    for root in roots:  # step 4
        if forest.message[root] == _NONE:
            _sorted_children(forest, root)
    roots.sort(key=forest.sort_key)
    roots = _merge_subjects(forest, roots)  # step 5
    return forest, _sort_all(forest, roots)  # step 6


def references(messages: Sequence[ThreadMessage]) -> list[ThreadNode]:
    """RFC 5256 §3 REFERENCES, steps 1 to 6; ``messages`` in sequence order."""
    return _to_nodes(*_threaded(messages))


def references_text(messages: Sequence[ThreadMessage]) -> bytes:
    """``format_threads(references(messages))`` without building the
    :class:`ThreadNode` trees: THREAD REFERENCES over 100,000 messages spent
    half its algorithm time making and walking one object per message
    (issue 18). Same syntax rules as :func:`format_threads` (RFC 5256 §4)."""
    forest, roots = _threaded(messages)
    numbers = [m.number for m in messages]
    message, children = forest.message, forest.children
    out: list[bytes] = []
    # Work items: a container to write (its members), or literal bytes.
    stack: list[int | bytes] = []
    for root in roots:
        if message[root] != _NONE and not children[root]:
            out.append(b"(%d)" % numbers[message[root]])  # most threads: one message
            continue
        stack += [b")", root, b"("]
        _write_thread(stack, out, numbers, message, children)
    return b"".join(out)


def _write_thread(
    stack: list[int | bytes], out: list[bytes], numbers: list[int], message: list[int],
    children: list[dict[int, None]],
) -> None:
    """:func:`references_text` of one thread (on ``stack``), iteratively."""
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        node = item
        if message[node] != _NONE:
            out.append(b"%d" % numbers[message[node]])
            while len(children[node]) == 1:
                node = next(iter(children[node]))
                if message[node] != _NONE:
                    out.append(b" %d" % numbers[message[node]])
            if not children[node]:
                continue
            out.append(b" ")
        for child in reversed(children[node]):
            stack += [b")", child, b"("]


# --- Response syntax (RFC 5256 §4) ------------------------------------------

def format_threads(threads: Sequence[ThreadNode]) -> bytes:
    """``*thread-list`` (RFC 5256 §4): a message's single child follows it
    after a space; two or more children are each parenthesized; a dummy
    (only at the top) is a list of its children's threads."""
    out: list[bytes] = []
    # Work items: a node to write (its members), or literal bytes.
    stack: list[ThreadNode | bytes] = []
    for thread in reversed(threads):
        stack += [b")", thread, b"("]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        node = item
        if node.number is not None:
            out.append(str(node.number).encode("ascii"))
            while len(node.children) == 1:
                node = node.children[0]
                out.append(b" %d" % node.number if node.number is not None else b"")
            if not node.children:
                continue
            out.append(b" ")
        for child in reversed(node.children):
            stack += [b")", child, b"("]
    return b"".join(out)
