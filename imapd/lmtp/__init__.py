"""LMTP (RFC 2033): local delivery from an MTA into the mail core.

Protocol-neutral and I/O-free: ``session.LmtpSession`` takes complete input
lines and returns replies; the Twisted connection (``imapd.net``) frames
lines and writes the replies. Delivery goes through
``MailService.deliver`` like IMAP APPEND, so it works on every backend.
"""
