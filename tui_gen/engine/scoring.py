"""Prompt scoring: how likely the model finds each token of a given text (Generator.score).

One prefill over the text, in chunks of CHUNK tokens (the KV cache carries the context from one
chunk to the next, so every token sees everything before it and runs through the model once;
the chunks only bound the (chunk, vocabulary) logits held at a time). Position t's logits
predict token t + 1, so the first token has no prediction: it is listed with logprob None and
left out of the perplexity. Text is encoded with the tokenizer's special tokens, so with a
model that writes a BOS the first real token is predicted from it.

The text must fit in the context (max_context); a longer one is one clear error, not a sliding
evaluation (whose numbers would depend on a window choice).

Values are natural-log probabilities of the raw distribution (log_softmax of the logits, no
sampler, no penalty); `surprisal` is in bits (-log2 p); the perplexity is exp of the mean
negative log-probability over the predicted tokens (= 2 ** mean surprisal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tui_gen.engine.events import TokenAlternative
from tui_gen.engine.logprobs import TokenTexts
from tui_gen.errors import TuiGenError
from tui_gen.models.kv_cache import KVCache

#: tokens per forward of a scored text
CHUNK = 512


@dataclass(frozen=True, slots=True)
class ScoredToken:
    """One token of a scored text: its log-probability given everything before it (None for
    the first token, which nothing predicts) and, when asked for, the most likely tokens the
    model expected there instead."""

    token_id: int
    text: str  # the token decoded on its own
    logprob: float | None
    top: tuple[TokenAlternative, ...] = ()

    @property
    def surprisal(self) -> float | None:
        """-log2 p: bits of surprise (None for the first token)."""
        return None if self.logprob is None else -self.logprob / math.log(2)


@dataclass(frozen=True, slots=True)
class ScoreResult:
    tokens: list[ScoredToken]

    @property
    def token_ids(self) -> list[int]:
        return [t.token_id for t in self.tokens]

    @property
    def predicted(self) -> int:
        """Tokens that have a prediction (all but the first)."""
        return sum(t.logprob is not None for t in self.tokens)

    @property
    def mean_logprob(self) -> float | None:
        lps = [t.logprob for t in self.tokens if t.logprob is not None]
        return math.fsum(lps) / len(lps) if lps else None

    @property
    def perplexity(self) -> float | None:
        """exp(-mean logprob) over the predicted tokens; None with fewer than two tokens."""
        m = self.mean_logprob
        if m is None:
            return None
        return math.exp(-m) if -m < 709 else math.inf  # exp overflows a float past ~709


def score_ids(
    model: torch.nn.Module,
    cache: KVCache,
    ids: list[int],
    top: int,
    texts: TokenTexts,
    max_context: int,
    chunk: int = CHUNK,
) -> ScoreResult:
    """Score `ids` with `model` on the model's device, filling `cache` from position 0 (it
    holds max_context positions); the text must fit in max_context."""
    if not ids:
        raise TuiGenError("nothing to score: the text is empty")
    if len(ids) > max_context:
        raise TuiGenError(
            f"the text is {len(ids)} tokens, more than the context holds ({max_context}); "
            "score a shorter text or raise --max-context"
        )
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, L)
    L = len(ids)
    logprobs: list[float] = []
    top_ids: list[list[int]] = []
    top_values: list[list[float]] = []
    cache.truncate(0)
    with torch.inference_mode():
        for lo in range(0, L - 1, chunk):  # the last token predicts nothing we score
            hi = min(L - 1, lo + chunk)
            logits = model(idx[:, lo:hi], start=lo, cache=cache)[0]  # (hi - lo, V)
            lp = logits.float().log_softmax(dim=-1)
            targets = idx[0, lo + 1 : hi + 1]  # the token each position predicts
            logprobs += lp.gather(-1, targets[:, None])[:, 0].tolist()
            if top:
                v, i = lp.topk(min(top, lp.shape[-1]), dim=-1)
                top_values += v.tolist()
                top_ids += i.tolist()
    tokens = [ScoredToken(ids[0], texts(ids[0]), None)]
    for t in range(1, L):
        alts: tuple[TokenAlternative, ...] = ()
        if top:
            alts = tuple(
                TokenAlternative(i, texts(i), v)
                for i, v in zip(top_ids[t - 1], top_values[t - 1])
                if v != -math.inf
            )
        tokens.append(ScoredToken(ids[t], texts(ids[t]), logprobs[t - 1], alts))
    return ScoreResult(tokens)
