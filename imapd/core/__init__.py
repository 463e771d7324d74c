"""imapd.core."""
