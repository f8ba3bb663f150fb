"""Sampling: one small pure function per logits step (the parameters are tui_gen.options').

Order (fixed, documented, tested): repetition penalty -> top-k -> top-p -> min-p -> temperature
-> draw with a seeded torch.Generator. Each step takes logits (B, V) and returns new logits with
removed tokens set to -inf, so each can be tested alone and they compose by plain calls.
"""

from __future__ import annotations

import math

import torch

from tui_gen.errors import TuiGenError
from tui_gen.options import SamplingParams

NEG_INF = float("-inf")


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


def check_logit(logits: torch.Tensor, token: int, row: int = 0, index: int = 0) -> None:
    """Stop with one line when the model produced a non-finite logit for the token it picked
    (NaN/Inf weights): one scalar read per step, on the sampled row only."""
    value = float(logits[row, token])
    if not math.isfinite(value):
        raise NonFiniteLogitsError(
            f"the model produced {'NaN' if math.isnan(value) else 'infinite'} logits at token "
            f"{index}; its weights are broken (NaN/Inf), re-export or download the model again"
        )


class NonFiniteLogitsError(TuiGenError):
    """The model's output is NaN or infinite (broken weights), reported instead of sampled."""


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
        choice = _draw_safely(values, params.temperature, generator)  # (B,) among the k
        return indices.gather(-1, choice[:, None]).squeeze(-1)
    logits = apply_top_p(logits, params.top_p)
    logits = apply_min_p(logits, params.min_p)
    return _draw_safely(logits, params.temperature, generator)


def _draw_safely(logits: torch.Tensor, temperature: float, generator: torch.Generator | None):
    """Temperature, then draw; when the probabilities are not finite, the most likely token.

    A temperature (or repetition penalty) so small that logits/temperature overflows makes
    softmax NaN and torch.multinomial raise; the limit of sampling at such a temperature is
    greedy, so that is what it becomes. NaN logits from the model itself also end here: their
    argmax is a NaN entry, which the decode loop reports (generator.check_logit). Nothing is
    checked on the normal path.
    """
    try:
        return draw(apply_temperature(logits, temperature), generator)
    except RuntimeError:
        return logits.argmax(dim=-1)
