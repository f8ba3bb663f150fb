"""Measure a cooking model on held-out real dishes, phrasings and follow-ups (issue #17).

    python -m dev.cooking.evaluate models/cooking [--write] [--failures]

Each evaluation conversation (conversations.eval_conversations) asks about a dish that never
appears in training, in a phrasing that never appears in training, then asks held-out
follow-ups about it ("Will it still be good in a few days?", "What's that oven setting in
Fahrenheit?", ...), each answered by the model with its own earlier replies in the context.
Replies are sampled at T=0.8 with fixed seeds through the engine (Generator and the model's
chat template), the path `tui-gen models/cooking` uses. Measured:

- names the dish: the first reply contains the dish name (ignoring case);
- structure: the first reply has an ingredient list (quantities on its "- " lines: one with a
  unit, or two counted) and numbered steps ("1.", "2." in order);
- no repeated line: no line (list numbers stripped) or sentence occurs twice in a reply;
- follow-ups stay on the dish: a follow-up reply names the dish;
- stopped: the reply ended with the end token.

Any model directory works (v1's 384-token context is truncated by the engine as in the app), so
the same numbers compare v1 and v2. The validation loss is also given per character, which,
unlike per token, compares models with different tokenizers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dev.cooking.card import write_model_card
from dev.cooking.conversations import EvalConversation, eval_conversations, generate
from dev.cooking.train import TokenStream, mean_loss
from tui_gen.engine.chat import render_messages
from tui_gen.engine.generator import Generator

UNIT = re.compile(r"\b\d[\d/.]*\s*(g|kg|ml|litres?|tbsp|tsp|tins?|cm)\b")
BULLET = re.compile(r"^\s*[-*•]\s+\S*\d", re.M)


def has_ingredient_list(text: str) -> bool:
    """Two or more "- " lines, with quantities: one with a unit, or two or more counted."""
    bullets = [ln for ln in text.splitlines() if re.match(r"^\s*[-*•]\s+\S", ln)]
    counted = [ln for ln in bullets if BULLET.match(ln)]
    return len(bullets) >= 2 and (any(UNIT.search(b) for b in counted) or len(counted) >= 2)


def has_numbered_steps(text: str, at_least: int = 3) -> bool:
    numbers = [int(m) for m in re.findall(r"^\s*(\d+)[.)]\s+\S", text, re.M)]
    want = 1
    for n in numbers:
        if n == want:
            want += 1
    return want - 1 >= at_least


def names_dish(text: str, dish: str) -> bool:
    squash = lambda s: re.sub(r"\s+", " ", s.lower())  # noqa: E731
    return squash(dish) in squash(text)


def structured(text: str) -> bool:
    """A recipe card: an ingredient list with quantities and at least two numbered steps."""
    return has_ingredient_list(text) and has_numbered_steps(text, at_least=2)


def repeated_line(text: str) -> str | None:
    """The first line or sentence that occurs twice in a reply (list numbers stripped)."""
    seen: set[str] = set()
    for raw in text.splitlines():
        line = re.sub(r"^\s*(\d+[.)]|[-*•])\s+", "", raw).strip().lower()
        for part in (p.strip() for p in re.split(r"(?<=[.!?])\s+", line)):
            if len(part) < 12:
                continue
            if part in seen:
                return part
            seen.add(part)
    return None


@dataclass
class Reply:
    kind: str  # the first question's kind, or the follow-up's
    prompt: str
    text: str
    finish: str
    follow_up: bool
    named: bool
    structured: bool
    repeated: str | None


@dataclass
class Result:
    dish: str
    replies: list[Reply]


def _reply(gen: Generator, messages: list[dict[str, str]], max_new: int, seed: int) -> Any:
    tok = gen.tokenizer
    prompt = render_messages(
        gen.chat_template,
        messages,
        add_generation_prompt=True,
        bos_token=tok.bos_token,
        eos_token=tok.eos_token,
    )
    ids = gen.encode(prompt, add_special_tokens=False)
    return gen.generate_result(
        ids, temperature=0.8, top_k=0, top_p=1.0, max_new_tokens=max_new, seed=seed
    )


def run_conversation(gen: Generator, conv: EvalConversation, seed: int) -> Result:
    messages: list[dict[str, str]] = []
    if conv.system:
        messages.append({"role": "system", "content": conv.system})
    turns = [(conv.kind, conv.first, False), *((k, q, True) for k, q in conv.follow_ups)]
    out = []
    for j, (kind, q, follow) in enumerate(turns):
        messages.append({"role": "user", "content": q})
        res = _reply(gen, messages, 220 if follow else 420, seed * 10 + j)
        text = res.text
        messages.append({"role": "assistant", "content": text})
        out.append(
            Reply(
                kind,
                q,
                text,
                res.finish_reason,
                follow,
                names_dish(text, conv.dish),
                structured(text),
                repeated_line(text),
            )
        )
    return Result(conv.dish, out)


def validation_loss(gen: Generator, seed: int, docs: int) -> tuple[float, float]:
    """(nats per token, nats per character) on held-out-split v2 documents."""
    texts = generate(seed, docs, "heldout")
    stream = TokenStream.encode(gen.tokenizer.backend, texts)
    seq = min(1024, gen.config.max_position_embeddings)
    per_token = mean_loss(gen.model, stream, seq, batch_size=4)
    chars_per_token = sum(map(len, texts)) / max(len(stream.ids), 1)
    return per_token, per_token / chars_per_token


def pct(flags: list[bool]) -> float:
    return round(100.0 * sum(flags) / max(len(flags), 1), 1)


def evaluate(
    model_dir: Path, n: int = 100, seed: int = 0, val_docs: int = 80, threads: int = 1
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    gen = Generator.load(model_dir)
    t0 = time.perf_counter()
    val_tok, val_char = validation_loss(gen, seed, val_docs)
    results = [
        run_conversation(gen, c, seed * 1000 + i) for i, c in enumerate(eval_conversations(seed, n))
    ]
    firsts = [r.replies[0] for r in results]
    follows = [x for r in results for x in r.replies[1:]]
    every = [x for r in results for x in r.replies]
    by_kind: dict[str, list[bool]] = {}
    for x in follows:
        by_kind.setdefault(x.kind, []).append(x.named)
    return {
        "n": len(results),
        "follow_ups": len(follows),
        "temperature": 0.8,
        "seed": seed,
        "val_loss": round(val_tok, 4),
        "val_loss_per_char": round(val_char, 4),
        "names_dish_pct": pct([x.named for x in firsts]),
        "structure_pct": pct([x.structured for x in firsts]),
        "no_repeat_pct": pct([x.repeated is None for x in every]),
        "follow_on_dish_pct": pct([x.named for x in follows]),
        "follow_on_dish_by_kind": {k: pct(v) for k, v in sorted(by_kind.items())},
        "stopped_pct": pct([x.finish == "eos" for x in every]),
        "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }


TARGETS = {"names_dish_pct": 95, "structure_pct": 95, "no_repeat_pct": 98, "follow_on_dish_pct": 90}
LABELS = {
    "names_dish_pct": "first replies that name the dish asked about",
    "structure_pct": "first replies with an ingredient list and numbered steps",
    "no_repeat_pct": "replies without a repeated line or sentence",
    "follow_on_dish_pct": "follow-up replies that stay on the dish",
    "stopped_pct": "replies that ended with the end token",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate a cooking demo model (v1 or v2).")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--n", type=int, default=100, help="held-out conversations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-docs", type=int, default=80, help="held-out documents for the loss")
    ap.add_argument("--show", type=int, default=0, help="print this many conversations")
    ap.add_argument("--failures", action="store_true", help="print every failing reply")
    ap.add_argument("--json", type=Path, help="also write the numbers to this file")
    ap.add_argument(
        "--baseline",
        type=Path,
        help="a --json file of the previous model on this evaluation, quoted in the card as v1",
    )
    ap.add_argument(
        "--write",
        action="store_true",
        help="store the numbers in generation_info.json and the README.md card",
    )
    args = ap.parse_args(argv)
    res = evaluate(args.model_dir, args.n, args.seed, args.val_docs, args.threads)
    results: list[Result] = res.pop("results")
    for r in results[: args.show]:
        for x in r.replies:
            print(f"--- [{x.kind}] {x.prompt}  (dish: {r.dish})\n{x.text}\n")
    if args.failures:
        for r in results:
            for x in r.replies:
                ok = x.named and (x.follow_up or x.structured) and x.repeated is None
                if not ok:
                    print(
                        f"--- FAIL [{x.kind}] {x.prompt}  (dish: {r.dish}; named={x.named} "
                        f"structured={x.structured} repeated={x.repeated!r} finish={x.finish})"
                        f"\n{x.text}\n"
                    )
    print(f"{args.model_dir}: {res['n']} held-out conversations, {res['follow_ups']} follow-ups")
    print(
        f"held-out validation loss: {res['val_loss']:.4f} nats/token, "
        f"{res['val_loss_per_char']:.4f} nats/char"
    )
    for key, label in LABELS.items():
        target = f" (target {TARGETS[key]}%)" if key in TARGETS else ""
        print(f"{label}: {res[key]:.1f}%{target}")
    print(f"follow-ups on the dish by kind: {res['follow_on_dish_by_kind']}")
    print(f"{res['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    if args.write:
        path = args.model_dir / "generation_info.json"
        info = json.loads(path.read_text())
        if args.baseline:
            res["v1"] = {
                k: v
                for k, v in json.loads(args.baseline.read_text()).items()
                if k.endswith("_pct") or k.startswith("val_loss") or k == "n"
            }
        info["evaluation"] = {
            **res,
            "command": "python -m dev.cooking.evaluate "
            + " ".join(argv if argv is not None else sys.argv[1:]),
        }
        path.write_text(json.dumps(info, indent=2) + "\n")
        write_model_card(args.model_dir)
        print(f"wrote {path} and {args.model_dir / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
