"""Slash-command parsing and the tunable-value table (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui_gen.app import params, slash


def test_sampling_commands_parse_values() -> None:
    assert slash.parse("/temp 0.7") == slash.SlashCommand("temp", "0.7", "temperature", 0.7)
    cmd = slash.parse("  /top_k 12 ")
    assert (cmd.param, cmd.value) == ("top_k", 12) and isinstance(cmd.value, int)
    assert slash.parse("/top-p 0.5").value == 0.5  # dashes are accepted
    assert slash.parse("/min_p 0.05").value == 0.05
    assert slash.parse("/rep 1.1").value == 1.1
    assert slash.parse("/max_tokens 512").value == 512


def test_sampling_command_without_value_asks_for_it() -> None:
    cmd = slash.parse("/temp")
    assert cmd.param == "temperature" and cmd.value is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("/temp 3", "between 0.00 and 2.00"),
        ("/temp hot", "must be a number"),
        ("/top_k 2.5", "whole number"),
        ("/rep 0.5", "between 1.00 and 2.00"),
        ("/frobnicate", "unknown command /frobnicate"),
        ("/reset now", "takes no argument"),
    ],
)
def test_bad_commands_explain_themselves(text: str, needle: str) -> None:
    with pytest.raises(slash.SlashError, match=needle):
        slash.parse(text)


def test_other_commands_keep_their_argument() -> None:
    assert slash.parse("/system You are a chef.") == slash.SlashCommand("system", "You are a chef.")
    assert slash.parse("/save out.md").arg == "out.md"
    assert slash.parse("/theme").arg == ""
    assert slash.parse("/HELP").name == "help"


def test_double_slash_is_a_message() -> None:
    assert not slash.is_command("//etc/hosts is a file")
    assert slash.message_text("//etc/hosts is a file") == "/etc/hosts is a file"
    assert slash.is_command("/reset") and not slash.is_command("hello /reset")


def test_every_param_has_a_command_listed_in_help() -> None:
    for spec in params.PARAMS:
        assert spec.slash in slash.COMMANDS


@given(st.floats(min_value=-10, max_value=10, allow_nan=False))
def test_clamp_stays_in_range_and_on_grid(x: float) -> None:
    for spec in params.PARAMS:
        v = spec.clamp(x)
        assert spec.minimum <= v <= spec.maximum
        steps = (v - spec.minimum) / spec.step
        assert abs(steps - round(steps)) < 1e-6
        assert isinstance(v, int) == spec.integer


def test_clean_values_drops_junk_and_clamps() -> None:
    got = params.clean_values({"temperature": 9, "top_k": "many", "nope": 1, "min_p": True})
    assert got == {"temperature": 2.0}


def test_top_p_zero_becomes_smallest_positive() -> None:
    assert 0 < params.to_overrides({"top_p": 0.0})["top_p"] < 1e-3
