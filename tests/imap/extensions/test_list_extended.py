"""LIST-EXTENDED (RFC 5258): selection options SUBSCRIBED, REMOTE,
RECURSIVEMATCH, multiple patterns, RETURN (SUBSCRIBED CHILDREN),
``\\NonExistent``, ``\\Subscribed``, CHILDINFO; byte-exact transcripts on the
hierarchies of the RFC's §5 examples, errors, and the rule that plain LIST
and LSUB do not change."""

from __future__ import annotations

import pytest

from tests.imap.commands.harness import Client, MailServer, run

# RFC 5258 §5 examples 1-6: the server's hierarchy and subscriptions.
FRUIT = ["Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable/Broccoli", "Vegetable/Corn"]
FRUIT_SUBSCRIBED = ["Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"]


def build(server: MailServer, mailboxes: list[str], subscribed: list[str]) -> None:
    for name in mailboxes:
        server.create(name)
    for name in subscribed:
        run(server.mail.subscribe("alice", name))


@pytest.fixture
def fruit(server: MailServer, client: Client) -> Client:
    build(server, FRUIT, FRUIT_SUBSCRIBED)
    return client


def test_subscribed_selection_lists_subscriptions_with_nonexistent(fruit: Client) -> None:
    """RFC 5258 §5 example 2: SUBSCRIBED lists subscribed names, existing or
    not; the selection implies RETURN (SUBSCRIBED); Fruit/Peach does not
    exist: ``\\NonExistent`` (which implies ``\\Noselect``, not repeated)."""
    fruit.transcript('''
        C: A02 LIST (SUBSCRIBED) "" "*"
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana
        S: * LIST (\\NonExistent \\Subscribed) "/" Fruit/Peach
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Vegetable/Broccoli
        S: A02 OK LIST completed
    ''')


def test_return_children_and_subscribed(fruit: Client) -> None:
    """RFC 5258 §5 examples 3 and 4: RETURN (CHILDREN) on every listed name;
    RETURN (SUBSCRIBED) adds ``\\Subscribed`` without changing the selection."""
    fruit.transcript('''
        C: A03 LIST () "" "%" RETURN (CHILDREN)
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Fruit
        S: * LIST (\\HasNoChildren) "/" Tofu
        S: * LIST (\\HasChildren) "/" Vegetable
        S: A03 OK LIST completed
        C: A04 LIST "" "*" RETURN (SUBSCRIBED)
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Fruit
        S: * LIST (\\HasNoChildren) "/" Fruit/Apple
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana
        S: * LIST (\\HasNoChildren) "/" Tofu
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Vegetable/Broccoli
        S: * LIST (\\HasNoChildren) "/" Vegetable/Corn
        S: A04 OK LIST completed
    ''')


def test_remote_selection_changes_nothing_without_remote_mailboxes(fruit: Client) -> None:
    """RFC 5258 §5 example 5: (REMOTE) adds remote mailboxes; we have none."""
    assert fruit.lines('A05 LIST (REMOTE) "" "%" RETURN (CHILDREN)') == fruit.lines(
        'A06 LIST () "" "%" RETURN (CHILDREN)')[:-1] + [b"A05 OK LIST completed"]


def test_recursivematch_with_percent(fruit: Client) -> None:
    """RFC 5258 §5 example 6: with ``%``, Fruit is returned for its
    subscribed child Fruit/Banana, with CHILDINFO; Vegetable is subscribed
    itself and has a subscribed child beneath the pattern."""
    fruit.transcript('''
        C: C04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"
        S: * LIST (\\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable ("CHILDINFO" ("SUBSCRIBED"))
        S: C04 OK LIST completed
    ''')


def test_recursivematch_only_for_children_outside_the_pattern(server: MailServer, client: Client) -> None:
    """RFC 5258 §5 example 9 (pattern ``*2``): Foo2 gets CHILDINFO for
    Foo2/Bar1, which ``*2`` does not match; Baz2 is not listed for its
    subscribed children, which ``*2`` lists themselves; Eps2 is subscribed
    and also gets CHILDINFO."""
    build(server,
          ["Foo2/Bar1", "Foo2/Bar2", "Baz2/Bar2", "Baz2/Bar22", "Baz2/Bar222", "Eps2/Mailbox1", "Qux2/Bar2"],
          ["Foo2/Bar1", "Foo2/Bar2", "Baz2/Bar2", "Baz2/Bar22", "Baz2/Bar222", "Eps2", "Eps2/Mailbox1",
           "Qux2/Bar2"])
    client.transcript('''
        C: C04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "*2"
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Baz2/Bar2
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Baz2/Bar22
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Baz2/Bar222
        S: * LIST (\\HasChildren \\Subscribed) "/" Eps2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasChildren) "/" Foo2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Foo2/Bar2
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Qux2/Bar2
        S: C04 OK LIST completed
    ''')


def test_without_recursivematch_there_is_no_childinfo(fruit: Client) -> None:
    fruit.transcript('''
        C: a LIST (SUBSCRIBED) "" "%"
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable
        S: a OK LIST completed
    ''')


def test_recursivematch_for_a_parent_that_does_not_exist(server: MailServer, client: Client) -> None:
    """A subscription below a name that does not exist: the parent is listed
    with ``\\NonExistent`` and CHILDINFO (and RETURN (CHILDREN) tells it has
    no existing children)."""
    build(server, [], ["Gone/Deeper"])
    client.transcript('''
        C: a LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)
        S: * LIST (\\NonExistent \\HasNoChildren) "/" Gone ("CHILDINFO" ("SUBSCRIBED"))
        S: a OK LIST completed
    ''')


def test_multiple_patterns_list_each_match_once(fruit: Client) -> None:
    """RFC 5258 §3: ``mbox-or-pat`` may be a parenthesised list; a name
    matched by several patterns is listed once, in the usual order."""
    fruit.transcript('''
        C: a LIST "" ("Veg*" "*Corn" "INBOX" "Nothing")
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Vegetable
        S: * LIST (\\HasNoChildren) "/" Vegetable/Broccoli
        S: * LIST (\\HasNoChildren) "/" Vegetable/Corn
        S: a OK LIST completed
        C: b LIST "Fruit/" ("A*" "B%")
        S: * LIST (\\HasNoChildren) "/" Fruit/Apple
        S: * LIST (\\HasNoChildren) "/" Fruit/Banana
        S: b OK LIST completed
    ''')


def test_childinfo_is_not_given_when_the_child_matches_another_pattern(fruit: Client) -> None:
    """The imaptest ``listext`` rule: with ``(Vegetable Vegetable/Broccoli)``
    the subscribed child is listed itself, so Vegetable gets no CHILDINFO;
    Fruit still does for Fruit/Peach (subscribed, matched by no pattern)."""
    fruit.transcript('''
        C: a LIST (SUBSCRIBED RECURSIVEMATCH) "" (Vegetable)
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable ("CHILDINFO" ("SUBSCRIBED"))
        S: a OK LIST completed
        C: b LIST (SUBSCRIBED RECURSIVEMATCH) "" (Vegetable Vegetable/Broccoli)
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Vegetable/Broccoli
        S: b OK LIST completed
        C: c LIST (SUBSCRIBED RECURSIVEMATCH) "" (Fruit Fruit/Banana)
        S: * LIST (\\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana
        S: c OK LIST completed
    ''')


def test_noselect_placeholder_and_deleted_subscription(server: MailServer, client: Client) -> None:
    """A ``\\Noselect`` placeholder keeps ``\\Noselect``; a subscribed mailbox
    deleted later is ``\\NonExistent`` (never with ``\\Noselect``)."""
    build(server, ["Box/Inner", "Old"], ["Box", "Old"])
    client.ok("x DELETE Box")
    client.ok("y DELETE Old")
    client.transcript('''
        C: a LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)
        S: * LIST (\\Noselect \\HasChildren \\Subscribed) "/" Box
        S: * LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Old
        S: a OK LIST completed
        C: b LIST "" "*"
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\Noselect \\HasChildren) "/" Box
        S: * LIST (\\HasNoChildren) "/" Box/Inner
        S: b OK LIST completed
    ''')


def test_empty_pattern_still_asks_for_the_delimiter(fruit: Client) -> None:
    fruit.transcript('''
        C: a LIST () "" ""
        S: * LIST (\\Noselect) "/" ""
        S: a OK LIST completed
        C: b LIST "" ("") RETURN ()
        S: * LIST (\\Noselect) "/" ""
        S: b OK LIST completed
        C: c LIST "" ("" Tofu)
        S: * LIST (\\HasNoChildren) "/" Tofu
        S: c OK LIST completed
    ''')


def test_extended_list_without_options_equals_plain_list(fruit: Client) -> None:
    plain = fruit.lines('a LIST "" "*"')
    assert len(plain) == 9
    assert fruit.lines('b LIST () "" "*" RETURN ()') == plain[:-1] + [b"b OK LIST completed"]
    assert fruit.lines('c LIST "" ("*")') == plain[:-1] + [b"c OK LIST completed"]


@pytest.mark.parametrize(("command", "reason"), [
    ('a LIST (imaptest) "" ""', "Unknown LIST selection option IMAPTEST"),
    ('a LIST (recursivematch) "" ""', "RECURSIVEMATCH needs another selection option such as SUBSCRIBED"),
    ('a LIST (recursivematch remote) "" ""', "RECURSIVEMATCH needs another selection option such as SUBSCRIBED"),
    ('a LIST "" "" return (imaptest)', "Unknown LIST return option IMAPTEST"),
])
def test_unknown_or_invalid_options_are_bad(fruit: Client, command: str, reason: str) -> None:
    """RFC 5258 §3: BAD for an unknown option and for RECURSIVEMATCH alone."""
    assert fruit.lines(command) == [f"a BAD {reason}".encode()]


def test_plain_list_and_lsub_are_unchanged(fruit: Client) -> None:
    """No \\Subscribed or \\NonExistent in plain LIST; LSUB keeps its
    RFC 3501 §6.3.9 form (``\\Noselect`` for an unsubscribed parent)."""
    fruit.transcript('''
        C: a LIST "" "%"
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Fruit
        S: * LIST (\\HasNoChildren) "/" Tofu
        S: * LIST (\\HasChildren) "/" Vegetable
        S: a OK LIST completed
        C: b LSUB "" "%"
        S: * LSUB (\\Noselect) "/" Fruit
        S: * LSUB () "/" Vegetable
        S: b OK LSUB completed
        C: c LSUB "" "*"
        S: * LSUB () "/" Fruit/Banana
        S: * LSUB () "/" Fruit/Peach
        S: * LSUB () "/" Vegetable
        S: * LSUB () "/" Vegetable/Broccoli
        S: c OK LSUB completed
    ''')


def test_other_sessions_subscriptions_show_at_once(server: MailServer, fruit: Client) -> None:
    other = server.connect("alice")
    other.ok("s SUBSCRIBE Tofu")
    other.ok("t UNSUBSCRIBE Vegetable")
    fruit.transcript('''
        C: a LIST (SUBSCRIBED) "" "%"
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Tofu
        S: a OK LIST completed
    ''')


def test_users_do_not_see_each_others_subscriptions(server: MailServer, fruit: Client) -> None:
    bob = server.connect("bob")
    bob.transcript('''
        C: a LIST (SUBSCRIBED RECURSIVEMATCH) "" "*" RETURN (CHILDREN)
        S: a OK LIST completed
    ''')
