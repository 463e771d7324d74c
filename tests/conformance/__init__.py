"""Tests of the imaptest-format conformance runner, which lives in ``imapd.conformance``.

The runner moved into the package (issue 19) so ``imapd conformance`` ships it;
the tests import it from there. Its command line is ``imapd conformance HOST PORT``
(``imapd/cli_conformance.py``).
"""

