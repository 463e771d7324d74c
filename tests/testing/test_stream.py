"""imapd.testing.stream: lines and literals of either direction, whatever
the TCP segments (hypothesis), with bounded memory for over-long lines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.testing.stream import MAX_LINE, ClientStream, Event, Line, LiteralData, ServerStream


def normalized(events: list[Event]) -> list[Event]:
    """Adjacent pieces of one literal joined (a literal's split is TCP's)."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, LiteralData) and out and isinstance(out[-1], LiteralData) \
                and not out[-1].last:
            out[-1] = LiteralData(out[-1].data + event.data, event.last)
        else:
            out.append(event)
    return out


def feed_in_pieces(stream: ClientStream | ServerStream, data: bytes, cuts: list[int]) -> list[Event]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    events: list[Event] = []
    for start, end in zip(points, points[1:]):
        events += stream.feed(data[start:end])
    return events


WORD = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(c for c in b if c not in b"\r\n{}") or b"x")


@st.composite
def units(draw: st.DrawFn) -> bytes:
    """One line of a conversation: text, optionally ending in a literal
    announcement followed by its octets (which may hold CR, LF, braces)."""
    text = b" ".join(draw(st.lists(WORD, min_size=1, max_size=5)))
    kind = draw(st.sampled_from(["plain", "sync", "nonsync", "binary", "long"]))
    if kind == "plain":
        return text + draw(st.sampled_from([b"\r\n", b"\n"]))
    if kind == "long":  # longer than MAX_LINE: truncated, the rest dropped
        return text + b"y" * (MAX_LINE + draw(st.integers(2, 5000))) + b"\r\n"
    octets = draw(st.binary(max_size=40))
    mark = {"sync": b"{%d}", "nonsync": b"{%d+}", "binary": b"~{%d}"}[kind] % len(octets)
    return text + b" " + mark + b"\r\n" + octets


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(units(), min_size=1, max_size=8), cuts=st.lists(st.integers(0, 10**6), max_size=12),
       side=st.sampled_from([ClientStream, ServerStream]))
def test_any_split_gives_the_events_of_one_feed(lines: list[bytes], cuts: list[int],
                                               side: type[ClientStream]) -> None:
    data = b"".join(lines)
    whole = normalized(side().feed(data))
    split = normalized(feed_in_pieces(side(), data, cuts))
    assert split == whole
    one_by_one = normalized(feed_in_pieces(
        side(), data, list(range(0, len(data), max(1, len(data) // 64)))))
    assert one_by_one == whole


def test_literals_of_each_kind() -> None:
    stream = ClientStream()
    events = stream.feed(b"a APPEND INBOX {5}\r\nhel")
    events += stream.feed(b"lo {3+}\r\nabc ~{0}\r\n\r\nb NOOP\r\n")
    assert events == [
        Line(b"a APPEND INBOX {5}", first=True, literal=5, sync=True),
        LiteralData(b"hel", last=False),
        LiteralData(b"lo", last=True),
        Line(b" {3+}", first=False, literal=3, sync=False),
        LiteralData(b"abc", last=True),
        Line(b" ~{0}", first=False, literal=0, sync=True),
        Line(b"", first=False),
        Line(b"b NOOP", first=True),
    ]
    assert events[0].tag == "a" and events[0].verb == "APPEND"
    assert events[3].verb == "" and events[-1].verb == "NOOP"


def test_verbs() -> None:
    [uid, done, untagged] = ClientStream().feed(b"x7 uid Fetch 1:* FLAGS\r\nDONE\r\n* 1 EXISTS\r\n")
    assert (uid.tag, uid.verb) == ("x7", "UID FETCH")
    assert done.verb == "" and untagged.tag == "*"


def test_an_over_long_line_is_cut_the_same_whatever_the_segments() -> None:
    line = b"a " + b"z" * (MAX_LINE + 100) + b"\r\nb NOOP\r\n"
    whole = ClientStream().feed(line)
    assert whole == [Line(line[:MAX_LINE], first=True, truncated=True), Line(b"b NOOP", first=True)]
    assert feed_in_pieces(ClientStream(), line, list(range(0, len(line), 1000))) == whole
    assert feed_in_pieces(ClientStream(), line, [len(line) - 12]) == whole


def test_memory_stays_bounded_for_a_line_that_never_ends() -> None:
    stream = ServerStream()
    events = []
    for _ in range(200):
        events += stream.feed(b"q" * 65536)
    assert len(stream._buffer) <= MAX_LINE + 1
    assert events == [Line(b"q" * MAX_LINE, first=True, truncated=True)]
    assert stream.feed(b"\r\n* OK\r\n") == [Line(b"* OK", first=True)]
