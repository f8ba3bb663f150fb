"""The Markdown export's optional per-token probability table (one per reply with token data).

    | # | token | p | most likely instead |
    |---:|---|---:|---|
    | 1 | `Whisk` | 71.3% | `Whisk` 71.3% · `Beat` 12.0% · `Mix` 6.2% |

Token texts are sanitized and shown in code spans (a token such as "**" must not turn the
table bold); spaces become "␣" and line breaks "⏎" so a token's edges are visible; a "|" is
escaped, as GitHub tables need even inside a code span. A branched reply's table marks the
chosen token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from tui_gen.app.tokens import ReplyToken
from tui_gen.sanitize import sanitize

#: alternatives listed per row (the transcript keeps them all)
ALTERNATIVES = 5


def code(text: str) -> str:
    """`text` as a code span that survives inside a table cell."""
    shown = sanitize(text).replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")
    shown = shown.replace("|", "\\|") or "∅"
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{ticks}{pad}{shown}{pad}{ticks}"


def _percent(logprob: float | None) -> str:
    if logprob is None or logprob == -math.inf:
        return "—"
    p = 100 * math.exp(logprob)
    return f"{p:.1f}%" if p >= 0.1 else "<0.1%"


def token_table(tokens: Sequence[ReplyToken], branch_index: int | None = None) -> list[str]:
    """The table's lines (empty when no token has data)."""
    if not any(t.logprob is not None for t in tokens):
        return []
    lines = ["| # | token | p | most likely instead |", "|---:|---|---:|---|"]
    for i, t in enumerate(tokens):
        alternatives = " · ".join(
            f"{code(a.text)} {_percent(a.logprob)}" for a in t.top[:ALTERNATIVES]
        )
        mark = " (branch)" if i == branch_index else ""
        row = f"| {i + 1}{mark} | {code(t.label)} | {_percent(t.logprob)} | {alternatives} |"
        lines.append(row)
    return lines
