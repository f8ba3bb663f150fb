"""What to do with a prompt that does not fit the context: one rule for every decode path
(single, batched, beam), so the same prompt is cut the same way whichever path runs it."""

from __future__ import annotations


def truncate_prompt(ids: list[int], max_new_tokens: int, ctx: int) -> tuple[list[int], str | None]:
    """Keep the end of a prompt of `ctx` tokens or more, leaving room for at least one and at
    most a quarter of the context of new tokens; return (ids, a notice or None)."""
    if len(ids) < ctx:
        return ids, None
    keep = ctx - max(1, min(max_new_tokens, ctx // 4))
    msg = f"the prompt has {len(ids)} tokens but the context holds {ctx}; kept the last {keep}"
    return ids[-keep:], msg
