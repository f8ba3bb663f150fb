"""Which of a token's top-N alternatives the current sliders would have removed (pure Python).

The inspector shows, for one step of a reply, the N most likely tokens under the model's raw
distribution (log-softmax after the repetition penalty, before every truncating sampler and
temperature: events.TokenLogprobs) and marks those the sliders *as they are now* would remove.
The app never does tensor math, so this replays the engine's samplers (engine/sampling.py) on
those N numbers, in the engine's fixed order: top-k -> top-p -> min-p -> temperature.

* top-k keeps ranks 0..k-1 (k = 0: off). Exact: the N alternatives are the true top N.
* top-p keeps a token while the mass strictly before it, renormalised over what top-k kept, is
  below top_p (the most likely token always stays). Exact when top-k is 0 (no renormalisation:
  the raw probabilities are over the whole vocabulary) or k <= N (all survivors are known).
  When N < k the normaliser also holds ranks N..k-1, which are unknown: they are counted as
  min(tail, (k - N) * p_N), where tail = 1 - (mass of the N known tokens) and p_N is the N-th
  token's probability (no unknown token is more likely than it). That is the most they can
  weigh, so the known tokens' renormalised mass is never overestimated: a token this marks as
  removed by top-p is removed by the engine too; one it keeps may, rarely, be removed.
* min-p removes tokens below min_p x the most likely token's probability. A ratio, so
  renormalisation does not change it: exact.
* temperature is applied after the truncating samplers, so it removes nothing, except that 0
  (greedy, or do_sample off) keeps only the most likely token. It does change the probability
  each kept token is drawn with: `Marks.final` gives it when every kept token is among the N
  known (the cut fell inside the list), else None (the unknown tail's share is not known).

The repetition penalty is already inside the raw numbers (as it was set for that reply);
moving its slider afterwards cannot be replayed without the full logits, so it is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: the sampler that removed a token, as the inspector labels it
REMOVERS = ("greedy", "top-k", "top-p", "min-p")


@dataclass(frozen=True)
class Marks:
    """For each alternative (most likely first): the sampler that removed it, or None if kept;
    `final`: each alternative's probability of being drawn under these sliders (0 for a
    removed one), or None when it depends on tokens beyond the N known."""

    removed_by: tuple[str | None, ...]
    final: tuple[float, ...] | None

    @property
    def kept(self) -> tuple[bool, ...]:
        return tuple(r is None for r in self.removed_by)


def sampler_marks(
    logprobs: Sequence[float],
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    do_sample: bool = True,
) -> Marks:
    """Replay the samplers on the raw log-probabilities of the top N tokens (most likely first:
    the order TokenLogprobs.top has; it is not re-sorted, ties keep their rank)."""
    n = len(logprobs)
    if n == 0:
        return Marks((), ())
    probs = [math.exp(lp) if lp > -math.inf else 0.0 for lp in logprobs]
    removed: list[str | None] = [None] * n
    if not do_sample or temperature <= 0:
        return Marks((None,) + ("greedy",) * (n - 1), (1.0,) + (0.0,) * (n - 1))
    # top-k
    if top_k > 0:
        for i in range(top_k, n):
            removed[i] = "top-k"
    # top-p over what top-k kept (renormalised); the tail's share is bounded (module docstring)
    known = sum(probs)
    tail = max(0.0, 1.0 - known)
    if top_k <= 0:
        total = 1.0
    elif top_k <= n:
        total = sum(probs[:top_k])
    else:
        total = known + min(tail, (top_k - n) * probs[-1])
    cut_inside = top_k > 0 and top_k <= n
    if top_p < 1.0 and total > 0:
        before = 0.0
        for i in range(n):
            if removed[i] is None and i > 0 and before / total >= top_p:
                removed[i] = "top-p"
            before += probs[i]
        # the tail is cut too once the known mass alone reaches top_p
        cut_inside = cut_inside or known / total >= top_p
    # min-p (a ratio to the most likely token: renormalisation does not change it)
    if min_p > 0 and probs[0] > 0:
        threshold = min_p * probs[0]
        for i in range(n):
            if removed[i] is None and probs[i] < threshold:
                removed[i] = "min-p"
        # every unknown token is at most p_N: below the threshold if p_N is
        cut_inside = cut_inside or probs[-1] < threshold
    final: tuple[float, ...] | None = None
    if cut_inside:
        weights = [
            math.exp((lp - logprobs[0]) / temperature) if r is None else 0.0
            for lp, r in zip(logprobs, removed)
        ]
        z = sum(weights)
        final = tuple(w / z for w in weights) if z > 0 else None
    return Marks(tuple(removed), final)
