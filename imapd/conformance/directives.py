"""List directives (``$!unordered`` …) and their built-in defaults (conformance README §8.3).

An expected list may start with directive atoms. When it has none, the parser
inserts defaults depending on the response name and the list's position:

* ``LIST``/``LSUB``: the flag list (second top-level argument) gets ``$!unordered``;
* ``STATUS``: the attribute list (third top-level argument) gets ``$!unordered=2``;
* ``FETCH``: the item list (third top-level argument) gets ``$!unordered=2``, and
  a list following the atom ``flags`` inside it gets ``$!unordered $!noextra
  $!ignore=\\recent $!ignore=$HasAttachment $!ignore=$HasNoAttachment``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .tokens import Arg, ArgKind, atom, make_list

_DIRECTIVE_RE = re.compile(rb"\$!(unordered(=\d+)?|ordered|noextra|extra|ignore=.*|ban=.*)", re.S)

FLAGS_DEFAULTS = (
    b"$!unordered",
    b"$!noextra",
    b"$!ignore=\\recent",
    b"$!ignore=$HasAttachment",
    b"$!ignore=$HasNoAttachment",
)


def is_directive(arg: Arg) -> bool:
    return arg.kind is ArgKind.ATOM and arg.text.startswith(b"$!")


@dataclass
class ListDirectives:
    """The directives at the start of one expected list, as the matcher uses them."""

    unordered: bool = False
    chain: int = 1
    noextra: bool | None = None  # None: not given (ordered → exact; unordered → extras allowed)
    ignores: list[bytes] = field(default_factory=list)
    bans: list[bytes] = field(default_factory=list)


def split_directives(items: tuple[Arg, ...]) -> tuple[ListDirectives, tuple[Arg, ...]]:
    """Read leading ``$!`` atoms; return them parsed plus the remaining elements.

    Order matters: ``$!unordered`` switches the default to "extras allowed"
    unless ``$!noextra`` came earlier.
    """
    result = ListDirectives()
    index = 0
    while index < len(items) and is_directive(items[index]):
        word = items[index].text[2:]
        if word.startswith(b"unordered"):
            result.unordered = True
            if result.noextra is None:
                result.noextra = False
            if word[9:10] == b"=":
                result.chain = int(word[10:])
        elif word == b"ordered":
            result.unordered = False
        elif word == b"extra":
            result.noextra = False
        elif word == b"noextra":
            result.noextra = True
        elif word.startswith(b"ignore="):
            result.ignores.append(word[7:])
        elif word.startswith(b"ban="):
            result.bans.append(word[4:])
        index += 1
    return result, items[index:]


def reply_name(args: list[Arg]) -> bytes:
    """The response name: first atom, or the second if the first starts with ``$`` or a digit."""
    if not args or args[0].kind is not ArgKind.ATOM:
        return b""
    first = args[0].text
    if first[:1] == b"$" or first[:1].isdigit():
        if len(args) > 1 and args[1].kind is ArgKind.ATOM:
            return args[1].text
        return b""
    return first


@dataclass
class _Context:
    """Where a list sits: mirrors imaptest's per-list parse context."""

    parent: _Context | None
    reply_name: bytes
    prev_atom: bytes | None
    parent_chain_idx: int
    chain_count: int = 1


def add_default_directives(args: list[Arg]) -> list[Arg]:
    """Validate directives of every list in an expectation and insert the defaults.

    Raises ValueError for an unknown or broken directive, or for a list whose
    element count is not a multiple of its ``$!unordered=N`` chain size.
    """
    top = _Context(parent=None, reply_name=reply_name(args).lower(), prev_atom=None, parent_chain_idx=0)
    return list(_walk(top, tuple(args)))


def _walk(ctx: _Context, items: tuple[Arg, ...]) -> tuple[Arg, ...]:
    explicit = _validate_leading_directives(ctx, items)
    if not explicit:
        items = _defaults_for(ctx) + items
    count = sum(1 for item in items if not is_directive(item))
    if count % ctx.chain_count != 0:
        raise ValueError(f"invalid list argument count {count}, chain size={ctx.chain_count}")
    result: list[Arg] = []
    prev_atom: bytes | None = None
    for index, item in enumerate(items):
        if item.kind is ArgKind.ATOM:
            prev_atom = item.text.lower()
        if item.kind is not ArgKind.LIST:
            result.append(item)
            continue
        child = _Context(
            parent=ctx,
            reply_name=ctx.reply_name,
            prev_atom=prev_atom,
            parent_chain_idx=index if ctx.chain_count == 1 else index % ctx.chain_count,
        )
        result.append(make_list(_walk(child, item.items)))
    return tuple(result)


def _validate_leading_directives(ctx: _Context, items: tuple[Arg, ...]) -> bool:
    found = False
    for item in items:
        if not is_directive(item):
            break
        if _DIRECTIVE_RE.fullmatch(item.text) is None:
            raise ValueError(f"unknown or broken directive: {item.text.decode('utf-8', 'replace')}")
        if item.text.startswith(b"$!unordered="):
            ctx.chain_count = int(item.text[12:])
            if ctx.chain_count == 0:
                raise ValueError("broken $!unordered directive: chain size 0")
        found = True
    return found


def _defaults_for(ctx: _Context) -> tuple[Arg, ...]:
    parent = ctx.parent
    if parent is None:
        return ()
    at_top = parent.parent is None and parent.parent_chain_idx == 0
    name = ctx.reply_name
    if name in (b"list", b"lsub") and at_top and ctx.parent_chain_idx == 1:
        return (atom(b"$!unordered"),)
    if name == b"status" and at_top and ctx.parent_chain_idx == 2:
        return (atom(b"$!unordered=2"),)
    if name == b"fetch":
        if at_top and ctx.parent_chain_idx == 2:
            return (atom(b"$!unordered=2"),)
        grand = parent.parent
        if (
            grand is not None
            and grand.parent is None
            and grand.parent_chain_idx == 0
            and parent.parent_chain_idx == 2
            and ctx.prev_atom == b"flags"
        ):
            return tuple(atom(text) for text in FLAGS_DEFAULTS)
    return ()
