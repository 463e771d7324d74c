"""Authentication support below the command layer (no Twisted, no I/O
except reading files the caller names): password schemes for imported
Dovecot hashes, the brute-force penalty tracker, SCRAM-SHA-256 keys."""
