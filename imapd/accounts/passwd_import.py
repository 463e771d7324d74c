"""Reading Dovecot passwd-files for ``imapd user import-passwd``.

Dovecot's format (doc: "passwd-file"): ``user:password:uid:gid:gecos:home:
shell:extra_fields``; only the first two fields are needed, the rest is kept
verbatim. Comment (``#``) and blank lines are ignored. The password field
is ``{SCHEME}hash``; ``imapd.accounts.schemes.normalize_password_field`` decides
what is accepted.
"""

from __future__ import annotations

from imapd.accounts.schemes import UnsupportedHash, normalize_password_field
from imapd.accounts.users import UserDatabaseError, UserEntry, validate_name


def parse_dovecot_passwd(text: str) -> tuple[list[UserEntry], list[tuple[int, str]]]:
    """The importable entries, and (line number, reason) for each refused
    line. Reasons never quote the hash. A name given twice keeps the first."""
    entries: list[UserEntry] = []
    problems: list[tuple[int, str]] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        name, sep, rest = raw.partition(":")
        if not sep:
            problems.append((number, "not user:password"))
            continue
        field, _, extra = rest.partition(":")
        try:
            validate_name(name)
            normalized = normalize_password_field(field)
        except (UserDatabaseError, UnsupportedHash) as error:
            problems.append((number, str(error)))
            continue
        if name in seen:
            problems.append((number, f"user {name!r} given twice; the first is kept"))
            continue
        seen.add(name)
        entries.append(UserEntry(name, normalized, extra if extra else None))
    return entries, problems
