"""Importing mail from files: ``imapd import maildir|mbox`` (issue 17).

Sources (``maildir``, ``mbox``) turn a path into ``SourceFolder`` lists
without touching the store; ``run`` writes them through the mail core
(``MailService``), so an import works on every engine and beside a running
server. ``fingerprint`` is what makes an import (and later ``imapd
migrate``) resumable. See docs/migration.md."""
