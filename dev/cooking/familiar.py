"""Familiar dishes (issue #17's examples), asked in everyday phrasings: does the first reply
name the dish, does a follow-up stay on it?  `python -m dev.cooking.familiar DIR [DIR ...]`

Why: evaluate.py measures dishes held out of training; a new user asks for lasagne or
hummus, which the v2 corpus holds. Replies sampled at T=0.8 with fixed seeds.
"""

import sys

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


def main() -> None:
    for path in sys.argv[1:]:
        gen = Generator.load(path, device="cpu")
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


if __name__ == "__main__":
    main()
