"""An ``imapd`` command another unix account can run, as an installed
``/usr/local/bin/imapd`` would be: for tests whose imapd runs as someone
else than root (Postfix's ``mailbox_command`` runs as the recipient; a
server started by an unprivileged account).

The checkout and its venv may be out of that account's reach: pyenv's
Python lives under root's 0700 home, and CI may clone under it too. Then
the launcher runs the system Python of the same version on a hard-linked
copy of the package and the venv's site-packages in a world-readable
temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from tests.support.server import REPO_ROOT


@contextlib.contextmanager
def imapd_launcher(account: str) -> Iterator[Path]:
    """An ``imapd`` command that the unix ``account`` can run (local(8) runs
    ``mailbox_command`` as the recipient), like an installed
    ``/usr/local/bin/imapd``: this venv's Python when ``account`` may execute
    it, else (a venv made from a Python under root's 0700 home, as pyenv's
    in /root) the system Python of the same version, given this venv's
    site-packages. Fails when neither runs as ``account``."""
    directory = Path(tempfile.mkdtemp(prefix="imapd-launch-"))
    os.chmod(directory, 0o755)
    launcher = directory / "imapd"
    try:
        for script in _launcher_scripts(directory):
            launcher.write_text(script)
            os.chmod(launcher, 0o755)
            probe = subprocess.run(["runuser", "-u", account, "--", str(launcher), "--version"],
                                   capture_output=True, text=True, timeout=60)
            if probe.returncode == 0:
                break
        else:
            raise RuntimeError(f"no Python that {account} may run imapd with: {probe.stderr}")
        yield launcher
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _launcher_scripts(directory: Path) -> Iterator[str]:
    """Candidates, tried in order (each later one only if the one before
    cannot run as the account); see ``imapd_launcher``."""
    # This checkout's imapd (as the server subprocesses run it), not
    # whichever one the venv was installed from.
    path = f"PYTHONPATH={REPO_ROOT}; export PYTHONPATH\n"
    yield f'#!/bin/sh\n{path}exec {sys.executable} -m imapd "$@"\n'
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    site = next((p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)), None)
    if not system.exists() or site is None:
        return
    # -S: no automatic site, so Debian's dist-packages (an older
    # cryptography, say) never shadows the venv's packages added here.
    code = ("import runpy, site; site.addsitedir({site!r}); "
            "runpy.run_module('imapd', run_name='__main__', alter_sys=True)")
    yield f'#!/bin/sh\n{path}exec {system} -S -c "{code.format(site=site)}" "$@"\n'
    # The checkout itself is out of reach (e.g. cloned under root's 0700
    # home): a linked copy of imapd and the venv's packages next to the
    # launcher (hard links, so no 200 MB copy on one file system).
    readable_site = directory / "site-packages"
    _link_tree(Path(site), readable_site)
    _link_tree(REPO_ROOT / "imapd", directory / "code" / "imapd")
    for tree in (directory, *directory.rglob("*")):
        if tree.is_dir():
            os.chmod(tree, 0o755)
    path = f"PYTHONPATH={directory / 'code'}; export PYTHONPATH\n"
    yield f'#!/bin/sh\n{path}exec {system} -S -c "{code.format(site=str(readable_site))}" "$@"\n'


def _link_tree(source: Path, target: Path) -> None:
    """``source`` as a tree of hard links (copies across file systems)."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
