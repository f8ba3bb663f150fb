"""Invented dish names (dev.cooking.names): the shapes real dish names have, from training
words only, never a held-out dish's name."""

from __future__ import annotations

import argparse
import random
import re

import pytest

from dev.cooking.dishes import dishes
from dev.cooking.names import CONNECTORS, NameMaker, Renamer


@pytest.fixture(scope="module")
def maker() -> NameMaker:
    return NameMaker()


@pytest.fixture(scope="module")
def names(maker: NameMaker) -> list[str]:
    rng = random.Random(0)
    return [maker.name(rng) for _ in range(3000)]


def test_no_name_contains_a_heldout_dish(names: list[str]) -> None:
    held = [d.name.lower() for d in dishes("heldout")]
    for name in names:
        assert not any(h in name.lower() for h in held), name


def test_words_come_from_training_dishes_only(maker: NameMaker) -> None:
    """A word found only in held-out dishes (their names and ingredients) is never a source."""
    train_text = " ".join(
        " ".join((d.name, *d.ingredients, *d.steps)) for d in dishes("train")
    ).lower()
    only_held = {
        w
        for d in dishes("heldout")
        for w in re.findall(r"[a-zà-ÿ']{4,}", " ".join((d.name, *d.ingredients)).lower())
        if w not in train_text
    }
    assert only_held, "the check needs a word that only held-out dishes use"
    sources = {w.lower() for w in (*maker.dish_words, *maker.food_words)}
    assert not only_held & sources


def test_names_take_the_shapes_of_real_dish_names(names: list[str]) -> None:
    """Single words, connectors ("Hot and Sour Soup", "Orzo with Feta"), hyphens, possessives:
    each shape a real held-out name has occurs, none dominates, and the names are varied."""
    single = [n for n in names if " " not in n and "-" not in n]
    connected = [n for n in names if set(n.split()) & set(CONNECTORS)]
    assert 0.08 < len(single) / len(names) < 0.25
    assert 0.15 < len(connected) / len(names) < 0.35
    assert any("-" in n for n in names) and any("'s " in n for n in names)
    assert any(n.split()[1] == "with" for n in names if len(n.split()) > 2)
    assert len(set(names)) > 0.97 * len(names)


def test_pseudo_words_are_not_words(maker: NameMaker) -> None:
    """Pseudo-words are glued fragments, so most are not in the food vocabulary: any letters,
    hence any BPE split, as foreign names ("Mujadara") have."""
    rng = random.Random(1)
    words = [maker.pseudo(rng) for _ in range(500)]
    assert all(len(w) >= 4 for w in words)
    known = {w.lower() for w in (*maker.food_words, *maker.dish_words)}
    assert sum(w.lower() in known for w in words) < 0.05 * len(words)


def test_the_same_seed_gives_the_same_names(maker: NameMaker) -> None:
    a = [maker.name(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert maker.name(random.Random(7)) != maker.name(random.Random(8))


def test_renamer_keeps_the_recipe_and_usually_the_kind() -> None:
    train = dishes("train")
    r = Renamer(train)
    rng = random.Random(2)
    kept_kind = 0
    for d in train[:200]:
        new = r(d, rng)
        assert new.name != d.name and new.ingredients == d.ingredients and new.steps == d.steps
        kept_kind += new.name.split()[-1] == d.name.split()[-1]
    assert kept_kind > 0.5 * 200


def test_init_from_reuses_that_models_tokenizer(tmp_path, capsys) -> None:
    """--init-from keeps the ids the weights were trained on (a changed generator would train a
    different BPE); a missing tokenizer is one line, exit 2."""
    from dev.cooking.tokenizer import train_tokenizer
    from dev.cooking.train import _tokenizer

    docs = ["## Lasagne\nLayer the sheets.", "## Dal\nSimmer the lentils."] * 20
    own = train_tokenizer(docs, 300)
    own.save(str(tmp_path / "tokenizer.json"))
    args = argparse.Namespace(init_from=tmp_path, vocab_size=400)
    other_docs = ["Completely different text about pancakes and waffles."] * 40
    got = _tokenizer(args, other_docs)
    assert got.get_vocab() == own.get_vocab()
    fresh = _tokenizer(argparse.Namespace(init_from=None, vocab_size=300), other_docs)
    assert fresh.get_vocab() != own.get_vocab()
    with pytest.raises(SystemExit) as e:
        _tokenizer(argparse.Namespace(init_from=tmp_path / "nope", vocab_size=300), docs)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "cannot read tokenizer.json" in err and len(err.splitlines()) == 1
