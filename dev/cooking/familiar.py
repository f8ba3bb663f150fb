"""Familiar dishes (issue #17's examples), asked in everyday phrasings: does the first reply
name the dish, does a follow-up stay on it?  `python -m dev.cooking.familiar DIR [DIR ...]`

Why: evaluate.py measures dishes held out of training; a new user asks for lasagne or
hummus, which the v2 corpus holds. Replies sampled at T=0.8 with fixed seeds.
`--write` stores the counts in DIR/generation_info.json and the model card quotes them.
"""

import argparse
import json
from pathlib import Path

from dev.cooking.card import write_model_card
from dev.cooking.dishes import is_heldout
from dev.cooking.evaluate import (
    _reply,
    names_dish,
    repeated_line,
    structured,
)
from tui_gen.engine.generator import Generator

DISHES = [
    "lasagne",
    "hummus",
    "guacamole",
    "apple pie",
    "shakshuka",
    "pad thai",
    "crêpes",
    "vegetarian chilli",
    "banana bread",
    "chicken curry",
    "tomato soup",
    "pancakes",
    "risotto",
    "carbonara",
    "fried rice",
]
QS = [
    "How do I make {d}?",
    "I want to cook {d} tonight.",
    "Walk me through making {d}.",
    "What do I need for {d}?",
]
FU = "Can I freeze it?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Familiar dishes in everyday phrasings.")
    ap.add_argument("model_dirs", type=Path, nargs="+")
    ap.add_argument("--write", action="store_true", help="store the counts for the model card")
    args = ap.parse_args(argv)
    for path in args.model_dirs:
        gen = Generator.load(str(path), device="cpu")
        named = fol = struct = rep = n = 0
        for i, d in enumerate(DISHES):
            for j, q in enumerate(QS):
                msgs = [{"role": "user", "content": q.format(d=d)}]
                t = _reply(gen, msgs, 420, 100 * i + j).text
                msgs.append({"role": "assistant", "content": t})
                msgs.append({"role": "user", "content": FU})
                f = _reply(gen, msgs, 220, 100 * i + j + 50).text
                n += 1
                named += names_dish(t, d)
                fol += names_dish(f, d)
                struct += structured(t)
                rep += repeated_line(t) is None
                if j == 0:
                    print(f"  {d!r} (held out: {is_heldout(d)}): {t.splitlines()[0][:70]!r}")
        print(
            f"{path}: names {named}/{n}, follow-up on dish {fol}/{n}, "
            f"structure {struct}/{n}, no repeat {rep}/{n}"
        )
        if args.write:
            info_path = path / "generation_info.json"
            info = json.loads(info_path.read_text())
            info["familiar"] = {
                "dishes": DISHES,
                "phrasings": QS,
                "follow_up": FU,
                "replies": n,
                "names_dish": named,
                "follow_on_dish": fol,
                "structure": struct,
                "no_repeat": rep,
                "command": "python -m dev.cooking.familiar " + str(path) + " --write",
            }
            info_path.write_text(json.dumps(info, indent=2) + "\n")
            write_model_card(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
