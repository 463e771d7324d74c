"""The capability lists the tests expect, written out by hand.

Why literal: an expected list built from ``imapd.imap.capabilities.EXTENSIONS``
agrees with the server whatever it advertises, so dropping an extension
(say MOVE) would pass every test. These strings are what README.md and the
RFCs require, in the server's order (RFC 3501 §7.2.1: the CAPABILITY
response lists ``IMAP4rev1`` first, then the extensions).

A capability change is one edit here: ``EVERY_STATE`` holds the extensions
listed before and after login; each situation below spells out the rest.
"""

from __future__ import annotations

# Listed in every state (README "Standards"): RFC 2971 ID, RFC 5161 ENABLE,
# RFC 2177 IDLE, RFC 2342 NAMESPACE, RFC 3691 UNSELECT, RFC 3348 CHILDREN,
# RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 7162 CONDSTORE/QRESYNC, RFC 4731
# ESEARCH, RFC 5182 SEARCHRES, RFC 5267 CONTEXT=SEARCH, RFC 5255 I18NLEVEL=1 (SEARCH under
# i;unicode-casemap), RFC 5256 SORT, RFC 5957 SORT=DISPLAY, RFC 5267 ESORT and CONTEXT=SORT,
# RFC 5256 THREAD=ORDEREDSUBJECT and THREAD=REFERENCES, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS,
# RFC 6154 SPECIAL-USE/CREATE-SPECIAL-USE, RFC 3502 MULTIAPPEND, RFC 7889
# APPENDLIMIT (the default 64 MiB literal limit), RFC 8438 STATUS=SIZE,
# RFC 9208 QUOTA with its resources STORAGE and MESSAGE (no QUOTASET: only
# operators set limits), RFC 3516 BINARY, RFC 4469 CATENATE.
EVERY_STATE = (
    b"ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN UIDPLUS MOVE CONDSTORE QRESYNC"
    b" ESEARCH SEARCHRES CONTEXT=SEARCH I18NLEVEL=1 SORT SORT=DISPLAY ESORT CONTEXT=SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE"
    b" MULTIAPPEND APPENDLIMIT=67108864 STATUS=SIZE QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"
    b" BINARY CATENATE"
)

# The default APPENDLIMIT (RFC 7889 §3), for tests that configure another.
DEFAULT_APPENDLIMIT = b"APPENDLIMIT=67108864"

# Before login where passwords may be sent (loopback, TLS or
# --allow-plaintext) and no certificate is loaded, so no STARTTLS:
# RFC 4959 SASL-IR and the AUTH= mechanisms (RFC 4616 PLAIN, RFC 7677
# SCRAM-SHA-256).
PRE_LOGIN = b"IMAP4rev1 LITERAL+ " + EVERY_STATE + b" SASL-IR AUTH=PLAIN AUTH=SCRAM-SHA-256"

# The same with a certificate loaded (the real server as tests start it,
# and README.md's example): STARTTLS on the unencrypted connection
# (RFC 3501 §6.2.1) before SASL-IR and the mechanisms.
PRE_LOGIN_STARTTLS = (
    b"IMAP4rev1 LITERAL+ " + EVERY_STATE + b" STARTTLS SASL-IR AUTH=PLAIN AUTH=SCRAM-SHA-256"
)

# Before login on a plaintext connection from another host with a
# certificate loaded: STARTTLS offered, passwords refused (RFC 3501 §6.2.1,
# §6.2.3, §7.2.1: LOGINDISABLED and no AUTH=).
PRE_LOGIN_REMOTE_PLAINTEXT = b"IMAP4rev1 LITERAL+ " + EVERY_STATE + b" STARTTLS LOGINDISABLED"

# After login on a local or encrypted connection: RFC 4978 COMPRESS=DEFLATE
# joins (command-auth); nothing about authentication is listed any more.
POST_LOGIN = b"IMAP4rev1 LITERAL+ " + EVERY_STATE + b" COMPRESS=DEFLATE"

# After login where compression is not offered (a plaintext connection from
# another host): the extensions only.
POST_LOGIN_NO_COMPRESS = b"IMAP4rev1 LITERAL+ " + EVERY_STATE
