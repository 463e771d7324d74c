"""POP3 (RFC 1939 with RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH, RFC
3206 response codes) on the mail core: I/O-free session, command parser,
replies and the maildrop snapshot. The Twisted side is
``imapd.net.pop3_connection``; docs/pop3.md describes the behaviour."""
