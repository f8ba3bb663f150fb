"""The seeded generator of v2 training conversations about real dishes (tui-gen issue #17).

    python -m dev.cooking.conversations --seed 0 --docs 3      # print a few documents

A conversation asks about one dish in one of many phrasings (a recipe, what you need, for N
people, quick, vegetarian, gluten-free, how long, what to make with two ingredients), then
follows up about that dish (keeps, freezing, scaling, a swap, what to serve with it, the oven in
Fahrenheit, ...), sometimes moves on to a second dish, until it nearly fills the 1,024-token
context. Held out of training entirely: a fixed tenth of the dishes (dishes.is_heldout) and
separate phrasings of every question (the *_HELDOUT lists); the evaluation asks exactly those.
Answers name the dish exactly as the user typed it, first in a fixed slot (the reply's
`## <dish>` title line; follow-up replies open with the same line), which is how a tiny model
can answer a dish it never saw: it copies the name and writes a recipe of the same category.
CopyDocs makes short documents of nothing but such copies, for a curriculum (train.py
--copy-docs).
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass, replace

from dev.cooking import answers as A
from dev.cooking import phrasings as P
from dev.cooking.corpus import END, Message, render_chat
from dev.cooking.dishes import Dish, all_dishes, dishes
from dev.cooking.names import NameMaker, Renamer
from dev.cooking.vocab_data import SYSTEM_PROMPTS

#: the longest document in characters (~4 characters a token, 1,024-token context)
MAX_CHARS = 3600

RECIPE_TRAIN = [
    "How do I make {dish}?",
    "Recipe for {dish}",
    "Can you give me a recipe for {dish}?",
    "I want to cook {dish} tonight.",
    "How do you make {dish}?",
    "{dish} recipe please",
    "What's a good recipe for {dish}?",
    "Teach me to make {dish}.",
    "I'd like to make {dish} this weekend. How?",
    "Show me how to cook {dish}.",
    "Give me your best {dish} recipe.",
    "How can I make {dish} at home?",
    "I fancy {dish}. How do I make it?",
    "Could you tell me how to make {dish}?",
    "What is the method for {dish}?",
    "Help me make {dish}!",
    "I'm making {dish} for dinner, what do I do?",
    "Got a recipe for {dish}?",
]
RECIPE_HELDOUT = [
    "Walk me through making {dish}.",
    "I'm in the mood for {dish}, how is it made?",
    "Any idea how to prepare {dish}?",
    "Please explain how to cook {dish} step by step.",
]
NEED_TRAIN = [
    "What do I need for {dish}?",
    "What ingredients go into {dish}?",
    "What do I have to buy to make {dish}?",
    "Ingredients for {dish}?",
]
NEED_HELDOUT = ["Which ingredients does {dish} take?", "Shopping list for {dish}, please."]
PEOPLE_TRAIN = [
    "{dish} for {n} people",
    "How do I make {dish} for {n}?",
    "I need {dish} for {n} people.",
    "Recipe for {dish} to feed {n}",
    "Can you give me {dish} for {n} people?",
]
PEOPLE_HELDOUT = ["I'm cooking {dish} for a group of {n}.", "Make {dish} to serve {n}, please."]
QUICK_TRAIN = [
    "A quick {dish}?",
    "How do I make a quick {dish}?",
    "I'm short on time. Can I make {dish}?",
    "Is {dish} fast to make?",
]
QUICK_HELDOUT = ["Can I whip up {dish} in a hurry?"]
VEG_TRAIN = [
    "A vegetarian {dish}?",
    "How do I make a vegetarian {dish}?",
    "I don't eat meat. Can I make {dish}?",
    "Vegetarian recipe for {dish}",
]
VEG_HELDOUT = ["Is there a meat-free way to make {dish}?"]
GF_TRAIN = [
    "A gluten-free {dish}?",
    "How do I make {dish} gluten-free?",
    "I'm coeliac. Can I make {dish}?",
    "Gluten-free recipe for {dish}",
]
GF_HELDOUT = ["Can {dish} be made without gluten?"]
TIME_TRAIN = ["How long does {dish} take?", "How long does it take to make {dish}?"]
TIME_HELDOUT = ["What's the total time for {dish}?"]
WITH_TRAIN = [
    "What can I make with {a} and {b}?",
    "I have {a} and {b}. What can I cook?",
    "Any ideas for {a} and {b}?",
    "Dinner ideas with {a} and {b}?",
]

#: follow-ups (no dish name: "it" is the dish in the conversation)
FOLLOW_TRAIN = {
    "keeps": [
        "How long does it keep?",
        "How long will it last in the fridge?",
        "Can I keep the leftovers?",
        "How do I store it?",
    ],
    "freeze": ["Can I freeze it?", "Does it freeze well?", "Will it freeze?"],
    "scale": [
        "Can you scale it to {n} people?",
        "What if I need it for {n}?",
        "Make it for {n} people instead.",
        "I have {n} guests now, how much do I need?",
    ],
    "swap": [
        "Can I use {sub} instead of {word}?",
        "I don't have any {word}. What can I use?",
        "What can I swap the {word} for?",
    ],
    "serve": [
        "What should I serve with it?",
        "What goes well with it?",
        "Any side dishes to go with it?",
    ],
    "oven": [
        "What's the oven temperature in Fahrenheit?",
        "What temperature in F?",
        "How hot should the oven be?",
        "Does it go in the oven?",
    ],
    "time": ["How long will it take?", "How long does it take in total?"],
    "veg": ["Can I make it vegetarian?", "Is it vegetarian?"],
    "thanks": ["Thanks!", "Thank you, that's great.", "Perfect, thanks."],
}
FOLLOW_HELDOUT = {
    "keeps": ["Will it still be good in a few days?"],
    "freeze": ["Is it OK to put it in the freezer?"],
    "scale": ["Could you adjust the amounts for {n} people?"],
    "swap": ["Is it fine to replace the {word} with {sub}?"],
    "serve": ["What side would you pair with it?"],
    "oven": ["What's that oven setting in Fahrenheit?"],
    "time": ["Roughly how much time do I need for it?"],
}
NEXT_DISH = ["And how do I make {dish}?", "Now a recipe for {dish}, please.", "What about {dish}?"]
NEXT_DISH_HELDOUT = ["Next, I'd like to make {dish}. How?"]

#: ingredients people name in "what can I make with A and B"
KEY_INGREDIENTS = [
    "chicken",
    "beef",
    "lamb",
    "pork",
    "prawns",
    "salmon",
    "tofu",
    "chickpeas",
    "lentils",
    "mushrooms",
    "spinach",
    "potatoes",
    "tomatoes",
    "eggs",
    "rice",
    "cheddar",
    "feta",
    "aubergine",
    "courgette",
    "peppers",
    "coconut milk",
    "bananas",
    "apples",
    "chocolate",
    "oats",
    "avocado",
    "noodles",
    "beans",
    "bacon",
    "sausages",
    "cream",
    "cheese",
    "pasta",
    "yoghurt",
    "lemon",
]


def key_ingredients(d: Dish) -> list[str]:
    text = " ".join(d.ingredients).lower()
    return [k for k in KEY_INGREDIENTS if re.search(r"\b" + k, text)]


def asked_name(d: Dish, rng: random.Random) -> str:
    """The dish as a user types it: usually lower case, sometimes as titled."""
    return d.name.lower() if rng.random() < 0.6 else d.name


#: how often a training conversation's dish is given another name (its recipe stays): then the
#: name in the answers can only be predicted by copying it from the question, which is what
#: lets the model answer a dish it never saw. Without it (the first v2 run, 2,000 steps) the
#: model learned each of the 354 training names' recipes by heart and answered a held-out dish
#: with a known one (it named the dish asked about in 3% of first replies).
RENAME_P = 0.5


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def fill(tpl: str, rng: random.Random, **kw: str) -> str:
    q = tpl
    for k, v in kw.items():
        q = q.replace("{" + k + "}", v)
    r = rng.random()
    if r < 0.1:
        q = q.rstrip("?.!")
    elif r < 0.15:
        q = q.lower()
    return q[:1].upper() + q[1:]


PEOPLE = (1, 2, 3, 4, 5, 6, 8, 10, 12)


def other_people(d: Dish, rng: random.Random) -> int:
    if d.makes:
        return d.serves * rng.choice((2, 3)) if rng.random() < 0.7 else max(1, d.serves // 2)
    return rng.choice([p for p in PEOPLE if p != d.serves])


# --- first turns --------------------------------------------------------------------------------
def first_answer(d: Dish, kind: str, asked: str, rng: random.Random, n: int = 0) -> str:
    """The reply to a first question about `d`; every kind is a full recipe card."""
    if kind == "need":
        return A.card(d, f"For {asked} you will need the following; the method is below.", rng=rng)
    if kind == "people":
        ings = A.scaled(d, n)
        lead = f"Here is {asked} for {n}: the recipe is for {d.serves}, so I scaled every quantity."
        return A.card(d, lead, ingredients=ings, people=n, rng=rng)
    if kind == "quick":
        t = A.minutes(d.total)
        if d.total <= 30:
            lead = f"Good choice: {asked} is quick, about {t} from start to finish."
        elif d.total <= 60:
            lead = f"This {asked} takes about {t} in all, {d.prep} minutes of it hands-on."
        else:
            lead = (
                f"Sadly, {asked} is not a quick dish: it takes about {t}, "
                "though most of that is hands-off."
            )
        return A.card(d, lead, rng=rng)
    if kind == "veg":
        if d.vegetarian:
            return A.card(d, f"Good news: {asked} is already vegetarian.", rng=rng)
        v = A.vegetarian_version(d)
        if v is None or not v[2]:
            return A.card(
                d,
                f"Sorry: {asked} is built around the meat, so there is no real "
                f"vegetarian version; try {A.join_or(A.VEG_ALTERNATIVES[:2])} instead. Here is "
                "the classic recipe.",
                rng=rng,
            )
        ings, steps, swaps = v
        lead = (
            f"For a vegetarian {asked}, "
            + "; ".join(f"use {b} instead of the {a}" for a, b in swaps)
            + "."
        )
        title = f"{d.name} (vegetarian)"
        return A.card(d, lead, ingredients=ings, steps=steps, title=title, rng=rng)
    if kind == "gf":
        if d.gluten_free:
            return A.card(d, f"Good news: {asked} is naturally gluten-free.", rng=rng)
        ings, swaps = A.gluten_free_version(d)
        lead = (
            f"For a gluten-free {asked}, "
            + (
                "; ".join(f"use {b} instead of {a}" for a, b in swaps)
                if swaps
                else "check that every packaged ingredient is labelled gluten-free"
            )
            + "."
        )
        return A.card(d, lead, ingredients=ings, title=f"{d.name} (gluten-free)", rng=rng)
    if kind == "time":
        lead = A.time_answer(d)
        return A.card(d, lead, rng=rng)
    lead = rng.choice(
        [
            f"Here is a recipe for {asked}.",
            f"Sure! Here's how to make {asked}.",
            f"Happy to help with {asked}.",
            f"Here's a classic {d.cuisine} recipe for {asked}.",
            f"Let's make {asked}. Here's how.",
        ]
    )
    return A.card(d, lead, rng=rng)


FIRST_KINDS = ("recipe", "need", "people", "quick", "veg", "gf", "time")
FIRST_WEIGHTS = (50, 8, 12, 7, 8, 7, 8)
TRAIN_Q = {
    "recipe": RECIPE_TRAIN,
    "need": NEED_TRAIN,
    "people": PEOPLE_TRAIN,
    "quick": QUICK_TRAIN,
    "veg": VEG_TRAIN,
    "gf": GF_TRAIN,
    "time": TIME_TRAIN,
}
HELDOUT_Q = {
    "recipe": RECIPE_HELDOUT,
    "need": NEED_HELDOUT,
    "people": PEOPLE_HELDOUT,
    "quick": QUICK_HELDOUT,
    "veg": VEG_HELDOUT,
    "gf": GF_HELDOUT,
    "time": TIME_HELDOUT,
}


def typed(q: str, asked: str) -> str:
    """The name exactly as it stands in the question `q` (fill may change its case)."""
    i = q.lower().find(asked.lower())
    return q[i : i + len(asked)] if i >= 0 else asked


def as_asked(d: Dish, asked: str) -> Dish:
    """The dish under the name the user typed: every later mention is then a verbatim copy."""
    return replace(d, name=asked)


#: how often a training question is composed from parts (phrasings.py) rather than taken from
#: the fixed *_TRAIN templates: the many shapes teach finding the name in a phrasing never seen
COMPOSED_P = 0.6
#: the same for follow-up questions
COMPOSED_FOLLOW_P = 0.6
_HELDOUT_TEMPLATES = [
    *(t for pool in HELDOUT_Q.values() for t in pool),
    *(t for pool in FOLLOW_HELDOUT.values() for t in pool),
    *NEXT_DISH_HELDOUT,
]
COMPOSER = P.Composer(_HELDOUT_TEMPLATES)


def train_question(kind: str, rng: random.Random) -> str:
    """A training template for a first question of `kind`: fixed or composed."""
    tpl = COMPOSER.first(kind, rng) if rng.random() < COMPOSED_P else rng.choice(TRAIN_Q[kind])
    return P.garble(tpl, rng) if rng.random() < P.GARBLE_FIRST_P else tpl


def asked_turn(d: Dish, kind: str, rng: random.Random, held: bool = False) -> tuple[str, str, Dish]:
    """(question, answer, the dish as asked) of a first question about `d`."""
    asked = asked_name(d, rng)
    n = other_people(d, rng) if kind == "people" else 0
    tpl = rng.choice(HELDOUT_Q[kind]) if held else train_question(kind, rng)
    q = fill(tpl, rng, dish=asked, n=str(n))
    asked = typed(q, asked)
    da = as_asked(d, asked)
    return q, first_answer(da, kind, asked, rng, n), da


def first_turn(d: Dish, kind: str, rng: random.Random, held: bool = False) -> tuple[str, str]:
    q, a, _ = asked_turn(d, kind, rng, held)
    return q, a


def follow_turn(
    d: Dish, kind: str, rng: random.Random, held: bool = False
) -> tuple[str, str] | None:
    """(question, answer) of a follow-up about `d`, None when the kind does not apply; the
    answer starts with the dish's title line, the same "## " slot as the recipe card, so the
    name is copied from the card by plain induction (after "##" comes what came after "##")."""
    turn = _follow_turn(d, kind, rng, held)
    if turn is None or not FOLLOW_SLOT:
        return turn
    return turn[0], f"## {d.name}\n{turn[1]}"


#: whether follow-up answers open with the dish's "## " title line (see follow_turn)
FOLLOW_SLOT = True


def _follow_turn(
    d: Dish, kind: str, rng: random.Random, held: bool = False
) -> tuple[str, str] | None:
    pool = (FOLLOW_HELDOUT if held else FOLLOW_TRAIN)[kind]
    tpl = rng.choice(pool)
    if not held and rng.random() < COMPOSED_FOLLOW_P:
        tpl = COMPOSER.follow(kind, rng) or tpl
    if not held and rng.random() < P.GARBLE_FOLLOW_P:
        tpl = P.garble(tpl, rng)
    if kind == "keeps":
        return fill(tpl, rng), A.keeps_answer(d)
    if kind == "freeze":
        return fill(tpl, rng), A.freeze_answer(d)
    if kind == "scale":
        n = other_people(d, rng)
        return fill(tpl, rng, n=str(n)), A.scale_answer(d, n)
    if kind == "swap":
        swaps = A.find_swaps(d)
        if not swaps:
            return None
        word, sub, why = rng.choice(swaps)
        return fill(tpl, rng, word=word, sub=sub.split(" (")[0]), A.swap_answer(d, word, sub, why)
    if kind == "serve":
        return fill(tpl, rng), A.serve_answer(d)
    if kind == "oven":
        return fill(tpl, rng), A.oven_answer(d)
    if kind == "time":
        return fill(tpl, rng), A.time_answer(d)
    if kind == "veg":
        return fill(tpl, rng), A.veg_answer(d)
    return fill(tpl, rng), A.thanks_answer(d, rng)


FOLLOW_KINDS = ("keeps", "freeze", "scale", "swap", "serve", "oven", "time", "veg")


class Conversations:
    """Seeded documents from one split ("train" or "heldout")."""

    def __init__(self, seed: int, split: str = "train", rename_p: float = RENAME_P) -> None:
        self.rng = random.Random(f"cooking-v2/{split}/{seed}")
        self.split = split
        self.rename_p = rename_p
        self.dishes = dishes(split)
        self.rename = Renamer(self.dishes) if split == "train" else None
        self.by_key: dict[str, list[Dish]] = {}
        for d in self.dishes:
            for k in key_ingredients(d):
                self.by_key.setdefault(k, []).append(d)

    def with_turn(self) -> tuple[Dish, str, str]:
        rng = self.rng
        d = rng.choice([x for x in self.dishes if len(key_ingredients(x)) >= 2])
        a, b = rng.sample(key_ingredients(d), 2)
        both = [x for x in self.by_key[a] if x in self.by_key[b] and x is not d]
        picks = [d, *rng.sample(both, min(2, len(both)))]
        q = fill(rng.choice(WITH_TRAIN), rng, a=a, b=b)
        ideas = A.join_or([p.name for p in picks])
        lead = f"With {a} and {b} you could make {ideas}. Here is {d.name}."
        return d, q, A.card(d, lead, rng=rng)

    def pick(self) -> Dish:
        """A dish for a conversation, under another name rename_p of the time in training."""
        d = self.rng.choice(self.dishes)
        if self.rename is not None and self.rng.random() < self.rename_p:
            d = self.rename(d, self.rng)
        return d

    def chat(self) -> str:
        rng = self.rng
        msgs: list[Message] = []
        if rng.random() < 0.3:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        if rng.random() < 0.07:
            d, q, a = self.with_turn()
        else:
            d = self.pick()
            kind = rng.choices(FIRST_KINDS, FIRST_WEIGHTS)[0]
            q, a, d = asked_turn(d, kind, rng)
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        n_follow = rng.choices((0, 1, 2, 4, 6, 9, 12), (6, 8, 10, 14, 18, 22, 22))[0]
        used: set[str] = set()
        size = len(render_chat(msgs))
        for _ in range(n_follow):
            if rng.random() < 0.15:  # move on to another dish
                d = self.pick()
                asked = asked_name(d, rng)
                q = fill(rng.choice(NEXT_DISH), rng, dish=asked)
                asked = typed(q, asked)
                d = as_asked(d, asked)
                turn: tuple[str, str] | None = (q, first_answer(d, "recipe", asked, rng))
                used = set()
            else:
                kinds = [k for k in FOLLOW_KINDS if k not in used] or ["thanks"]
                kind = rng.choice(kinds)
                used.add(kind)
                turn = follow_turn(d, kind, rng)
            if turn is None:
                continue
            add = [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
            grow = len(render_chat(add))
            if size + grow > MAX_CHARS:
                break
            msgs += add
            size += grow
        if rng.random() < 0.15 and size < MAX_CHARS - 200 and "thanks" not in used:
            q, a = follow_turn(d, "thanks", rng) or ("", "")
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return render_chat(msgs)

    def text(self) -> str:
        """Plain recipe prose, so bare prompts ("Today's recipe is") continue sensibly."""
        rng, d = self.rng, self.rng.choice(self.dishes)
        opener = rng.choice(
            ["Today's recipe is", "Tonight we are making", "Our dish of the day is"]
        )
        items = "; ".join(d.ingredients)
        return (
            f"{opener} {d.name}, a {d.cuisine} dish. {A.serves_text(d)}, ready in about "
            f"{A.minutes(d.total)}. You will need {items}. {' '.join(d.steps)}{END}\n"
        )

    def document(self) -> str:
        return self.text() if self.rng.random() < 0.05 else self.chat()


def generate(seed: int, n_docs: int, split: str = "train", rename_p: float = RENAME_P) -> list[str]:
    gen = Conversations(seed, split, rename_p)
    return [gen.document() for _ in range(n_docs)]


# --- copying curriculum -------------------------------------------------------------------------
class CopyDocs:
    """Short documents whose answers can only be predicted by copying: each exchange asks
    about an invented dish (invented words, other dishes' words, in any case) and the answer
    is the card's title slot, meta line and lead sentence (no recipe), or a follow-up about the
    latest dish opening with its "## " title line. Several dishes per document, so the copy
    must come from the latest question, not the first. Each opens with COPY_SYSTEM. The
    trainer feeds these first (a curriculum: dense copying before the long conversations)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"cooking-v2/copy/{seed}")
        self.dishes = dishes("train")
        self.maker = NameMaker(self.dishes)

    def name(self) -> str:
        """An invented dish name (names.NameMaker), lower case 60% of the time as users type."""
        name = self.maker.name(self.rng)
        return name.lower() if self.rng.random() < 0.6 else name

    def document(self) -> str:
        rng = self.rng
        msgs: list[Message] = [{"role": "system", "content": COPY_SYSTEM}]
        d: Dish | None = None
        for i in range(rng.randint(4, 9)):
            if rng.random() < REPEAT_P:
                q, a = self.repeat()
            elif d is None or rng.random() < 0.5:
                asked = self.name()
                d = rng.choice(self.dishes)
                if i and rng.random() < 0.3:
                    q = fill(rng.choice(NEXT_DISH), rng, dish=asked)
                else:
                    kind = rng.choices(FIRST_KINDS, FIRST_WEIGHTS)[0]
                    n = other_people(d, rng)
                    q = fill(train_question(kind, rng), rng, dish=asked, n=str(n))
                asked = typed(q, asked)
                d = as_asked(d, asked)
                a = first_answer(d, "recipe", asked, rng).split("\n\nIngredients:")[0]
            else:
                turn = follow_turn(d, rng.choice(FOLLOW_KINDS), rng)
                if turn is None:
                    continue
                q, a = turn
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return render_chat(msgs)

    def repeat(self) -> tuple[str, str]:
        """A list said back verbatim: the densest copying there is (half the tokens), the kind
        of data on which small transformers form induction heads fastest."""
        rng = self.rng
        items = [self.name() for _ in range(rng.randint(4, 12))]
        lead = rng.choice(REPEAT_LEADS)
        return f"{lead} {', '.join(items)}", f"{lead} {', '.join(items)}"


#: the system line every copying document opens with: their answers stop after the title and
#: lead, and unmarked they taught recipe replies to stop there too (run K's structure 87% with
#: them at 3% to the end, K2's 94% without); marked, they can stay in the mix to the end
COPY_SYSTEM = "Drill: answer with the dish's title and one line only."

#: how often an exchange in a copying document is a list said back (CopyDocs.repeat)
REPEAT_P = 0.3
REPEAT_LEADS = (
    "My shopping list:",
    "Read back my list:",
    "Repeat my order:",
    "Note these dishes:",
    "Say these back:",
)


def copy_documents(seed: int, n_docs: int) -> list[str]:
    gen = CopyDocs(seed)
    return [gen.document() for _ in range(n_docs)]


# --- evaluation items ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConversation:
    """A held-out dish asked in a held-out phrasing, then held-out follow-ups (asked in turn)."""

    dish: str
    kind: str
    first: str
    follow_ups: tuple[tuple[str, str], ...]  # (kind, question)
    system: str | None = None


def eval_conversations(seed: int, n: int, follow_ups: int = 2) -> list[EvalConversation]:
    rng = random.Random(f"cooking-v2-eval/{seed}")
    pool = list(dishes("heldout"))
    out = []
    for i in range(n):
        if i % len(pool) == 0:
            rng.shuffle(pool)
        d = pool[i % len(pool)]
        kind = rng.choices(FIRST_KINDS, FIRST_WEIGHTS)[0]
        q, _ = first_turn(d, kind, rng, held=True)
        pool_k = [k for k in FOLLOW_HELDOUT if k != "swap" or A.find_swaps(d)]
        kinds = rng.sample(pool_k, follow_ups)
        fus = []
        for k in kinds:
            t = follow_turn(d, k, rng, held=True)
            assert t is not None
            fus.append((k, t[0]))
        out.append(EvalConversation(d.name, kind, q, tuple(fus)))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", type=int, default=3)
    ap.add_argument("--split", choices=["train", "heldout"], default="train")
    args = ap.parse_args(argv)
    print(f"{len(all_dishes())} dishes ({len(dishes('heldout'))} held out)\n")
    for doc in generate(args.seed, args.docs, args.split):
        print(doc)


if __name__ == "__main__":
    main()
