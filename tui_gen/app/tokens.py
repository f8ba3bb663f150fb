"""A reply's tokens as the app keeps them: id, text and what the model weighed (torch-free).

The worker turns each engine TokenEvent (events.TokenEvent with events.TokenLogprobs) into a
`ReplyToken`; the history keeps a finished reply's tokens on its Turn; the heat map, the
inspector, branching and the transcript all read them from there. Plain frozen dataclasses, so a
worker thread can hand them to the UI thread without copying.

Saved in a transcript (store.py) as a compact JSON list, one object per token::

    {"id": 512, "text": " pan", "lp": -0.105, "slp": -0.02,
     "top": [[512, " pan", -0.105], [9981, " wok", -2.41], ...]}

`text` is what the token added to the reply as it streamed ("" for the first bytes of a
character that spans tokens); `tok` (only when it differs) the token decoded on its own;
`lp` its log-probability under the raw distribution and `slp` under the one it was drawn from
(events.TokenLogprobs says which is which); `top` the most likely alternatives, raw.
Log-probabilities are rounded to 4 decimals (a probability to ~0.01% of itself).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

DIGITS = 4


@dataclass(frozen=True, slots=True)
class Alternative:
    """A token the model could have chosen at a step, with its raw log-probability."""

    token_id: int
    text: str
    logprob: float

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True, slots=True)
class ReplyToken:
    """One generated token. `logprob`/`top` are None/() when the engine sent no data."""

    token_id: int
    text: str  #: what it added to the reply as streamed
    logprob: float | None = None
    top: tuple[Alternative, ...] = ()
    sampled_logprob: float | None = None
    own_text: str | None = None  #: the token decoded on its own, when it differs from `text`

    @property
    def probability(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)

    @property
    def label(self) -> str:
        """The token's own text (what the inspector names it by)."""
        return self.text if self.own_text is None else self.own_text

    def with_text(self, extra: str) -> ReplyToken:
        """This token with held-back text released after it (a stop-string candidate)."""
        return ReplyToken(
            self.token_id,
            self.text + extra,
            self.logprob,
            self.top,
            self.sampled_logprob,
            self.own_text if self.own_text is not None else self.text,
        )


def from_event(token_id: int, text: str, logprobs: Any) -> ReplyToken:
    """A ReplyToken from a TokenEvent's fields (logprobs: an events.TokenLogprobs or None)."""
    if logprobs is None:
        return ReplyToken(token_id, text)
    top = tuple(Alternative(a.token_id, a.text, float(a.logprob)) for a in logprobs.top)
    own = logprobs.text if logprobs.text != text else None
    return ReplyToken(
        token_id, text, float(logprobs.logprob), top, float(logprobs.sampled_logprob), own
    )


def chosen(tokens: Sequence[ReplyToken], index: int, alternative: Alternative) -> ReplyToken:
    """The token a branch puts at `index`: the alternative, with the step's own distribution."""
    step = tokens[index]
    return ReplyToken(alternative.token_id, alternative.text, alternative.logprob, step.top)


def has_data(tokens: Iterable[ReplyToken] | None) -> bool:
    return tokens is not None and any(t.logprob is not None for t in tokens)


# --- the transcript's JSON ---------------------------------------------------------------------


def _lp(value: float) -> float | None:
    return round(value, DIGITS) if math.isfinite(value) else None


#: the JSON of recent replies' tokens, by the identity of their (immutable) tuple: autosave
#: writes the whole conversation on the UI thread after every reply, and converting thousands
#: of tokens again each time was a visible stall
_CACHE: OrderedDict[int, tuple[Sequence[ReplyToken], list[dict[str, Any]], str]] = OrderedDict()
CACHE_SIZE = 256


def _cached(tokens: Sequence[ReplyToken]) -> tuple[list[dict[str, Any]], str]:
    key = id(tokens)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is tokens:
        _CACHE.move_to_end(key)
        return hit[1], hit[2]
    data = _to_json(tokens)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if isinstance(tokens, tuple):  # a list may still change: never cached
        _CACHE[key] = (tokens, data, text)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return data, text


def to_json(tokens: Sequence[ReplyToken]) -> list[dict[str, Any]]:
    """The transcript's JSON for `tokens` (shared between calls: do not change it)."""
    return _cached(tokens)[0]


def to_json_text(tokens: Sequence[ReplyToken]) -> str:
    """to_json(tokens) as compact JSON text."""
    return _cached(tokens)[1]


def _to_json(tokens: Sequence[ReplyToken]) -> list[dict[str, Any]]:
    out = []
    for t in tokens:
        d: dict[str, Any] = {"id": t.token_id, "text": t.text}
        if t.own_text is not None:
            d["tok"] = t.own_text
        if t.logprob is not None:
            d["lp"] = _lp(t.logprob)
            d["top"] = [[a.token_id, a.text, _lp(a.logprob)] for a in t.top]
        if t.sampled_logprob is not None:
            d["slp"] = _lp(t.sampled_logprob)
        out.append(d)
    return out


def _float(value: Any) -> float:
    """A saved log-probability (None is -inf: a probability that rounded to nothing)."""
    if value is None:
        return -math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("a log-probability is not a number")
    return float(value)


def from_json(raw: Any) -> tuple[ReplyToken, ...]:
    """Tokens from to_json's list; raise TypeError/ValueError naming what is wrong."""
    if not isinstance(raw, list):
        raise TypeError("'tokens' is not a list")
    out = []
    for i, d in enumerate(raw):
        if not isinstance(d, dict):
            raise TypeError(f"token {i} is not an object")
        token_id, text, own = d.get("id"), d.get("text"), d.get("tok")
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise TypeError(f"token {i} has no id")
        if not isinstance(text, str) or not (own is None or isinstance(own, str)):
            raise TypeError(f"token {i} has no text")
        top = []
        for alt in d.get("top") or []:
            if not (isinstance(alt, list) and len(alt) == 3):
                raise TypeError(f"token {i}: an alternative is not [id, text, logprob]")
            alt_id, alt_text, alt_lp = alt
            if isinstance(alt_id, bool) or not isinstance(alt_id, int):
                raise TypeError(f"token {i}: an alternative has no id")
            if not isinstance(alt_text, str):
                raise TypeError(f"token {i}: an alternative has no text")
            top.append(Alternative(alt_id, alt_text, _float(alt_lp)))
        lp = _float(d["lp"]) if "lp" in d else None
        slp = _float(d["slp"]) if "slp" in d else None
        out.append(ReplyToken(token_id, text, lp, tuple(top), slp, own))
    return tuple(out)
