"""Per-token probabilities (SamplingParams.logprobs = N): read from the tensors a step already
computed (sampling.StepLogits), never from an extra forward pass.

Per step and for all rows at once: one log_softmax and one top-N on the raw logits, and, when
sampling, one log_softmax and one top-N on the final ones (at most top_k columns when top-k is
set); nothing under greedy, whose sampled distribution is all on the chosen token. The rest is
a few `tolist` calls and the token texts, decoded once per id and remembered (`TokenTexts`).
"""

from __future__ import annotations

import ctypes
import math
import os
from collections.abc import Sequence
from typing import Any

import torch

from tui_gen.engine.events import TokenAlternative, TokenLogprobs
from tui_gen.engine.native import build
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


def _native_lib() -> Any:
    """The kernel library for logprobs.c, or None: without a compiler, with
    TUI_GEN_NATIVE=0 (all C off) or with TUI_GEN_LOGPROBS_NATIVE=0 (this one off)."""
    flag = os.environ.get("TUI_GEN_LOGPROBS_NATIVE", "1").strip().lower()
    return None if flag in ("0", "no", "off", "false") else build.load()


def _native_top(
    raw: torch.Tensor, n: int
) -> tuple[list[list[int]], list[list[float]], list[float]] | None:
    """(top ids, top log-probabilities, log-sum-exp) per row of `raw` (B, V) from one call of
    logprobs.c, or None where it does not apply (not float32 on the CPU, C unavailable).

    Why: log_softmax + topk + tolist cost ~30 us of torch dispatch per step, the C pass over a
    4k-vocabulary row ~3 us; on a small model's 2 ms step that is the difference between a
    few percent and under one."""
    if raw.device.type != "cpu" or raw.dtype != torch.float32 or raw.dim() != 2:
        return None
    lib = _native_lib() if raw.stride(-1) == 1 else None
    if lib is None:
        return None
    rows, vocab = raw.shape
    k = min(n, vocab)
    ids = (ctypes.c_int64 * (rows * k))()
    vals = (ctypes.c_float * (rows * k))()
    lse = (ctypes.c_float * rows)()
    if lib.lp_top(raw.data_ptr(), rows, vocab, raw.stride(0), k, ids, vals, lse) != 0:
        return None
    flat_ids, flat_vals = ids[:], vals[:]
    return (
        [flat_ids[r * k : (r + 1) * k] for r in range(rows)],
        [flat_vals[r * k : (r + 1) * k] for r in range(rows)],
        lse[:],
    )


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
    on a small model's step, so there are few: the raw top-N and log-sum-exp come from one C
    call (`_native_top`) where it is available, and after top-k the columns are already
    sorted (torch.topk's order, StepLogits), so the sampled top-N is the first N columns and
    no second top-N runs.
    """
    n = max(ns)
    if n <= 0:
        return [None] * len(ns)
    raw = step.raw if step.raw.dtype == torch.float32 else step.raw.float()
    raw_ls: torch.Tensor | None = None  # log_softmax(raw), when torch computed it
    lse: list[float] = []  # log-sum-exp per row, when C did
    final = None
    sorted_k = step.final is not None and step.ids is not None and n <= step.ids.shape[-1]
    native = _native_top(raw, n)
    if native is not None:
        top_ids, top_values, lse = native
    elif sorted_k:
        assert step.ids is not None
        raw_ls = raw.log_softmax(dim=-1)  # (B, V)
        top_ids = step.ids[:, :n].tolist()  # top-k's columns are the most likely ids, sorted
        top_values = raw_ls.gather(-1, step.ids[:, :n]).tolist()
    else:
        raw_ls = raw.log_softmax(dim=-1)
        top_v, top_i = raw_ls.topk(min(n, raw_ls.shape[-1]), dim=-1)  # (B, n)
        top_values, top_ids = top_v.tolist(), top_i.tolist()
    if step.final is not None:
        final = step.final.log_softmax(dim=-1)  # (B, K), -inf where a sampler removed
        if sorted_k:  # the first n columns are the n most likely, sampled as raw
            assert step.ids is not None
            s_values, s_ids = final[:, :n].tolist(), step.ids[:, :n].tolist()
        else:
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
            lp = float(raw_ls[row, tok]) if raw_ls is not None else float(raw[row, tok]) - lse[row]
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
