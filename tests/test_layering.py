"""The layering of docs/architecture.md, enforced on the source (AST).

Each module may import only from its own layer or lower ones, and only the
server layer and the CLI may import ``twisted.internet`` (so everything
below can be tested with plain values, no reactor).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "imapd"

# Higher number = higher layer. Keys are module-name prefixes; the longest
# matching prefix decides.
RANKS: dict[str, int] = {
    "imapd": 0,                  # __init__
    "imapd.core": 0,             # config, errors, model, spool: shared value types
    "imapd.imap.wire": 1,        # pure IMAP framing, parsing, encoding
    "imapd.message": 2,          # pure MIME analysis (builds wire.values trees)
    "imapd.accounts": 2,         # users, password schemes, SCRAM, penalties, Authenticator
    "imapd.mail": 3,             # the mail core: backend contract, service, watch
    "imapd.storage": 4,          # storage engines (memory, sqlite) behind mail.backend
    "imapd.imap.session": 5,     # per-connection IMAP state, selected views
    "imapd.imap.commands": 6,    # handlers, registry, dispatcher
    "imapd.imap.capabilities": 6,
    "imapd.imap": 6,
    "imapd.lmtp": 6,             # LMTP delivery (RFC 2033), I/O-free
    "imapd.pop3": 6,             # POP3 (RFC 1939), I/O-free
    "imapd.importer": 6,         # `imapd import`: Maildir/mbox into the mail core
    "imapd.migrate": 6,          # `imapd migrate`: another IMAP server's mail through the mail core
    "imapd.net": 7,              # Twisted: connections, listeners, TLS, runtime
    "imapd.app": 8,              # composition root
    "imapd.cli": 9,
    "imapd.cli_backup": 9,       # `imapd backup` / `imapd restore`
    "imapd.cli_doctor": 9,       # `imapd doctor`
    "imapd.cli_status": 9,       # `imapd status` (the admin socket)
    "imapd.cli_migrate": 9,      # `imapd migrate`
    "imapd.cli_import": 9,       # `imapd import maildir|mbox`
    "imapd.cli_quota": 9,        # `imapd user quota` (split from cli.py)
    "imapd.cli_user": 9,         # `imapd user del` / `user rename`: entry, sessions, mail
    "imapd.cli_serve": 9,        # `imapd serve` options, shared with twistd
    "imapd.cli_config": 9,       # `imapd config check`
    "imapd.config_file": 9,      # the TOML configuration file (keys from ServeOptions)
    "imapd.__main__": 9,
    "imapd.testing": 9,          # the client-developer test kit: a whole server in-process (issue 19)
    # `imapd conformance`: a client-side tool (the imaptest-format runner); it talks
    # IMAP over a socket to any server and imports none of ours (FORBIDDEN below)
    "imapd.conformance": 9,
    "imapd.cli_conformance": 9,
}
PURE_LAYERS = ("imapd.imap.wire", "imapd.message")
MAY_IMPORT_TWISTED_INTERNET = ("imapd.net", "imapd.app", "imapd.cli", "imapd.cli_serve",
                               "imapd.testing")  # runs the server on its own reactor thread
# Beyond the ranks: protocols never reach past the mail core into a storage
# engine, and storage engines know no protocol.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "imapd.imap": ("imapd.storage",),
    "imapd.pop3": ("imapd.storage", "imapd.imap.commands", "imapd.imap.session"),
    "imapd.storage": ("imapd.imap", "imapd.net", "imapd.pop3", "imapd.lmtp", "imapd.admin"),
    "imapd.mail": ("imapd.storage", "imapd.imap", "imapd.net"),
    # only itself, the standard library and at most the pure wire layer
    "imapd.conformance": ("imapd.net", "imapd.storage", "imapd.mail", "imapd.app", "imapd.accounts",
                          "imapd.imap.session", "imapd.imap.commands", "imapd.pop3", "imapd.lmtp",
                          "imapd.cli", "imapd.testing", "imapd.core"),
}


def layer_of(module: str) -> str:
    matches = [p for p in RANKS if module == p or module.startswith(p + ".")]
    return max(matches, key=len)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import statement, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_sources_found() -> None:
    names = {module_name(p) for p in SOURCES}
    assert {"imapd.net.imap_connection", "imapd.imap.commands.dispatch", "imapd.cli"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_respect_layers(path: Path) -> None:
    me = module_name(path)
    my_layer = layer_of(me)
    problems = []
    for line, target in imports_of(path):
        if target.startswith("twisted.internet") and not me.startswith(MAY_IMPORT_TWISTED_INTERNET):
            problems.append(f"line {line}: {target} (only net/, app and cli may use the reactor)")
        if target == "imapd" or not target.startswith("imapd."):
            continue
        for prefix, banned in FORBIDDEN.items():
            if me.startswith(prefix + ".") and target.startswith(banned):
                problems.append(f"line {line}: {target} (forbidden for {prefix})")
        target_layer = layer_of(target)
        if RANKS[target_layer] > RANKS[my_layer]:
            problems.append(f"line {line}: {target} is above {my_layer}")
        if my_layer in PURE_LAYERS and target_layer in PURE_LAYERS and target_layer != my_layer:
            if RANKS[target_layer] >= RANKS[my_layer]:
                problems.append(f"line {line}: {target} is a sibling pure layer")
    assert problems == [], f"{me}: " + "; ".join(problems)


def test_the_check_catches_violations(tmp_path: Path) -> None:
    """The scanner must see nested and relative imports, or it proves nothing."""
    source = "def f():\n    from ...net import imap_connection\n    import twisted.internet.reactor\n"
    probe = tmp_path / "imapd" / "imap" / "wire" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(source)
    global ROOT
    saved = ROOT
    ROOT = tmp_path
    try:
        tree_imports = [t for _, t in imports_of(probe)]
    finally:
        ROOT = saved
    assert "imapd.net.imap_connection" in tree_imports
    assert "twisted.internet.reactor" in tree_imports
    assert RANKS[layer_of("imapd.net.imap_connection")] > RANKS[layer_of("imapd.imap.wire.probe")]


def test_conformance_runner_is_client_only() -> None:
    """``imapd conformance`` checks other servers: its runner imports only itself,
    the standard library and the pure wire layer, never the server or Twisted
    (the package's ``__init__`` too, which FORBIDDEN's prefix match skips)."""
    problems = []
    for path in sorted((PACKAGE / "conformance").rglob("*.py")):
        for line, target in imports_of(path):
            ours = target == "imapd" or target.startswith("imapd.")
            if ours and not target.startswith(("imapd.conformance", "imapd.imap.wire")):
                problems.append(f"{module_name(path)} line {line}: {target}")
            if target.startswith("twisted"):
                problems.append(f"{module_name(path)} line {line}: {target} (no reactor in a client tool)")
    assert problems == []
