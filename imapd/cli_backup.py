"""``imapd backup DIR`` and ``imapd restore DIR``: a consistent copy of a
data directory taken while the server runs, and putting it back.

What a backup holds (docs/operations.md § Backup): the mail store
(``mail.sqlite3``, copied through SQLite's online backup API as of one
commit, ``imapd.storage.sqlite.backup``), the users files (``users.passwd``,
``users.scram``: each is replaced atomically by every change, so one read
is one consistent version) and the TLS material in ``tls/``. Not copied:
``spool/`` (literals of commands in progress), the disk-space reserve files,
SQLite's ``-wal``/``-shm`` (the copy is self-contained), the admin socket.
``manifest.json`` lists each file with its size and SHA-256 and is written
last: a directory without it is an interrupted backup, which ``restore``
refuses. A PostgreSQL store is backed up with ``pg_dump`` instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from twisted.python import usage

from imapd import __version__
from imapd.cli_serve import StoreOptions, resolve_data_dir
from imapd.net.admin import sockets_of
from imapd.storage.sqlite import backup as engine
from imapd.storage.sqlite.schema import DB_FILENAME, SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "imapd-backup/1"
USER_FILES = ("users.passwd", "users.scram")  # imapd.accounts.users
TLS_DIR = "tls"  # imapd.net.tls.TLS_DIR_NAME
_HASH_CHUNK = 1 << 20
PG_DUMP_HINT = ("the store is PostgreSQL: back it up with pg_dump -Fc and restore with "
                "pg_restore (docs/operations.md § Backup)")


class BackupError(Exception):
    """One line for the operator; exit status 1."""


class _Options(StoreOptions):
    def parseArgs(self, *args: str) -> None:
        if len(args) != 1:
            raise usage.UsageError("give exactly one backup directory DIR")
        self["dir"] = Path(args[0])

class BackupOptions(_Options):
    """``imapd backup DIR``: copy the data directory's store, users and TLS
    files into the new (or empty) directory DIR, while the server runs."""

    synopsis = "DIR [--data D] [--store URL]"


class RestoreOptions(_Options):
    """``imapd restore DIR --data D``: put a backup back. Refused while a
    server has D open, and into a non-empty D unless --force."""

    synopsis = "DIR --data D [--force]"
    optFlags = [["force", None, "replace the store, users and TLS files of a non-empty D"]]


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the backup directory, '/'-separated
    size: int
    sha256: str


def run_backup(options: BackupOptions) -> int:
    if _is_postgres(options["store"]):
        print(f"imapd backup: {PG_DUMP_HINT}", file=sys.stderr)
        return 2
    try:
        entries = make_backup(resolve_data_dir(options["data"]), options["dir"])
    except (BackupError, engine.BackupError, OSError) as error:
        print(f"imapd backup: {_one_line(error)}", file=sys.stderr)
        return 1
    total = sum(entry.size for entry in entries)
    print(f"imapd: backed up {len(entries)} files ({total} bytes) into {options['dir']}")
    return 0


def run_restore(options: RestoreOptions) -> int:
    if _is_postgres(options["store"]):
        print(f"imapd restore: {PG_DUMP_HINT}", file=sys.stderr)
        return 2
    data = resolve_data_dir(options["data"])
    try:
        entries = restore_backup(options["dir"], data, bool(options["force"]))
    except (BackupError, engine.BackupError, OSError) as error:
        print(f"imapd restore: {_one_line(error)}", file=sys.stderr)
        return 1
    print(f"imapd: restored {len(entries)} files from {options['dir']} into {data}")
    return 0


def _is_postgres(store: str) -> bool:
    from imapd.app import store_of
    from imapd.core.config import Config

    return store_of(Config(store=store)).is_postgres


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


# --- backup ---------------------------------------------------------------------

def make_backup(data: Path, target: Path) -> list[Entry]:
    """Copy ``data`` into the new or empty directory ``target``; the
    manifest goes last (see the module docstring)."""
    if not (data / DB_FILENAME).is_file():
        raise BackupError(f"no store in {data} ({DB_FILENAME} is missing)")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not an empty directory")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = target / (DB_FILENAME + ".partial")
    schema = engine.copy_database(data / DB_FILENAME, partial)
    partial.rename(target / DB_FILENAME)
    names = [DB_FILENAME]
    for name in USER_FILES:
        if _copy_file(data / name, target / name):
            names.append(name)
    tls = data / TLS_DIR
    if tls.is_dir():
        (target / TLS_DIR).mkdir(mode=0o700, exist_ok=True)
        for item in sorted(tls.iterdir()):
            # ".lock" and other dot files are start-up locks, not material.
            if item.is_file() and not item.name.startswith("."):
                _copy_file(item, target / TLS_DIR / item.name)
                names.append(f"{TLS_DIR}/{item.name}")
    entries = [_describe(target, name) for name in names]
    _write_manifest(target, schema, entries)
    return entries


def _copy_file(source: Path, target: Path) -> bool:
    """Copy one small file, owner-only, fsynced; False if it is missing."""
    try:
        content = source.read_bytes()
    except FileNotFoundError:
        return False
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    return True


def _describe(root: Path, name: str) -> Entry:
    digest = hashlib.sha256()
    size = 0
    with open(root / name, "rb") as source:
        while chunk := source.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Entry(name, size, digest.hexdigest())


def _write_manifest(target: Path, schema: int, entries: list[Entry]) -> None:
    manifest = {
        "format": MANIFEST_FORMAT,
        "imapd_version": __version__,
        "store": "sqlite",
        "schema_version": schema,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries],
    }
    partial = target / (MANIFEST_NAME + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(manifest, indent=2) + "\n")
    engine.fsync_file(partial)
    partial.rename(target / MANIFEST_NAME)
    for directory in {target, target / TLS_DIR}:
        if directory.is_dir():
            engine.fsync_directory(directory)


# --- restore --------------------------------------------------------------------

def read_manifest(source: Path) -> tuple[int, list[Entry]]:
    """(schema version, files) of the backup in ``source``, every file
    checked against its size and SHA-256; ``BackupError`` otherwise."""
    try:
        manifest = json.loads((source / MANIFEST_NAME).read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT:
            raise BackupError(f"{source / MANIFEST_NAME}: not an imapd backup manifest")
        schema = int(manifest["schema_version"])
        entries = [Entry(str(f["path"]), int(f["size"]), str(f["sha256"]))
                   for f in manifest["files"]]
    except FileNotFoundError:
        raise BackupError(f"{source}: no {MANIFEST_NAME} (not a backup, or an interrupted one)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BackupError(f"{source / MANIFEST_NAME}: unreadable manifest ({error})") from None
    if schema > SCHEMA_VERSION:
        raise BackupError(f"the backup's schema version {schema} is newer than this imapd's "
                          f"({SCHEMA_VERSION}): restore it with a newer imapd")
    for entry in entries:
        _check_entry(source, entry)
    if DB_FILENAME not in {entry.path for entry in entries}:
        raise BackupError(f"{source}: the manifest lists no {DB_FILENAME}")
    return schema, entries


def _check_entry(source: Path, entry: Entry) -> None:
    parts = entry.path.split("/")
    allowed = (entry.path in (DB_FILENAME, *USER_FILES)
               or (len(parts) == 2 and parts[0] == TLS_DIR and parts[1] not in ("", ".", "..")))
    if not allowed:
        raise BackupError(f"{source / MANIFEST_NAME}: unexpected file {entry.path!r}")
    try:
        actual = _describe(source, entry.path)
    except FileNotFoundError:
        raise BackupError(f"{source / entry.path}: missing") from None
    if (actual.size, actual.sha256) != (entry.size, entry.sha256):
        raise BackupError(f"{source / entry.path}: does not match the manifest "
                          f"(size {actual.size}, expected {entry.size}; or its SHA-256)")


def server_running(data: Path) -> str | None:
    """Why we think a server (or any process) has ``data`` open, or None.
    Two tests, either is enough: an admin socket of the data directory
    (``imapd.net.admin``: ``admin.sock``, ``admin-PID.sock``) accepts a
    connection, or some process holds the SQLite store open
    (``engine.store_in_use``: also a server started without its socket)."""
    for path in sockets_of(data):
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as probe:
            probe.settimeout(2.0)
            with contextlib.suppress(OSError):
                probe.connect(str(path))
                return f"a server answers on {path}"
    if engine.store_in_use(data):
        return f"a process has the store {data / DB_FILENAME} open"
    return None


def restore_backup(source: Path, data: Path, force: bool) -> list[Entry]:
    """Check the backup, then replace ``data``'s files with it."""
    _, entries = read_manifest(source)
    _, problem = engine.check_database(source / DB_FILENAME)
    if problem:
        raise BackupError(f"{source / DB_FILENAME}: {problem}")
    if data.is_dir():
        running = server_running(data)
        if running:
            raise BackupError(f"{running}: stop the server before restoring into {data}")
        if any(data.iterdir()) and not force:
            raise BackupError(f"{data} is not empty (--force replaces its store, users and TLS files)")
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    names = {entry.path for entry in entries}
    if any(name.startswith(TLS_DIR + "/") for name in names):
        (data / TLS_DIR).mkdir(mode=0o700, exist_ok=True)
    # A -wal or -shm left from the replaced store would be applied to the
    # restored one when it is opened: remove them before it takes the name.
    for suffix in (engine.WAL_SUFFIX, engine.SHM_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            (data / (DB_FILENAME + suffix)).unlink()
    for name in USER_FILES:
        if name not in names:  # e.g. SCRAM keys of the replaced users
            with contextlib.suppress(FileNotFoundError):
                (data / name).unlink()
    for entry in entries:
        _install(source / entry.path, data / entry.path)
    engine.fsync_directory(data)
    if (data / TLS_DIR).is_dir():
        engine.fsync_directory(data / TLS_DIR)
    return entries


def _install(source: Path, target: Path) -> None:
    """Copy under a temporary name, fsync, then rename over ``target``."""
    partial = target.with_name(target.name + ".restoring")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as inp:
        shutil.copyfileobj(inp, out, _HASH_CHUNK)
        out.flush()
        os.fsync(out.fileno())
    partial.rename(target)
