"""FlagList (imapd/imap/session/flaglist.py) against a plain set: whatever the
sequence of FETCH FLAGS values (shared cached lists, fresh equal copies,
new keywords) and noted flag changes, ``admit_items`` says True exactly
when the value names a keyword not yet told, and ``take_noted`` exactly when
a noted keyword (compared case-insensitively) is new; the told list only
grows, in order of first appearance."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from imapd.imap.session.flaglist import FlagList
from imapd.imap.session.view import flags_plist
from imapd.imap.wire.values import Atom, PList

KEYWORDS = ["$Work", "later", "NIL", "$Kw", "x"]
SYSTEM = ["\\Seen", "\\Deleted"]
flag_sets = st.lists(st.sampled_from(KEYWORDS + SYSTEM), max_size=3, unique=True).map(tuple)
steps = st.lists(st.tuples(st.sampled_from(["shared", "fresh", "note", "take"]), flag_sets,
                           st.booleans()), max_size=30)


@given(initial=st.lists(st.sampled_from(KEYWORDS), unique=True), steps=steps)
def test_flag_list_matches_a_set(initial: list[str], steps: list[tuple[str, tuple[str, ...], bool]]) -> None:
    flag_list = FlagList(initial)
    told = list(initial)
    noted: list[str] = []
    for kind, flags, recent in steps:
        if kind in ("shared", "fresh"):
            value = flags_plist(flags, recent) if kind == "shared" else PList(
                tuple(Atom(f) for f in flags) + ((Atom("\\Recent"),) if recent else ()))
            new = [f for f in flags if not f.startswith("\\") and f not in told]
            assert flag_list.admit_items((("UID", 7), ("FLAGS", value))) == bool(new)
            told.extend(new)
        elif kind == "note":
            flag_list.note(flags)
            noted.extend(flags)
        else:
            new = [f for f in dict.fromkeys(noted) if not f.startswith("\\") and f not in told]
            assert flag_list.take_noted() == bool(new)
            told.extend(new)
            noted.clear()
        assert flag_list.flags == ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft",
                                   *told)


def test_noted_keywords_compare_case_insensitively() -> None:
    flag_list = FlagList(["$Work"])
    flag_list.note(("$WORK", "\\Seen"))
    assert not flag_list.take_noted()
    flag_list.note(("$New",))
    assert flag_list.take_noted()
    assert flag_list.flags[-2:] == ("$Work", "$New")


def test_items_without_flags_announce_nothing() -> None:
    flag_list = FlagList([])
    assert not flag_list.admit_items((("UID", 3), ("MODSEQ", PList((5,)))))
