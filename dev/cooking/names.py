"""Invented dish names: for training dishes asked under another name, and for the copying
documents (tui-gen issue #17).

Why this module exists: the model answers a dish it never saw only by copying the name from the
question, and copying has to beat what it remembers. Measured on run F teacher-forced
(`python -m dev.cooking.copyprobe --grid`, RESULTS.md run I): for held-out dishes it got the
name's first token right 72-78% of the time but the tokens after it only 42-44% ("Hot" ->
"Hot Potatoes", "Cheese" -> "Cheese Toastie", "blueberry" -> "blueberry bolognese"), against
100% for training dishes. The names it had been taught to copy were too narrow to generalise:
capitalised words of training dish names plus the dish's kind, or words of two or three
syllables from a fixed list of 28 (which the BPE learns as whole tokens), never a connector
("Hot and Sour Soup", "Orzo with Feta"), never a foreign single word that splits into
arbitrary pieces ("Mujadara", "Congee").

So a name here is built in many shapes (one word; words + kind; "A and B kind"; "kind with A";
"A al B"; hyphenated; possessive) from four sources: words of training dish names, words of the
training ingredient lists (real food words the model knows from recipes, so its memory of what
follows them must lose to the copy), pseudo-words spliced from the start of one such word and
the end of another (word-like, but split by the BPE as a foreign name is), and the old
syllables. Nothing is taken from held-out dishes, and no name contains a held-out dish's name.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from dev.cooking.dishes import Dish, dishes

MODIFIERS = (
    "Classic", "Easy", "Quick", "Smoky", "Spicy", "Creamy", "Crispy", "Rustic", "Summer",
    "Winter", "Weeknight", "Sunday", "Herby", "Lemony", "Golden", "Grandma's", "Nonna's",
    "Farmhouse", "Market", "Harvest", "Garden", "Street-Style", "Home-Style", "Fiery", "Mild",
    "One-Pot", "Traybake", "Slow-Cooked", "Charred", "Zesty",
)  # fmt: skip
SYLLABLES = (
    "ka", "lo", "mi", "ra", "zen", "tu", "bel", "sha", "vo", "ri", "na", "dor", "pa", "qui",
    "mar", "to", "su", "lin", "go", "fe", "ban", "ko", "ti", "ma", "sel", "ru", "ha", "chi",
)  # fmt: skip
NAME_WORDS = (
    "Spiced", "Baked", "Roast", "Grilled", "Stuffed", "Braised", "Glazed", "Pickled", "Toasted",
    "Steamed", "Fried", "Green", "Red", "Black", "White", "Sweet", "Sour", "Hot", "Cold",
    "Garlic", "Ginger", "Honey", "Walnut", "Almond", "Pepper", "Onion", "Leek", "Fennel", "Pear",
    "Plum", "Cherry", "Fig", "Date", "Pumpkin", "Parsnip", "Radish", "Celery", "Olive", "Caper",
    "Mustard", "Sesame", "Miso", "Chilli", "Lime", "Orange", "Mint", "Basil", "Sage", "Thyme",
)  # fmt: skip
#: accented letters of dish names in other languages
ACCENTED = {"e": "è", "a": "à", "o": "ô", "u": "ü", "n": "ñ", "c": "ç", "i": "î"}
#: the small words inside real dish names (of many languages)
CONNECTORS = (
    "and", "and", "and", "with", "with", "in", "on", "of", "alla", "al", "con", "e", "au", "de",
    "à la", "&",
)  # fmt: skip
#: words of ingredient lines that are not food
_NOT_FOOD = frozenset(
    (
        "and", "the", "for", "with", "into", "about", "each", "small", "large", "medium", "big",
        "plus", "more", "some", "few", "extra", "chopped", "diced", "sliced", "crushed", "grated",
        "peeled", "drained", "rinsed", "softened", "melted", "beaten", "finely", "roughly",
        "thinly", "cut", "halved", "juiced", "zested", "cubed", "torn", "trimmed", "cooked",
        "dried", "fresh", "ground", "optional", "tin", "tins", "pinch", "handful", "bunch", "jar",
        "pack", "packet", "litre", "litres", "tbsp", "tsp", "cloves", "clove", "sticks", "stick",
        "slices", "slice", "cups", "cup", "room", "temperature", "serve", "serving", "taste",
        "leaves", "leaf", "sprigs", "sprig", "plain", "whole",
    )
)  # fmt: skip


def _invented(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


class NameMaker:
    """Names in many shapes from training words, food words, pseudo-words and syllables."""

    def __init__(self, train: tuple[Dish, ...] | None = None) -> None:
        train = dishes("train") if train is None else train
        self.held = tuple(d.name.lower() for d in dishes("heldout"))
        self.dish_words = sorted({w for d in train for w in d.name.split()[:-1] if w[:1].isupper()})
        self.kinds = sorted({d.name.split()[-1] for d in train})
        food: set[str] = set()
        for d in train:
            for line in d.ingredients:
                for w in re.findall(r"[a-zà-ÿ']{3,}", line.lower()):
                    if w not in _NOT_FOOD and not w.endswith("'"):
                        food.add(w)
        self.food_words = sorted(food)
        words = [*self.dish_words, *self.food_words, *NAME_WORDS]
        self.stems = sorted({w.lower() for w in words if len(w) >= 5 and w.isalpha()})
        self.fragments = sorted(
            {w.lower()[i : i + k] for w in words for k in (2, 3) for i in range(len(w) - k + 1)}
            - {""}
        )

    def allowed(self, name: str) -> bool:
        """The one rule for every invented name: it never contains a held-out dish's name."""
        low = name.lower()
        return not any(h in low for h in self.held)

    def pseudo(self, rng: random.Random) -> str:
        """A word that is no word, but sounds like one: the start of one food word, the end of
        another, sometimes a fragment between ("Pomo" + "otta"): any BPE split, as foreign names
        have. (Gluing 2-3 random two- or three-letter fragments, the first try, taught names so
        shapeless that sampled titles looped on one piece: "## Rowffffffff".)"""
        a, b = rng.choice(self.stems), rng.choice(self.stems)
        mid = rng.choice(self.fragments) if rng.random() < 0.2 else ""
        word = a[: rng.randint(3, 5)] + mid + b[-rng.randint(3, 5) :]
        if rng.random() < 0.1:  # an accent, as in crème brûlée or jalapeño
            i = rng.randrange(len(word))
            word = word[:i] + ACCENTED.get(word[i], word[i]) + word[i + 1 :]
        return word.capitalize()

    def word(self, rng: random.Random) -> str:
        r = rng.random()
        if r < 0.3:
            return rng.choice(self.dish_words)
        if r < 0.65:
            return rng.choice(self.food_words).capitalize()
        if r < 0.88:
            return self.pseudo(rng)
        return _invented(rng)

    def name(self, rng: random.Random, kind: str | None = None) -> str:
        """A dish name; `kind` (Soup, Curry, ...) is the last word when the shape has one."""
        for _ in range(20):
            name = self._shape(rng, kind or rng.choice(self.kinds))
            if self.allowed(name):
                return name
        return f"{_invented(rng)} {kind or 'Stew'}"

    def _shape(self, rng: random.Random, kind: str) -> str:
        w = self.word
        r = rng.random()
        if r < 0.14:
            return w(rng) if rng.random() < 0.5 else self.pseudo(rng)  # Gumbo, Mujadara
        if r < 0.34:
            return f"{w(rng)} {kind}"
        if r < 0.50:
            return f"{w(rng)} {w(rng)} {kind}"
        if r < 0.64:
            return f"{w(rng)} {rng.choice(CONNECTORS)} {w(rng)} {kind}"  # Hot and Sour Soup
        if r < 0.74:
            tail = f"{w(rng)} and {w(rng)}" if rng.random() < 0.4 else w(rng)
            return f"{kind} {rng.choice(('with', 'with', 'alla', 'con', 'au'))} {tail}"
        if r < 0.80:
            return f"{w(rng)}-{w(rng)}" + (f" {kind}" if rng.random() < 0.5 else "")
        if r < 0.86:
            owner = w(rng)
            mark = "'" if owner.endswith("s") else "'s"
            return f"{owner}{mark} {w(rng)} {kind}"
        if r < 0.93:
            return f"{rng.choice(MODIFIERS)} {w(rng)} {kind}"
        return f"{w(rng)} {w(rng)}"  # Eton Mess, Panna Cotta


class Renamer:
    """Another name for a training dish (its recipe stays): a modifier before the real name
    (a fifth of the time: the model still has to copy the modifier), or a NameMaker name ending
    in the dish's kind; never containing a held-out dish's name."""

    def __init__(self, train: tuple[Dish, ...]) -> None:
        self.maker = NameMaker(train)

    def __call__(self, d: Dish, rng: random.Random) -> Dish:
        kind = d.name.split()[-1]
        for _ in range(10):
            if rng.random() < 0.2:
                name = f"{rng.choice(MODIFIERS)} {d.name}"
            else:
                name = self.maker.name(rng, kind)
            if name != d.name and self.maker.allowed(name):
                return replace(d, name=name)
        return d
