"""Command handlers: typed command in, response values out.

``context.py`` is the handler API, ``registry.py`` the dispatch table,
``dispatch.py`` runs one command; one module per command family.
"""
