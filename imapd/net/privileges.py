"""Running as an unprivileged user: ``imapd serve --user NAME [--group NAME]``.

IMAP (143), IMAPS (993) and POP3 (110/995) are ports below 1024, which only
root (or a process with CAP_NET_BIND_SERVICE) may bind. So the server starts
as root, binds every listener, hands the data directory over to the user and
only then gives root up for good (``setgroups``, ``setgid``, ``setuid``, in
that order: after ``setuid`` the others are no longer allowed) before the
first client is served. twistd's own ``--uid`` cannot be used for this: it
switches before the service's ``startService``, where the ports are bound.

Root without ``--user`` is refused unless the operator says so
(``--allow-root`` or ``IMAPD_ALLOW_ROOT=1``, for containers that have no
other user): a mail server parsing untrusted input as root turns any bug
into a full compromise. One exception, so that the README's quick start
works for whoever runs it (often root, in a fresh container): a server
whose every listener is loopback or a UNIX socket runs as root with a
warning. Nobody on the network can reach it, and it needs no privileged
port; a public listener brings the refusal back.

A server not started as root must own its data directory: files created by
another account (a root-run ``imapd user add``, a restored backup) would
otherwise fail much later, on the first write, in the middle of a session.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.logger import Logger

log = Logger(namespace="imapd")

ALLOW_ROOT_ENV = "IMAPD_ALLOW_ROOT"


class PrivilegeError(Exception):
    """Cannot run as asked; ``str()`` is the one line for the operator
    (``imapd serve`` prints it and exits with status 2)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The account the server runs as once its ports are bound."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups (the user's, from /etc/group)


def allow_root_from_environment() -> bool:
    return os.environ.get(ALLOW_ROOT_ENV, "").strip().lower() in ("1", "yes", "true")


def plan(user: str | None, group: str | None, allow_root: bool,
         euid: int | None = None, local_only: bool = False) -> Identity | None:
    """Whom to become after binding (None: stay as we are). Raises
    ``PrivilegeError`` for an unknown user or group, for ``--user`` without
    root, and for root without ``--user`` or ``allow_root`` unless
    ``local_only`` (every listener loopback or UNIX: see the module)."""
    euid = os.geteuid() if euid is None else euid
    if group is not None and user is None:
        raise PrivilegeError("imapd: --group needs --user")
    if user is None:
        if euid == 0 and not allow_root and not local_only:
            raise PrivilegeError(
                "imapd: refusing to run as root: give --user NAME (ports are bound first, "
                f"then root is given up) or --allow-root (or {ALLOW_ROOT_ENV}=1)")
        return None
    identity = lookup(user, group)
    if identity.uid == 0:
        if not allow_root:
            raise PrivilegeError(f"imapd: --user {user} is root: name an unprivileged account "
                                 "or give --allow-root")
        return None
    if euid == identity.uid:
        return None  # already that user (a --workers worker of a parent that dropped)
    if euid != 0:
        name = _user_name(euid)
        raise PrivilegeError(f"imapd: --user {user} needs root to switch to it "
                             f"(running as {name}, uid {euid})")
    return identity


def lookup(user: str, group: str | None) -> Identity:
    """The account ``user`` (a name or a numeric uid), with ``group`` (a
    name or gid) instead of its primary group if given."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"imapd: --user {user}: no such user") from None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivilegeError(f"imapd: --group {group}: no such group") from None
    groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, gid))))
    return Identity(entry.pw_name, entry.pw_uid, gid, groups)


def hand_over(data_dir: Path, identity: Identity) -> None:
    """Make ``identity`` the owner of the data directory and everything in
    it (made by this root process: the store, the self-signed certificate).
    Symbolic links are not followed: a link planted in the directory must
    not give the user a file elsewhere."""
    os.chown(data_dir, identity.uid, identity.gid, follow_symlinks=False)
    for root, directories, files in os.walk(data_dir, followlinks=False):
        for name in directories + files:
            path = os.path.join(root, name)
            status = os.lstat(path)
            if (status.st_uid, status.st_gid) != (identity.uid, identity.gid):
                os.chown(path, identity.uid, identity.gid, follow_symlinks=False)


def drop(identity: Identity) -> None:
    """Give root up for good: supplementary groups, group, then user (real,
    effective and saved ids alike, so it cannot be taken back). Checked
    afterwards: a process still able to become root again would be worse
    than one that says it cannot start."""
    try:
        os.setgroups(list(identity.groups))
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
    except OSError as error:
        raise PrivilegeError(f"imapd: cannot switch to user {identity.user}: "
                             f"{error.strerror or error}") from None
    if os.getresuid() != (identity.uid,) * 3 or os.getresgid() != (identity.gid,) * 3:
        raise PrivilegeError(f"imapd: switching to user {identity.user} did not take")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PrivilegeError(f"imapd: still able to become root after switching to "
                             f"{identity.user}")
    log.info("imapd: running as user {user} (uid {uid}, gid {gid})", user=identity.user,
             uid=identity.uid, gid=identity.gid)


def become(data_dir: Path, identity: Identity | None) -> None:
    """After binding: hand the data directory over and drop root (nothing
    when ``identity`` is None)."""
    if identity is None:
        return
    try:
        hand_over(data_dir, identity)
    except OSError as error:
        raise PrivilegeError(f"imapd: cannot give {data_dir} to user {identity.user}: "
                             f"{error.strerror or error}") from None
    drop(identity)


def check_data_dir(data_dir: Path, euid: int | None = None) -> None:
    """For a server not running as root: its data directory (or, if it is
    not made yet, the directory it will be made in) must be its own and
    writable. ``PrivilegeError`` with the fix otherwise."""
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return
    me = _user_name(euid)
    if not data_dir.exists():
        parent = next((p for p in data_dir.absolute().parents if p.exists()), Path("/"))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PrivilegeError(f"imapd: cannot create data directory {data_dir}: "
                                 f"{parent} is not writable by {me}")
        return
    owner = data_dir.stat().st_uid
    if owner != euid:
        raise PrivilegeError(
            f"imapd: data directory {data_dir} is owned by {_user_name(owner)}, not by {me} "
            f"who runs the server (chown -R {me} {data_dir}, or start as root with --user {me})")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise PrivilegeError(f"imapd: data directory {data_dir} is not writable by {me}")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class DropAfterBinding(service.Service):
    """For twistd (whose ``--uid`` switches before the ports are bound):
    a service started after the listening one, in the same
    ``MultiService`` (children start in order), that then becomes the
    user. A failure stops the reactor rather than serve on as root."""

    def __init__(self, data_dir: Path, identity: Identity, reactor: Any) -> None:
        self.data_dir = data_dir
        self.identity = identity
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        try:
            become(self.data_dir, self.identity)
        except PrivilegeError as error:
            log.critical("{message}", message=str(error))
            self.reactor.callWhenRunning(self.reactor.stop)
            raise


def run_as(listening: Any, data_dir: Path, identity: Identity | None, reactor: Any) -> Any:
    """``listening`` (the built server), made to become ``identity`` once
    it has bound its ports; unchanged when there is no one to become."""
    if identity is None:
        return listening
    top = service.MultiService()  # type: ignore[no-untyped-call]
    listening.setServiceParent(top)
    DropAfterBinding(data_dir, identity, reactor).setServiceParent(top)  # type: ignore[no-untyped-call]
    return top


_LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def local_only(endpoints: list[str]) -> bool:
    """Every endpoint (Twisted server strings, an optional ``haproxy:``
    prefix) is a UNIX socket or TCP/SSL bound to a loopback interface; a
    TCP endpoint without ``interface=`` listens on every address."""
    import ipaddress

    for endpoint in endpoints:
        fields = _split_endpoint(endpoint)
        if fields and fields[0].lower() == "haproxy":
            fields = fields[1:]
        if not fields:
            return False
        kind = fields[0].lower()
        if kind == "unix":
            continue
        if kind not in ("tcp", "ssl", "tcp6"):
            return False
        interface = next((f.split("=", 1)[1] for f in fields if f.startswith("interface=")), None)
        if interface is None:
            return False
        if interface.lower() in _LOOPBACK_NAMES:
            continue
        try:
            if not ipaddress.ip_address(interface).is_loopback:
                return False
        except ValueError:
            return False
    return True


def _split_endpoint(endpoint: str) -> list[str]:
    """``endpoint`` split on the colons not escaped with a backslash
    (Twisted's endpoint string syntax: ``interface=\\:\\:1``)."""
    fields, current, escaped = [], "", False
    for char in endpoint:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    return fields
