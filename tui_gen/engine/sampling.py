"""Sampling: parameters with Hugging Face names, and one small pure function per logits step.

Order (fixed, documented, tested): repetition penalty -> top-k -> top-p -> min-p -> temperature
-> draw with a seeded torch.Generator. Each step takes logits (B, V) and returns new logits with
removed tokens set to -inf, so each can be tested alone and they compose by plain calls.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from tui_gen.errors import TuiGenError

NEG_INF = float("-inf")


class InvalidParameterError(TuiGenError, ValueError):
    """A sampling value outside its allowed range (a ValueError, and a user error)."""


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

    def __post_init__(self) -> None:
        self.validate()

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0

    def validate(self) -> SamplingParams:
        """Raise ValueError naming the value and its allowed range."""

        def bad(name: str, value: Any, allowed: str) -> InvalidParameterError:
            return InvalidParameterError(f"{name}={value!r} is out of range; allowed: {allowed}")

        def number(name: str) -> float:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
                raise bad(name, v, "a number")
            return v

        if number("temperature") < 0 or math.isinf(self.temperature):
            raise bad("temperature", self.temperature, ">= 0 (0 = greedy)")
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 0:
            raise bad("top_k", self.top_k, "an integer >= 0 (0 = off)")
        if not 0 < number("top_p") <= 1:
            raise bad("top_p", self.top_p, "0 < top_p <= 1 (1 = off)")
        if not 0 <= number("min_p") <= 1:
            raise bad("min_p", self.min_p, "0 <= min_p <= 1 (0 = off)")
        if number("repetition_penalty") <= 0 or math.isinf(self.repetition_penalty):
            raise bad("repetition_penalty", self.repetition_penalty, "> 0 (1 = off)")
        if (
            not isinstance(self.repetition_window, int)
            or isinstance(self.repetition_window, bool)
            or self.repetition_window < 0
        ):
            raise bad("repetition_window", self.repetition_window, "an integer >= 0 (0 = all)")
        if (
            not isinstance(self.max_new_tokens, int)
            or isinstance(self.max_new_tokens, bool)
            or self.max_new_tokens < 0
        ):
            raise bad("max_new_tokens", self.max_new_tokens, "an integer >= 0")
        if isinstance(self.stop_strings, str):
            self.stop_strings = [self.stop_strings]
        if not all(isinstance(s, str) for s in self.stop_strings):
            raise bad("stop_strings", self.stop_strings, "a list of strings")
        self.stop_strings = [s for s in self.stop_strings if s]
        if self.seed is not None and (
            not isinstance(self.seed, int) or isinstance(self.seed, bool)
        ):
            raise bad("seed", self.seed, "an integer or None")
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


# --- the pure steps -------------------------------------------------------------------------


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Divide positive and multiply negative logits of every token in `seen` (B, L) by penalty.

    This is the CTRL/Hugging Face rule: a penalty > 1 always makes a seen token less likely.
    Each token counts once however often it was seen.
    """
    if penalty == 1.0 or seen.numel() == 0:
        return logits
    score = logits.gather(1, seen)  # (B, L)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter(1, seen, score)


def apply_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the k largest logits per row (ties at the k-th value are kept too); 0 = off."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, NEG_INF)


def apply_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches top_p.

    The most likely token is always kept, so a tiny top_p degrades to greedy, never to nothing.
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    # mass strictly before each token; a token is kept while that mass is still below top_p
    mass_before = probs.cumsum(dim=-1) - probs
    remove_sorted = mass_before >= top_p
    remove_sorted[..., 0] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, NEG_INF)


def apply_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Drop tokens whose probability is below min_p times the top token's probability."""
    if min_p <= 0.0:
        return logits
    probs = logits.softmax(dim=-1)
    threshold = probs.max(dim=-1, keepdim=True).values * min_p
    return logits.masked_fill(probs < threshold, NEG_INF)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide by the temperature (> 0; greedy is handled before sampling)."""
    if temperature == 1.0:
        return logits
    return logits / temperature


def draw(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Sample one id per row (B,) from softmax(logits) with the seeded generator."""
    probs = logits.float().softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A torch.Generator on the logits' device; a None seed draws a fresh random one."""
    g = torch.Generator(device=device)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    g.manual_seed(seed)
    return g


def next_token(
    logits: torch.Tensor,
    params: SamplingParams,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick the next token id per row (B,) from last-position logits (B, V), on the device.

    With top_k set, the later steps run on the k survivors only (same result, far less work
    than sorting the whole vocabulary each step).
    """
    if seen is not None:
        if params.repetition_window > 0:
            seen = seen[:, -params.repetition_window :]
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.greedy:
        return logits.argmax(dim=-1)
    logits = logits.float()
    if 0 < params.top_k < logits.shape[-1]:
        values, indices = torch.topk(logits, params.top_k, dim=-1)  # (B, k), sorted
        values = apply_top_p(values, params.top_p)
        values = apply_min_p(values, params.min_p)
        values = apply_temperature(values, params.temperature)
        choice = draw(values, generator)  # (B,) index into the k survivors
        return indices.gather(-1, choice[:, None]).squeeze(-1)
    logits = apply_top_p(logits, params.top_p)
    logits = apply_min_p(logits, params.min_p)
    logits = apply_temperature(logits, params.temperature)
    return draw(logits, generator)
