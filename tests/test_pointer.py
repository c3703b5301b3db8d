"""fsm.pointer, the kit's one JSON-pointer implementation (RFC 6901), and fsm._text, its one truncator."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fsm import pointer
from fsm.pointer import MISSING


@given(st.lists(st.text(max_size=4) | st.integers(0, 9).map(str), max_size=4))
def test_splitting_a_joined_pointer_gives_back_its_parts(parts: list[str]) -> None:
    """join escapes '~' and '/', split undoes it: any names survive the round trip."""
    assert pointer.split(pointer.join(parts)) == tuple(parts)


def test_escapes_follow_rfc_6901() -> None:
    """'~1' is '/', '~0' is '~', and '~01' is the two characters '~1' (RFC 6901, section 4)."""
    assert pointer.split("/a~1b/m~0n/~01") == ("a/b", "m~n", "~1")
    assert pointer.join(["a/b", "m~n"]) == "/a~1b/m~0n"
    assert pointer.split("") == ()


def test_a_pointer_reaches_members_and_indexes_and_nothing_else() -> None:
    """Members of objects, in-range indexes of arrays; anything else is MISSING (None is a value)."""
    doc = {"a": [{"b": 1}, {"b": None}], "x/y": 2}
    assert pointer.get(doc, pointer.split("/a/0/b")) == 1
    assert pointer.get(doc, pointer.split("/a/1/b")) is None
    assert pointer.get(doc, pointer.split("/x~1y")) == 2
    for missing in ("/a/2/b", "/a/-1", "/a/b", "/c", "/a/0/b/c"):
        assert pointer.get(doc, pointer.split(missing)) is MISSING, missing
    assert pointer.get(doc, ()) is doc


def test_a_wildcard_stands_for_each_item_of_an_array_in_order() -> None:
    """expand yields each concrete pointer with its value and the indexes the wildcards took."""
    doc = {"calls": [{"to": "0xa"}, {"note": 1}, {"to": "0xb"}], "one": {"to": "0xc"}}
    assert list(pointer.expand(doc, "/calls/*/to")) == [
        ("/calls/0/to", "0xa", (0,)),
        ("/calls/2/to", "0xb", (2,)),
    ]
    assert list(pointer.expand(doc, "/one/to")) == [("/one/to", "0xc", ())]
    assert list(pointer.expand(doc, "/one/*")) == []  # a wildcard over an object matches nothing
    assert list(pointer.expand(doc, "/none")) == []


def test_a_long_value_is_clipped_to_its_width_with_an_ellipsis_and_a_short_one_is_kept() -> None:
    """fsm._text.clip is the one truncator: width characters at most, '...' marking the cut."""
    from fsm._text import ELLIPSIS, clip

    assert clip("abc", 3) == "abc"
    assert clip("abcd", 3) == ELLIPSIS
    assert clip("x" * 200, 80) == "x" * 77 + ELLIPSIS
    assert len(clip("y" * 1000, 120)) == 120
