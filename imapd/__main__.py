"""``python -m imapd`` is the ``imapd`` command."""

from __future__ import annotations

import sys

from imapd.cli import main

if __name__ == "__main__":
    sys.exit(main())
