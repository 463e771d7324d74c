"""The mail store: the only mutator of mail.

``interface.MailStore`` is the contract; ``sqlite.open_store`` opens the
default backend. See docs/storage.md.
"""
