"""The JSON shape of per-token probabilities, for `--json` records and `--score --json`.

Generated tokens (`--logprobs N`), one entry per token, most likely alternatives first:

    "logprobs":         [{"token": TEXT, "id": ID, "logprob": LP,
                          "top_logprobs": [{"token", "id", "logprob"}, ... N]}, ...]
    "sampled_logprobs": the same under the distribution the token was drawn from

`logprobs` is the raw distribution (log-softmax of the model's logits after the repetition
penalty, before temperature, top-k, top-p and min-p); `sampled_logprobs` the final one, after
every sampler, so tokens a sampler removed are missing from its top list (greedy: all mass on
the chosen token, logprob 0). Natural logarithms; a value JSON cannot hold (-inf) is null.
The texts are exact (the JSON writer escapes control characters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui_gen.engine.events import TokenAlternative, TokenLogprobs
    from tui_gen.engine.scoring import ScoreResult


def _number(v: float | None, digits: int = 6) -> float | None:
    return round(v, digits) if v is not None and math.isfinite(v) else None


def _alternatives(alts: Iterable[TokenAlternative]) -> list[dict[str, Any]]:
    return [{"token": a.text, "id": a.token_id, "logprob": _number(a.logprob)} for a in alts]


def logprobs_fields(lps: Sequence[TokenLogprobs]) -> dict[str, Any]:
    """The two fields a generation record gets with --logprobs."""
    return {
        "logprobs": [
            {
                "token": lp.text,
                "id": lp.token_id,
                "logprob": _number(lp.logprob),
                "top_logprobs": _alternatives(lp.top),
            }
            for lp in lps
        ],
        "sampled_logprobs": [
            {
                "token": lp.text,
                "id": lp.token_id,
                "logprob": _number(lp.sampled_logprob),
                "top_logprobs": _alternatives(lp.sampled_top),
            }
            for lp in lps
        ],
    }


def score_record(res: ScoreResult, top: bool) -> dict[str, Any]:
    """`--score --json`: the perplexity and every token (the first has logprob null: nothing
    predicts it); surprisal in bits; `top_logprobs` with --logprobs N."""
    tokens = []
    for t in res.tokens:
        entry: dict[str, Any] = {
            "token": t.text,
            "id": t.token_id,
            "logprob": _number(t.logprob),
            "surprisal": _number(t.surprisal),
        }
        if top:
            entry["top_logprobs"] = _alternatives(t.top)
        tokens.append(entry)
    return {
        "perplexity": _number(res.perplexity),
        "mean_logprob": _number(res.mean_logprob),
        "predicted_tokens": res.predicted,
        "tokens": tokens,
    }
