"""Replies about one real dish (dev/cooking/dishes): the recipe card and every follow-up answer.

Each answer is a pure function of the dish and a few choices made by the caller's seeded rng,
so a dish reads the same wherever it appears. Follow-up answers always name the dish (its
title), which is what "stays on the dish" means in the evaluation; the recipe card always has
"Ingredients:" bullets with quantities and "Method:" numbered steps.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from dev.cooking.dishes import Dish, fahrenheit, gas_mark, scale_line


def minutes(m: int) -> str:
    if m < 60:
        return f"{m} minute" + ("s" if m != 1 else "")
    h, r = divmod(m, 60)
    return f"{h} hour" + ("s" if h > 1 else "") + (f" {r} minutes" if r else "")


def oven_text(c: int) -> str:
    return f"{c}°C ({fahrenheit(c)}°F)"


def serves_text(d: Dish, people: int | None = None) -> str:
    if d.makes:
        n = people or d.serves
        return f"Makes {n} {d.makes}" if d.makes != "batch" else f"Makes {n}"
    return f"Serves {people or d.serves}"


def card(
    d: Dish,
    lead: str,
    ingredients: Sequence[str] | None = None,
    steps: Sequence[str] | None = None,
    title: str | None = None,
    people: int | None = None,
    rng: random.Random | None = None,
) -> str:
    """The recipe card: title, meta line, lead sentence, ingredients, numbered method."""
    meta = f"{serves_text(d, people)} · Prep {minutes(d.prep)}"
    if d.cook:
        meta += f" · Cook {minutes(d.cook)}"
    if d.oven:
        meta += f" · Oven {oven_text(d.oven)}"
    # the title comes first: a fixed slot where the reply repeats the dish as the user typed it
    parts = [f"## {title or d.name}\n{meta}", lead]
    parts.append("Ingredients:\n" + "\n".join(f"- {x}" for x in ingredients or d.ingredients))
    parts.append("Method:\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps or d.steps, 1)))
    if rng is not None and rng.random() < 0.5:
        parts.append(f"Serve with {join_or(d.serve_with)}.")
    return "\n\n".join(p for p in parts if p)


def join_or(items: Sequence[str], word: str = "or") -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} " + items[-1]


# --- swaps ------------------------------------------------------------------------------------
#: vegetarian swaps: word in an ingredient -> (replacement item, word for the steps)
MEAT_SWAPS = (
    ("mince", "green lentils, cooked", "lentils"),
    ("chicken", "firm tofu, cubed", "tofu"),
    ("turkey", "firm tofu, cubed", "tofu"),
    ("duck", "firm tofu, sliced", "tofu"),
    ("beef", "chestnut mushrooms, halved", "mushrooms"),
    ("steak", "portobello mushrooms, sliced", "mushrooms"),
    ("lamb", "chickpeas (2 x 400 g tins, drained)", "chickpeas"),
    ("pork", "firm tofu, cubed", "tofu"),
    ("veal", "aubergine, sliced", "aubergine"),
    ("goat", "butternut squash, cubed", "squash"),
    ("sausage", "vegetarian sausages", "sausages"),
    ("bacon", "smoked tofu, diced", "smoked tofu"),
    ("lardons", "smoked tofu, diced", "smoked tofu"),
    ("pancetta", "smoked tofu, diced", "smoked tofu"),
    ("guanciale", "smoked tofu, diced", "smoked tofu"),
    ("chorizo", "smoked paprika (1 tsp extra)", "paprika"),
    ("ham", "smoked tofu, sliced", "smoked tofu"),
    ("pepperoni", "sliced mushrooms", "mushrooms"),
    ("prawns", "firm tofu, cubed", "tofu"),
    ("salmon", "firm tofu, sliced", "tofu"),
    ("fish", "firm tofu, cubed", "tofu"),
    ("cod", "firm tofu, sliced", "tofu"),
    ("haddock", "firm tofu, sliced", "tofu"),
    ("mackerel", "firm tofu, sliced", "tofu"),
    ("tuna", "chickpeas, drained", "chickpeas"),
    ("mussels", "mushrooms, sliced", "mushrooms"),
    ("clams", "mushrooms, sliced", "mushrooms"),
    ("anchovy", "capers, chopped", "capers"),
    ("gelatine", "agar flakes (1 tsp)", "agar"),
    ("suet", "vegetable suet", "suet"),
)
STOCK = re.compile(r"\b(beef|chicken|lamb|fish) stock\b")
WHOLE_ANIMAL = ("whole chicken", "turkey", "leg of lamb", "topside", "pork belly", "beef fillet")
VEG_ALTERNATIVES = ("Nut Roast", "Mushroom Wellington", "Stuffed Aubergines", "Cauliflower Cheese")

GF_SWAPS = (
    ("self-raising flour", "gluten-free self-raising flour"),
    ("strong white flour", "gluten-free bread flour"),
    ("plain flour", "gluten-free plain flour"),
    ("breadcrumbs", "gluten-free breadcrumbs"),
    ("panko", "gluten-free panko"),
    ("soy sauce", "tamari"),
    ("spaghetti", "gluten-free spaghetti"),
    ("pasta", "gluten-free pasta"),
    ("penne", "gluten-free penne"),
    ("noodles", "rice noodles"),
    ("couscous", "quinoa"),
    ("bulgur", "quinoa"),
    ("pearl barley", "brown rice"),
    ("pastry", "gluten-free pastry"),
    ("filo", "gluten-free filo"),
    ("tortillas", "corn tortillas"),
    ("bread", "gluten-free bread"),
    ("baguette", "gluten-free baguette"),
    ("brioche", "gluten-free brioche"),
    ("oats", "gluten-free oats"),
    ("beer", "gluten-free beer"),
    ("ale", "gluten-free ale"),
    ("biscuits", "gluten-free biscuits"),
    ("wonton wrappers", "rice paper wrappers"),
)

#: "I have no X": word -> (substitute, why)
SWAPS = {
    "butter": ("olive oil", "it does the same job for frying, though it tastes less rich"),
    "double cream": ("crème fraîche", "it is just as rich and will not split"),
    "milk": ("oat milk", "it behaves almost the same"),
    "parmesan": ("pecorino", "it is just as salty and sharp"),
    "cheddar": ("gruyère", "it melts just as well"),
    "onion": ("2 shallots or a leek", "they give the same sweet base"),
    "lemon": ("lime", "the sharpness is the same"),
    "natural yoghurt": ("soured cream", "it is just as tangy"),
    "Greek yoghurt": ("soured cream", "it is just as thick and tangy"),
    "basil": ("flat-leaf parsley", "it is fresh and green, if milder"),
    "coriander": ("flat-leaf parsley", "it gives the same fresh finish"),
    "soy sauce": ("tamari", "it tastes the same and is gluten-free"),
    "white wine": ("extra stock with a squeeze of lemon", "you still get the acidity"),
    "red wine": ("extra stock with 1 tbsp red wine vinegar", "you keep the depth and acidity"),
    "spinach": ("kale", "shred it and cook it a few minutes longer"),
    "potatoes": ("sweet potatoes", "cook them a little less, they soften faster"),
    "honey": ("maple syrup", "it is just as sweet"),
    "mayonnaise": ("Greek yoghurt", "it is lighter but just as creamy"),
    "prawns": ("chicken", "cut it small so it cooks as fast"),
    "salmon": ("trout", "it cooks the same way"),
    "cod": ("haddock", "it is another firm white fish"),
    "pine nuts": ("walnuts", "toast them the same way"),
    "walnuts": ("pecans", "they taste and toast almost the same"),
    "coconut milk": ("single cream", "it is creamy, though not coconutty"),
    "caster sugar": ("granulated sugar", "blitz it briefly if you want it finer"),
    "light brown sugar": ("caster sugar", "the result is a little less fudgy"),
    "buttermilk": ("milk with 1 tbsp lemon juice", "it sours the milk in 5 minutes"),
    "shallots": ("onion", "use one small onion for every two shallots"),
    "beef mince": ("lamb mince", "it cooks the same way"),
    "pork mince": ("chicken mince", "it cooks the same way"),
    "chicken thighs": ("chicken breasts", "cook them a few minutes less"),
    "chicken breasts": ("chicken thighs", "they stay juicier"),
    "garlic": ("1/2 tsp garlic powder per clove", "add it with the other spices"),
    "fresh ginger": ("ground ginger", "use 1 tsp for every 3 cm"),
    "cream cheese": ("mascarpone", "it is just as smooth"),
    "crème fraîche": ("soured cream", "do not let it boil"),
    "feta": ("goat's cheese", "it is just as salty and crumbly"),
    "mozzarella": ("cheddar", "it melts well, with more flavour"),
    "eggs": ("chia eggs (1 tbsp chia seeds soaked in 3 tbsp water per egg)", "they bind well"),
    "rice vinegar": ("cider vinegar", "use a little less"),
    "tahini": ("peanut butter", "it is nutty and smooth"),
    "chickpeas": ("butter beans", "they are just as creamy"),
}


def find_swaps(d: Dish) -> list[tuple[str, str, str]]:
    """(word in the recipe, substitute, why) for every SWAPS entry this dish uses."""
    out = []
    text = " ; ".join(d.ingredients)
    for word, (sub, why) in SWAPS.items():
        if re.search(r"\b" + re.escape(word) + r"\b", text) and sub.split(" ")[0] not in text:
            out.append((word, sub, why))
    return out


def vegetarian_version(d: Dish) -> tuple[list[str], list[str], list[tuple[str, str]]] | None:
    """(ingredients, steps, [(meat, swap)]) for a vegetarian version, None if it has no sense."""
    if any(w in d.ingredients[0] for w in WHOLE_ANIMAL):
        return None
    ings, steps, done = list(d.ingredients), list(d.steps), []
    for i, line in enumerate(ings):
        for word, item, step_word in MEAT_SWAPS:
            if re.search(r"\b" + word, line) and not STOCK.search(line) and "sauce" not in line:
                m = re.match(r"^([\d./]+(?:\s+(?:g|kg|ml|x))?)\s", line)
                qty = m.group(1) + " " if m and "(" not in item else ""
                ings[i] = qty + item
                name = re.sub(r"^[\d./]+(\s+(g|kg|ml|x|tbsp|tsp))?\s+", "", line.split(",")[0])
                done.append((name, item.split(",")[0]))
                steps = [re.sub(r"\b" + word + r"\w*", step_word, s) for s in steps]
                break
        ings[i] = STOCK.sub("vegetable stock", ings[i])
        if "fish sauce" in ings[i]:
            ings[i] = ings[i].replace("fish sauce", "soy sauce")
            done.append(("fish sauce", "soy sauce"))
        if "oyster sauce" in ings[i]:
            ings[i] = ings[i].replace("oyster sauce", "mushroom stir-fry sauce")
    return ings, steps, done


def gluten_free_version(d: Dish) -> tuple[list[str], list[tuple[str, str]]]:
    ings, done = list(d.ingredients), []
    for i, line in enumerate(ings):
        for word, sub in GF_SWAPS:
            if re.search(r"\b" + word + r"\b", line) and "gluten-free" not in line:
                ings[i] = re.sub(r"\b" + word + r"\b", sub, line, count=1)
                done.append((word, sub))
                break
    return ings, done


def scaled(d: Dish, people: int) -> list[str]:
    return [scale_line(x, people / d.serves) for x in d.ingredients]


# --- follow-up answers --------------------------------------------------------------------------
def keeps_answer(d: Dish) -> str:
    kind, days = d.keeps
    n = d.name
    if kind == "now":
        return f"{n} is best eaten straight away; it does not keep well once made."
    if kind == "fridge" and days == 0:
        return f"{n} keeps in the freezer for up to {d.freeze} months in a covered tub."
    where = "in a covered container in the fridge" if kind == "fridge" else "in an airtight tin"
    span = "1 day" if days == 1 else f"{days} days" if days < 14 else f"{days // 7} weeks"
    extra = (
        " Reheat it until piping hot."
        if kind == "fridge"
        and d.cook
        and d.category
        not in (
            "salads",
            "desserts",
            "drinks",
            "baking",
        )
        else ""
    )
    return f"{n} keeps for {span} {where}.{extra}"


def freeze_answer(d: Dish) -> str:
    n = d.name
    if d.freeze:
        how = (
            "Wrap it well once it is cold and thaw it at room temperature."
            if d.category == "baking"
            else "Cool it completely, freeze it in portions and thaw it overnight in the fridge."
        )
        return f"Yes: {n} freezes well for up to {d.freeze} months. {how}"
    return f"I would not freeze {n}: the texture suffers once it is thawed. " + keeps_answer(
        d
    ).replace(f"{n} ", "It ", 1)


def scale_answer(d: Dish, people: int) -> str:
    unit = d.makes if d.makes and d.makes != "batch" else "people" if not d.makes else ""
    head = f"For {people} {unit}".rstrip() if unit else f"To make {people}"
    lines = "\n".join(f"- {x}" for x in scaled(d, people))
    bigger = people > d.serves
    note = "a bigger batch may need a few more minutes" if bigger else "check it a little early"
    return (
        f"{head}, {d.name} needs (the recipe is for {d.serves}):\n\n{lines}\n\n"
        f"The method stays the same; {note}."
    )


def swap_answer(d: Dish, word: str, sub: str, why: str) -> str:
    return f"Yes: in {d.name} you can use {sub} instead of the {word}; {why}."


def serve_answer(d: Dish) -> str:
    return f"Serve {d.name} with {join_or(d.serve_with)}."


def oven_answer(d: Dish) -> str:
    n = d.name
    if d.oven:
        gm = gas_mark(d.oven)
        g = f", gas mark {gm}" if gm else ""
        return (
            f"{n} goes in the oven at {d.oven}°C, which is {fahrenheit(d.oven)}°F{g}. "
            f"In a fan oven use {d.oven - 20}°C."
        )
    if d.cook == 0:
        return f"{n} needs no oven at all: there is no cooking in it."
    return f"{n} does not go in the oven: it is cooked on the hob, over a medium heat."


def time_answer(d: Dish) -> str:
    if not d.cook:
        return f"{d.name} takes about {minutes(d.total)}, with no cooking."
    return (
        f"{d.name} takes about {minutes(d.total)} in all: {minutes(d.prep)} to prepare "
        f"and {minutes(d.cook)} to cook."
    )


def veg_answer(d: Dish) -> str:
    if d.vegetarian:
        return f"{d.name} is already vegetarian, so there is nothing to change."
    v = vegetarian_version(d)
    if v is None or not v[2]:
        return (
            f"Not really: {d.name} is built around the meat. For a vegetarian meal try "
            f"{join_or(VEG_ALTERNATIVES[:2])} instead."
        )
    swaps = "; ".join(f"use {b} instead of the {a}" for a, b in v[2])
    return (
        f"{d.name} is not vegetarian as written, but it can be: {swaps}. The method stays the same."
    )


def thanks_answer(d: Dish, rng: random.Random) -> str:
    return rng.choice(
        [
            f"You're welcome! Enjoy the {d.name}.",
            f"My pleasure. I hope the {d.name} turns out well!",
            f"Enjoy your {d.name}!",
        ]
    )
