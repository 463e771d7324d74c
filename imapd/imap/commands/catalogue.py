"""Every fixed response text and code the server layer sends, in one place.

Tests import these too, so a wording change is one edit. Codes are the
RFC 3501 §7.1 and RFC 5530 response-code atoms.
"""

from __future__ import annotations

# --- response codes (RFC 3501 §7.1, RFC 5530 §3) ---------------------------
CODE_CAPABILITY = "CAPABILITY"
CODE_ALERT = "ALERT"
CODE_AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
CODE_AUTHORIZATIONFAILED = "AUTHORIZATIONFAILED"
CODE_SERVERBUG = "SERVERBUG"
CODE_TOOBIG = "TOOBIG"
CODE_UNAVAILABLE = "UNAVAILABLE"
CODE_CANNOT = "CANNOT"

# --- untagged status texts --------------------------------------------------
GREETING = "imapd ready"
BYE_LOGOUT = "IMAP4rev1 Server logging out"
BYE_AUTOLOGOUT = "Autologout; idle for too long"
BYE_TOO_MANY_BAD = "Too many invalid commands"
BYE_TOO_MANY_CONNECTIONS = "Too many connections, try again later"
BYE_TOO_MANY_FROM_ADDRESS = "Too many connections from your address, try again later"
BYE_TOO_MANY_FOR_USER = "Too many connections for this user, close one and try again"
BYE_LOGIN_TOO_SLOW = "Not logged in in time, closing connection"
BYE_SHUTDOWN = "Server shutting down"
BYE_FATAL_FRAME = "Input too large, closing connection"

# --- continuation requests (RFC 3501 §7.5) -------------------------------
CONTINUE_LITERAL = "Ready for literal data"

# --- tagged completions -----------------------------------------------------
OK_CAPABILITY = "CAPABILITY completed"
OK_NOOP = "NOOP completed"
OK_LOGOUT = "LOGOUT completed"
OK_LOGGED_IN = "Logged in"
OK_STARTTLS = "Begin TLS negotiation now"

# --- failures ---------------------------------------------------------------
BAD_WRONG_STATE = "Command not allowed in this state"
BAD_UNKNOWN_COMMAND = "Unknown or unsupported command"
NO_AUTHENTICATION_FAILED = "Authentication failed"
NO_AUTHORIZATION_FAILED = "Authorization identity not allowed"
NO_UNSUPPORTED_MECHANISM = "Unsupported authentication mechanism"
BAD_AUTH_CANCELLED = "AUTHENTICATE cancelled"
BAD_INVALID_BASE64 = "Invalid base64 data"
BAD_MALFORMED_PLAIN = "Malformed PLAIN credentials"
NO_SERVERBUG = "Internal server error; the incident was logged"
CODE_PRIVACYREQUIRED = "PRIVACYREQUIRED"
CODE_LIMIT = "LIMIT"
NO_PLAINTEXT_DISABLED = "Plaintext authentication disallowed on unencrypted connections, use STARTTLS"
BAD_TLS_ACTIVE = "TLS is already active"
BAD_TLS_UNAVAILABLE = "TLS is not available"
BAD_SCRAM = "Malformed SCRAM message"

# --- mailbox and selected-state commands (RFC 3501 §6.3, §6.4.1–§6.4.3) -----
CODE_READ_WRITE = "READ-WRITE"
CODE_READ_ONLY = "READ-ONLY"
CODE_UNSEEN = "UNSEEN"
CODE_PERMANENTFLAGS = "PERMANENTFLAGS"
CODE_UIDVALIDITY = "UIDVALIDITY"
CODE_UIDNEXT = "UIDNEXT"
CODE_NONEXISTENT = "NONEXISTENT"
CODE_TRYCREATE = "TRYCREATE"
CODE_ALREADYEXISTS = "ALREADYEXISTS"
CODE_HASCHILDREN = "HASCHILDREN"    # RFC 9051 §7.1
CODE_OVERQUOTA = "OVERQUOTA"        # RFC 5530 §3
CODE_INUSE = "INUSE"                # RFC 5530 §3
TEXT_UNSEEN = "First unseen message"
TEXT_PERMANENTFLAGS = "Flags permitted"
TEXT_NO_PERMANENTFLAGS = "No permanent flags permitted"
TEXT_UIDVALIDITY = "UIDs valid"
TEXT_UIDNEXT = "Predicted next UID"
OK_SELECT = "SELECT completed"
OK_EXAMINE = "EXAMINE completed"
OK_CREATE = "CREATE completed"
OK_DELETE = "DELETE completed"
OK_RENAME = "RENAME completed"
OK_SUBSCRIBE = "SUBSCRIBE completed"
OK_UNSUBSCRIBE = "UNSUBSCRIBE completed"
OK_LIST = "LIST completed"
OK_LSUB = "LSUB completed"
OK_STATUS = "STATUS completed"
OK_APPEND = "APPEND completed"
OK_CHECK = "CHECK completed"
OK_CLOSE = "CLOSE completed"
OK_EXPUNGE = "EXPUNGE completed"
NO_READ_ONLY = "Mailbox is read-only"
BAD_STATUS_ITEM = "Unsupported STATUS item"
NO_STORE_UNAVAILABLE = "Mail store not available"

# --- UIDPLUS, MOVE, CONDSTORE/QRESYNC, ESEARCH/SEARCHRES (RFC 4315, 6851, 7162, 4731, 5182)
CODE_APPENDUID = "APPENDUID"
CODE_COPYUID = "COPYUID"
CODE_HIGHESTMODSEQ = "HIGHESTMODSEQ"
CODE_MODIFIED = "MODIFIED"
CODE_CLOSED = "CLOSED"
TEXT_HIGHESTMODSEQ = "Highest"
TEXT_CLOSED = "Previous mailbox closed"
TEXT_MOVED = "Moved UIDs"
OK_MOVE = "MOVE completed"
OK_UID_MOVE = "UID MOVE completed"
OK_UID_EXPUNGE = "UID EXPUNGE completed"
OK_CONDITIONAL_STORE_FAILED = "Conditional STORE failed"
BAD_QRESYNC_NOT_ENABLED = "QRESYNC is not enabled (use ENABLE QRESYNC first)"
BAD_SEQ_MATCH_SIZES = "QRESYNC sequence match data: the two sets differ in size"

# --- session extensions: IDLE, ENABLE, NAMESPACE, ID, UNSELECT, COMPRESS ----
CONTINUE_IDLE = "idling"                      # RFC 2177 §3 example
OK_IDLE = "IDLE terminated"
BAD_IDLE_EXPECTED_DONE = "Expected DONE"
OK_ENABLE = "ENABLE completed"
OK_NAMESPACE = "NAMESPACE completed"
OK_ID = "ID completed"
OK_UNSELECT = "UNSELECT completed"
# --- QUOTA (RFC 9208) -----------------------------------------------------------
OK_GETQUOTA = "GETQUOTA completed"
OK_GETQUOTAROOT = "GETQUOTAROOT completed"
NO_QUOTA_ROOT = "No such quota root"
NO_SETQUOTA = "Quota limits are set by the administrator"
CODE_NOPERM = "NOPERM"              # RFC 5530 §3
OK_COMPRESS = "DEFLATE active"
CODE_COMPRESSIONACTIVE = "COMPRESSIONACTIVE"  # RFC 4978 §3
NO_COMPRESSION_ACTIVE = "DEFLATE is already active"
NO_COMPRESSION_NOT_ALLOWED = "Compression is only offered on encrypted or local connections"
NO_COMPRESSION_UNAVAILABLE = "Compression is not available on this connection"
BAD_COMPRESS_ALGORITHM = "Unknown compression algorithm"
BYE_BAD_COMPRESSED_DATA = "Invalid compressed data, closing connection"

# --- LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, MULTIAPPEND (RFC 5258, 5819, 6154, 3502)
CODE_USEATTR = "USEATTR"                      # RFC 6154 §3
NO_USEATTR = "Special use not supported"      # followed by the attribute
