"""``imapd conformance HOST PORT``: run imaptest-format conformance scripts
against any IMAP server (imapd, Dovecot, the one you are writing).

The scripts shipped with imapd (``imapd/conformance/scripts``: RFC 3501 and
the extensions imapd offers) run unless ``--no-own-scripts``; ``--scripts
DIR`` (repeatable) adds directories of scripts in the same format, e.g.
Dovecot's imaptest set. ``--only NAME`` (repeatable) runs just those.
Prints one table row per script as it finishes (script, result, seconds,
first failure), then every failure in full, then the totals. ``--junit
FILE`` also writes JUnit XML.

Exit status: 0 when no script failed (skips, for a capability the server
lacks, are shown but are not failures), 1 when one failed, 2 for a mistake
of the operator (bad arguments, server unreachable, login refused), reported
in one line.

The scripts create, fill and delete mailboxes named ``imaptest*`` and one
renames INBOX: use a test account. The password: ``--password-file FILE``
or ``$IMAPD_CONFORMANCE_PASSWORD`` keep it out of ``ps``; ``--password`` is
the convenient form for throw-away accounts; default ``pass`` (imaptest's).
"""

from __future__ import annotations

import os
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from twisted.python import usage

from imapd.conformance import OWN_SCRIPTS_DIR, Outcome, RunnerConfig, Totals, list_script_files, run_script_file
from imapd.conformance.executor import default_trace
from imapd.conformance.probe import ServerUnusable, check_server
from imapd.conformance.summary import ScriptRun, junit_xml, table_header, table_row, totals_line

PASSWORD_ENV = "IMAPD_CONFORMANCE_PASSWORD"
DEFAULT_PASSWORD = "pass"


class ConformanceOptions(usage.Options):
    """``imapd conformance HOST PORT [options]``."""

    synopsis = ("HOST PORT [--scripts DIR]... [--only NAME]... [--user U] [--password-file F] [--user2 U2] "
                "[--junit FILE] [--tls|--starttls [--cafile F|--insecure]]")
    optFlags = [
        ["no-own-scripts", None, "do not run the scripts shipped with imapd (only --scripts DIRs)"],
        ["tls", None, "implicit TLS from the first byte (IMAPS, e.g. port 993)"],
        ["starttls", None, "STARTTLS after the greeting, before logging in"],
        ["insecure", None, "with --tls/--starttls: accept any certificate (a self-signed test server)"],
        ["trace", None, "print every line sent and received on stderr"],
    ]
    optParameters = [
        ["user", None, "testuser", "the main test account"],
        ["user2", None, None, "a second account, for scripts that use two users (else they are skipped)"],
        ["password", None, None, f"password of the accounts (visible in ps: prefer --password-file or "
                                 f"${PASSWORD_ENV}; default {DEFAULT_PASSWORD})"],
        ["password-file", None, None, "read the password from the first line of FILE"],
        ["mailbox", None, "imaptest", "the test mailbox; the scripts also use names starting with it"],
        ["timeout", None, "15", "seconds to wait for each response"],
        ["junit", None, None, "also write JUnit XML to FILE"],
        ["cafile", None, None, "with --tls/--starttls: trust the CA certificates in this PEM file"],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["scripts"] = []
        self["only"] = []

    def opt_scripts(self, directory: str) -> None:
        """a directory of imaptest-format scripts to run too (repeatable)"""
        self["scripts"].append(directory)

    def opt_only(self, name: str) -> None:
        """run only the script NAME (repeatable)"""
        self["only"].append(name)

    def parseOptions(self, options: list[str] | None = None) -> None:
        """HOST PORT may come first, as the synopsis shows: getopt (which
        twisted.python.usage uses) stops at the first positional argument, so
        the positionals are moved after the options before parsing."""
        argv = list(sys.argv[1:] if options is None else options)
        super().parseOptions(_options_first(argv, self._takes_value))  # type: ignore[no-untyped-call]

    def _takes_value(self, name: str) -> bool:
        """Whether ``--name`` (or an unambiguous prefix, as getopt allows) needs a value."""
        takes = {str(row[0]) for row in self.optParameters} | {"scripts", "only"}
        candidates = [option for option in takes | {str(row[0]) for row in self.optFlags} if option.startswith(name)]
        return bool(candidates) and all(option in takes for option in candidates)

    def parseArgs(self, *args: str) -> None:
        if len(args) != 2:
            raise usage.UsageError("give HOST PORT")
        host, port = args
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise usage.UsageError(f"bad port {port!r}: give a number from 1 to 65535")
        self["host"], self["port"] = host, int(port)

    def postOptions(self) -> None:
        for directory in self["scripts"]:
            if not Path(directory).is_dir():
                raise usage.UsageError(f"--scripts {directory}: no such directory")
        if self["tls"] and self["starttls"]:
            raise usage.UsageError("give --tls or --starttls, not both")
        if (self["insecure"] or self["cafile"]) and not (self["tls"] or self["starttls"]):
            raise usage.UsageError("--insecure and --cafile only apply with --tls or --starttls")
        try:
            self["timeout"] = float(self["timeout"])
        except ValueError:
            raise usage.UsageError(f"--timeout {self['timeout']}: not a number of seconds") from None
        if not self["timeout"] > 0:
            raise usage.UsageError("--timeout must be above 0")
        self["password"] = self._password()
        if self["junit"] and not Path(self["junit"]).resolve().parent.is_dir():
            raise usage.UsageError(f"--junit {self['junit']}: its directory does not exist")
        if self["no-own-scripts"] and not self["scripts"]:
            raise usage.UsageError("--no-own-scripts leaves nothing to run: give --scripts DIR")

    def _password(self) -> str:
        if self["password"] is not None and self["password-file"]:
            raise usage.UsageError("give --password or --password-file, not both")
        if self["password-file"]:
            try:
                return Path(self["password-file"]).read_text(encoding="utf-8").split("\n", 1)[0].rstrip("\r")
            except (OSError, UnicodeDecodeError) as error:
                raise usage.UsageError(f"--password-file {self['password-file']}: {error}") from None
        if self["password"] is not None:
            return str(self["password"])
        return os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD)


def _options_first(argv: list[str], takes_value: Callable[[str], bool]) -> list[str]:
    """``argv`` with its options (and their values) before its positional arguments."""
    options: list[str] = []
    positionals: list[str] = []
    pending_value = False
    for index, word in enumerate(argv):
        if pending_value:
            options.append(word)
            pending_value = False
        elif word == "--":
            positionals += argv[index + 1:]
            break
        elif word.startswith("--") and len(word) > 2:
            options.append(word)
            pending_value = "=" not in word and takes_value(word[2:])
        else:
            positionals.append(word)
    return options + ["--"] + positionals


def runner_config(options: ConformanceOptions) -> RunnerConfig:
    security: Literal["plain", "tls", "starttls"] = (
        "tls" if options["tls"] else "starttls" if options["starttls"] else "plain")
    context = None
    if security != "plain":
        context = ssl.create_default_context(cafile=options["cafile"])
        if options["insecure"]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return RunnerConfig(
        host=options["host"], port=options["port"], user=options["user"], user2=options["user2"],
        password=options["password"], mailbox=options["mailbox"], timeout=options["timeout"],
        trace=default_trace if options["trace"] else None, security=security, tls_context=context)


def select_scripts(options: ConformanceOptions) -> list[tuple[str, Path]]:
    """(suite, path) of every script to run, in order; UsageError when ``--only`` names none."""
    sets = [] if options["no-own-scripts"] else [("own", OWN_SCRIPTS_DIR)]
    if not options["no-own-scripts"] and not OWN_SCRIPTS_DIR.is_dir():
        # An install without the package data (a broken build or packaging).
        raise usage.UsageError(
            f"the own scripts are not installed ({OWN_SCRIPTS_DIR} is missing); "
            "reinstall imapd, or give --no-own-scripts --scripts DIR")
    sets += [(directory, Path(directory)) for directory in options["scripts"]]
    chosen = [(suite, path) for suite, directory in sets for path in list_script_files(directory)]
    if options["only"]:
        unknown = sorted(set(options["only"]) - {path.name for _, path in chosen})
        if unknown:
            raise usage.UsageError(f"--only: no script named {', '.join(unknown)}")
        chosen = [(suite, path) for suite, path in chosen if path.name in options["only"]]
    return chosen


def run_conformance(options: ConformanceOptions) -> int:
    config = runner_config(options)
    target = f"{config.host}:{config.port}"
    try:
        scripts = select_scripts(options)
        check_server(config)
    except (usage.UsageError, ServerUnusable) as error:
        print(f"imapd conformance: {error}", file=sys.stderr)
        return 2
    runs = _run_all(scripts, config)
    failed = [run for run in runs if run.result.outcome is Outcome.FAILED]
    for run in failed:
        print(f"\n{run.suite}: {run.result.format()}")
    totals = Totals()
    for run in runs:
        totals.add(run.result)
    print(f"\n{totals_line(runs)} against {target}")
    print(totals.format().rsplit("\n", 1)[0])  # imaptest's wording, for comparison with imaptest runs
    if options["junit"]:
        try:
            Path(options["junit"]).write_bytes(junit_xml(runs, target))
        except OSError as error:
            print(f"imapd conformance: --junit {options['junit']}: {error.strerror or error}", file=sys.stderr)
            return 2
    return 1 if failed else 0


def _run_all(scripts: list[tuple[str, Path]], config: RunnerConfig) -> list[ScriptRun]:
    """Run the scripts one after another, printing each row as its script ends (progress)."""
    width = max([len("script")] + [len(path.name) for _, path in scripts])
    print(table_header(width), flush=True)
    runs: list[ScriptRun] = []
    for suite, path in scripts:
        started = time.monotonic()
        result = run_script_file(path, config)
        run = ScriptRun(suite, result, time.monotonic() - started)
        runs.append(run)
        print(table_row(run, width), flush=True)
    return runs
