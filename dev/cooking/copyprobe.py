"""How well a cooking model copies dish names, teacher-forced (issue #17).

    python -m dev.cooking.copyprobe DIR [DIR ...]

Sampled replies (dev.cooking.evaluate) only name the dish once copying is nearly perfect;
this measures it before that. Over unseen documents, at every "## name" title slot that opens
an assistant reply, it takes the model's most likely next token at each token of the name:
"token" is the share of name tokens predicted right, "whole" the share of names predicted
right in full. Two sets: copying documents (conversations.copy_documents, seed 99: invented
names) and held-out-split conversations (held-out dishes: the first title copies the name from
the question, each follow-up's from the card).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from dev.cooking.conversations import copy_documents, generate
from tui_gen.engine.generator import Generator

SLOT = re.compile(r"<\|assistant\|>\n## ([^\n]+)\n")


@torch.no_grad()
def copy_accuracy(gen: Generator, docs: list[str], max_tokens: int = 1024) -> tuple[float, float]:
    """(token accuracy, whole-name accuracy) over the "## name" slots of `docs`."""
    tok = gen.tokenizer.backend
    good_tokens = n_tokens = good_names = n_names = 0
    for doc in docs:
        enc = tok.encode(doc, add_special_tokens=False)
        ids, offsets = enc.ids[:max_tokens], enc.offsets[:max_tokens]
        pred = gen.model(torch.tensor([ids]))[0].argmax(-1)
        for m in SLOT.finditer(doc):
            a, b = m.span(1)
            idx = [i for i, (s, e) in enumerate(offsets) if s < b and e > a and i > 0]
            if not idx:
                continue
            hits = [int(pred[i - 1]) == ids[i] for i in idx]
            good_tokens += sum(hits)
            n_tokens += len(hits)
            good_names += all(hits)
            n_names += 1
    return good_tokens / max(n_tokens, 1), good_names / max(n_names, 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dirs", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = {"copying docs": copy_documents(99, 40), "held-out convs": generate(99, 60, "heldout")}
    for d in args.model_dirs:
        gen = Generator.load(d)
        gen.model.eval()
        parts = []
        for label, docs in sets.items():
            t, w = copy_accuracy(gen, docs)
            parts.append(f"{label}: token {t:.2f}, whole {w:.2f}")
        print(f"{d}: " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
