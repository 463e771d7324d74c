"""The ``i;unicode-casemap`` collation (RFC 5051) for SEARCH string keys.

RFC 5051 §2 prepares each string as "titlecased canonicalized UTF-8": every
code point is replaced by its titlecase mapping (UnicodeData.txt's simple
mapping, field 14) if it has one, then by its decomposition (of any type,
canonical or compatibility) if it has one, and every resulting code point
goes through the same two steps again until nothing changes. The RFC's own
example: U+01C4 DŽ titlecases to U+01C5 Dž, which decomposes to ``D`` and
U+017E ž, which titlecases to U+017D Ž, which decomposes to ``Z`` U+030C —
so U+01C4, ``DŽ``, ``Dž`` and ``dž`` all fold to ``D Z U+030C``. Equality and
substring are then those of ``i;octet`` on the folded strings; SEARCH uses
substring (RFC 3501 §6.4.4, RFC 5255 §4.2).

Consequences a user may notice, all from the RFC's algorithm:

* NFC and NFD spellings fold alike (``Ä`` = ``A`` U+0308), and a base
  letter matches with or without marks (``cafe`` is found in ``café``,
  not the other way round);
* case differs across scripts as the titlecase mapping says: ``ä``/``Ä``,
  Greek ``σ``/``ς``/``Σ``, Cyrillic ``ж``/``Ж``;
* ``ß`` has no simple titlecase mapping and no decomposition, so it stays
  ``ß``: it matches ``ß`` only, not ``ss`` or U+1E9E ``ẞ``;
* compatibility characters fold to their plain letters: ``ﬁ`` = ``FI``,
  fullwidth ``Ａ`` = ``A``, ``①`` = ``1``.

Two choices beyond the RFC's text, both so that canonically equivalent
spellings always fold alike (which is what "effectively Normalization Form
KD" in RFC 5051 §2 asks for): the input is put in NFD first, which orders
combining marks canonically, and Hangul syllables are decomposed into jamo
(their decomposition is algorithmic, Unicode §3.12, so UnicodeData.txt
does not list it).

Speed: ``fold`` is called once per message text and once per SEARCH string,
never per comparison. ASCII text is ``str.upper()``. Other text is put in NFD
and upper-cased too, except the few code points whose fold differs from
``str.upper()`` (``ß``, compatibility characters, titlecase digraphs,
Georgian lower case, ...; that set is computed once, by ``prepare`` at
server start or on first use), which are swapped for their exact fold.
"""

from __future__ import annotations

import unicodedata
from typing import Final

# Code points below this are classified one by one (on first use); every
# code point from here up is treated as needing the exact mapping (after NFD
# the astral planes hold few such characters, and texts few astral ones).
_CLASSIFIED_LIMIT: Final = 0x10000
_HANGUL_FIRST, _HANGUL_LAST = "\uac00", "\ud7a3"


def _simple_titlecase(char: str) -> str:
    """UnicodeData.txt's simple titlecase mapping of ``char`` (itself when it
    has none). ``str.title`` applies the full mapping of SpecialCasing.txt;
    where that is a single code point it is the simple one, and where it is
    several (``ß`` -> ``Ss``, ``ﬁ`` -> ``Fi``) UnicodeData.txt has no simple
    mapping (checked for every code point of Unicode 14, the version of
    Python 3.11's ``unicodedata``)."""
    titled = char.title()
    return titled if len(titled) == 1 else char


def _decomposition(char: str) -> str:
    """The one-level decomposition of ``char`` of any type (UnicodeData.txt
    field 5 without its ``<tag>``), or "" when it has none."""
    if _HANGUL_FIRST <= char <= _HANGUL_LAST:
        return unicodedata.normalize("NFD", char)  # algorithmic, Unicode §3.12
    fields = unicodedata.decomposition(char).split()
    if fields and fields[0].startswith("<"):
        del fields[0]
    return "".join(chr(int(field, 16)) for field in fields)


class _Mapping(dict[int, str]):
    """Code point -> its folded form (RFC 5051 §2 steps 2 and 3, repeated),
    filled on demand; usable as a ``str.translate`` table."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        titled = _simple_titlecase(char)
        if titled != char:
            folded = self[ord(titled)]
        else:
            parts = _decomposition(char)
            folded = "".join(self[ord(part)] for part in parts) if parts else char
        self[code] = folded
        return folded


_MAPPING: Final = _Mapping()


def fold_char(char: str) -> str:
    """The folded form of one code point, exactly as RFC 5051 §2 defines it
    (without the NFD reordering ``fold`` adds across code points)."""
    return _MAPPING[ord(char)]


def _differs_from_upper(code: int) -> bool:
    """Does the fold of ``code`` differ from ``str.upper()`` of it? The quick
    test covers the common case (no decomposition, titlecase = uppercase,
    and that letter maps to itself); anything else is decided exactly."""
    char = chr(code)
    upper = char.upper()
    if not unicodedata.decomposition(char) and len(upper) == 1 and char.title() == upper:
        if upper == char or (not unicodedata.decomposition(upper) and upper.title() == upper):
            return False
    return fold_char(char) != upper


_SPECIAL: frozenset[str] | None = None
# Private-use code points stand in for special characters while the rest of
# the text is upper-cased: they have no case and no decomposition.
_PLACEHOLDERS: Final = range(0xE000, 0xF900)
# More distinct special characters than this in one text: map the whole text
# code point by code point instead (linear, about 40 ns a character), so the
# replacements below never cost more than a few passes over the text.
_MAX_REPLACED = 16


def _special() -> frozenset[str]:
    """The BMP code points whose fold is not their ``str.upper()``;
    computed on first use (a tenth of a second)."""
    global _SPECIAL
    if _SPECIAL is None:
        _SPECIAL = frozenset(chr(code) for code in range(0x80, _CLASSIFIED_LIMIT)
                             if _differs_from_upper(code))
    return _SPECIAL


def prepare() -> None:
    """Compute the special-character set now (a tenth of a second) instead
    of during the first non-ASCII SEARCH, where it would hold the reactor."""
    _special()


def fold(text: str) -> str:
    """``text`` as RFC 5051 §2's titlecased canonicalized string (as ``str``;
    its UTF-8 encoding is the RFC's). ``fold(needle) in fold(haystack)`` is
    the collation's substring operation."""
    if text.isascii():
        return text.upper()  # ASCII has no decompositions; titlecase = upper
    text = unicodedata.normalize("NFD", text)
    present = set(text)
    special = present & _special()
    if max(present) > "\uffff":
        special.update(char for char in present if char > "\uffff")
    if not special:
        return text.upper()
    if len(special) > _MAX_REPLACED:
        return text.translate(_MAPPING)
    # Hide each special character behind an unused private-use code point,
    # upper-case the rest at C speed, then put the exact folds in.
    free = (chr(code) for code in _PLACEHOLDERS if chr(code) not in present)
    swaps = list(zip(special, free))
    for char, placeholder in swaps:
        text = text.replace(char, placeholder)
    text = text.upper()
    for char, placeholder in swaps:
        text = text.replace(placeholder, fold_char(char))
    return text


def contains(haystack: str, needle: str) -> bool:
    """RFC 5051 substring: is ``needle`` in ``haystack`` under the collation?
    For one-off comparisons; SEARCH folds each text once and uses ``in``."""
    return fold(needle) in fold(haystack)
