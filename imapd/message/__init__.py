"""The message model (pure): MIME structure, ENVELOPE, BODY/BODYSTRUCTURE,
body sections and SEARCH text.

``analyze(raw)`` runs once at APPEND; its ``MessageInfo`` is serialized with
``to_bytes()`` and stored beside the message (``from_bytes`` raises
ValueError only for a corrupt or foreign blob).  FETCH and SEARCH then work
from ``MessageInfo.from_bytes(meta)`` and, for sections and text search, the
raw bytes.  Nothing here does I/O or raises on malformed messages.

For FETCH:

* ``envelope(info)`` / ``body_structure(info, extended)`` give the ENVELOPE
  and BODY / BODYSTRUCTURE values (RFC 3501 §7.4.2).
* ``section_span(info, section)`` gives the (start, end) byte range of a
  section so large bodies can be streamed from disk; it is None for
  HEADER.FIELDS[.NOT] (use ``section_bytes``, which reads only the header,
  ``header_span`` says which) and for sections that do not exist.
* ``section_bytes(raw, info, section)`` is None when the section does not
  exist; FETCH should then send an empty string (``BODY[9] ""``), as
  Dovecot does.  ``apply_partial`` / ``partial_span`` apply ``<o.c>``.

For SEARCH: ``header_values`` (HEADER, SUBJECT), ``address_search_text``
(FROM, TO, CC, BCC), ``matches_text`` / ``searchable_text`` (BODY, TEXT),
``sent_date`` (SENTBEFORE, SENTON, SENTSINCE; None when the Date header is
missing or unparseable).
"""

from __future__ import annotations

from imapd.message.bodystructure import body_structure, part_structure
from imapd.message.envelope import envelope, envelope_value
from imapd.message.model import Disposition, EnvelopeData, MessageInfo, Part
from imapd.message.searchtext import (
    address_search_text,
    decode_transfer,
    header_values,
    matches_text,
    searchable_text,
    sent_date,
)
from imapd.message.sections import (
    apply_partial,
    filter_header,
    find_part,
    header_span,
    partial_span,
    section_bytes,
    section_span,
)
from imapd.message.structure import MAX_DEPTH, MAX_PARTS, analyze, analyze_strict

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "Disposition",
    "EnvelopeData",
    "MessageInfo",
    "Part",
    "address_search_text",
    "analyze",
    "analyze_strict",
    "apply_partial",
    "body_structure",
    "decode_transfer",
    "envelope",
    "envelope_value",
    "filter_header",
    "find_part",
    "header_span",
    "header_values",
    "matches_text",
    "part_structure",
    "partial_span",
    "searchable_text",
    "section_bytes",
    "section_span",
    "sent_date",
]
