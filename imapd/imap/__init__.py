"""imapd.imap."""
