"""The Twisted layer: protocol, factory, listening service, timers.

The only package (with ``imapd.cli``) that imports ``twisted.internet``.
"""
