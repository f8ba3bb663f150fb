"""Measure the cooking model: held-out validation loss and the shape of sampled replies.

    python -m dev.cooking.evaluate models/cooking [--write]

Replies are sampled through the engine (Generator + the model's own chat template), the same
path `tui-gen models/cooking` uses, to questions about held-out dishes asked with held-out
phrasings (corpus.eval_questions). A reply counts as structured when it has an ingredient list
(at least three "- " lines with a number, one of them with a unit) and numbered steps (at least
"1.", "2.", "3." in order); it names the dish when the dish name appears in it, ignoring case.
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

from dev.cooking.corpus import eval_questions, generate_corpus
from dev.cooking.train import TokenStream, mean_loss, write_model_card
from tui_gen.engine.chat import render_messages
from tui_gen.engine.generator import Generator

UNIT = re.compile(r"\b\d[\d/.]*\s*(g|kg|ml|litres?|tbsp|tsp|tins?|cm)\b")
BULLET = re.compile(r"^\s*[-*•]\s+\S*\d", re.M)


def has_ingredient_list(text: str) -> bool:
    bullets = [ln for ln in text.splitlines() if BULLET.match(ln)]
    return len(bullets) >= 3 and any(UNIT.search(b) for b in bullets)


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


@dataclass
class Sample:
    dish: str
    kind: str
    prompt: str
    reply: str
    finish: str
    structured: bool
    named: bool


def sample_replies(
    gen: Generator, n: int, temperature: float, seed: int, max_new_tokens: int
) -> list[Sample]:
    out = []
    tok = gen.tokenizer
    for i, item in enumerate(eval_questions(seed, n)):
        prompt = render_messages(
            gen.chat_template,
            item.messages,
            add_generation_prompt=True,
            bos_token=tok.bos_token,
            eos_token=tok.eos_token,
        )
        ids = gen.encode(prompt, add_special_tokens=False)
        res = gen.generate_result(
            ids,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            seed=seed * 1000 + i,
        )
        text = res.text
        out.append(
            Sample(
                item.dish,
                item.kind,
                item.messages[-1]["content"],
                text,
                res.finish_reason,
                has_ingredient_list(text) and has_numbered_steps(text),
                names_dish(text, item.dish),
            )
        )
    return out


def validation_loss(model_dir: Path, gen: Generator, seed: int, docs: int) -> float:
    """Mean loss per token on freshly generated held-out-split documents."""
    info_path = model_dir / "generation_info.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        seed = info.get("corpus", {}).get("seed", seed)
        docs = info.get("corpus", {}).get("validation_documents", docs)
    stream = TokenStream.encode(gen.tokenizer.backend, generate_corpus(seed, docs, "heldout"))
    seq = min(512, gen.config.max_position_embeddings)
    return mean_loss(gen.model, stream, seq, batch_size=8)


def evaluate(
    model_dir: Path,
    n: int = 100,
    temperature: float = 0.8,
    seed: int = 0,
    max_new_tokens: int = 450,
    val_docs: int = 400,
) -> dict[str, Any]:
    torch.set_num_threads(2)
    gen = Generator.load(model_dir)
    t0 = time.perf_counter()
    val = validation_loss(model_dir, gen, seed, val_docs)
    samples = sample_replies(gen, n, temperature, seed, max_new_tokens)
    pct = lambda k: 100.0 * sum(k(s) for s in samples) / len(samples)  # noqa: E731
    return {
        "n": len(samples),
        "temperature": temperature,
        "seed": seed,
        "val_loss": round(val, 4),
        "structure_pct": pct(lambda s: s.structured),
        "names_dish_pct": pct(lambda s: s.named),
        "stopped_pct": pct(lambda s: s.finish == "eos"),
        "seconds": round(time.perf_counter() - t0, 1),
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate the cooking demo model.")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--n", type=int, default=100, help="number of held-out questions")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=360)
    ap.add_argument("--show", type=int, default=0, help="print this many replies")
    ap.add_argument("--failures", action="store_true", help="print every failing reply")
    ap.add_argument(
        "--write",
        action="store_true",
        help="store the numbers in generation_info.json and the README.md card",
    )
    args = ap.parse_args(argv)
    res = evaluate(args.model_dir, args.n, args.temperature, args.seed, args.max_new_tokens)
    samples: list[Sample] = res.pop("samples")
    for s in samples[: args.show] + (
        [x for x in samples if not (x.structured and x.named)] if args.failures else []
    ):
        print(
            f"--- [{s.kind}] {s.prompt}  (dish: {s.dish}; structured={s.structured} "
            f"named={s.named} finish={s.finish})\n{s.reply}\n"
        )
    print(f"held-out validation loss: {res['val_loss']:.4f}")
    print(
        f"replies with ingredient list + numbered steps: {res['structure_pct']:.0f}% "
        f"of {res['n']} (T={res['temperature']})"
    )
    print(f"replies naming the dish asked about: {res['names_dish_pct']:.0f}%")
    print(f"replies that ended with the end token: {res['stopped_pct']:.0f}%")
    if args.write:
        path = args.model_dir / "generation_info.json"
        info = json.loads(path.read_text())
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
