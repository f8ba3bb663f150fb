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
import random
import re
from pathlib import Path

import torch

from dev.cooking import conversations as C
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


@torch.no_grad()
def title_grid(
    gen: Generator, n: int = 120, seed: int = 5
) -> dict[tuple[str, str], tuple[float, ...]]:
    """{(dish split, template split): (first-token, later-token, whole-name accuracy)} of the
    "## name" title after one question, teacher-forced."""
    tok = gen.tokenizer.backend
    rng = random.Random(seed)
    out = {}
    for split in ("train", "heldout"):
        pool = C.dishes(split)
        for tpl_split in ("train", "heldout"):
            first = rest = n_rest = whole = 0
            for _ in range(n):
                d = rng.choice(pool)
                kind = rng.choices(C.FIRST_KINDS, C.FIRST_WEIGHTS)[0]
                templates = C.HELDOUT_Q if tpl_split == "heldout" else C.TRAIN_Q
                asked = C.asked_name(d, rng)
                q = C.fill(rng.choice(templates[kind]), rng, dish=asked, n="4")
                asked = C.typed(q, asked)
                head = f"<|user|>\n{q}<|end|>\n<|assistant|>\n##"
                start = len(tok.encode(head, add_special_tokens=False).ids)
                ids = tok.encode(f"{head} {asked}\n", add_special_tokens=False).ids
                pred = gen.model(torch.tensor([ids]))[0].argmax(-1)
                hits = [int(pred[i - 1]) == ids[i] for i in range(start, len(ids) - 1)]
                first += hits[0]
                rest += sum(hits[1:])
                n_rest += len(hits) - 1
                whole += all(hits)
            out[(split, tpl_split)] = (first / n, rest / max(n_rest, 1), whole / n)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dirs", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", action="store_true", help="also the single-question title grid")
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
        if args.grid:
            for (split, tpl), (f, r, w) in title_grid(gen).items():
                print(
                    f"  {split} dishes, {tpl} templates: first {f:.2f}, rest {r:.2f}, whole {w:.2f}"
                )


if __name__ == "__main__":
    main()
