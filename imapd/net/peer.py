"""Facts about a connection's peer and the limits that follow from it:
how it is logged, whether it is local (plaintext passwords allowed), and
the framer limits that apply before login. Split from ``protocol`` so that
module stays about the connection's life cycle."""

from __future__ import annotations

import dataclasses
import ipaddress

from twisted.internet.address import UNIXAddress

from imapd.core.config import Limits


def format_peer(address: object) -> str:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def peer_host(address: object) -> str:
    """The address alone (no port), the key of per-address limits."""
    if isinstance(address, UNIXAddress):
        return "unix"
    return str(getattr(address, "host", address))


def preauth_limits(limits: Limits) -> Limits:
    """The framer's limits before login: literals up to
    ``max_preauth_literal`` and commands with room for two of them (LOGIN
    name and password) besides the line."""
    literal = min(limits.max_literal, limits.max_preauth_literal)
    command = min(limits.max_command, limits.max_line + 2 * literal + 16)
    # Never spooled: unauthenticated clients create no files.
    spool = max(limits.literal_spool_threshold, literal)
    return dataclasses.replace(
        limits, max_literal=literal, max_command=command, literal_spool_threshold=spool)


def is_local(address: object) -> bool:
    """Loopback or a UNIX socket: nobody on a network can read this
    connection, so plaintext passwords are acceptable (issue 6 policy)."""
    if isinstance(address, UNIXAddress):
        return True
    try:
        ip = ipaddress.ip_address(str(getattr(address, "host", "")).split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def set_no_delay(transport: object) -> None:
    """TCP_NODELAY: Twisted sends what one reactor turn wrote together,
    never a trickle of tiny segments, so Nagle's algorithm only adds
    delay: a synchronizing literal's ``+`` still unacknowledged holds back
    the tagged OK until the client's delayed ACK (up to 40 ms per APPEND).
    Not every transport is TCP."""
    set_flag = getattr(transport, "setTcpNoDelay", None)
    if set_flag is not None:
        try:
            set_flag(True)
        except OSError:
            pass  # not a TCP socket after all (e.g. a socketpair)
