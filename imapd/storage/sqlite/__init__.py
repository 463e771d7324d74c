"""imapd.storage.sqlite."""
