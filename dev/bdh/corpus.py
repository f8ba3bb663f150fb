"""A small English text made up here (no copyright, no download): seeded sentences from a
little grammar, in short paragraphs, so a byte-level model learns words and punctuation in a
minute of CPU time."""

from __future__ import annotations

import random

SUBJECTS = [
    "the old sailor",
    "a young queen",
    "the miller",
    "my brother",
    "the little dragon",
    "the farmer's wife",
    "a quiet monk",
    "the king",
    "the baker",
    "an honest clerk",
]
VERBS = [
    "walked to",
    "looked at",
    "sang about",
    "dreamed of",
    "waited by",
    "spoke with",
    "laughed at",
    "remembered",
    "painted",
    "built",
]
OBJECTS = [
    "the river",
    "the green hill",
    "a stone bridge",
    "the harbour",
    "the cold sea",
    "a tall tower",
    "the garden",
    "an empty road",
    "the market",
    "the winter sky",
]
TIMES = [
    "in the morning",
    "at night",
    "after the rain",
    "before the feast",
    "all day",
    "in the spring",
    "at dawn",
    "by candlelight",
]
ENDINGS = [".", ".", ".", "!", "?"]  # fmt: skip


def sentence(rng: random.Random) -> str:
    s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    if rng.random() < 0.6:
        s += f" {rng.choice(TIMES)}"
    if rng.random() < 0.3:
        s += f", and {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    return s[0].upper() + s[1:] + rng.choice(ENDINGS)


def generate_corpus(seed: int = 0, n_bytes: int = 200_000) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_bytes:
        para = " ".join(sentence(rng) for _ in range(rng.randint(2, 5))) + "\n\n"
        parts.append(para)
        size += len(para)
    return "".join(parts)
