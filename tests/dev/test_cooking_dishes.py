"""The v2 cooking corpus: real dishes as data, conversations with follow-ups, the evaluation."""

from __future__ import annotations

import random
import re

import pytest

from dev.cooking import answers as A
from dev.cooking import conversations as C
from dev.cooking.corpus import END
from dev.cooking.dishes import OVEN_CHART, all_dishes, dishes, is_heldout, parse, scale_line
from dev.cooking.evaluate import (
    has_ingredient_list,
    has_numbered_steps,
    names_dish,
    repeated_line,
)

CATEGORIES = {
    "soups",
    "salads",
    "pasta",
    "rice",
    "curries_stews",
    "mains",
    "baking",
    "desserts",
    "breakfasts",
    "drinks",
    "sauces_sides",
}


# --- the dish data ------------------------------------------------------------------------------
def test_there_are_400_real_dishes_across_every_kind_of_cooking():
    ds = all_dishes()
    names = [d.name.lower() for d in ds]
    assert len(ds) >= 400 and len(set(names)) == len(names)
    assert {d.category for d in ds} == CATEGORIES
    assert len({d.cuisine for d in ds}) >= 30
    for must in ("Lasagne", "Hummus", "Guacamole", "Apple Pie", "Shakshuka", "Pad Thai", "Crêpes"):
        assert must.lower() in names, must


def test_every_dish_has_quantities_a_method_and_facts():
    for d in all_dishes():
        with_qty = [x for x in d.ingredients if re.match(r"^\d", x)]
        assert len(d.ingredients) >= 2 and len(with_qty) >= 1, d.name
        assert len(d.steps) >= 1 and len(set(d.steps)) == len(d.steps), d.name
        assert all(s.endswith((".", "!")) for s in d.steps), d.name
        assert d.oven is None or d.oven in OVEN_CHART, d.name
        assert d.serves >= 1 and d.serve_with and d.keeps[0] in ("fridge", "tin", "now"), d.name


def test_variants_replace_the_main_ingredient_in_the_steps_too():
    by = {d.name: d for d in all_dishes()}
    beef = by["Beef Fajitas"]
    assert beef.ingredients[0].startswith("500 g beef")
    assert any("beef" in s for s in beef.steps) and not any("chicken" in s for s in beef.steps)
    veg = by["Vegetarian Chilli"]
    assert veg.vegetarian and not any("beef" in x for x in veg.ingredients), veg.ingredients
    assert by["Banana Pancakes"].steps[1] == "Whisk the mashed banana into the batter."


def test_a_malformed_dish_is_rejected_with_its_file():
    with pytest.raises(ValueError, match="soups: a dish header needs 10 fields"):
        parse("Soup | British | 4\n1 onion\nCook it.", "soups")
    with pytest.raises(ValueError, match="variant before any dish"):
        parse("~ X = 1 egg | v | +1 Add it.", "soups")


@pytest.mark.parametrize(
    ("line", "factor", "want"),
    [
        ("1 onion, chopped", 2, "2 onions, chopped"),
        ("2 garlic cloves, crushed", 0.5, "1 garlic clove, crushed"),
        ("500 g beef mince", 1.5, "750 g beef mince"),
        ("400 g tin chopped tomatoes", 2, "2 x 400 g tins chopped tomatoes"),
        ("1.5 litres vegetable stock", 2, "3 litres vegetable stock"),
        ("2 tbsp olive oil", 0.5, "1 tbsp olive oil"),
        ("700 g passata", 2, "1.4 kg passata"),
        ("1 small bunch coriander", 2, "2 small bunches coriander"),
        ("salt and pepper", 3, "salt and pepper"),
    ],
)
def test_scaling_multiplies_the_quantity_and_keeps_the_words_right(line, factor, want):
    assert scale_line(line, factor) == want


# --- the corpus ---------------------------------------------------------------------------------
def test_corpus_is_deterministic_and_every_document_ends_with_the_end_token():
    a = C.generate(3, 30)
    assert a == C.generate(3, 30) and a != C.generate(4, 30)
    assert all(doc.endswith(END + "\n") for doc in a)


def test_conversations_follow_up_and_fill_the_long_context():
    docs = C.generate(0, 300)
    turns = [d.count("<|user|>") for d in docs]
    assert max(turns) >= 8 and sum(t >= 4 for t in turns) >= 100
    assert max(map(len, docs)) <= C.MAX_CHARS + 400  # ~1,000 tokens, under the 1,024 context
    assert sum(len(d) > 2500 for d in docs) >= 60
    assert any("<|system|>" in d for d in docs)


def test_every_first_answer_is_a_structured_recipe_naming_the_dish():
    rng = random.Random(5)
    for kind in C.FIRST_KINDS:
        for d in rng.sample(list(dishes("train")), 60):
            q, a = C.first_turn(d, kind, rng)
            assert has_ingredient_list(a) and has_numbered_steps(a, at_least=2), (kind, a)
            assert names_dish(a, d.name), (kind, a)
            assert repeated_line(a) is None, (kind, a)


def test_every_follow_up_answer_stays_on_the_dish():
    rng = random.Random(6)
    for d in all_dishes():
        for kind in (*C.FOLLOW_KINDS, "thanks"):
            turn = C.follow_turn(d, kind, rng)
            if turn is None:
                assert kind == "swap" and not A.find_swaps(d)
                continue
            assert names_dish(turn[1], d.name), (kind, turn)
            assert repeated_line(turn[1]) is None, (kind, turn)


def test_follow_up_facts_come_from_the_dish():
    by = {d.name: d for d in all_dishes()}
    lasagne = by["Lasagne"]
    assert "190°C, which is 375°F, gas mark 5" in A.oven_answer(lasagne)
    assert "3 days in a covered container in the fridge" in A.keeps_answer(lasagne)
    assert A.freeze_answer(lasagne).startswith("Yes: Lasagne freezes well for up to 3 months")
    assert "- 18 lasagne sheets" in A.scale_answer(lasagne, 9)
    assert "does not go in the oven" in A.oven_answer(by["Minestrone"])
    assert A.freeze_answer(by["Caesar Salad"]).startswith("I would not freeze")
    veg = A.veg_answer(by["Spaghetti Bolognese"])
    assert "green lentils instead of the beef mince" in veg, veg


def test_heldout_dishes_and_phrasings_never_reach_training():
    held = dishes("heldout")
    assert 0.05 * len(all_dishes()) <= len(held) <= 0.2 * len(all_dishes())
    text = "".join(C.generate(0, 1500))
    for d in held:  # its recipe card and its own answers never appear
        assert f"## {d.name}\n" not in text and f"{d.name} keeps for" not in text, d.name
    asked = "\n".join(re.findall(r"<\|user\|>\n(.*?)<\|end\|>", text)).lower()
    pools = [*C.HELDOUT_Q.values(), *C.FOLLOW_HELDOUT.values(), C.NEXT_DISH_HELDOUT]
    for tpl in (t for pool in pools for t in pool):
        shape = re.escape(tpl.rstrip("?.!").lower()).replace(r"\{", "{").replace(r"\}", "}")
        assert not re.search(re.sub(r"\{\w+\}", ".+", shape), asked), tpl


def test_eval_conversations_use_heldout_dishes_phrasings_and_follow_ups():
    convs = C.eval_conversations(0, 80)
    assert len({c.dish for c in convs}) == len(dishes("heldout"))
    held_first = [t for pool in C.HELDOUT_Q.values() for t in pool]
    for c in convs:
        assert is_heldout(c.dish) and len(c.follow_ups) == 2
        frag = [max(re.split(r"\{\w+\}", t), key=len).strip(" ?.,").lower() for t in held_first]
        assert any(f in c.first.lower() for f in frag), c.first
        for kind, q in c.follow_ups:
            shapes = [re.escape(t.rstrip("?.!").lower()) for t in C.FOLLOW_HELDOUT[kind]]
            shapes = [re.sub(r"\\\{\w+\\\}", ".+", x) for x in shapes]
            assert any(re.match(x, q.lower()) for x in shapes), (kind, q)
    assert convs == C.eval_conversations(0, 80)


# --- the evaluation checks ----------------------------------------------------------------------
def test_repeated_lines_and_sentences_are_caught():
    assert repeated_line("Pour in the stock. Pour in the stock.") == "pour in the stock."
    assert repeated_line("1. Simmer for ten minutes.\n2. Simmer for ten minutes.")
    assert repeated_line("- 2 onions, chopped\n- 2 onions, chopped")
    assert repeated_line("## Lasagne\n\n1. Brown the mince.\n2. Layer the sheets.") is None
    assert repeated_line("Yes.\nYes.") is None  # too short to count


def test_training_conversations_rename_dishes_but_never_to_a_heldout_name():
    """Half the training conversations ask about a dish under another name (so the name in the
    answer must be copied from the question); the recipe is the dish's own, and no new name
    contains a held-out dish's."""
    train = dishes("train")
    real = {d.name for d in train}
    held = [d.name.lower() for d in dishes("heldout")]
    gen = C.Conversations(0, "train")
    picked = [gen.pick() for _ in range(400)]
    renamed = [d for d in picked if d.name not in real]
    assert 0.35 < len(renamed) / len(picked) < 0.65
    assert len({d.name for d in renamed}) > 0.9 * len(renamed)  # varied, not a few fixed names
    for d in renamed:
        assert not any(h in d.name.lower() for h in held), d.name
        assert any(d.ingredients == t.ingredients and d.steps == t.steps for t in train)
    r = C.Renamer(train)
    assert r(train[0], random.Random(1)).name != train[0].name
    held_names = {x.name for x in dishes("heldout")}
    held_gen = C.Conversations(0, "heldout")
    assert all(held_gen.pick().name in held_names for _ in range(50))  # never in evaluation


# --- composed phrasings -------------------------------------------------------------------------
def test_composed_questions_give_many_shapes_each_with_the_dish_once():
    rng = random.Random(0)
    for kind in C.FIRST_KINDS:
        shapes = {C.COMPOSER.first(kind, rng) for _ in range(400)}
        assert len(shapes) >= (20 if kind in ("people", "time", "gf", "veg", "quick") else 60), kind
        for tpl in shapes:
            assert tpl.count("{dish}") == 1, tpl
            assert ("{n}" in tpl) == (kind == "people"), tpl
    # the name stands first, in the middle and last across the shapes
    recipe = {C.COMPOSER.first("recipe", rng) for _ in range(400)}
    assert any(t.startswith("{dish}") for t in recipe)
    assert any(t.rstrip("?.!").endswith("{dish}") for t in recipe)
    assert any(re.search(r"\{dish\} \w", t) for t in recipe)


def test_composer_never_gives_a_heldout_shape():
    comp = C.P.Composer(["Walk me through making {dish}."])
    assert comp.leaks("Hey, walk me through making x!")
    assert not comp.leaks("Walk me through x")
    rng = random.Random(1)
    for kind in C.FIRST_KINDS:
        for _ in range(300):
            tpl = C.COMPOSER.first(kind, rng)
            assert not C.COMPOSER.leaks(tpl.replace("{dish}", "x").replace("{n}", "4")), tpl
    for kind in C.FOLLOW_KINDS:
        for _ in range(50):
            tpl = C.COMPOSER.follow(kind, rng)
            assert tpl is None or not C.COMPOSER.leaks(tpl), tpl


def _fixed_share(composed_p: float, monkeypatch) -> float:
    monkeypatch.setattr(C, "COMPOSED_P", composed_p)
    monkeypatch.setattr(C.P, "GARBLE_FIRST_P", 0.0)
    rng, d = random.Random(0), dishes("train")[0]
    fixed = [t for pool in C.TRAIN_Q.values() for t in pool]
    pats = [re.escape(t.rstrip("?.!")) for t in fixed]
    pats = [p.replace(r"\{dish\}", ".+").replace(r"\{n\}", r"\d+") for p in pats]
    shapes = [re.compile(p + r"[?.!]?", re.I) for p in pats]
    hits = 0
    for i in range(300):
        q, _, _ = C.asked_turn(d, C.FIRST_KINDS[i % len(C.FIRST_KINDS)], rng)
        hits += any(s.fullmatch(q) for s in shapes)
    return hits / 300


def test_training_mixes_composed_and_fixed_questions(monkeypatch):
    default = C.COMPOSED_P
    assert _fixed_share(0.0, monkeypatch) == 1.0
    assert 0.25 < _fixed_share(default, monkeypatch) < 0.6


def test_the_evaluation_questions_do_not_depend_on_the_composer(monkeypatch):
    monkeypatch.setattr(C, "COMPOSED_P", 1.0)
    first = C.eval_conversations(0, 30)
    monkeypatch.setattr(C, "COMPOSED_P", 0.0)
    assert C.eval_conversations(0, 30) == first


def test_composed_questions_never_use_a_word_only_heldout_phrasings_use():
    """DISTINCTIVE holds words of the held-out phrasings that no fixed training phrasing has;
    no composed question (grammar, context sentences included) contains one."""
    words = lambda s: set(re.findall(r"[a-z][a-z'-]*", s.lower()))  # noqa: E731
    held = set().union(*map(words, C._HELDOUT_TEMPLATES))
    fixed = [t for pool in (*C.TRAIN_Q.values(), *C.FOLLOW_TRAIN.values()) for t in pool]
    assert held - set().union(*map(words, fixed)) >= C.P.DISTINCTIVE
    rng = random.Random(4)
    seen: set[str] = set()
    for kind in C.FIRST_KINDS:
        for _ in range(1500):
            seen |= words(C.COMPOSER.first(kind, rng))
    for kind in C.FOLLOW_KINDS:
        for _ in range(100):
            seen |= words(C.COMPOSER.follow(kind, rng) or "")
    assert not seen & C.P.DISTINCTIVE, sorted(seen & C.P.DISTINCTIVE)
    assert {"rustle", "flatmate"} <= seen  # the grammar and the context sentences are in use
    assert seen & {p.lower() for p in C.P.PEOPLE}  # follow-ups name people who are not dishes


def test_garble_replaces_one_word_never_a_slot_never_a_heldout_word():
    """garble() changes exactly one word of 4+ letters, leaves {slots} alone and never makes a
    word only held-out phrasings use (it would put a held-out shape into training)."""
    words = lambda s: re.findall(r"[A-Za-z{}']+", s)  # noqa: E731
    rng = random.Random(7)
    fixed = [t for pool in (*C.TRAIN_Q.values(), *C.FOLLOW_TRAIN.values()) for t in pool]
    changed = 0
    for tpl in fixed * 20:
        out = C.P.garble(tpl, rng)
        assert re.findall(r"\{\w+\}", out) == re.findall(r"\{\w+\}", tpl)
        a, b = words(tpl), words(out)
        assert len(a) == len(b)
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        assert len(diff) <= 1
        if diff:
            changed += 1
            ((x, y),) = diff
            assert len(x) >= 4 and y.lower() not in C.P.DISTINCTIVE
            assert x[:2] == y[:2]  # spliced from the word's own start
    assert changed > 0.9 * len(fixed) * 20


def test_copying_documents_are_marked():
    """Every copying document opens with COPY_SYSTEM, so its short answers stay apart from the
    recipe cards the conversations teach."""
    for doc in C.copy_documents(3, 20):
        assert doc.startswith("<|system|>\n" + C.COPY_SYSTEM)
