"""Generation options with Hugging Face names, and the one rule for what each value may be.

Torch-free on purpose: the command line checks flags and prompt files with these rules before
torch is imported (a typo on line 9,000 of a prompt file fails in milliseconds), the app checks
what a user types, and the engine builds its parameters from the same dataclasses, so a range
is written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from tui_gen.errors import TuiGenError

EarlyStopping = bool | str  # True | False | "never"
SEED_LIMIT = 2**63


class InvalidParameterError(TuiGenError, ValueError):
    """A generation value outside its allowed range (a ValueError, and a user error)."""


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and not math.isnan(v)


def _integer(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int)


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


#: alternatives a token event may carry (OpenAI's `top_logprobs` allows 20 too)
MAX_LOGPROBS = 20

#: more beams than this is a typo, not a search (each beam holds its own KV cache)
MAX_BEAMS = 256

#: name -> (is the value allowed?, what is allowed, in words)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "temperature": (lambda v: _number(v) and 0 <= v < math.inf, "a number >= 0 (0 = greedy)"),
    "top_k": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0 = off)"),
    "top_p": (lambda v: _number(v) and 0 < v <= 1, "a number with 0 < top_p <= 1 (1 = off)"),
    "min_p": (lambda v: _number(v) and 0 <= v <= 1, "a number with 0 <= min_p <= 1 (0 = off)"),
    "repetition_penalty": (lambda v: _number(v) and 0 < v < math.inf, "a number > 0 (1 = off)"),
    "repetition_window": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0 = all)"),
    # >= 1 everywhere (command line, prompt files, API, the app's slider), as in Hugging Face:
    # a reply of no tokens is never what was meant
    "max_new_tokens": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "stop_strings": (_strings, "a string or a list of strings"),
    "seed": (
        lambda v: v is None or (_integer(v) and 0 <= v < SEED_LIMIT),
        "an integer with 0 <= seed < 2**63",
    ),
    "do_sample": (lambda v: isinstance(v, bool), "true or false"),
    "num_beams": (
        lambda v: _integer(v) and 1 <= v <= MAX_BEAMS,
        f"an integer from 1 to {MAX_BEAMS}",
    ),
    "num_return_sequences": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "length_penalty": (lambda v: _number(v) and not math.isinf(v), "a finite number"),
    "early_stopping": (lambda v: v in (True, False, "never"), 'true, false or "never"'),
    "logprobs": (
        lambda v: _integer(v) and 0 <= v <= MAX_LOGPROBS,
        f"an integer from 0 to {MAX_LOGPROBS} (0 = off)",
    ),
}


def check_value(name: str, value: Any) -> Any:
    """`value` if it is allowed for `name` (a stop string becomes a list of one), else raise
    InvalidParameterError naming the value and what is allowed. Unknown names pass unchecked."""
    if name == "stop_strings" and isinstance(value, str):
        value = [value]
    rule = RULES.get(name)
    if rule is not None and not rule[0](value):
        raise InvalidParameterError(f"{name} must be {rule[1]}; got {value!r}")
    return value


@dataclass
class SamplingParams:
    """Sampling values, named as in Hugging Face `generate()`.

    `temperature == 0` or `do_sample=False` means greedy. `top_k=0`, `top_p=1`, `min_p=0` and
    `repetition_penalty=1` switch their step off.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    #: only the last N tokens count for the repetition penalty (0 = all of them)
    repetition_window: int = 0
    max_new_tokens: int = 256
    stop_strings: list[str] = field(default_factory=list)
    seed: int | None = None
    do_sample: bool = True
    #: attach the chosen token's log-probability and the N most likely alternatives to every
    #: TokenEvent (events.TokenLogprobs); 0 = off. Not a sampler: it never changes the ids.
    logprobs: int = 0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0

    def validate(self) -> SamplingParams:
        """Raise InvalidParameterError (a ValueError) naming the value and its allowed range."""
        for f in fields(self):
            setattr(self, f.name, check_value(f.name, getattr(self, f.name)))
        self.stop_strings = [s for s in self.stop_strings if s]
        return self

    def replace(self, **changes: Any) -> SamplingParams:
        """A copy with some values changed (unknown names are a ValueError, not ignored)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise InvalidParameterError(
                f"unknown sampling parameter(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(f.name for f in fields(self))}"
            )
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_generation_config(cls, gc: dict[str, Any]) -> SamplingParams:
        """Defaults from a generation_config.json; keys it does not set keep our defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in gc.items() if k in known and v is not None}
        if gc.get("do_sample") is False:
            values["do_sample"] = False
        try:
            return cls(**values)
        except (ValueError, TypeError):
            return cls()  # a bad generation_config.json should not stop the model opening


@dataclass(frozen=True)
class BeamParams:
    """Beam settings, named as in Hugging Face `generate()`."""

    num_beams: int = 4
    length_penalty: float = 1.0
    early_stopping: EarlyStopping = False
    num_return_sequences: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))
        if self.num_return_sequences > self.num_beams:
            raise InvalidParameterError(
                f"num_return_sequences={self.num_return_sequences} must be between 1 and "
                f"num_beams={self.num_beams} (beam search returns its best beams)"
            )
