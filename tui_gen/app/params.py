"""The sampling values a user can tune in the app: names, ranges, steps and how they are shown.

One table drives the sliders, the slash commands, the settings file and validation, so a range
is written once. Names are SamplingParams field names (Hugging Face spelling); this module does
not import the engine (it imports torch), and the engine validates again anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Number = int | float


@dataclass(frozen=True)
class ParamSpec:
    """One tunable value: its range, slider steps, display format and slash command."""

    name: str  #: SamplingParams field
    label: str
    minimum: Number
    maximum: Number
    step: Number
    big_step: Number
    default: Number
    slash: str  #: slash command that sets it, without the "/"
    integer: bool = False
    help: str = ""

    def clamp(self, value: Number) -> Number:
        """Keep `value` in range and on the step grid (ints stay ints)."""
        value = min(max(value, self.minimum), self.maximum)
        steps = round((value - self.minimum) / self.step)
        snapped = self.minimum + steps * self.step
        snapped = min(max(snapped, self.minimum), self.maximum)
        if self.integer:
            return round(snapped)
        return round(snapped, _decimals(self.step))

    def format(self, value: Number) -> str:
        """How the value reads in the panel, the status messages and exports."""
        if self.integer:
            return str(int(value))
        return f"{value:.{max(2, _decimals(self.step))}f}"

    def parse(self, text: str) -> Number:
        """Parse a user-typed value; raise ValueError with a one-line message naming the range."""
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{self.label} must be a number, got {text!r}") from None
        if math.isnan(value) or not self.minimum <= value <= self.maximum:
            raise ValueError(
                f"{self.label} must be between {self.format(self.minimum)} and "
                f"{self.format(self.maximum)}, got {text}"
            )
        if self.integer and value != int(value):
            raise ValueError(f"{self.label} must be a whole number, got {text}")
        return self.clamp(int(value) if self.integer else value)


def _decimals(step: Number) -> int:
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


#: the panel's sliders, in order. top_p 0 would be rejected by the engine; `to_overrides` maps
#: it to the smallest positive value, which keeps only the most likely token (= greedy).
PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("temperature", "Temperature", 0.0, 2.0, 0.05, 0.25, 0.8, "temp",
              help="0 = greedy; higher = more varied"),
    ParamSpec("top_k", "Top-k", 0, 200, 1, 10, 40, "top_k", integer=True,
              help="keep the k most likely tokens; 0 = off"),
    ParamSpec("top_p", "Top-p", 0.0, 1.0, 0.01, 0.1, 0.95, "top_p",
              help="keep the most likely tokens up to this mass; 1 = off"),
    ParamSpec("min_p", "Min-p", 0.0, 1.0, 0.01, 0.1, 0.0, "min_p",
              help="drop tokens below min_p x the top token's probability; 0 = off"),
    ParamSpec("repetition_penalty", "Repetition penalty", 1.0, 2.0, 0.01, 0.1, 1.0, "rep",
              help="penalise tokens already in the conversation; 1 = off"),
    ParamSpec("max_new_tokens", "Max new tokens", 1, 4096, 1, 64, 256, "max_tokens",
              integer=True, help="the longest reply, in tokens"),
)  # fmt: skip

BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMS}
BY_SLASH: dict[str, ParamSpec] = {p.slash: p for p in PARAMS}


def clean_values(values: dict[str, Any]) -> dict[str, Number]:
    """Keep the known, numeric values of `values`, clamped to their ranges (for settings files,
    which a user may have edited by hand)."""
    out: dict[str, Number] = {}
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if spec is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        out[name] = spec.clamp(value)
    return out


def to_overrides(values: dict[str, Number]) -> dict[str, Number]:
    """Slider values as SamplingParams keyword arguments (top_p 0 -> the smallest positive)."""
    out = dict(values)
    if "top_p" in out and out["top_p"] <= 0:
        out["top_p"] = 1e-6
    return out
