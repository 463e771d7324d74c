"""The Twisted layer: connections, listeners, TLS, timers and threads.

``connection`` is the machinery every line-based protocol shares
(pipelining, fairness, back-pressure, timeouts, STARTTLS and COMPRESS
holds); ``imap_connection``/``imap_factory`` are IMAP's side of it;
``service`` binds the listeners. The only package (with ``imapd.app`` and
``imapd.cli``) that imports ``twisted.internet``.
"""
