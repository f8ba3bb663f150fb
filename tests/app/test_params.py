"""The app's slider table (app/params.py) stays inside the one rule of tui_gen/options.py."""

from __future__ import annotations

import pytest

from tui_gen.app.params import PARAMS, to_overrides
from tui_gen.options import SamplingParams, check_value


@pytest.mark.parametrize("spec", PARAMS, ids=[p.name for p in PARAMS])
def test_every_slider_value_is_one_the_engine_accepts(spec) -> None:
    for value in (spec.minimum, spec.default, spec.maximum):
        v = to_overrides({spec.name: spec.clamp(value)})[spec.name]
        assert check_value(spec.name, v) == v
    SamplingParams(**to_overrides({p.name: p.default for p in PARAMS}))


def test_a_value_outside_the_rule_would_be_caught() -> None:
    with pytest.raises(ValueError, match="top_p must be"):
        check_value("top_p", 0.0)  # why to_overrides maps the slider's 0 to a tiny top_p
