"""The seeded generator of cooking conversations and plain recipe text (tui-gen issue #3).

Everything the demo model knows comes from here, so the generator has to be deterministic (the
same seed gives byte-identical documents, which makes a training run reproducible), varied (so
the model learns the shape of an answer rather than a few lines by heart) and honest about
hold-out: a fixed tenth of all dish names and separate question phrasings never appear in the
"train" split, and the evaluation asks exactly those.

A dish is a dish type + a main ingredient + an optional flavour; its recipe is a pure function
of those, so every mention of a dish agrees with every other. Randomness only picks *which*
dish, question and answer layout.

    python -m dev.cooking.corpus --seed 0 --docs 5        # print a few documents
"""

from __future__ import annotations

import argparse
import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from dev.cooking import kitchen_data as K
from dev.cooking.dish_data import CELSIUS_TO_F, DISH_TYPES, PORTIONS, DishType
from dev.cooking.vocab_data import FLAVOURS, INGREDIENTS, SYSTEM_PROMPTS, Flavour, Ingredient

SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS = [END, SYSTEM, USER, ASSISTANT]

#: Hugging Face-style chat template; it must render exactly what `render_chat` writes.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles must be system, user or assistant') }}{% endif %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

Message = dict[str, str]


def render_chat(messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """The training format: `<|role|>\\ncontent<|end|>\\n` per message (see CHAT_TEMPLATE)."""
    out = "".join(f"<|{m['role']}|>\n{m['content']}{END}\n" for m in messages)
    return out + (f"{ASSISTANT}\n" if add_generation_prompt else "")


def render_text(text: str) -> str:
    """A plain continuation document, closed by the end token like a chat turn."""
    return f"{text}{END}\n"


# --- dishes ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Dish:
    """A named dish; compared by identity (all_dishes() makes each one once)."""

    name: str
    type: DishType
    main: Ingredient
    flavour: Flavour | None

    @property
    def cuisine(self) -> str | None:
        return self.flavour.cuisine if self.flavour else None


def titlecase(words: str) -> str:
    """Capitalise each word without str.title()'s "Goat'S" mistake."""
    return " ".join(w[:1].upper() + w[1:] for w in words.split())


def _dish_name(t: DishType, main: Ingredient, flavour: Flavour | None) -> str:
    base = t.pattern.replace("{M}", main.title).replace("{N}", titlecase(main.noun))
    return f"{flavour.label} {base}" if flavour else base


@lru_cache(maxsize=1)
def all_dishes() -> tuple[Dish, ...]:
    """Every dish the generator can name, in a fixed order, without duplicate names."""
    out: dict[str, Dish] = {}
    for t in DISH_TYPES.values():
        for mkey in t.mains:
            main = INGREDIENTS[mkey]
            for fkey in (None, *t.flavours):
                fl = FLAVOURS[fkey] if fkey else None
                if fl and fl.label.lower() in main.title.lower():
                    continue  # "Lemon Lemon Cake"
                name = _dish_name(t, main, fl)
                out.setdefault(name, Dish(name, t, main, fl))
    return tuple(out.values())


def is_heldout(name: str) -> bool:
    """A fixed tenth of dish names, chosen by a stable hash (not Python's salted hash())."""
    return zlib.crc32(name.lower().encode()) % 10 == 3


def dishes(split: str) -> tuple[Dish, ...]:
    """Dishes of the "train" or "heldout" split."""
    want = split == "heldout"
    return tuple(d for d in all_dishes() if is_heldout(d.name) == want)


# --- recipes --------------------------------------------------------------------------------
BASE_COOK = {
    "soup": 10,
    "stew": 15,
    "curry": 15,
    "risotto": 20,
    "stir_fry": 3,
    "fried_rice": 6,
    "pasta": 6,
    "pasta_bake": 40,
    "salad": 0,
    "roast": 0,
    "traybake": 20,
    "pie": 45,
    "quiche": 30,
    "omelette": 2,
    "tacos": 3,
    "burgers": 0,
    "fritters": 6,
    "noodle_soup": 10,
    "chilli": 15,
    "skewers": 0,
    "pilaf": 35,
    "shakshuka": 25,
    "gratin": 0,
    "muffins": 0,
    "cake": 0,
    "crumble": 0,
    "pancakes": 10,
    "cookies": 0,
    "porridge": 0,
    "smoothie": 0,
}


@dataclass(frozen=True)
class Recipe:
    title: str
    lines: tuple[tuple[str, str], ...]  # ("600 g", "chicken, cut into chunks")
    steps: tuple[str, ...]
    tips: tuple[str, ...]
    serves: str
    prep: int
    cook: int
    oven: int | None
    desc: str


def fmt_minutes(m: int) -> str:
    if m < 60:
        return f"{m} minute" + ("s" if m != 1 else "")
    h, r = divmod(m, 60)
    s = f"{h} hour" + ("s" if h > 1 else "")
    return s + (f" {r} minutes" if r else "")


def fmt_oven(c: int) -> str:
    return f"{c}°C ({CELSIUS_TO_F[c]}°F)"


def _line(qty: str, item: str) -> str:
    return f"{qty} {item}".strip()


#: leafy or small ingredients that are never "cut into chunks"
NO_PREP_NOTE = frozenset(
    {
        "spinach",
        "kale",
        "pea",
        "sweetcorn",
        "edamame",
        "artichoke",
        "green_bean",
        "pak_choi",
        "mussel",
        "scallop",
        "prawn",
        "squid",
    }
)


def main_line(ing: Ingredient, portion: str, form: str, note: str = "") -> tuple[str, str]:
    """(quantity, item) of the main ingredient; "=" in a quantity override is the whole line."""
    qty = ing.qty.get(portion) or PORTIONS[portion].get(ing.cat) or PORTIONS[portion]["*"]
    if qty.startswith("="):
        return "", qty[1:]
    item = ing.forms.get(form, ing.item)
    if note and ing.key not in NO_PREP_NOTE:
        item += (" and " if "," in item else ", ") + note
    return qty, item


def _steps(templates: Sequence[str], cat: str, key: str, fmt: dict[str, str]) -> list[str]:
    out = []
    for s in templates:
        if "|" in s:
            cats, s = s.split("|", 1)
            if cat not in cats.split(",") and key not in cats.split(","):
                continue
        for k, v in fmt.items():
            s = s.replace("{" + k + "}", v)
        out.append(s)
    return out


def _garnish(text: str, garnish: str | None) -> str:
    if garnish:
        return text.replace("{garnish}", garnish)
    return re.sub(r",? \{garnish\}", "", text)


@cache
def build_recipe(dish: Dish) -> Recipe:
    """The one recipe for a dish: a pure function of type, main ingredient and flavour."""
    t, m, fl = dish.type, dish.main, dish.flavour
    cook = t.cook.get(m.cat, t.cook["*"])
    lines = [main_line(m, t.portion, t.form, dict(t.prep_note).get(m.cat, ""))]
    season = [b for b in t.base if b[1] == "salt and black pepper"]
    lines += [b for b in t.base if b not in season]
    if fl:  # skip extras the base already has ("soy sauce" twice)
        lines += [
            (q, i) for q, i in fl.extra if not any(i.split(",")[0] in have for _, have in lines)
        ]
    lines += season
    fmt = {"main": m.noun, "cook": str(cook), "oven": fmt_oven(t.oven) if t.oven else ""}
    steps = []
    for s in _steps(t.steps, m.cat, m.key, fmt):
        if s == "{F}":
            if fl:
                steps.append(fl.step)
            continue
        steps.append(_garnish(s, fl.garnish if fl else None))
    total_cook = cook + BASE_COOK.get(t.key, 0)
    return Recipe(
        dish.name,
        tuple(lines),
        tuple(steps),
        t.tips,
        t.serves,
        t.prep_min,
        total_cook,
        t.oven,
        t.desc,
    )


def technique_recipe(tech: K.Technique, ing: Ingredient) -> tuple[Recipe, str]:
    """A technique answered as a small recipe; also returns the time phrase."""
    time = tech.times.get(ing.key) or tech.times.get(ing.cat) or tech.times["*"]
    lines = [main_line(ing, "main", tech.form), *tech.extra]
    steps = _steps(tech.steps, ing.cat, ing.key, {"main": ing.noun, "time": time})
    title = tech.title.replace("{N}", titlecase(ing.noun))
    return Recipe(title, tuple(lines), tuple(steps), tech.tips, "", 0, 0, None, ""), time


# --- answer layouts -------------------------------------------------------------------------
def _serves(s: str) -> str:
    return f"Makes {s[6:]}" if s.startswith("makes") else f"Serves {s}"


def format_recipe(r: Recipe, rng: random.Random, lead: str = "", intro: bool = True) -> str:
    """Title, optional meta line, ingredient list, numbered steps, sometimes a tip.

    Several layouts (headings, meta lines, tip styles) so the model learns the content, not one
    byte pattern; the eval checks content ("- 2 tbsp ..." lines and "1." steps) the same way.
    """
    parts: list[str] = []
    if lead:
        parts.append(lead)
    if intro and r.desc and not lead and rng.random() < 0.5:
        parts.append(
            rng.choice(
                [
                    f"Here is a recipe for {r.title}, {r.desc}.",
                    f"Sure! {r.title} is {r.desc}. Here's how to make it.",
                    f"Happy to help. {r.title} is {r.desc}.",
                    f"Here's my {r.title}.",
                ]
            )
        )
    parts.append(rng.choice(["{}", "## {}", "## {}", "**{}**"]).format(r.title))
    if r.serves and rng.random() < 0.7:
        total = r.prep + r.cook
        meta = rng.choice(
            [
                f"{_serves(r.serves)} · Prep {r.prep} min · Cook {r.cook} min",
                f"{_serves(r.serves)}. Ready in about {fmt_minutes(total)}.",
                f"Prep: {fmt_minutes(r.prep)} | Cook: {fmt_minutes(r.cook)} | {_serves(r.serves)}",
            ]
        )
        if r.oven and rng.random() < 0.5:
            meta += f"\nOven: {fmt_oven(r.oven)}"
        parts[-1] += "\n" + meta
    head = rng.choice(["Ingredients:", "You will need:", "**Ingredients**", "Ingredients"])
    parts.append(head + "\n" + "\n".join(f"- {_line(q, i)}" for q, i in r.lines))
    head = rng.choice(["Method:", "Steps:", "**Method**", "Instructions:"])
    parts.append(head + "\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(r.steps, 1)))
    if r.tips and rng.random() < 0.6:
        style = rng.choice(["Tip: {}", "**Tip:** {}", "Cook's tip: {}"])
        parts.append(style.format(rng.choice(r.tips)))
    if rng.random() < 0.12:
        parts.append(rng.choice(["Enjoy!", f"Enjoy your {r.title}!", "Happy cooking!"]))
    return "\n\n".join(parts)


def _ask(template: str, dish_name: str, rng: random.Random, **kw: str) -> str:
    """Fill a question phrasing; about a third of the time the dish name is typed in lower case."""
    name = dish_name.lower() if rng.random() < 0.35 else dish_name
    q = template.replace("{dish}", name)
    for k, v in kw.items():
        q = q.replace("{" + k + "}", v)
    r = rng.random()
    if r < 0.08:
        q = q.lower()
    elif r < 0.16:
        q = q.rstrip("?.")
    return q[:1].upper() + q[1:] if q[:1].islower() and rng.random() < 0.5 else q


def substitutable(r: Recipe, sweet: bool) -> list[tuple[K.Substitution, int]]:
    """(substitution, line index) pairs that make sense for this recipe."""
    out = []
    for s in K.SUBSTITUTIONS.values():
        if s.key in ("fresh_herbs", "butter_baking") or (s.key == "egg_baking" and not sweet):
            continue
        pat = r"\begg(s)?\b" if s.key == "egg_baking" else r"\b" + re.escape(s.missing) + r"\b"
        for i, (_, item) in enumerate(r.lines):
            if re.search(pat, item) and "beaten" not in item:
                out.append((s, i))
                break
    return out


# --- one answer per question kind -----------------------------------------------------------
def answer_dish(dish: Dish, kind: str, rng: random.Random, sub: tuple | None = None) -> str:
    r = build_recipe(dish)
    name = dish.name
    if kind == "time":
        total = fmt_minutes(r.prep + r.cook)
        lead = rng.choice(
            [
                f"{name} takes about {total} in all: {fmt_minutes(r.prep)} to prepare and "
                f"{fmt_minutes(r.cook)} to cook.",
                f"Allow about {total} for {name} ({r.prep} minutes prep, {r.cook} minutes "
                "cooking).",
            ]
        )
        return format_recipe(r, rng, lead)
    if kind == "temp":
        if r.oven:
            lead = rng.choice(
                [
                    f"Bake {name} at {fmt_oven(r.oven)}.",
                    f"Set the oven to {fmt_oven(r.oven)} for {name}.",
                ]
            )
            if dish.type.key == "roast" and dish.main.cat in ("poultry", "meat"):
                lead += " Check the inside with a thermometer near the end (see the steps)."
        elif dish.type.key == "smoothie":
            lead = f"{name} needs no cooking at all: just a blender."
        else:
            lead = rng.choice(
                [
                    f"{name} is cooked on the hob, not in the oven: use a medium heat and keep "
                    "it at a gentle simmer or sizzle as the steps say.",
                    f"No oven needed for {name}. Cook it on the hob over a medium heat.",
                ]
            )
        return format_recipe(r, rng, lead)
    if kind == "subst" and sub:
        s, idx = sub
        lines = list(r.lines)
        lines[idx] = (lines[idx][0], s.inline)
        steps = r.steps
        if len(s.inline.split()) <= 4:
            steps = tuple(x.replace(s.missing, s.inline) for x in steps)
        r = Recipe(r.title, tuple(lines), steps, r.tips, r.serves, r.prep, r.cook, r.oven, r.desc)
        lead = rng.choice(
            [
                f"Yes. Use {s.inline} instead of the {s.missing}: {s.why}.",
                f"You can: swap the {s.missing} for {s.inline}, because {s.why}. Here is the "
                "full recipe with the swap.",
            ]
        )
        return format_recipe(r, rng, lead)
    return format_recipe(r, rng)


def _followup(dish: Dish, rng: random.Random) -> tuple[str, str]:
    t, name = dish.type, dish.name
    r = build_recipe(dish)
    options = [
        ("How long will it keep?", f"{name} keeps for {t.keeps}."),
        (
            "Can I make it ahead?",
            f"Yes. {name} keeps for {t.keeps}, so you can cook it "
            "earlier and reheat or serve it when you need it.",
        ),
        ("How many does it serve?", f"This {name} recipe: {_serves(t.serves).lower()}."),
        ("Thanks!", f"You're welcome! Enjoy the {name}."),
        ("Any tips?", f"For {name}: {rng.choice(t.tips)}"),
        (
            "How long does it take in total?",
            f"About {fmt_minutes(r.prep + r.cook)} from start to finish.",
        ),
    ]
    return rng.choice(options)


GREETINGS = [
    ("Hi!", "Hello! Tell me a dish or an ingredient and I'll give you a recipe."),
    ("Hello", "Hi! What would you like to cook today?"),
    ("Hey, can you help me cook something?", "Of course. Which dish do you have in mind?"),
    ("Good evening", "Good evening! What are we cooking?"),
]


# --- documents ------------------------------------------------------------------------------
class CorpusGenerator:
    """Draws documents for one split from one seed; `document()` returns rendered text."""

    def __init__(self, seed: int, split: str = "train") -> None:
        self.rng = random.Random(f"cooking-corpus/{split}/{seed}")
        self.split = split
        self.dishes = dishes(split)
        held = split == "heldout"
        self.recipe_q = K.RECIPE_TRAIN + (K.RECIPE_HELDOUT if held else ())
        self.time_q = K.TIME_TRAIN + (K.TIME_HELDOUT if held else ())
        self.temp_q = K.TEMP_TRAIN + (K.TEMP_HELDOUT if held else ())
        self.subst_q = K.SUBST_DISH_TRAIN + (K.SUBST_DISH_HELDOUT if held else ())
        self.by_main: dict[str, list[Dish]] = {}
        for d in self.dishes:
            self.by_main.setdefault(d.main.key, []).append(d)

    def dish_turn(self, kind: str | None = None) -> tuple[Dish, str, str]:
        """A (dish, question, answer) about one dish of this split."""
        rng = self.rng
        dish = rng.choice(self.dishes)
        kind = kind or rng.choices(["recipe", "time", "temp", "subst"], [70, 11, 9, 10])[0]
        if kind == "subst":
            subs = substitutable(build_recipe(dish), dish.type.sweet)
            if subs:
                s, idx = rng.choice(subs)
                q = _ask(rng.choice(self.subst_q), dish.name, rng, missing=s.missing)
                return dish, q, answer_dish(dish, "subst", rng, (s, idx))
            kind = "recipe"
        pool = {"recipe": self.recipe_q, "time": self.time_q, "temp": self.temp_q}[kind]
        return dish, _ask(rng.choice(pool), dish.name, rng), answer_dish(dish, kind, rng)

    def technique_turn(self) -> tuple[str, str]:
        rng = self.rng
        tech = rng.choice(list(K.TECHNIQUES.values()))
        ing = INGREDIENTS[rng.choice(tech.ingredients)]
        tpl = rng.choice(K.TECHNIQUE_TRAIN)
        q = _ask(tpl, "", rng, verb=tech.verb, noun=ing.noun)
        r, time = technique_recipe(tech, ing)
        lead = f"About {time}." if tpl.startswith("How long") else ""
        return q, format_recipe(r, rng, lead)

    def substitution_turn(self) -> tuple[str, str]:
        rng = self.rng
        s = rng.choice(list(K.SUBSTITUTIONS.values()))
        q = _ask(rng.choice(K.SUBST_TRAIN), "", rng, missing=s.missing)
        r = Recipe(s.title, s.lines, s.steps, (s.tip,), "", 0, 0, None, "")
        lead = rng.choice([f"Use {s.inline}: {s.why}.", f"Try {s.inline} instead; {s.why}."])
        return q, format_recipe(r, rng, lead)

    def chat(self) -> str:
        rng = self.rng
        msgs: list[Message] = []
        if rng.random() < 0.35:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        if rng.random() < 0.05:
            q, a = rng.choice(GREETINGS)
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        dish = None
        roll = rng.random()
        if self.split == "train" and roll < 0.12:
            q, a = self.technique_turn()
        elif self.split == "train" and roll < 0.18:
            q, a = self.substitution_turn()
        else:
            dish, q, a = self.dish_turn()
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if dish is not None and rng.random() < 0.12:
            q, a = _followup(dish, rng)
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return render_chat(msgs)

    def text(self) -> str:
        rng, d = self.rng, self.rng.choice(self.dishes)
        r = build_recipe(d)
        kind = rng.choices(["today", "card", "ingredient", "menu"], [45, 25, 15, 15])[0]
        if kind == "card":
            return render_text(format_recipe(r, rng, intro=False))
        if kind == "ingredient":
            related = self.by_main[d.main.key]
            picks = rng.sample(related, min(3, len(related)))
            names = [p.name for p in picks]
            listed = ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]
            noun = d.main.noun
            return render_text(
                f"Cooking with {noun}\n\nYou will find {noun} in dishes "
                f"such as {listed}. In {d.name}, you need "
                f"{_line(*r.lines[0])}. {rng.choice(r.tips)}"
            )
        if kind == "menu":
            sweet = rng.choice([x for x in self.dishes if x.type.sweet])
            start = rng.choice([x for x in self.dishes if x.type.key in ("soup", "salad")])
            return render_text(
                f"Menu for {rng.choice(['four', 'friends', 'a Sunday'])}\n\n"
                f"Starter: {start.name}\nMain: {d.name}\nDessert: {sweet.name}\n\n"
                f"Cook the {sweet.name.lower()} first; the {d.name.lower()} "
                f"takes about {fmt_minutes(r.prep + r.cook)}."
            )
        opener = rng.choice(
            [
                "Today's recipe is",
                "Today's recipe is",
                "Tonight we are making",
                "Our recipe of the day is",
                "This week's dinner idea is",
            ]
        )
        body = " ".join(r.steps)
        items = [_line(q, i) for q, i in r.lines]
        items = "; ".join(items[:-1]) + " and " + items[-1]
        return render_text(
            f"{opener} {d.name}, {r.desc}. It serves "
            f"{r.serves.replace('makes ', '')} and takes about "
            f"{fmt_minutes(r.prep + r.cook)}. You will need {items}. {body}"
        )

    def document(self) -> str:
        return self.text() if self.rng.random() < 0.15 else self.chat()


def generate_corpus(seed: int, n_docs: int, split: str = "train") -> list[str]:
    """`n_docs` rendered documents (each ends with the end token) for a split."""
    gen = CorpusGenerator(seed, split)
    return [gen.document() for _ in range(n_docs)]


@dataclass(frozen=True)
class EvalItem:
    dish: str
    kind: str
    messages: list[Message]


def eval_questions(seed: int, n: int) -> list[EvalItem]:
    """Held-out dishes asked with held-out phrasings only; no dish is asked twice."""
    rng = random.Random(f"cooking-eval/{seed}")
    pool = list(dishes("heldout"))
    rng.shuffle(pool)
    items = []
    for dish in pool[:n]:
        kind = rng.choices(["recipe", "time", "temp", "subst"], [60, 15, 10, 15])[0]
        subs = substitutable(build_recipe(dish), dish.type.sweet)
        if kind == "subst" and subs:
            s, _ = rng.choice(subs)
            q = _ask(rng.choice(K.SUBST_DISH_HELDOUT), dish.name, rng, missing=s.missing)
        else:
            kind = "recipe" if kind == "subst" else kind
            pool_q = {"recipe": K.RECIPE_HELDOUT, "time": K.TIME_HELDOUT, "temp": K.TEMP_HELDOUT}[
                kind
            ]
            q = _ask(rng.choice(pool_q), dish.name, rng)
        items.append(EvalItem(dish.name, kind, [{"role": "user", "content": q}]))
    return items


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", type=int, default=5)
    ap.add_argument("--split", choices=["train", "heldout"], default="train")
    args = ap.parse_args(argv)
    print(f"{len(all_dishes())} dishes ({len(dishes('heldout'))} held out)\n")
    for doc in generate_corpus(args.seed, args.docs, args.split):
        print(doc)


if __name__ == "__main__":
    main()
