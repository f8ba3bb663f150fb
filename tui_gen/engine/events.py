"""What the generator yields: plain dataclasses, so any front end (TUI, CLI, API) can consume them.

The decode loop is a Python generator of events rather than a callback API: the caller decides
how to batch, display or discard them, and stopping is just not asking for the next one (or
setting the cancel event, which the loop checks every step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FinishReason = Literal["eos", "stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class TokenAlternative:
    """One candidate token at a step and its log-probability (natural log)."""

    token_id: int
    text: str  # the token decoded on its own (may hold U+FFFD for a partial character)
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenLogprobs:
    """What the model weighed at one step (asked for with SamplingParams.logprobs = N).

    Two distributions, both over the whole vocabulary:
    * raw (`logprob`, `top`): log_softmax of the model's logits after the repetition penalty
      (when one is set) and before temperature, top-k, top-p and min-p;
    * sampled (`sampled_logprob`, `sampled_top`): the distribution the token was drawn from,
      after every sampler; tokens the samplers removed are absent from `sampled_top`, and
      under greedy decoding it is all on the chosen token (logprob 0).
    """

    token_id: int
    text: str
    logprob: float
    top: tuple[TokenAlternative, ...]  # N most likely under raw, most likely first
    sampled_logprob: float
    sampled_top: tuple[TokenAlternative, ...]  # up to N most likely under sampled


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token and the text it adds (may be "" while a character is incomplete,
    or while text is held back because it could be the start of a stop string).

    At the very end, text that was held back is released in an event with token_id -1: it
    adds text but is not a token, so counting tokens means counting token_id >= 0.
    """

    token_id: int
    text: str
    index: int = 0  # which sequence of a batch
    #: set when SamplingParams.logprobs > 0 (None for the held-back-text event, token_id -1)
    logprobs: TokenLogprobs | None = None


@dataclass(frozen=True, slots=True)
class NoticeEvent:
    """Something the user should be told that is not an error (e.g. old turns were dropped)."""

    message: str
    kind: str = "info"  # "info" | "context_trimmed" | "prompt_truncated"
    #: for "context_trimmed": how many of the oldest messages were left out of the prompt
    dropped: int = 0


@dataclass(slots=True)
class GenerationStats:
    prompt_tokens: int = 0
    #: prompt tokens actually run through the model (fewer than prompt_tokens when the KV cache
    #: already held a shared prefix)
    prefill_tokens: int = 0
    generated_tokens: int = 0
    time_to_first_token: float = 0.0  # seconds from the call to the first token
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    prompt_truncated: bool = False

    @property
    def prefill_tokens_per_second(self) -> float:
        return self.prefill_tokens / self.prefill_seconds if self.prefill_seconds > 0 else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        """Tokens after the first, over the time spent producing them."""
        n = self.generated_tokens - 1
        return n / self.decode_seconds if n > 0 and self.decode_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prefill_tokens_per_second"] = round(self.prefill_tokens_per_second, 2)
        d["decode_tokens_per_second"] = round(self.decode_tokens_per_second, 2)
        return d


@dataclass(slots=True)
class FinishEvent:
    """The last event of a generation: why it ended, the full text and the stats."""

    reason: FinishReason
    text: str
    token_ids: list[int]
    stats: GenerationStats = field(default_factory=GenerationStats)
    index: int = 0


@dataclass(slots=True)
class GenerationResult:
    """What the non-streaming API returns when the caller wants more than the text."""

    text: str
    finish_reason: FinishReason
    token_ids: list[int]
    stats: GenerationStats


Event = TokenEvent | NoticeEvent | FinishEvent
