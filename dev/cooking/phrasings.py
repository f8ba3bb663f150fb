"""Composed question phrasings for the v2 cooking corpus: a greeting, a request, the dish,
a qualifier, in many combinations, so that training sees thousands of shapes around a name.

Why: with ~40 fixed training templates the model learned where the name sits in *those*
templates; asked in an unseen phrasing ("Walk me through making X.") it copied the wrong span
or none (RESULTS.md, run E: 90% of name tokens copied on the copying documents, 44% in held-out
phrasings). Span-finding has to generalise, so the training phrasings are composed from parts:
the dish after a request, before a question, first or last, with words before and after it.

The held-out phrasings (conversations.*_HELDOUT) stay out: no part here uses their
distinctive words, and `composed` resamples any result that the leakage test's pattern for
a held-out template would match (tests/dev/test_cooking_dishes.py).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

GREETINGS = (
    "", "", "", "", "", "Hi! ", "Hello, ", "Hey, ", "Quick question: ", "Chef, ", "OK, ",
    "Right, ", "Hi there. ", "Help! ", "So, ", "Good evening! ",
)  # fmt: skip

#: per first-turn kind: requests that end right before the dish ("... {dish}")
BEFORE = {
    "recipe": (
        "how do I make",
        "how do you cook",
        "how can I cook",
        "how would you make",
        "tell me how to make",
        "show me how to make",
        "explain how to make",
        "I'd love to make",
        "I'm thinking of making",
        "I'm planning to cook",
        "can you teach me",
        "teach me",
        "what's your recipe for",
        "do you have a recipe for",
        "recipe for",
        "I need a recipe for",
        "could I get a recipe for",
        "I'm looking for a recipe for",
        "share a recipe for",
        "help me cook",
        "let's make",
        "I want to try",
        "instructions for",
        "directions for",
        "the method for",
        "how to make",
        "what's the secret to",
        "how do I go about making",
        "I've never made",
        "my family wants",
        "tonight I'm making",
        "I'd like to try making",
        "can you help me make",
        "what's the easiest way to make",
        "I want to bake",
        "how should I cook",
        "give me a recipe for",
        "I'm craving",
        "write me a recipe for",
    ),
    "need": (
        "what goes in",
        "what's in",
        "list the ingredients for",
        "ingredients needed for",
        "what should I buy for",
        "what do I need to make",
        "which things do I need for",
        "what do I get at the shop for",
        "what goes into making",
        "what's needed for",
    ),
    "quick": (
        "is there a fast way to make",
        "how quickly can I make",
        "a fast version of",
        "I'm in a rush. How do I make",
        "what's the quickest",
        "can I make a speedy",
    ),
    "veg": (
        "can I make a veggie",
        "a meatless",
        "how do I make a vegetarian version of",
        "my friend is vegetarian. Can I make",
        "vegetarian-friendly",
        "a plant-based",
    ),
    "gf": (
        "can I make a wheat-free",
        "how do I make a gluten free",
        "a coeliac-friendly",
        "my guest can't eat gluten. Can I make",
        "gluten free",
    ),
    "time": (
        "how much time does it take to make",
        "how long for",
        "how many minutes for",
        "cooking time for",
        "how long should I allow for",
        "how long is",
    ),
}
#: qualifiers after the dish (first-turn kinds that have them)
AFTER = {
    "recipe": (
        "",
        "",
        "",
        "",
        " at home",
        " tonight",
        " for dinner",
        " this evening",
        " from scratch",
        " for lunch",
        " please",
        " the easy way",
        " properly",
        " the traditional way",
        ", please",
        " for the first time",
        " on a weeknight",
        " like a restaurant does",
        " for my family",
        " without much fuss",
        " in detail",
        " for beginners",
        " like my gran did",
        " in the oven",
        " on the hob",
        " in a slow cooker",
        " on the barbecue",
        " for a party",
        " for a picnic",
        " the quick way",
        " from the start",
        " for two",
        " this weekend",
        " with what I have",
        " the way they do in cafés",
        ", start to finish",
        ", nothing fancy",
        ", in simple words",
    ),
    "need": ("", "", " exactly", " please", ", roughly"),
    "quick": ("", "", " tonight", " after work", " in 30 minutes"),
    "veg": ("", "", " for my friend", " tonight"),
    "gf": ("", "", " for a guest", " please"),
    "time": ("", "", " in total", " from start to finish", " roughly"),
}
#: the dish first, then the question about it
DISH_FIRST = {
    "recipe": (
        "{dish}: how do I make it?",
        "{dish} - recipe?",
        "{dish}, how?",
        "I love {dish}. How do I make it?",
        "My kids want {dish}. Recipe?",
        "{dish} tonight. Where do I start?",
        "{dish}. Can you help?",
        "{dish} please!",
        "Thinking about {dish} for dinner. How is it done?",
        "{dish} from scratch: what do I do?",
    ),
    "need": ("{dish}: what do I need?", "{dish}. What ingredients?", "For {dish}, what do I buy?"),
    "people": (
        "{dish} for {n}",
        "make {dish} for {n} people",
        "cook {dish} for {n} guests",
        "{dish} for {n} of us",
        "I'm feeding {n}: {dish}",
        "a recipe for {dish} serving {n}",
        "{n} people are coming. Can I do {dish}?",
        "{dish}, enough for {n} people?",
        "how much {dish} do I make for {n}?",
        "I have {n} guests and want {dish}.",
    ),
    "quick": ("{dish} in under half an hour?", "{dish}, but fast?", "Short on time: {dish}?"),
    "veg": ("{dish} without meat?", "{dish} but vegetarian?", "Can {dish} be meatless?"),
    "gf": ("{dish} without wheat?", "Is {dish} gluten free?", "{dish} for a coeliac?"),
    "time": ("{dish}: how long?", "How long does {dish} need?", "{dish} takes how long?"),
}
ENDINGS = ("?", "?", ".", "!", "")

#: words of the held-out phrasings that no training phrasing uses: the composed questions never
#: contain them (tests/dev/test_cooking_dishes.py), so held-out shapes stay unseen in every part
DISTINCTIVE = frozenset(
    (
        "walk",
        "through",
        "mood",
        "idea",
        "prepare",
        "shopping",
        "group",
        "whip",
        "hurry",
        "meat-free",
        "pair",
        "adjust",
        "replace",
        "setting",
        "step",
    )
)
#: a sentence before the question: words that are not the dish, where a name could stand
CONTEXTS = (
    "We have friends coming over.", "It's my turn to cook.", "My oven is tiny.",
    "I'm a beginner.", "It's raining here.", "The kids are hungry.", "Long day today.",
    "I bought too much food.", "Cooking for my parents on Sunday.", "It's our anniversary.",
    "Budget is tight this week.", "My sister is visiting.", "First time hosting!",
    "I only have one pan.", "Saturday night in.", "My flatmate loves it.",
    "I saw it on a menu once.", "Payday treat.", "Rainy Tuesday.", "Trying to eat better.",
)  # fmt: skip
#: people a follow-up mentions: capitalised words in a question that are not a dish, so that
#: an unfamiliar word in a follow-up does not read as a new dish to name (run I at step 400
#: titled "What side would you pair with it?" as "## pair caesar salad")
PEOPLE = (
    "Priya", "Tomasz", "Aiko", "Kwame", "Siobhan", "Mateo", "Ingrid", "Ravi", "Olu", "Freya",
    "Hamid", "Lucia", "Sven", "Mei", "Dara", "Yusuf", "Greta", "Kofi", "Anouk", "Bilal",
    "Nadia", "Ewan", "Zofia", "Tariq", "Ines", "Rohan", "Astrid", "Jomo", "Carys", "Dmitri",
)  # fmt: skip
#: what comes before a follow-up question ("{p}" a person)
FOLLOW_LEADS = (
    "{p} asks: ", "My friend {p} wants to know: ", "{p} here again. ", "Question from {p}: ",
    "{p} is helping me. ", "Honestly, ", "Realistically, ", "One more thing: ", "Also, ",
    "Sorry, ", "Last question: ", "Quick one: ", "By the way, ", "And ", "{p} says thanks! ",
    "Basically, ", "Generally, ", "Actually, ", "Seriously, ", "Approximately, ", "Typically, ",
    "Just wondering: ", "Be honest: ", "In practice, ", "Hmm. ", "Right then. ",
)  # fmt: skip


def person(rng: random.Random) -> str:
    """A first name from PEOPLE, or half the time one spliced from two of them ("Pri" +
    "omasz"): a word the model never saw that is still not a dish."""
    if rng.random() < 0.5:
        return rng.choice(PEOPLE)
    a, b = rng.choice(PEOPLE), rng.choice(PEOPLE)
    return a[: rng.randint(2, 4)] + b[-rng.randint(2, 4) :].lower()


def follow_lead(rng: random.Random) -> str:
    """Words before a follow-up that are not the dish: a lead (maybe with a person) or a
    context sentence."""
    if rng.random() < 0.25:
        return rng.choice(CONTEXTS) + " "
    return rng.choice(FOLLOW_LEADS).replace("{p}", person(rng))


#: a small grammar of requests ending right before the dish: opener + verb phrase
_OPENERS = ("", "", "", "could you ", "can you ", "would you ", "please ", "will you ")
_ASK_VERBS = ("tell", "show", "teach", "remind")
_MAKE_VERBS = (
    "make", "cook", "bake", "do", "put together", "throw together", "get right", "fix",
    "rustle up", "knock up", "start",
)  # fmt: skip
_HOW = (
    "how do I", "how can I", "how should I", "how would I", "how do we", "how can we",
    "how does one", "how do people", "what's the best way to", "what's the simplest way to",
    "what's the proper way to", "any tips on how to", "is it hard to", "is it easy to",
)  # fmt: skip
_WANT = (
    "I want to", "I'd like to", "I need to", "I'm hoping to", "we want to", "we'd like to",
    "I'm going to", "I'm about to", "I'm trying to", "I plan to",
)  # fmt: skip
_DOING = (
    "I'm making", "we're making", "I'm cooking", "we're cooking", "I'm attempting",
    "I'm having a go at", "I fancy", "we fancy", "I feel like", "I'm dreaming of", "help with",
    "tips for", "advice on", "any tips for", "your take on", "a guide to", "a method for",
    "the recipe for", "a good",
)  # fmt: skip


#: a qualifier after the dish from parts (" by hand", " in a big pan", " for the kids"), so the
#: name's end is found before words never seen there
_AFTER_PREPS = ("in", "on", "with", "for", "by", "at", "using", "like", "before", "after")
_AFTER_NOUNS = (
    "hand", "a big pan", "my new oven", "the kids", "a crowd", "tomorrow", "the weekend",
    "lunchtime", "a budget", "my mum", "a camping stove", "leftovers", "a microwave",
    "a blender", "tonight", "myself", "work", "the game", "a birthday", "a cold day",
    "friends", "an air fryer", "the freezer later", "a potluck", "a dinner party",
)  # fmt: skip


def grammar_after(rng: random.Random) -> str:
    """A qualifier after the dish: preposition + words, sometimes two of them."""
    out = f" {rng.choice(_AFTER_PREPS)} {rng.choice(_AFTER_NOUNS)}"
    if rng.random() < 0.2:
        out += f" {rng.choice(_AFTER_PREPS)} {rng.choice(_AFTER_NOUNS)}"
    return out


def grammar_request(rng: random.Random) -> str:
    """A request that ends right before the dish, from the small grammar above."""
    r = rng.random()
    make = rng.choice(_MAKE_VERBS)
    if r < 0.3:
        return f"{rng.choice(_OPENERS)}{rng.choice(_ASK_VERBS)} me how to {make}"
    if r < 0.6:
        return f"{rng.choice(_HOW)} {make}"
    if r < 0.8:
        return f"{rng.choice(_WANT)} {make}"
    return rng.choice(_DOING)


#: follow-ups: more ways to ask the same things (no dish name: "it" is the dish)
FOLLOWS = {
    "keeps": (
        "How many days does it last?",
        "Is it OK the next day?",
        "Can I eat it tomorrow?",
        "How long can I keep the leftovers?",
        "Does it keep?",
        "Is it OK after two days?",
        "Will the leftovers be OK on Thursday?",
        "How many days will it stay fresh?",
        "Can I make it the day before?",
        "Is it good cold the next day?",
    ),
    "freeze": (
        "Can it go in the freezer?",
        "Can I freeze the leftovers?",
        "Is it freezable?",
        "Could I freeze some for later?",
        "Will it survive the freezer?",
        "Can I batch-cook and freeze it?",
        "Freezer-friendly?",
    ),
    "scale": (
        "What about {n} people?",
        "I'm now cooking for {n}. Amounts?",
        "Double check: {n} people?",
        "Can I make it for {n} instead?",
        "Amounts for {n}, please.",
        "Could you redo the quantities for {n}?",
        "Can you change the amounts for {n} people?",
        "Rework it for {n} people, please.",
        "How much of everything for {n}?",
    ),
    "swap": (
        "What if I use {sub} instead of {word}?",
        "No {word} here. Alternatives?",
        "Could {sub} work in place of the {word}?",
        "Can I swap the {word} for {sub}?",
        "Would {sub} do instead of the {word}?",
        "Is {sub} OK in place of {word}?",
        "Can I substitute {sub} for the {word}?",
        "Could I exchange the {word} for {sub}?",
        "I'd rather use {sub} than {word}. OK?",
        "Is it okay to switch the {word} to {sub}?",
        "Can the {word} be {sub} instead?",
        "Any problem if I change the {word} to {sub}?",
        "Can I leave out the {word} and use {sub}?",
        "Can I substitute the {word} with {sub}?",
        "Could I swap the {word} with {sub}?",
    ),
    "serve": (
        "What would you serve it with?",
        "Sides for it?",
        "What do I eat it with?",
        "What goes on the side?",
        "What side dish goes well?",
        "What belongs next to it on the plate?",
        "Any side you would suggest?",
        "What goes nicely alongside?",
        "Best thing to eat with it?",
    ),
    "oven": (
        "Oven temperature in Fahrenheit, please.",
        "What is that in F?",
        "How hot in Fahrenheit?",
        "What temperature should the oven be?",
        "Which gas mark is that?",
        "And in Fahrenheit?",
        "Convert the oven temperature to F, please.",
        "What's the oven at in F?",
        "My oven only shows Fahrenheit. What number?",
        "Oven heat in degrees F?",
    ),
    "time": (
        "How much time will it take?",
        "How long altogether?",
        "Total time?",
        "How much time do I set aside?",
        "About how long, start to finish?",
        "How many minutes in all?",
        "Time needed, roughly?",
        "When do I start if we eat at 7?",
    ),
    "veg": ("Is there a vegetarian version?", "Can it be made without meat?"),
}


def _shapes(templates: Iterable[str]) -> list[re.Pattern[str]]:
    """The leakage test's pattern for each held-out template: its words, any text for a slot."""
    out = []
    for tpl in templates:
        shape = re.escape(tpl.rstrip("?.!").lower()).replace(r"\{", "{").replace(r"\}", "}")
        out.append(re.compile(re.sub(r"\{\w+\}", ".+", shape)))
    return out


class Composer:
    """Composed templates ("{dish}", "{n}" slots) that no held-out template's pattern matches."""

    def __init__(self, heldout: Iterable[str]) -> None:
        self.shapes = _shapes(heldout)

    def leaks(self, text: str) -> bool:
        low = text.lower()
        return any(p.search(low) for p in self.shapes)

    def first(self, kind: str, rng: random.Random) -> str:
        for _ in range(20):
            tpl = self._first(kind, rng)
            if not self.leaks(tpl.replace("{dish}", "x").replace("{n}", "4")):
                return tpl
        return "Recipe for {dish}"

    def _first(self, kind: str, rng: random.Random) -> str:
        greet = rng.choice(GREETINGS)
        if kind == "people" or kind not in BEFORE or rng.random() < 0.25:
            body = rng.choice(DISH_FIRST[kind])
        else:
            grammar = kind == "recipe" and rng.random() < 0.4
            before = grammar_request(rng) if grammar else rng.choice(BEFORE[kind])
            after = grammar_after(rng) if rng.random() < 0.2 else rng.choice(AFTER[kind])
            body = f"{before} {{dish}}{after}"
            body += rng.choice(ENDINGS)
        body = body[:1].upper() + body[1:] if not greet or greet.endswith((". ", "! ")) else body
        text = greet + body
        if rng.random() < 0.15:  # a context sentence first: words that are not the dish
            return f"{rng.choice(CONTEXTS)} {text[:1].upper()}{text[1:]}"
        return text

    def follow(self, kind: str, rng: random.Random) -> str | None:
        pool = FOLLOWS.get(kind)
        if not pool:
            return None
        for _ in range(20):
            if rng.random() < 0.4:
                lead = follow_lead(rng)
            else:
                lead = rng.choice((*GREETINGS[:5], "OK. ", "Thanks. ", "Great! "))
            body = rng.choice(pool)
            if lead and not lead.endswith((". ", "! ", ": ")):
                body = body[:1].lower() + body[1:]
            tpl = lead + body
            if not self.leaks(tpl.replace("{n}", "4").replace("{word}", "x").replace("{sub}", "y")):
                return tpl
        return None


# --- unknown words ------------------------------------------------------------------------------
#: words whose endings make the unknown words garble() splices ("rep" + "place" would be a real
#: word; garble re-draws anything in DISTINCTIVE)
GARBLE_ENDS = (
    "change", "switch", "mix", "bring", "think", "reckon", "manage", "handle", "figure", "sort",
    "plan", "bother", "mention", "fancy", "wonder", "suppose", "guess", "check", "measure",
    "follow", "stretch", "portion", "double", "recommend", "suggest", "bake", "toast", "whisk",
    "blend", "settle", "wander", "clever", "proper", "simple", "rough", "total", "number",
)  # fmt: skip
#: how often a training question (template) has one of its words replaced by garble()
GARBLE_FIRST_P = 0.15
GARBLE_FOLLOW_P = 0.25
#: a word garble() may replace: 4+ letters, not inside a {slot}, not part of "I'm" or "goat's"
_GARBLE_WORD = re.compile(r"(?<![{\w'])[A-Za-z]{4,}(?![}\w'])")


def garble(tpl: str, rng: random.Random) -> str:
    """The template with one word (4+ letters, not a {slot}) replaced by a word spliced from
    its own start and another word's end ("swap" -> "swaitch"): users type words the model has
    never seen, and an unknown verb in "Is it fine to <verb> the feta with goat's cheese?" must
    not read as a new dish to name (runs K-K3 titled such a follow-up "## Mildreplace with
    tamari"). None of the spliced words is in DISTINCTIVE (tested)."""
    spans = list(_GARBLE_WORD.finditer(tpl))
    if not spans:
        return tpl
    m = rng.choice(spans)
    word = m.group()
    for _ in range(10):
        end = rng.choice(GARBLE_ENDS)  # lower case, so the new word keeps the old one's case
        new = word[: rng.randint(2, min(4, len(word) - 1))] + end[-rng.randint(2, 4) :]
        if new.lower() != word.lower() and new.lower() not in DISTINCTIVE:
            return tpl[: m.start()] + new + tpl[m.end() :]
    return tpl
