"""Sampling: one small pure function per logits step (the parameters are tui_gen.options').

Order (fixed, documented, tested): repetition penalty -> top-k -> top-p -> min-p -> temperature
-> draw with a seeded torch.Generator. Each step takes logits (B, V) and returns new logits with
removed tokens set to -inf, so each can be tested alone and they compose by plain calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tui_gen.engine.native import build
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


@dataclass(frozen=True, slots=True)
class StepLogits:
    """One step's logits at the two points per-token probabilities are reported from; the
    sampler draws from these very tensors, so what is reported is what was used.

    * `raw` (B, V): after the repetition penalty, before anything else (greedy takes its
      argmax);
    * `final` (B, K): what the draw takes the softmax of, after top-k, top-p, min-p and the
      temperature, removed tokens at -inf; None under greedy. With top-k set only the k
      survivors are kept (K = k) and `ids` (B, K) holds their vocabulary ids; otherwise
      K = V in vocabulary order and `ids` is None;
    * `kept`: `final` before the temperature (its argmax is the fallback when the temperature
      overflows the softmax, see `choose`).
    """

    raw: torch.Tensor
    final: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    kept: torch.Tensor | None = None


def process_logits(
    logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None = None
) -> StepLogits:
    """Run every logits step of `params` on last-position logits (B, V), in the fixed order.

    With top_k set, the later steps run on the k survivors only (same result, far less work
    than sorting the whole vocabulary each step).
    """
    if seen is not None:
        if params.repetition_window > 0:
            seen = seen[:, -params.repetition_window :]
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.greedy:
        return StepLogits(logits)
    logits = logits.float()
    ids = None
    kept = logits
    if 0 < params.top_k < logits.shape[-1]:
        kept, ids = torch.topk(logits, params.top_k, dim=-1)  # (B, k), sorted
    kept = apply_min_p(apply_top_p(kept, params.top_p), params.min_p)
    return StepLogits(logits, apply_temperature(kept, params.temperature), ids, kept)


def greedy_tokens(raw: torch.Tensor) -> torch.Tensor:
    """raw.argmax(dim=-1) for logits (B, V): the largest entry of each row, the first on ties,
    a NaN where the row has one. Float32 rows on the CPU go through the kernels' argmax
    (logprobs.c's lp_argmax: ~10x torch's scalar loop on a 262,144-entry vocabulary)."""
    if raw.device.type == "cpu" and raw.dtype == torch.float32 and raw.dim() == 2:
        lib = build.load() if raw.stride(-1) == 1 and raw.shape[1] > 0 else None
        if lib is not None:
            out = torch.empty(raw.shape[0], dtype=torch.long)
            rows, vocab = raw.shape
            if lib.lp_argmax(raw.data_ptr(), rows, vocab, raw.stride(0), out.data_ptr()) == 0:
                return out
    return raw.argmax(dim=-1)


def choose(
    step: StepLogits, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token per row (B,) and its column in `step.final` (B,) (= the id when there
    is no `final` or it spans the whole vocabulary).

    When the probabilities are not finite, the most likely token: a temperature (or
    repetition penalty) so small that logits/temperature overflows makes softmax NaN and
    torch.multinomial raise; the limit of sampling at such a temperature is greedy, so that is
    what it becomes. NaN logits from the model itself also end here: their argmax is a NaN
    entry, which the decode loop reports (check_logit). Nothing is checked on the normal path.
    """
    if step.final is None:
        tok = greedy_tokens(step.raw)
        return tok, tok
    try:
        col = draw(step.final, generator)
    except RuntimeError:
        assert step.kept is not None
        col = step.kept.argmax(dim=-1)
    return _vocabulary_ids(step, col), col


def _vocabulary_ids(step: StepLogits, col: torch.Tensor) -> torch.Tensor:
    """Columns of `step.final` (B,) as vocabulary ids: the same unless top-k kept a subset."""
    return col if step.ids is None else step.ids.gather(-1, col[:, None]).squeeze(-1)


def choose_rows(
    step: StepLogits, generators: Sequence[torch.Generator | None]
) -> tuple[torch.Tensor, torch.Tensor]:
    """`choose` with one generator per row: row i gets exactly the token `choose` gives its
    row alone with generators[i] (the same softmax of the same values, one multinomial draw
    from its own generator), so a seeded request samples alike in a batch and on its own.

    Why not one multinomial over the batch: it would draw every row from one generator; and
    not `choose` per row: each call re-runs the whole processing chain for one row (~100 us
    of dispatch), which is what made a batch of sampled rows cost nearly b solo steps.
    """
    if step.final is None or len(generators) == 1:
        return choose(step, generators[0] if generators else None)
    probs = step.final.float().softmax(dim=-1)  # (B, K)
    cols = []
    for i, g in enumerate(generators):
        try:
            cols.append(torch.multinomial(probs[i : i + 1], 1, generator=g)[:, 0])
        except RuntimeError:  # non-finite probabilities: the row's argmax, as `choose`
            assert step.kept is not None
            cols.append(step.kept[i : i + 1].argmax(dim=-1))
    col = torch.cat(cols)
    return _vocabulary_ids(step, col), col


def next_token(
    logits: torch.Tensor,
    params: SamplingParams,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick the next token id per row (B,) from last-position logits (B, V), on the device."""
    return choose(process_logits(logits, params, seen), generator)[0]
