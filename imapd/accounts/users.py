"""The user database: one Dovecot-passwd-like file in the data directory.

Format (one user per line, ``#`` comments and blank lines kept as written)::

    name:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=4$salt$hash[:extra fields]

This is the first two fields of Dovecot's passwd-file format
(``user:{SCHEME}hash:uid:gid:gecos:home:shell:extra``); anything after the
password field is kept verbatim. ``import_entries`` takes Dovecot lines
(``imapd user import-passwd``); the schemes it accepts and how each is
verified are in ``imapd.accounts.schemes``. New passwords are always hashed
with argon2id (argon2-cffi).

SCRAM-SHA-256 keys (``imapd.accounts.scram``) live in ``users.scram`` beside the
file, one ``name:{SCRAM-SHA-256}...:binding`` line per user whose password
was set by imapd. ``binding`` is a digest of the user's password field in
``users.passwd``: keys whose binding does not match the current field are
ignored, so a crash between the two writes, an import, or an edit by hand
can never leave an old password usable through SCRAM.

Concurrency: the CLI may change the file while a server runs. Writers take
an exclusive ``flock`` on a lock file beside it and rewrite the file
atomically (temp file, fsync, rename, fsync of the directory); readers stat
the file before each lookup and reload when it changed, so a running server
sees ``imapd user add`` at once and never reads a half-written file.

Nothing here does network I/O or imports Twisted; password verification is
blocking (argon2 is deliberately slow), so the server runs it in a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import argon2
import argon2.exceptions

from imapd.accounts import schemes
from imapd.accounts.scram import ScramKeys, derive_keys
from imapd.core.model import Secret

USERS_FILE_NAME = "users.passwd"
SCRAM_FILE_NAME = "users.scram"
ARGON2ID_SCHEME = "ARGON2ID"
MAX_NAME_LENGTH = 255


class UserDatabaseError(Exception):
    """A user database operation was refused (the message is for humans)."""


class UnknownUser(UserDatabaseError):
    pass


class UserExists(UserDatabaseError):
    pass


def validate_name(name: str) -> None:
    """Raise ``UserDatabaseError`` unless ``name`` can be stored and typed in
    an IMAP LOGIN: non-empty, no ``:`` (the field separator), no white space
    or control characters, not starting with ``#`` (a comment)."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise UserDatabaseError(f"user name must be 1 to {MAX_NAME_LENGTH} characters")
    if name.startswith("#") or ":" in name:
        raise UserDatabaseError("user name must not contain ':' or start with '#'")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise UserDatabaseError("user name must not contain spaces or control characters")


def validate_password(password: Secret) -> None:
    """Passwords must be non-empty and free of NUL (the SASL PLAIN separator,
    RFC 4616 §2), so every stored password can be used with every mechanism."""
    if not password.value:
        raise UserDatabaseError("password must not be empty")
    if b"\0" in password.value:
        raise UserDatabaseError("password must not contain NUL")


@dataclass(frozen=True, slots=True)
class UserEntry:
    """One user line: ``name:password_field[:extra]``."""

    name: str
    password_field: str  # "{SCHEME}data"
    extra: str | None = None  # everything after the second ':' (Dovecot fields)

    @property
    def scheme(self) -> str | None:
        """The ``{SCHEME}`` prefix, upper-cased, or None when there is none."""
        field = self.password_field
        if field.startswith("{") and "}" in field:
            return field[1:field.index("}")].upper()
        return None

    @property
    def hash_data(self) -> str:
        field = self.password_field
        return field[field.index("}") + 1:] if self.scheme is not None else field

    def to_line(self) -> str:
        line = f"{self.name}:{self.password_field}"
        return line if self.extra is None else f"{line}:{self.extra}"


FileLine = UserEntry | str  # str: a comment or blank line kept verbatim


def parse_users_file(text: str) -> list[FileLine]:
    """Parse the file; lines that are not ``name:password...`` are kept as text."""
    lines: list[FileLine] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or ":" not in raw:
            lines.append(raw)
            continue
        parts = raw.split(":", 2)
        extra = parts[2] if len(parts) == 3 else None
        lines.append(UserEntry(parts[0], parts[1], extra))
    return lines


Verifier = Callable[[str, bytes], bool]  # (hash data, password) -> matches


def _make_argon2_verifier(hasher: argon2.PasswordHasher) -> Verifier:
    def verify(hash_data: str, password: bytes) -> bool:
        try:
            return hasher.verify(hash_data, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False

    return verify


def typical_parameters(entries: Iterable[UserEntry]) -> argon2.Parameters | None:
    """The argon2 parameters of the first argon2id entry, if any."""
    for entry in entries:
        if entry.scheme == ARGON2ID_SCHEME:
            try:
                return argon2.extract_parameters(entry.hash_data)
            except argon2.exceptions.InvalidHashError:
                continue
    return None


class PasswordChecker:
    """Password hashing and checking shared by every user store (this
    file, ``imapd.storage.postgres.users``): new hashes are argon2id with
    ``hasher``'s cost; stored entries are verified by their scheme
    (``imapd.accounts.schemes``). Thread-safe."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self.hasher = hasher or argon2.PasswordHasher()
        self._verifiers: dict[str, Verifier] = dict(schemes.VERIFIERS)
        self._verifiers[ARGON2ID_SCHEME] = _make_argon2_verifier(self.hasher)
        self._lock = threading.Lock()
        self._dummy_hash: str | None = None
        self._dummy_params: argon2.Parameters | None = None

    def new_field(self, password: Secret) -> str:
        """The ``{ARGON2ID}...`` password field of a new password."""
        return "{" + ARGON2ID_SCHEME + "}" + self.hasher.hash(password.value)

    def check(
        self, entry: UserEntry | None, password: Secret, typical: argon2.Parameters | None
    ) -> bool:
        """True when ``entry`` exists and ``password`` matches it. Unknown
        users and unsupported schemes still cost one argon2 verification,
        against a dummy hash made with ``typical`` parameters (those of the
        store's users, so it costs what a real check costs), else with
        those of new hashes."""
        verifier = self._verifiers.get(entry.scheme or "") if entry else None
        if entry is None or verifier is None:
            self._verifiers[ARGON2ID_SCHEME](self._dummy(typical), password.value)
            return False
        return verifier(entry.hash_data, password.value)

    def _dummy(self, params: argon2.Parameters | None) -> str:
        """A hash no password matches (made once per parameter set)."""
        with self._lock:
            if self._dummy_hash is None or params != self._dummy_params:
                hasher = argon2.PasswordHasher.from_parameters(params) if params else self.hasher
                self._dummy_hash = hasher.hash(os.urandom(16))
                self._dummy_params = params
            return self._dummy_hash


class UserDatabase:
    """Users and their password hashes, backed by ``path``.

    ``hasher`` sets the argon2id cost of *new* hashes (verification uses the
    parameters stored in each hash); tests pass a cheap one.
    """

    def __init__(self, path: Path, hasher: argon2.PasswordHasher | None = None) -> None:
        self.path = path
        self.checker = PasswordChecker(hasher)
        self.scram_path = path.with_name(SCRAM_FILE_NAME)
        self._scram_stamp: tuple[int, int, int] | None = None
        self._scram: dict[str, tuple[str, str]] = {}  # name -> (keys field, binding)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._lines: list[FileLine] = []

    @classmethod
    def in_data_dir(
        cls, data_dir: Path, hasher: argon2.PasswordHasher | None = None
    ) -> UserDatabase:
        return cls(data_dir / USERS_FILE_NAME, hasher)

    # --- reading -------------------------------------------------------------

    def names(self) -> list[str]:
        """User names in file order."""
        with self._lock:
            self._refresh()
            return [line.name for line in self._lines if isinstance(line, UserEntry)]

    def exists(self, name: str) -> bool:
        with self._lock:
            self._refresh()
            return self._find(name) is not None

    def password_field(self, name: str) -> str | None:
        """The current password field (re-read if the file changed)."""
        with self._lock:
            self._refresh()
            entry = self._find(name)
        return None if entry is None else entry.password_field

    def verify(self, name: str, password: Secret) -> bool:
        """True when ``name`` exists and ``password`` matches its hash.

        Blocking and deliberately slow. Unknown users and unsupported
        schemes still cost one argon2 verification against a dummy hash, so
        the answer time does not tell whether a user exists.
        """
        with self._lock:
            self._refresh()
            entry = self._find(name)
            typical = self._typical_parameters()
        return self.checker.check(entry, password, typical)

    def close(self) -> None:
        """Nothing to release: every call opens and closes the file."""

    # --- writing -------------------------------------------------------------

    def add(self, name: str, password: Secret) -> None:
        validate_name(name)
        validate_password(password)
        field = self._new_password_field(password)
        keys = derive_keys(password.value)
        with self._write_transaction() as lines:
            if any(isinstance(line, UserEntry) and line.name == name for line in lines):
                raise UserExists(f"user {name!r} already exists")
            lines.append(UserEntry(name, field))
            self._write_scram({name: (keys, field)})

    def set_password(self, name: str, password: Secret) -> None:
        validate_password(password)
        field = self._new_password_field(password)
        keys = derive_keys(password.value)
        with self._write_transaction() as lines:
            index = self._index_of(lines, name)
            entry = lines[index]
            assert isinstance(entry, UserEntry)
            lines[index] = replace(entry, password_field=field)
            self._write_scram({name: (keys, field)})

    def delete(self, name: str) -> None:
        with self._write_transaction() as lines:
            del lines[self._index_of(lines, name)]
            self._write_scram({name: (None, "")})

    def rename(self, old: str, new: str) -> None:
        """The entry keeps its password field and extra fields; the SCRAM
        keys move with it (their binding is to the password field only)."""
        validate_name(new)
        with self._write_transaction() as lines:
            index = self._index_of(lines, old)
            if any(isinstance(line, UserEntry) and line.name == new for line in lines):
                raise UserExists(f"user {new!r} already exists")
            entry = lines[index]
            assert isinstance(entry, UserEntry)
            lines[index] = replace(entry, name=new)
            self._scram_stamp = None
            self._refresh_scram()
            moved = {name: value for name, value in self._scram.items() if name != new}
            if old in moved:
                moved[new] = moved.pop(old)
            text = "".join(f"{n}:{keys}:{binding}\n" for n, (keys, binding) in moved.items())
            write_file_atomically(self.scram_path, text.encode("utf-8"))
            self._scram_stamp = None

    def import_entries(self, entries: list[UserEntry], replace_existing: bool) -> list[str]:
        """Add imported users (password fields already normalized by
        ``schemes.normalize_password_field``) in one atomic rewrite; return
        the names skipped because they exist (unless ``replace_existing``).
        Imported users have no SCRAM keys until their password is set."""
        for entry in entries:
            validate_name(entry.name)
        skipped: list[str] = []
        with self._write_transaction() as lines:
            index = {line.name: i for i, line in enumerate(lines) if isinstance(line, UserEntry)}
            for entry in entries:
                if entry.name in index and not replace_existing:
                    skipped.append(entry.name)
                elif entry.name in index:
                    lines[index[entry.name]] = entry
                else:
                    index[entry.name] = len(lines)
                    lines.append(entry)
        return skipped

    def scram_keys(self, name: str) -> ScramKeys | None:
        """The user's SCRAM-SHA-256 keys, if they exist and belong to the
        current password (see the module doc); None otherwise."""
        with self._lock:
            self._refresh()
            entry = self._find(name)
            self._refresh_scram()
            stored = self._scram.get(name)
        if entry is None or stored is None:
            return None
        keys_field, binding = stored
        if not hmac.compare_digest(binding, scram_binding(entry.password_field)):
            return None
        return ScramKeys.from_field(keys_field)

    # --- internals -----------------------------------------------------------

    def _new_password_field(self, password: Secret) -> str:
        return self.checker.new_field(password)

    def _typical_parameters(self) -> argon2.Parameters | None:
        """Of the first argon2id user in the file (see ``PasswordChecker``)."""
        return typical_parameters(line for line in self._lines if isinstance(line, UserEntry))

    def _find(self, name: str) -> UserEntry | None:
        for line in self._lines:
            if isinstance(line, UserEntry) and line.name == name:
                return line
        return None

    @staticmethod
    def _index_of(lines: list[FileLine], name: str) -> int:
        for index, line in enumerate(lines):
            if isinstance(line, UserEntry) and line.name == name:
                return index
        raise UnknownUser(f"no such user: {name!r}")

    def _refresh(self) -> None:
        """Reload the file if it changed since we last read it (caller holds
        ``_lock``). The stamp includes the inode: every rewrite is a rename."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._lines = None, []
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._lines = parse_users_file(self.path.read_text(encoding="utf-8"))
            self._stamp = stamp

    def _refresh_scram(self) -> None:
        try:
            st = os.stat(self.scram_path)
        except FileNotFoundError:
            self._scram_stamp, self._scram = None, {}
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._scram_stamp:
            self._scram = parse_scram_file(self.scram_path.read_text(encoding="utf-8"))
            self._scram_stamp = stamp

    def _write_scram(self, changes: dict[str, tuple[ScramKeys | None, str]]) -> None:
        """Update ``users.scram`` (caller holds the write lock). Written
        before ``users.passwd``: until that rename the binding refers to
        the new password field, which does not exist yet, so the new keys
        are inert; afterwards the old keys' binding no longer matches."""
        self._scram_stamp = None
        self._refresh_scram()
        current = dict(self._scram)
        for name, (keys, field) in changes.items():
            if keys is None:
                current.pop(name, None)
            else:
                current[name] = (keys.to_field(), scram_binding(field))
        text = "".join(f"{name}:{keys}:{binding}\n" for name, (keys, binding) in current.items())
        write_file_atomically(self.scram_path, text.encode("utf-8"))
        self._scram_stamp = None

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[list[FileLine]]:
        """Lock, read the current file, let the caller edit the lines, and
        write them back atomically. Nothing is written if the caller raises."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(lock_fd, "r+b") as lock_file, self._lock:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            self._stamp = None
            self._refresh()
            lines = list(self._lines)
            yield lines
            text = "".join(
                (line.to_line() if isinstance(line, UserEntry) else line) + "\n"
                for line in lines
            )
            write_file_atomically(self.path, text.encode("utf-8"))
            self._stamp = None


def hasher_from_spec(spec: str) -> argon2.PasswordHasher:
    """``t=ITERATIONS,m=KIB,p=LANES`` (any subset; the rest from argon2-cffi's
    defaults, RFC 9106's low-memory profile) -> a hasher for new passwords.
    Raise ``UserDatabaseError`` on a malformed or unusable spec."""
    names = {"t": "time_cost", "m": "memory_cost", "p": "parallelism"}
    params: dict[str, int] = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in names or not value.strip().isdigit():
            raise UserDatabaseError(f"argon2 parameters: expected t=N,m=KIB,p=N, got {spec!r}")
        params[names[key.strip()]] = int(value)
    try:
        hasher = argon2.PasswordHasher(**params)  # type: ignore[arg-type]
        hasher.hash(b"probe")
    except (argon2.exceptions.HashingError, ValueError, TypeError) as error:
        raise UserDatabaseError(f"argon2 parameters {spec!r} are unusable: {error}") from None
    return hasher


def scram_binding(password_field: str) -> str:
    """Ties SCRAM keys to one password field (a fresh argon2 salt each time)."""
    return hashlib.sha256(password_field.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def parse_scram_file(text: str) -> dict[str, tuple[str, str]]:
    keys: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) == 3 and parts[0]:
            keys[parts[0]] = (parts[1], parts[2])
    return keys


def write_file_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new
    content, never a mix, and the new content survives a crash once this
    returns: temp file in the same directory, fsync, rename, fsync dir."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as temp_file:
            os.fchmod(temp_file.fileno(), mode)
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
