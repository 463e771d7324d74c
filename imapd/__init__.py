"""imapd: an IMAP4rev1 server on Twisted."""

__version__ = "0.1.0"
