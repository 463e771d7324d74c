"""COMPRESS (RFC 4978): the command. The compression itself is a transport
layer of the server (``imapd.net.compress``); this handler only checks
the request and asks the connection to start it after the tagged OK.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from imapd.imap import capabilities
from imapd.imap.commands import catalogue
from imapd.imap.commands.context import (
    AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.core.errors import ImapError
from imapd.imap.wire import commands as c

DEFLATE = "DEFLATE"


@runtime_checkable
class CompressionHooks(Protocol):
    """What a connection that can compress offers (``imapd.net.imap_connection``)."""

    @property
    def compression_active(self) -> bool:
        """DEFLATE is already on (or about to start) for this connection."""

    def start_compression(self) -> None:
        """Compress everything after the tagged OK of this command, both
        ways; client bytes that follow the command are compressed data."""


async def handle_compress(cmd: c.Compress, ctx: CommandContext) -> Completion:
    """RFC 4978 §3. ``BAD`` for an algorithm other than DEFLATE; ``NO
    [COMPRESSIONACTIVE]`` when DEFLATE is already active (the RFC's text
    says BAD, its example and deployed servers say NO with this code, and
    the code is what clients look for); ``NO`` where the server does not
    offer compression (not encrypted and not local). The OK itself is sent
    uncompressed; compression starts right after its CRLF."""
    if cmd.algorithm != DEFLATE:
        raise ImapError.bad(catalogue.BAD_COMPRESS_ALGORITHM)
    hooks = ctx.connection
    if not isinstance(hooks, CompressionHooks):
        raise ImapError.no(catalogue.NO_COMPRESSION_UNAVAILABLE)
    if hooks.compression_active:
        raise ImapError.no(catalogue.NO_COMPRESSION_ACTIVE, catalogue.CODE_COMPRESSIONACTIVE)
    if not capabilities.compression_allowed(ctx.session):
        raise ImapError.no(catalogue.NO_COMPRESSION_NOT_ALLOWED)
    hooks.start_compression()
    return Completion(catalogue.OK_COMPRESS)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Compress, handle_compress, AUTHENTICATED),
)
