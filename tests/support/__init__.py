"""Shared test helpers: an in-memory command context, a fake selected view,
and a real server subprocess (``tests.support.server``)."""
