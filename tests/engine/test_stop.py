"""The end of a stream (StopStringMatcher.close) and the one prompt-truncation rule."""

from __future__ import annotations

from tui_gen.engine.context import truncate_prompt
from tui_gen.engine.stop import StopStringMatcher


def test_close_releases_what_was_held_back_and_the_pending_text() -> None:
    m = StopStringMatcher(["END"])
    assert m.feed("abc E") == ("abc ", False)  # "E" may start "END": held back
    assert m.close("x") == "Ex"
    assert m.text == "abc Ex"


def test_close_stops_at_a_stop_string_completed_by_the_pending_text() -> None:
    m = StopStringMatcher(["END"])
    m.feed("abc EN")
    assert m.close("D and more") == ""
    assert m.text == "abc " and m.hit == "END"


def test_close_after_a_hit_releases_nothing() -> None:
    m = StopStringMatcher(["END"])
    assert m.feed("xENDy") == ("x", True)
    assert m.close("tail") == ""


def test_truncate_prompt_keeps_the_end_and_room_to_answer() -> None:
    ids = list(range(100))
    assert truncate_prompt(ids, 10, 101) == (ids, None)
    kept, notice = truncate_prompt(ids, 10, 100)
    assert kept == ids[-90:] and notice is not None and "kept the last 90" in notice
    kept, _ = truncate_prompt(ids, 1000, 100)  # at most a quarter of the context is reserved
    assert kept == ids[-75:]
    kept, _ = truncate_prompt(ids, 0, 100)  # at least one new token
    assert kept == ids[-99:]
