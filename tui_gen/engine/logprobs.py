"""Per-token probabilities (SamplingParams.logprobs = N): read from the tensors a step already
computed (sampling.StepLogits), never from an extra forward pass.

Per step and for all rows at once: one log_softmax and one top-N on the raw logits, and, when
sampling, one log_softmax and one top-N on the final ones (at most top_k columns when top-k is
set); nothing under greedy, whose sampled distribution is all on the chosen token. The rest is
a few `tolist` calls and the token texts, decoded once per id and remembered (`TokenTexts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from tui_gen.engine.events import TokenAlternative, TokenLogprobs
from tui_gen.engine.sampling import StepLogits


class TokenTexts:
    """The text of one token decoded on its own (special tokens written out, a partial
    character as U+FFFD), remembered per id: a token's text never changes."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._texts: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        text = self._texts.get(token_id)
        if text is None:
            text = self._tokenizer.decode([token_id], skip_special_tokens=False)
            self._texts[token_id] = text
        return text


def _alternatives(
    ids: list[int], values: list[float], n: int, text: TokenTexts
) -> tuple[TokenAlternative, ...]:
    """The first n (id, logprob) pairs as alternatives, without the impossible ones (-inf:
    removed by a sampler, or masked by the model)."""
    return tuple(
        TokenAlternative(i, text(i), v) for i, v in zip(ids[:n], values[:n]) if v != -math.inf
    )


def read_logprobs(
    step: StepLogits,
    tokens: torch.Tensor,
    columns: torch.Tensor,
    ns: Sequence[int],
    text: TokenTexts,
) -> list[TokenLogprobs | None]:
    """TokenLogprobs of every row (None where its N is 0).

    `tokens` (B,) are the chosen ids and `columns` (B,) their columns in `step.final`
    (sampling.choose returns both); `ns` is each row's N.
    """
    n = max(ns)
    if n <= 0:
        return [None] * len(ns)
    raw = step.raw.float().log_softmax(dim=-1)  # (B, V)
    top_v, top_i = raw.topk(min(n, raw.shape[-1]), dim=-1)  # (B, n)
    chosen = raw.gather(-1, tokens[:, None])[:, 0].tolist()
    top_values, top_ids, token_ids = top_v.tolist(), top_i.tolist(), tokens.tolist()
    sampled: list[float] | None = None
    if step.final is not None:
        final = step.final.log_softmax(dim=-1)  # (B, K), -inf where a sampler removed
        s_v, s_c = final.topk(min(n, final.shape[-1]), dim=-1)
        s_i = s_c if step.ids is None else step.ids.gather(-1, s_c)
        sampled = final.gather(-1, columns[:, None])[:, 0].tolist()
        s_values, s_ids = s_v.tolist(), s_i.tolist()
    out: list[TokenLogprobs | None] = []
    for row, k in enumerate(ns):
        if k <= 0:
            out.append(None)
            continue
        tok = token_ids[row]
        top = _alternatives(top_ids[row], top_values[row], k, text)
        s_top: tuple[TokenAlternative, ...]
        if sampled is None or not math.isfinite(sampled[row]):
            # greedy (or a temperature so small it became greedy): all mass on the token
            s_lp, s_top = 0.0, (TokenAlternative(tok, text(tok), 0.0),)
        else:
            s_lp, s_top = sampled[row], _alternatives(s_ids[row], s_values[row], k, text)
        out.append(TokenLogprobs(tok, text(tok), chosen[row], top, s_lp, s_top))
    return out


def deterministic(
    token_id: int, logprob: float, top_ids: list[int], top_values: list[float], text: TokenTexts
) -> TokenLogprobs:
    """TokenLogprobs of a token a deterministic search chose (beam search): the raw values as
    given, the sampled distribution all on the token."""
    alt = TokenAlternative(token_id, text(token_id), 0.0)
    top = _alternatives(top_ids, top_values, len(top_ids), text)
    return TokenLogprobs(token_id, text(token_id), logprob, top, 0.0, (alt,))
