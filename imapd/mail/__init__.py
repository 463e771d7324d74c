"""The mail core: the only mutator of mail, protocol- and engine-neutral.

``service.MailService`` is what protocols call (hierarchy, delivery, STATUS,
``open``); ``watch.MailboxWatch`` is one session's open mailbox and its
catch-up (``events``); ``backend.MailBackend`` is the contract a storage
engine implements (``imapd.storage.sqlite.open_backend``, the default, and
``imapd.storage.memory``). See docs/storage.md and docs/architecture.md.
"""
