"""imapd.storage."""
