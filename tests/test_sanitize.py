"""Model output is shown literally: no escape sequences or control characters reach the screen."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tui_gen.sanitize import StreamSanitizer, sanitize

UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# text rich in the characters that matter, plus ordinary ones
nasty = st.lists(
    st.sampled_from([*"ab [];m()\\?0123456789\n\t\r\x07\x1b\x9b\x85\x00\x7fé🍕", "\x1b[", "\x1b]"]),
    max_size=60,
).map("".join)


def test_plain_text_unchanged() -> None:
    text = "Preheat to 200 °C.\n\tStir — then [bold red]serve[/] 🍕"
    assert sanitize(text) == text


def test_removes_csi_and_osc_sequences() -> None:
    assert sanitize("a\x1b[31mred\x1b[0m b") == "ared b"
    assert sanitize("x\x1b]0;pwned title\x07y") == "xy"
    assert sanitize("x\x1b]52;c;ZXZpbA==\x1b\\y") == "xy"  # OSC 52 clipboard write
    assert sanitize("\x1bcreset") == "reset"
    assert sanitize("\x1b(Bok") == "ok"


def test_controls_become_visible_pictures() -> None:
    assert sanitize("bell\x07") == "bell\u2407"
    assert sanitize("nul\x00") == "nul\u2400"
    assert sanitize("del\x7f") == "del\u2421"
    assert sanitize("lone esc \x1b") == "lone esc \u241b"
    assert sanitize("c1 \x9b31m") == "c1 \ufffd31m"


def test_carriage_returns_become_newlines() -> None:
    assert sanitize("a\r\nb\rc") == "a\nb\nc"


@given(nasty)
def test_output_never_contains_controls(text: str) -> None:
    out = sanitize(text)
    assert not UNSAFE.search(out), repr(out)


@given(nasty)
def test_idempotent(text: str) -> None:
    once = sanitize(text)
    assert sanitize(once) == once


@given(nasty, st.lists(st.integers(min_value=0, max_value=80), max_size=6))
def test_stream_equals_whole(text: str, cuts: list[int]) -> None:
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    s = StreamSanitizer()
    streamed = "".join(s.feed(p) for p in pieces) + s.flush()
    assert streamed == sanitize(text)


def test_stream_holds_a_split_sequence() -> None:
    s = StreamSanitizer()
    assert s.feed("red: \x1b[3") == "red: "
    assert s.feed("1mhot") == "hot"
    assert s.flush() == ""


def test_stream_does_not_hold_forever() -> None:
    s = StreamSanitizer()
    out = s.feed("\x1b]" + "x" * 300)
    assert out.endswith("x" * 300)  # an unterminated OSC does not swallow the reply
