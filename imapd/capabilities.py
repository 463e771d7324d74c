"""The capability list (RFC 3501 §6.1.1, §7.2.1), computed in one place.

Used for the greeting, CAPABILITY and the ``[CAPABILITY ...]`` code after a
login. ``check_handlers`` runs at start-up: every capability we would
advertise must be backed by a registered handler, so the list can never
promise more than the server does.
"""

from __future__ import annotations

from typing import Collection

from imapd.commands.context import Features
from imapd.config import Limits
from imapd.session.state import Session
from imapd.wire import commands as c

IMAP4REV1 = "IMAP4rev1"
LITERAL_PLUS = "LITERAL+"
SASL_IR = "SASL-IR"
STARTTLS = "STARTTLS"
LOGINDISABLED = "LOGINDISABLED"

# What each capability requires to be registered (RFC 3501 §6 lists the
# IMAP4rev1 base; RFC 7888 LITERAL+ is a framer feature, no command).
_BASE_COMMANDS: tuple[type, ...] = (c.Capability, c.Noop, c.Logout, c.Login)
_AUTH_COMMANDS: tuple[type, ...] = (c.Authenticate,)


def plaintext_auth_allowed(session: Session, features: Features) -> bool:
    """RFC 3501 §6.2.3 and RFC 8314: passwords may be sent only over TLS,
    from this host (loopback, UNIX socket), or when the operator allows
    plaintext (``--allow-plaintext``)."""
    return session.secure or session.local or features.allow_plaintext


def advertised(session: Session, features: Features) -> tuple[str, ...]:
    """The capabilities for this session right now.

    Before authentication: STARTTLS while the connection is not encrypted
    and a certificate is loaded (RFC 3501 §6.2.1); then either SASL-IR
    (RFC 4959) and the ``AUTH=`` mechanisms, or LOGINDISABLED and no
    ``AUTH=`` at all when passwords may not be sent on this connection
    (RFC 3501 §6.2.3, §7.2.1). None of these mean anything after login."""
    caps = [IMAP4REV1]
    if features.literal_plus:
        caps.append(LITERAL_PLUS)
    if session.authenticated:
        return tuple(caps)
    if features.starttls and not session.secure:
        caps.append(STARTTLS)
    if not plaintext_auth_allowed(session, features):
        caps.append(LOGINDISABLED)
    elif features.sasl_mechanisms:
        caps.append(SASL_IR)
        caps.extend(f"AUTH={mech}" for mech in features.sasl_mechanisms)
    return tuple(caps)


def framer_supports_literal_plus(limits: Limits) -> bool:
    """Ask the framer itself (RFC 7888): a non-synchronizing literal must
    complete a frame without a continuation request."""
    from imapd.wire.framer import CommandFrame, Framer

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
