"""The capability list (RFC 3501 §6.1.1, §7.2.1), computed in one place.

Used for the greeting, CAPABILITY and the ``[CAPABILITY ...]`` code after a
login. ``check_handlers`` runs at start-up: every capability we would
advertise must be backed by a registered handler, so the list can never
promise more than the server does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Iterable

from imapd.accounts.authenticator import plaintext_allowed
from imapd.imap.commands import condstore
from imapd.imap.commands.context import Features
from imapd.core.config import Limits
from imapd.imap.session.state import Session
from imapd.imap.wire import commands as c

IMAP4REV1 = "IMAP4rev1"
LITERAL_PLUS = "LITERAL+"
SASL_IR = "SASL-IR"
STARTTLS = "STARTTLS"
LOGINDISABLED = "LOGINDISABLED"
ID = "ID"
ENABLE = "ENABLE"
IDLE = "IDLE"
NAMESPACE = "NAMESPACE"
UNSELECT = "UNSELECT"
CHILDREN = "CHILDREN"
COMPRESS_DEFLATE = "COMPRESS=DEFLATE"
UIDPLUS = "UIDPLUS"
MOVE = "MOVE"
CONDSTORE = "CONDSTORE"
QRESYNC = "QRESYNC"
ESEARCH = "ESEARCH"
SEARCHRES = "SEARCHRES"
I18NLEVEL_1 = "I18NLEVEL=1"
SORT = "SORT"
SORT_DISPLAY = "SORT=DISPLAY"
ESORT = "ESORT"
THREAD_ORDEREDSUBJECT = "THREAD=ORDEREDSUBJECT"
THREAD_REFERENCES = "THREAD=REFERENCES"
LIST_EXTENDED = "LIST-EXTENDED"
LIST_STATUS = "LIST-STATUS"
SPECIAL_USE = "SPECIAL-USE"
CREATE_SPECIAL_USE = "CREATE-SPECIAL-USE"
MULTIAPPEND = "MULTIAPPEND"
STATUS_SIZE = "STATUS=SIZE"
QUOTA = "QUOTA"
QUOTA_RES_STORAGE = "QUOTA=RES-STORAGE"
QUOTA_RES_MESSAGE = "QUOTA=RES-MESSAGE"
APPENDLIMIT = "APPENDLIMIT"
CONTEXT_SEARCH = "CONTEXT=SEARCH"
CONTEXT_SORT = "CONTEXT=SORT"
BINARY = "BINARY"
CATENATE = "CATENATE"
# The row's text with the default limit; ``advertised`` puts in the server's.
_APPENDLIMIT_DEFAULT = f"{APPENDLIMIT}={Limits().max_literal}"

# Extensions advertised in every state, in this order, each with the command
# types it needs registered (checked at start-up). Listed before login too:
# clients (and the conformance runner) read them from the greeting. Add a row
# only when the extension is complete.
EXTENSIONS: tuple[tuple[str, tuple[type, ...]], ...] = (
    (ID, (c.Id,)),              # RFC 2971
    (ENABLE, (c.Enable,)),      # RFC 5161
    (IDLE, (c.Idle,)),          # RFC 2177
    (NAMESPACE, (c.Namespace,)),  # RFC 2342
    (UNSELECT, (c.Unselect,)),  # RFC 3691
    (CHILDREN, (c.List,)),      # RFC 3348: LIST's \HasChildren / \HasNoChildren
    (UIDPLUS, (c.UidExpunge, c.Append, c.Copy)),  # RFC 4315: also APPENDUID, COPYUID
    (MOVE, (c.Move,)),          # RFC 6851
    (CONDSTORE, (c.Fetch, c.Store, c.Search)),  # RFC 7162 §3.1
    (QRESYNC, (c.Enable, c.Fetch)),  # RFC 7162 §3.2
    (ESEARCH, (c.Search,)),     # RFC 4731
    (SEARCHRES, (c.Search,)),   # RFC 5182
    (CONTEXT_SEARCH, (c.Search, c.CancelUpdate)),  # RFC 5267 §4 (with PARTIAL, §4.4)
    (I18NLEVEL_1, (c.Search,)),  # RFC 5255 §4.3: SEARCH strings under i;unicode-casemap (RFC 5051)
    (SORT, (c.Sort,)),          # RFC 5256 §3
    (SORT_DISPLAY, (c.Sort,)),  # RFC 5957: DISPLAYFROM, DISPLAYTO
    (ESORT, (c.Sort,)),         # RFC 5267 §3: SORT RETURN (MIN MAX COUNT ALL PARTIAL)
    (CONTEXT_SORT, (c.Sort, c.CancelUpdate)),  # RFC 5267 §4: SORT RETURN (UPDATE), positions
    (THREAD_ORDEREDSUBJECT, (c.Thread,)),  # RFC 5256 §3
    (THREAD_REFERENCES, (c.Thread,)),  # RFC 5256 §3
    (LIST_EXTENDED, (c.List,)),  # RFC 5258
    (LIST_STATUS, (c.List, c.Status)),  # RFC 5819
    (SPECIAL_USE, (c.List,)),   # RFC 6154 §2
    (CREATE_SPECIAL_USE, (c.Create,)),  # RFC 6154 §3
    (MULTIAPPEND, (c.Append,)),  # RFC 3502
    (_APPENDLIMIT_DEFAULT, (c.Append, c.Status)),  # RFC 7889 (with STATUS APPENDLIMIT)
    (STATUS_SIZE, (c.Status,)),  # RFC 8438
    # RFC 9208 §3.1, §5: no QUOTASET (SETQUOTA is always NO, §4.1.4).
    (QUOTA, (c.GetQuota, c.GetQuotaRoot, c.SetQuota)),
    (QUOTA_RES_STORAGE, (c.GetQuota,)),  # RFC 9208 §5.1
    (QUOTA_RES_MESSAGE, (c.GetQuota,)),  # RFC 9208 §5.2
    (BINARY, (c.Fetch, c.Append)),  # RFC 3516: FETCH BINARY[], APPEND literal8
    (CATENATE, (c.Append,)),    # RFC 4469: same-user relative URLs, no URLAUTH
)


@dataclass(frozen=True, slots=True)
class Enableable:
    """A capability the ENABLE command may turn on (RFC 5161 §3.1).

    ``implies``: capabilities enabled along with it (RFC 7162 §3.2.3:
    enabling QRESYNC also enables CONDSTORE); they are not listed in the
    ENABLED response unless the client named them. ``on_enable`` runs once,
    when the capability becomes enabled for the session (e.g. to switch the
    selected view's responses)."""

    name: str
    implies: tuple[str, ...] = ()
    on_enable: Callable[[Session], None] | None = None


# What ENABLE can turn on. Extensions that need enabling add a row here
# (CONDSTORE, QRESYNC, ...); a row counts only while its capability is
# advertised to the session. ENABLE ignores every other name (RFC 5161 §3.1).
ENABLEABLE: tuple[Enableable, ...] = (
    Enableable(CONDSTORE, on_enable=condstore.apply_modes),  # RFC 7162 §3.1
    Enableable(QRESYNC, implies=(CONDSTORE,), on_enable=condstore.apply_modes),  # §3.2.3
)


def compression_allowed(session: Session) -> bool:
    """COMPRESS=DEFLATE (RFC 4978) is offered after login on encrypted or
    local connections only (operator policy: no compression of plaintext
    network traffic)."""
    return session.authenticated and (session.secure or session.local)


# What each capability requires to be registered (RFC 3501 §6 lists the
# IMAP4rev1 base; RFC 7888 LITERAL+ is a framer feature, no command).
_BASE_COMMANDS: tuple[type, ...] = (c.Capability, c.Noop, c.Logout, c.Login)
_AUTH_COMMANDS: tuple[type, ...] = (c.Authenticate,)


def plaintext_auth_allowed(session: Session, features: Features) -> bool:
    """RFC 3501 §6.2.3 and RFC 8314: passwords may be sent only over TLS,
    from this host (loopback, UNIX socket), or when the operator allows
    plaintext (``--allow-plaintext``): the one rule of every protocol,
    ``imapd.accounts.authenticator.plaintext_allowed``."""
    return plaintext_allowed(session.secure, session.local, features.allow_plaintext)


def advertised(session: Session, features: Features) -> tuple[str, ...]:
    """The capabilities for this session right now.

    Before authentication: STARTTLS while the connection is not encrypted
    and a certificate is loaded (RFC 3501 §6.2.1); then either SASL-IR
    (RFC 4959) and the ``AUTH=`` mechanisms, or LOGINDISABLED and no
    ``AUTH=`` at all when passwords may not be sent on this connection
    (RFC 3501 §6.2.3, §7.2.1). None of these mean anything after login.
    ``EXTENSIONS`` are listed in every state; COMPRESS=DEFLATE only after
    login, where the command is valid (RFC 4978 §5: command-auth)."""
    caps = [IMAP4REV1]
    if features.literal_plus:
        caps.append(LITERAL_PLUS)
    caps.extend(_with_features(name, features) for name, _ in EXTENSIONS)
    if session.authenticated:
        if compression_allowed(session):
            caps.append(COMPRESS_DEFLATE)
        return tuple(caps)
    if features.starttls and not session.secure:
        caps.append(STARTTLS)
    if not plaintext_auth_allowed(session, features):
        caps.append(LOGINDISABLED)
    elif features.sasl_mechanisms:
        caps.append(SASL_IR)
        caps.extend(f"AUTH={mech}" for mech in sasl_mechanisms(session, features))
    return tuple(caps)


def sasl_mechanisms(session: Session, features: Features) -> tuple[str, ...]:
    """The SASL mechanisms offered on this connection: the ``-PLUS`` ones
    (RFC 5802 §6 channel binding) only where there is a TLS channel to bind."""
    return tuple(
        mech for mech in features.sasl_mechanisms if session.secure or not mech.endswith("-PLUS")
    )


def _with_features(name: str, features: Features) -> str:
    """An EXTENSIONS name as this server advertises it: APPENDLIMIT carries
    the configured literal limit (RFC 7889 §3: ``APPENDLIMIT=number``)."""
    if name == _APPENDLIMIT_DEFAULT:
        return f"{APPENDLIMIT}={features.append_limit}"
    return name


def framer_supports_literal_plus(limits: Limits) -> bool:
    """Ask the framer itself (RFC 7888): a non-synchronizing literal must
    complete a frame without a continuation request."""
    from imapd.imap.wire.framer import CommandFrame, Framer

    events = Framer(limits).feed(b"x NOOP {1+}\r\nA\r\n")
    return [type(e) for e in events] == [CommandFrame]


class CapabilityError(RuntimeError):
    """An advertised capability has no handler (a start-up bug)."""


def check_handlers(
    features: Features,
    registered: Collection[type],
    mechanisms: Collection[str],
) -> None:
    """Raise ``CapabilityError`` unless every capability in the fullest list
    we could advertise is implemented by ``registered`` command types and
    ``mechanisms`` (the SASL mechanisms the AUTHENTICATE handler knows)."""
    missing = [t.__name__ for t in _BASE_COMMANDS if t not in registered]
    missing += [
        f"{name} ({t.__name__})" for name, types in EXTENSIONS for t in types if t not in registered
    ]
    if c.Compress not in registered:
        missing.append(f"{COMPRESS_DEFLATE} (Compress)")
    if features.starttls and c.StartTLS not in registered:
        missing.append(c.StartTLS.__name__)
    if features.sasl_mechanisms:
        missing += [t.__name__ for t in _AUTH_COMMANDS if t not in registered]
    missing += [
        f"AUTH={m}" for m in features.sasl_mechanisms if m not in mechanisms
    ]
    if missing:
        raise CapabilityError(
            "capabilities advertised without a handler: " + ", ".join(missing)
        )


def enable(session: Session, features: Features, names: Iterable[str]) -> tuple[str, ...]:
    """ENABLE (RFC 5161 §3.1): turn on each named capability that is in
    ``ENABLEABLE`` and advertised to this session; ignore every other name.
    Returns, in request order and once each, the names this call newly
    enabled (the ENABLED response, §3.2: names enabled earlier are not
    repeated). The capability list itself never changes (§3.1)."""
    offered = {cap.upper() for cap in advertised(session, features)}
    rows = {row.name.upper(): row for row in ENABLEABLE if row.name.upper() in offered}
    newly: list[str] = []
    for requested in names:
        name = requested.upper()
        row = rows.get(name)
        if row is None or name in session.enabled:
            continue
        newly.append(name)
        for turned_on in (name, *(n.upper() for n in row.implies)):
            if turned_on not in session.enabled:
                session.enabled.add(turned_on)
                implied_row = rows.get(turned_on)
                if implied_row is not None and implied_row.on_enable is not None:
                    implied_row.on_enable(session)
    return tuple(newly)
