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


def _value(token_id: int, ids: list[int], values: list[float]) -> float | None:
    """The token's value when it is among the top ids (it nearly always is: the chosen token is
    the argmax under greedy and usually near the top when sampling), saving a tensor read."""
    try:
        return values[ids.index(token_id)]
    except ValueError:
        return None


def read_logprobs(
    step: StepLogits,
    tokens: Sequence[int],
    columns: Sequence[int],
    ns: Sequence[int],
    text: TokenTexts,
) -> list[TokenLogprobs | None]:
    """TokenLogprobs of every row (None where its N is 0).

    `tokens` are the chosen ids and `columns` their columns in `step.final` (sampling.choose
    returns both); `ns` is each row's N. Each tensor operation costs microseconds of dispatch
    on a small model's step, so there are few: after top-k the columns are already sorted
    (torch.topk's order, StepLogits), so both top-N lists are the first N columns and no
    second top-N runs.
    """
    n = max(ns)
    if n <= 0:
        return [None] * len(ns)
    raw = step.raw if step.raw.dtype == torch.float32 else step.raw.float()
    raw = raw.log_softmax(dim=-1)  # (B, V)
    final = None
    if step.final is not None and step.ids is not None and n <= step.ids.shape[-1]:
        head = step.ids[:, :n]  # the n most likely ids, raw and sampled alike
        final = step.final.log_softmax(dim=-1)  # (B, k), -inf where a sampler removed
        values = torch.cat((raw.gather(-1, head), final[:, :n])).tolist()  # (2B, n)
        top_ids = s_ids = head.tolist()
        top_values, s_values = values[: len(ns)], values[len(ns) :]
    else:
        top_v, top_i = raw.topk(min(n, raw.shape[-1]), dim=-1)  # (B, n)
        top_values, top_ids = top_v.tolist(), top_i.tolist()
        if step.final is not None:
            final = step.final.log_softmax(dim=-1)  # (B, K)
            s_v, s_c = final.topk(min(n, final.shape[-1]), dim=-1)
            s_values, s_ids = s_v.tolist(), s_c.tolist()
            if step.ids is not None:  # columns of the top-k survivors -> vocabulary ids
                s_ids = [[vocab[c] for c in cs] for vocab, cs in zip(step.ids.tolist(), s_ids)]
    out: list[TokenLogprobs | None] = []
    for row, k in enumerate(ns):
        if k <= 0:
            out.append(None)
            continue
        tok = tokens[row]
        lp = _value(tok, top_ids[row], top_values[row])
        if lp is None:
            lp = float(raw[row, tok])
        top = _alternatives(top_ids[row], top_values[row], k, text)
        s_lp: float | None = None
        s_top: tuple[TokenAlternative, ...] = ()
        if final is not None:
            s_lp = _value(tok, s_ids[row], s_values[row])
            if s_lp is None:
                s_lp = float(final[row, columns[row]])
            s_top = _alternatives(s_ids[row], s_values[row], k, text)
        if s_lp is None or not math.isfinite(s_lp):
            # greedy (or a temperature so small it became greedy): all mass on the token
            s_lp, s_top = 0.0, (TokenAlternative(tok, text(tok), 0.0),)
        out.append(TokenLogprobs(tok, text(tok), lp, top, s_lp, s_top))
    return out


def deterministic(
    token_id: int, logprob: float, top_ids: list[int], top_values: list[float], text: TokenTexts
) -> TokenLogprobs:
    """TokenLogprobs of a token a deterministic search chose (beam search): the raw values as
    given, the sampled distribution all on the token."""
    alt = TokenAlternative(token_id, text(token_id), 0.0)
    top = _alternatives(top_ids, top_values, len(top_ids), text)
    return TokenLogprobs(token_id, text(token_id), logprob, top, 0.0, (alt,))
