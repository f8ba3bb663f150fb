"""The real dishes the demo model knows (tui-gen issue #17), written as data in *.txt beside this.

Each dish is three lines (blank lines and "#" comments between dishes are ignored):

    Name | cuisine | serves | prep | cook | oven °C or - | tags | keeps | freeze | serve with
    ingredient; ingredient; ...          (each starts with its quantity when it has one)
    step / step / ...                    (the method, in order)

`prep` and `cook` are minutes, `freeze` months (0: does not freeze well); `serves` is a
number of people or "makes 12 cookies"; `tags` is "-" or a comma list of v (vegetarian), vg
(vegan) and gf (gluten-free); `keeps` is "fridge N", "tin N" (days) or "now";
`serve with` is a comma list. A line "~ Name = ingredient | tags | change" after a dish adds a
variant of it: `change` is "old=new" (the ingredient with the word `old` is replaced, and `old`
becomes `new` in the steps) or "+[N] step" (the ingredient is added and the step inserted as step
N, or before the last step). Every recipe was written for tui-gen; quantities are for home
cooking and were never tested in a kitchen.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: °C -> (°F, gas mark), the usual oven chart
OVEN_CHART = {
    140: (275, 1),
    150: (300, 2),
    160: (325, 3),
    170: (325, 3),
    180: (350, 4),
    190: (375, 5),
    200: (400, 6),
    220: (425, 7),
    230: (450, 8),
    250: (480, 9),
}


@dataclass(frozen=True)
class Dish:
    name: str
    category: str  # the data file's stem: soups, pasta, ...
    cuisine: str
    serves: int
    makes: str  # "" for dishes that serve people, else the unit ("cookies")
    prep: int
    cook: int
    oven: int | None
    tags: frozenset[str]
    keeps: tuple[str, int]  # ("fridge", 3), ("tin", 5) or ("now", 0)
    freeze: int  # months; 0 = does not freeze well
    serve_with: tuple[str, ...]
    ingredients: tuple[str, ...]
    steps: tuple[str, ...]

    @property
    def vegetarian(self) -> bool:
        return bool(self.tags & {"v", "vg"})

    @property
    def gluten_free(self) -> bool:
        return "gf" in self.tags

    @property
    def total(self) -> int:
        return self.prep + self.cook


def _parse_header(line: str, category: str) -> dict[str, object]:
    f = [x.strip() for x in line.split("|")]
    if len(f) != 10:
        raise ValueError(f"{category}: a dish header needs 10 fields: {line!r}")
    serves, makes = f[2], ""
    if serves.startswith("makes "):
        n, _, makes = serves[6:].partition(" ")
        serves = n
    kind, _, days = f[7].partition(" ")
    return {
        "name": f[0],
        "category": category,
        "cuisine": f[1],
        "serves": int(serves),
        "makes": makes or ("" if not f[2].startswith("makes") else "batch"),
        "prep": int(f[3]),
        "cook": int(f[4]),
        "oven": None if f[5] == "-" else int(f[5]),
        "tags": frozenset() if f[6] == "-" else frozenset(f[6].split(",")),
        "keeps": (kind, int(days or 0)),
        "freeze": int(f[8]),
        "serve_with": tuple(x.strip() for x in f[9].split(",")),
    }


def _variant(base: Dish, line: str) -> Dish:
    name, _, rest = line[2:].partition(" = ")
    ing, tags, change = (x.strip() for x in rest.split(" | "))
    ings, steps = list(base.ingredients), list(base.steps)
    if change.startswith("+"):
        pos, _, step = change[1:].partition(" ")
        ings.insert(1, ing)
        at = int(pos) - 1 if pos else len(steps) - 1
        steps.insert(at, step.strip())
    else:
        old, new = change.split("=")
        i = next(i for i, x in enumerate(ings) if old in x)
        ings[i] = ing
        steps = [s.replace(old, new) for s in steps]
    tagset = frozenset() if tags == "-" else frozenset(tags.split(","))
    if tagset & {"v", "vg"}:  # a vegetarian variant cooks with vegetable stock
        ings = [re.sub(r"\b(beef|chicken|lamb|fish) stock", "vegetable stock", x) for x in ings]
    return replace(
        base, name=name.strip(), tags=tagset, ingredients=tuple(ings), steps=tuple(steps)
    )


def parse(text: str, category: str) -> list[Dish]:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    out: list[Dish] = []
    base: Dish | None = None
    i = 0
    while i < len(lines):
        if lines[i].startswith("~ "):
            if base is None:
                raise ValueError(f"{category}: a variant before any dish: {lines[i]!r}")
            out.append(_variant(base, lines[i]))
            i += 1
            continue
        head = _parse_header(lines[i], category)
        ings = tuple(x.strip() for x in lines[i + 1].split(";"))
        steps = tuple(x.strip() for x in lines[i + 2].split(" / "))
        base = Dish(ingredients=ings, steps=steps, **head)  # type: ignore[arg-type]
        out.append(base)
        i += 3
    return out


@lru_cache(maxsize=1)
def all_dishes() -> tuple[Dish, ...]:
    """Every dish from every data file, in a fixed order; names are unique."""
    out: list[Dish] = []
    for path in sorted(HERE.glob("*.txt")):
        out += parse(path.read_text(encoding="utf-8"), path.stem)
    names = [d.name.lower() for d in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate dish names: {sorted(dupes)}")
    return tuple(out)


def is_heldout(name: str) -> bool:
    """A fixed tenth of the dishes, by a stable hash of the name, never shown in training."""
    return zlib.crc32(name.lower().encode()) % 10 == 3


def dishes(split: str) -> tuple[Dish, ...]:
    """Dishes of the "train" or "heldout" split."""
    want = split == "heldout"
    return tuple(d for d in all_dishes() if is_heldout(d.name) == want)


# --- quantities -------------------------------------------------------------------------------
QTY = re.compile(r"^(\d+(?:\.\d+)?(?:/\d+)?)(-\d+)?\s+(.*)$")
UNITS = ("g", "kg", "ml", "litre", "litres", "tbsp", "tsp", "cm", "x")
#: words before the counted noun ("1 red pepper", "1 small bunch coriander")
NOT_NOUN = frozenset(
    [
        "small",
        "large",
        "big",
        "ripe",
        "red",
        "green",
        "yellow",
        "whole",
        "medium",
        "thick",
        "firm",
        "bay",
        "cinnamon",
        "vanilla",
        "garlic",
        "celery",
        "scotch",
        "bonnet",
        "butternut",
        "white",
        "savoy",
        "chinese",
        "preserved",
        "english",
        "ham",
        "double",
        "cooking",
        "confit",
        "smoked",
        "raw",
        "cooked",
        "soft",
        "hard",
        "fresh",
        "dried",
        "baking",
        "ready-rolled",
    ]
)


def _number(text: str) -> float:
    if "/" in text:
        a, b = text.split("/")
        return float(a) / float(b)
    return float(text)


def _format(x: float, unit: str) -> str:
    if unit in ("g", "ml"):
        step = 5 if x < 100 else 10 if x < 300 else 25 if x < 1000 else 50
        x = float(max(step, round(x / step) * step))
        if x >= 1000:
            return f"{x / 1000:g} " + ("kg" if unit == "g" else "litres")
        return f"{x:g} {unit}"
    if unit in ("kg", "litre", "litres"):
        x = round(x * 4) / 4
        return f"{x:g} " + ("kg" if unit == "kg" else "litre" if x == 1 else "litres")
    fractions = {0.25: "1/4", 0.5: "1/2", 0.75: "3/4"}
    if unit in ("tbsp", "tsp", "cm"):
        x = max(0.25, round(x * 2) / 2 if x >= 1 else round(x * 4) / 4)
        return f"{fractions.get(x, f'{x:g}')} {unit}"
    x = max(0.5, round(x) if x >= 1.5 else round(x * 2) / 2)
    return fractions.get(x, f"{x:g}")


def plural(word: str) -> str:
    if word.endswith("s") or word == "chilli":
        return word if word.endswith("s") else "chillies"
    if word.endswith("leaf"):
        return word[:-4] + "leaves"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("o", "ch", "sh", "x")):
        return word + "es"
    return word + "s"


def singular(word: str) -> str:
    if word == "chillies":
        return "chilli"
    if word.endswith("leaves"):
        return word[:-6] + "leaf"
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("oes", "ches", "shes", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _renoun(rest: str, many: bool) -> str:
    words = rest.split(" ")
    for i, w in enumerate(words):
        core = w.rstrip(",")
        if core.lower() in NOT_NOUN or not core.isalpha():
            continue
        new = plural(core) if many else singular(core)
        words[i] = new + w[len(core) :]
        break
    return " ".join(words)


def scale_line(line: str, factor: float) -> str:
    """One ingredient line with its leading quantity multiplied (units kept, counts re-plural)."""
    m = QTY.match(line)
    if not m or factor == 1:
        return line
    qty, upper, rest = m.groups()
    unit = rest.split(" ", 1)[0]
    x = _number(qty) * factor
    tin = re.match(r"(g|ml) (tin|tins) (.*)$", rest)
    if tin and "x" not in qty:  # "400 g tin chopped tomatoes" counts tins
        n = max(1, round(factor))
        return f"{n} x {qty} {tin[1]} tin{'s' if n > 1 else ''} {tin[3]}"
    if unit in UNITS:
        if unit == "x":
            n = _format(x, "")
            return f"{n} {rest}"
        new = _format(x, unit)
        tail = rest.split(" ", 1)[1] if " " in rest else ""
        new_unit = new.split(" ", 1)[1]
        return f"{new.split(' ', 1)[0]} {new_unit} {tail}".strip()
    n = _format(x, "")
    if upper:  # "8-10 mint leaves"
        n = f"{n}-{_format(_number(upper[1:]) * factor, '')}"
    was_one, is_one = _number(qty) <= 1, x <= 1
    if was_one != is_one:
        rest = _renoun(rest, many=not is_one)
    return f"{n} {rest}"


def fahrenheit(c: int) -> int:
    return OVEN_CHART[c][0] if c in OVEN_CHART else round((c * 9 / 5 + 32) / 5) * 5


def gas_mark(c: int) -> int | None:
    return OVEN_CHART[c][1] if c in OVEN_CHART else None
