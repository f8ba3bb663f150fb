"""Beam search for one prompt, with the same rules as Hugging Face transformers.

The num_beams running hypotheses decode as one batch of num_beams rows. Each step:

1. log-softmax of the next-token logits (num_beams, V), then the repetition penalty (on
   log-probabilities, as transformers' logits processor does), plus each beam's running score;
2. the best K = max(2, 1 + number of EOS ids) x num_beams (beam, token) candidates of all
   beams, so num_beams non-finished continuations survive even if the best ones end;
3. a candidate that ends (EOS, a stop string, or the length limit) and ranks in the first
   num_beams becomes a finished hypothesis scored sum_logprobs / generated_len**length_penalty;
   the best num_beams finished hypotheses are kept;
4. the best num_beams candidates that did not end become the next running beams (the KV cache
   rows are reordered to follow them).

It stops when the length limit is reached, or when `early_stopping` allows:
True stops as soon as num_beams hypotheses are finished; False stops when the best running
beam, scored at its current length, cannot beat the worst finished one; "never" scores it at
the maximum length instead (when length_penalty > 0), the canonical rule.

Beam search is a deterministic search: temperature, top-k/p and min-p do not apply.

With `logprobs=N` every returned hypothesis carries one TokenLogprobs per token: `logprob` and
`top` are the values the search scored the token with (the log-softmax of the logits, then the
repetition penalty, applied to log-probabilities as above, so without a penalty it is exactly
the raw distribution), read from the step's own log-probabilities with one top-N per step; the
sampled distribution is all on the chosen token, as under greedy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tui_gen.engine.context import truncate_prompt
from tui_gen.engine.events import FinishReason, GenerationStats, TokenLogprobs
from tui_gen.engine.logprobs import deterministic
from tui_gen.engine.sampling import apply_repetition_penalty
from tui_gen.models.kv_cache import new_cache
from tui_gen.options import BeamParams

_NEG = -1.0e9  # what transformers uses for "impossible"


@dataclass
class Hypothesis:
    """A finished beam: its tokens (without the EOS), text, score and why it ended."""

    token_ids: list[int]
    text: str
    score: float
    finish_reason: FinishReason
    #: one per token of token_ids when beam_search got logprobs > 0, else None
    logprobs: list[TokenLogprobs] | None = None


@dataclass
class BeamOutput:
    hypotheses: list[Hypothesis]  # best first, num_return_sequences of them
    stats: GenerationStats = field(default_factory=GenerationStats)


#: what a step knew of a token: (id, logprob, top ids, top logprobs); TokenLogprobs are built
#: only for the hypotheses returned
_Seen = tuple[int, float, list[int], list[float]]


@dataclass
class _Done:
    tokens: list[int]  # generated tokens, including the EOS that ended it
    score: float
    reason: FinishReason
    seen: list[_Seen] = field(default_factory=list)  # per token, when logprobs are asked for


def _stop_hit(decode: Any, tokens: list[int], stops: Sequence[str]) -> bool:
    text = decode(tokens)
    return any(s in text for s in stops)


def beam_search(
    gen: Any,
    ids: list[int],
    max_new_tokens: int,
    beam: BeamParams,
    *,
    repetition_penalty: float = 1.0,
    stop_strings: Sequence[str] = (),
    eos_token_ids: Sequence[int] | None = None,
    cancel: threading.Event | None = None,
    logprobs: int = 0,
) -> BeamOutput:
    """Search the best continuations of `ids` (non-empty) with `gen`'s model.

    `gen` is a Generator. `eos_token_ids` defaults to the tokenizer's. A cancelled search
    returns the best hypotheses so far (finished or running) with reason "cancelled".
    `logprobs=N` attaches each returned hypothesis' TokenLogprobs (see the module's text).
    """
    t_call = time.perf_counter()
    stats = GenerationStats()
    ctx, dev, nb = gen.max_context, gen.device, beam.num_beams
    ids, notice = truncate_prompt(ids, max_new_tokens, ctx)
    stats.prompt_truncated = notice is not None
    stats.prompt_tokens = stats.prefill_tokens = len(ids)
    eos = list(gen.tokenizer.eos_token_ids if eos_token_ids is None else eos_token_ids)
    decode = gen.tokenizer.decode
    stops = [s for s in stop_strings if s]
    L = len(ids)
    # like max_length - prompt_len in transformers, but never past the context
    limit = min(max_new_tokens, ctx - L)
    if limit <= 0:
        return BeamOutput([Hypothesis([], "", 0.0, "length")] * beam.num_return_sequences, stats)
    keep_k = max(2, 1 + len(eos)) * nb  # candidates per step
    c = gen.config

    done: list[_Done] = []  # at most nb, best first
    running: list[list[int]] = [[] for _ in range(nb)]  # generated tokens per beam
    lp_hist: list[list[_Seen]] = [[] for _ in range(nb)]  # their logprobs (when asked for)
    scores = torch.full((nb,), _NEG, dtype=torch.float32, device=dev)  # (nb,)
    scores[0] = 0.0  # only beam 0 is real at the start (the others are copies)
    improvable = True
    prompt = torch.tensor(ids, dtype=torch.long, device=dev)
    cancelled = False

    with torch.inference_mode():
        t0 = time.perf_counter()
        one = new_cache(gen.model, c, 1, L + limit, gen.kv_dtype, dev)
        with gen.engine_threads():
            logits = gen.model(prompt[None], start=0, cache=one, last_only=True)[:, -1]  # (1, V)
        # every beam starts from the same prompt
        cache = one.select_rows(torch.zeros(nb, dtype=torch.long, device=dev))
        del one
        logits = logits.expand(nb, -1)  # (nb, V)
        stats.time_to_first_token = time.perf_counter() - t_call
        stats.prefill_seconds = time.perf_counter() - t0
        t_decode = time.perf_counter()
        step = 0  # tokens generated so far by the running beams
        while True:
            V = logits.shape[-1]
            logp = torch.log_softmax(logits.float(), dim=-1)  # (nb, V)
            if repetition_penalty != 1.0:
                seen = torch.tensor([ids + r for r in running], dtype=torch.long, device=dev)
                logp = apply_repetition_penalty(logp, seen, repetition_penalty)
            total = (logp + scores[:, None]).view(-1)  # (nb * V,)
            top_scores, top_idx = torch.topk(total, keep_k)  # (K,) best first
            src = (top_idx // V).tolist()
            tok = (top_idx % V).tolist()
            cand_scores = top_scores.tolist()
            if logprobs:  # one top-N of the step's log-probabilities, read for the candidates
                top_v, top_i = logp.topk(min(logprobs, V), dim=-1)
                cand_lp = logp.view(-1)[top_idx].tolist()
                tv, ti = top_v.tolist(), top_i.tolist()
                step_seen = [(t, lp, ti[b], tv[b]) for b, t, lp in zip(src, tok, cand_lp)]
            ends: list[FinishReason | None] = []
            for b, t in zip(src, tok):
                if t in eos:
                    ends.append("eos")
                elif stops and _stop_hit(decode, running[b] + [t], stops):
                    ends.append("stop")
                elif step + 1 >= limit:
                    ends.append("length")
                else:
                    ends.append(None)
            # finished hypotheses: only candidates ranked in the first nb count
            full = len(done) == nb
            if improvable and not (full and beam.early_stopping is True):
                for rank in range(nb):
                    reason = ends[rank]
                    if reason is not None:
                        final = cand_scores[rank] / ((step + 1) ** beam.length_penalty)
                        hist = lp_hist[src[rank]] + [step_seen[rank]] if logprobs else []
                        done.append(_Done(running[src[rank]] + [tok[rank]], final, reason, hist))
                done.sort(key=lambda d: -d.score)  # stable: earlier ones win ties
                del done[nb:]
            # next running beams: the best nb candidates that did not end
            live = [i for i in range(keep_k) if ends[i] is None]
            chosen = (live + [i for i in range(keep_k) if ends[i] is not None])[:nb]
            # (an ended candidate only runs on when fewer than nb did not end; it can never win)
            new_scores = [cand_scores[i] + (_NEG if ends[i] else 0.0) for i in chosen]
            scores = torch.tensor(new_scores, dtype=torch.float32, device=dev)  # (nb,) best first
            running = [running[src[i]] + [tok[i]] for i in chosen]
            if logprobs:
                lp_hist = [lp_hist[src[i]] + [step_seen[i]] for i in chosen]
            step += 1
            # can a running beam still beat the worst finished one?
            if len(done) == nb:
                hypo_len = (
                    limit if beam.early_stopping == "never" and beam.length_penalty > 0 else step
                )
                best_possible = float(scores[0]) / (hypo_len**beam.length_penalty)
                improvable = improvable and best_possible > done[-1].score
            if not improvable or (len(done) == nb and beam.early_stopping is True):
                break
            if all(e is not None for e in ends):
                break
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            parents = [src[i] for i in chosen]
            if parents != list(range(nb)):  # the cache rows follow the chosen beams
                cache = cache.select_rows(torch.tensor(parents, device=dev))
            feed = torch.tensor([r[-1] for r in running], dtype=torch.long, device=dev)[:, None]
            logits = gen.model(feed, start=L + step - 1, cache=cache)[:, -1]  # (nb, V)
        stats.decode_seconds = time.perf_counter() - t_decode

    if cancelled:  # running beams compete with the finished ones at their current length
        for r, h, s in zip(running, lp_hist, scores.tolist()):
            if s > _NEG / 2:
                done.append(_Done(r, s / (step**beam.length_penalty), "cancelled", h))
        done.sort(key=lambda d: -d.score)
    hyps = []
    for d in done[: beam.num_return_sequences]:
        tokens = d.tokens[:-1] if d.reason == "eos" else d.tokens
        text = decode(tokens)
        if d.reason == "stop":
            text = text[: min(text.find(s) for s in stops if s in text)]
        lps = None
        if logprobs:
            texts = gen.token_texts
            lps = [deterministic(*x, texts) for x in d.seen[: len(tokens)]]
        hyps.append(Hypothesis(tokens, text, d.score, d.reason, lps))
    stats.generated_tokens = len(hyps[0].token_ids) if hyps else 0
    return BeamOutput(hyps, stats)
