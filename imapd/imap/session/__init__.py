"""Per-connection session state (``state.py``) and the selected-mailbox view."""
