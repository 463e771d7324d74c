"""The test kit as a client author gets it: a fresh virtualenv, ``pip install
'imapd[testing]'``, a small project of their own, pytest (issue 19, "Done when").

The project's files are the code blocks of docs/testing-clients.md: each
Python block there follows a caption line ``File `NAME`:``, and blocks with
the same name are joined in order. So the documentation is what runs here,
and a block that stops working fails this test. The project is:

* tests that use stdlib ``imaplib``, ``imapclient`` and ``aioimaplib`` against
  the ``imap_server`` fixture and check the result in the store;
* a test whose first connection is closed at FETCH (a fault), so the
  client's reconnect routine must recover;
* a deliberately wrong client (a synchronizing literal sent without waiting
  for ``+``) whose test must FAIL, naming RFC 3501 §7.5, with the session's
  transcript attached and the password replaced by ``***``;
* a script that runs ``imapd conformance`` against the kit's ``TestServer``
  (the shipped conformance scripts must be in the wheel and pass).

imapd is built into a wheel from a copy of the working tree (not the
checkout itself: setuptools would write build/ and egg-info into the shared
tree) and installed non-editable with the extra, with pip's cache, as a
user's ``pip install`` would. pytest then runs with the fresh venv's Python
from a directory outside the repository, so ``import imapd`` can only find
the installed copy. One build and one run serve every test of this module.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "testing-clients.md"
# What the build needs from the checkout (pyproject.toml's package list).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "imapd", "twisted")
# The client libraries of the client author's project (test-only, from PyPI,
# into the fresh venv only; docs/dependencies.md).
CLIENT_LIBRARIES = ("imapclient", "aioimaplib")
# The password of the wrong client's test: it must appear nowhere in pytest's
# output (the transcript shows *** instead).
SECRET = "wonderland"
# The doc's script that runs `imapd conformance` against the kit's TestServer.
CONFORMANCE_SCRIPT = "conformance_check.py"

# A project file: the visible caption "File `NAME`:" right above its block; a
# shown output: "<!-- output: TEST FILE -->" right above a text block.
_MARKED = re.compile(r"^(?:File `(?P<file>[\w./-]+)`:|<!-- output: (?P<output>[\w./-]+) -->)\n"
                     r"```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
_FENCE = re.compile(r"^```(?P<lang>\w+)\n", re.MULTILINE)


def project_files(markdown: str) -> dict[str, str]:
    """The client author's project as docs/testing-clients.md shows it: name
    -> text, every block captioned ``File `NAME`:`` joined in order."""
    files: dict[str, str] = {}
    for block in _MARKED.finditer(markdown):
        if block["file"]:
            name = block["file"]
            files[name] = files.get(name, "") + ("\n\n" if name in files else "") + block["body"]
    return files


def shown_outputs(markdown: str) -> list[tuple[str, str]]:
    """(test file, excerpt) for every block marked ``<!-- output: FILE -->``:
    what the doc says pytest prints for that file's tests."""
    return [(block["output"], block["body"]) for block in _MARKED.finditer(markdown) if block["output"]]


def unchecked_blocks(markdown: str) -> list[str]:
    """The languages of code blocks no test runs or compares: every block
    must be a project file, a shown output, or the one ``sh`` install line."""
    fences = [fence["lang"] for fence in _FENCE.finditer(markdown)]
    for block in _MARKED.finditer(markdown):
        fences.remove(block["lang"])
    fences.remove("sh")  # the install line: install_command() reads it, build_and_run() runs it
    return fences


def excerpt_pattern(line: str) -> re.Pattern[str]:
    """One line of a shown output: literal text, ``...`` standing for anything."""
    return re.compile(".*?".join(re.escape(part) for part in line.strip().split("...")))


def missing_excerpt_line(excerpt: str, output: str) -> str | None:
    """The first line of ``excerpt`` that ``output`` does not contain in
    order after the lines before it (None: all found); lines that are only
    ``...`` are skipped."""
    position = 0
    for line in excerpt.splitlines():
        if line.strip() in ("", "..."):
            continue
        found = excerpt_pattern(line).search(output, position)
        if found is None:
            return line
        position = found.end()
    return None


def install_command(markdown: str) -> list[str]:
    """The ``pip install ...`` line the doc tells users to run, as words."""
    found = re.search(r"^pip install (.+)$", markdown, re.MULTILINE)
    assert found, "docs/testing-clients.md shows no pip install line"
    return found[1].replace("'", "").split()


def _run(command: list[str], cwd: Path, timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return result


def _clean_environment() -> dict[str, str]:
    """Our environment without what would leak this checkout or this pytest
    run into the fresh project (PYTHONPATH, pytest-xdist's worker variables)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTEST_", "PYTHON", "VIRTUAL_ENV", "HYPOTHESIS"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _copy_sources(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


@dataclass
class FreshRun:
    """What the client author's pytest run produced."""

    venv_python: Path
    project: Path
    outcomes: dict[str, str]          # test name -> passed | failed | error | skipped
    messages: dict[str, str]          # test name -> failure message and text (junit XML)
    output: str                       # pytest's stdout + stderr (-rA)
    junit: str                        # the JUnit XML as written
    imapd_location: str               # imapd.__file__ as the fresh Python imports it
    conformance: subprocess.CompletedProcess[str]   # conformance_check.py, run as the doc says
    seconds: dict[str, float]         # step -> wall seconds


def _outcomes(junit: str) -> tuple[dict[str, str], dict[str, str]]:
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    for case in ElementTree.fromstring(junit).iter("testcase"):
        name = case.attrib["name"]
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                messages[name] = element.attrib.get("message", "") + "\n" + (element.text or "")
                break
        outcomes[name] = outcome
    return outcomes, messages


def build_and_run(base: Path) -> FreshRun:
    """Fresh venv, wheel, install with the extra, write the project, run pytest."""
    env = _clean_environment()
    seconds: dict[str, float] = {}
    markdown = DOC.read_text(encoding="utf-8")

    started = time.monotonic()
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    python = venv / "bin" / "python"
    seconds["venv"] = time.monotonic() - started

    started = time.monotonic()
    source, wheels = base / "source", base / "wheels"
    source.mkdir()
    _copy_sources(source)
    built = _run([str(python), "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                 base, 300, env)
    assert built.returncode == 0, f"building the wheel failed:\n{built.stdout}\n{built.stderr}"
    (wheel,) = wheels.glob("imapd-*.whl")
    seconds["wheel"] = time.monotonic() - started

    started = time.monotonic()
    # The doc's own line, with the built wheel in place of the package name.
    words = install_command(markdown)
    assert words[0].startswith("imapd[testing]"), words
    installed = _run([str(python), "-m", "pip", "install", "-q", f"{wheel}[testing]", *words[1:]], base, 600, env)
    assert installed.returncode == 0, f"pip install failed:\n{installed.stdout}\n{installed.stderr}"
    seconds["install"] = time.monotonic() - started

    project = base / "client-project"
    project.mkdir()
    for name, text in project_files(markdown).items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    where = _run([str(python), "-c", "import imapd; print(imapd.__file__)"], project, 60, env)
    assert where.returncode == 0, where.stderr

    started = time.monotonic()
    junit_path = base / "report.xml"
    ran = _run([str(python), "-m", "pytest", "-rA", "-p", "no:cacheprovider", f"--junitxml={junit_path}"],
               project, 300, env)
    seconds["pytest"] = time.monotonic() - started
    output = ran.stdout + ran.stderr
    assert junit_path.exists(), f"pytest wrote no report (exit {ran.returncode}):\n{output}"
    junit = junit_path.read_text(encoding="utf-8")
    outcomes, messages = _outcomes(junit)

    started = time.monotonic()
    conformance = _run([str(python), CONFORMANCE_SCRIPT], project, 300, env)
    seconds["conformance"] = time.monotonic() - started
    print(f"fresh project: {seconds}; outcomes {outcomes}")
    return FreshRun(python, project, outcomes, messages, output, junit, where.stdout.strip(), conformance, seconds)


def test_every_code_block_of_the_doc_is_run_or_compared() -> None:
    """An example in docs/testing-clients.md that no test runs could rot."""
    markdown = DOC.read_text(encoding="utf-8")
    assert unchecked_blocks(markdown) == []
    assert any(name.startswith("test_") for name in project_files(markdown))
    assert all(name in project_files(markdown) for name, _ in shown_outputs(markdown))


def test_an_excerpt_line_is_matched_in_order() -> None:
    output = "E   Error: one 12 two\nS: a2 OK done\n"
    assert missing_excerpt_line("...Error: one ... two\n...\nS: a2 OK ...", output) is None
    assert missing_excerpt_line("S: a2 OK ...\nError: one", output) == "Error: one"
    assert missing_excerpt_line("S: a3 OK", output) == "S: a3 OK"


def check_imapd_comes_from_the_installed_wheel(fresh: FreshRun) -> None:
    location = Path(fresh.imapd_location)
    assert location.is_relative_to(fresh.venv_python.parent.parent), location
    assert not location.is_relative_to(REPO), location


def check_the_client_authors_tests_pass(fresh: FreshRun) -> None:
    """Every test except the deliberately wrong client's passes, and there
    is one per client library, the reconnect, new mail and the options."""
    expected = {name for name in fresh.outcomes if not name.startswith("test_wrong_client")}
    failing = {name: fresh.outcomes[name] for name in expected if fresh.outcomes[name] != "passed"}
    assert not failing, f"{failing}\n{fresh.output}"
    for topic in ("imaplib", "imapclient", "aioimaplib", "reconnect", "idle", "expunged", "lmtp"):
        assert any(topic in name for name in expected), (topic, sorted(expected))


def check_the_wrong_client_fails_with_the_rfc_section(fresh: FreshRun) -> None:
    wrong = [name for name in fresh.outcomes if name.startswith("test_wrong_client")]
    assert wrong, fresh.outcomes
    for name in wrong:
        assert fresh.outcomes[name] == "failed", (name, fresh.outcomes[name], fresh.output)
        assert "ClientProtocolError" in fresh.messages[name], fresh.messages[name]
        assert "literal-without-continuation (RFC 3501 §7.5)" in fresh.messages[name], fresh.messages[name]


def check_the_output_the_doc_shows_is_what_pytest_prints(fresh: FreshRun) -> None:
    shown = shown_outputs(DOC.read_text(encoding="utf-8"))
    assert shown
    for name, excerpt in shown:
        missing = missing_excerpt_line(excerpt, fresh.output)
        assert missing is None, f"docs/testing-clients.md shows for {name}: {missing!r}, not in\n{fresh.output}"


def check_the_transcript_is_attached_with_the_password_redacted(fresh: FreshRun) -> None:
    output = fresh.output
    assert "imapd transcript" in output, output
    section = output[output.index("imapd transcript"):]
    # The wrong client's LOGIN, with the password replaced, and its literal.
    assert re.search(r"C: a1 LOGIN alice \*\*\*\n", section), section
    assert re.search(r"C: a2 APPEND INBOX \{\d+\}\n", section), section
    assert SECRET not in output, "the password is in pytest's output"
    assert SECRET not in fresh.junit, "the password is in the JUnit report"


def check_imapd_conformance_runs_from_the_wheel(fresh: FreshRun) -> None:
    """The shipped scripts are in the wheel (package data) and pass against
    the kit's server: `imapd conformance` works after a plain pip install."""
    run = fresh.conformance
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    summary = re.search(r"^(\d+) scripts: (\d+) passed, 0 failed", report, re.MULTILINE)
    assert summary and int(summary[2]) >= 30, report


def test_a_client_authors_project_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """The issue's "Done when", as one test: one build and one run (about
    20-30 s) serve every check, and pytest-xdist cannot split the checks
    over two workers that would each build a virtualenv."""
    fresh = build_and_run(tmp_path)
    check_imapd_comes_from_the_installed_wheel(fresh)
    check_the_client_authors_tests_pass(fresh)
    check_the_wrong_client_fails_with_the_rfc_section(fresh)
    check_the_output_the_doc_shows_is_what_pytest_prints(fresh)
    check_the_transcript_is_attached_with_the_password_redacted(fresh)
    check_imapd_conformance_runs_from_the_wheel(fresh)
