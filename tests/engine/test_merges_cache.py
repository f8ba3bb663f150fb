"""The SentencePiece merges cache (engine/loading/merges_cache.py): a hit returns exactly what
deriving returns, and nothing in the cache directory (missing, corrupt, hostile, unwritable)
can change the merges or fail a load."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tui_gen.engine.loading import merges_cache
from tui_gen.engine.loading.gguf_tokenizer import (
    _sentencepiece_merges,
    _unique_vocab,
    build_tokenizer,
)


def _vocab(n: int = 600, seed: int = 0, dup: bool = False):
    rng = random.Random(seed)
    pieces = ["<unk>", "<s>", "</s>", *"abcdefgh", "▁"]
    seen = set(pieces)
    while len(pieces) < n:
        a, b = rng.choice(pieces[3:]), rng.choice(pieces[3:])
        if a + b not in seen and len(a + b) <= 8:
            seen.add(a + b)
            pieces.append(a + b)
    if dup:
        pieces.append(pieces[-1])  # a duplicated piece: the vocabulary renames it
    types = [2, 3, 3] + [1] * (len(pieces) - 3)
    scores = [-float(i) for i in range(len(pieces))]
    return pieces, scores, types


class _Derive:
    def __init__(self, tokens, scores, types, vocab) -> None:
        self.calls = 0
        self.args = (tokens, scores, types, vocab)

    def __call__(self):
        self.calls += 1
        return _sentencepiece_merges(*self.args)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUI_GEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(merges_cache, "MIN_PIECES", 0)
    return tmp_path / "tokenizers"


@pytest.mark.parametrize("dup", [False, True])
def test_a_hit_returns_what_deriving_returns(cache: Path, dup: bool) -> None:
    tokens, scores, types = _vocab(dup=dup)
    vocab = _unique_vocab(tokens)
    derive = _Derive(tokens, scores, types, vocab)
    first = merges_cache.cached_merges(tokens, scores, types, vocab, derive)
    assert derive.calls == 1 and len(list(cache.glob("spm-merges-*.npy"))) == 1
    second = merges_cache.cached_merges(tokens, scores, types, vocab, derive)
    assert derive.calls == 1  # read back, not derived
    assert second == first == _sentencepiece_merges(tokens, scores, types, vocab)
    assert len(first) > 100


def test_the_key_follows_the_vocabulary_not_the_file(cache: Path) -> None:
    tokens, scores, types = _vocab()
    k = merges_cache.key(tokens, scores, types)
    assert k == merges_cache.key(list(tokens), list(scores), list(types))
    assert k != merges_cache.key(tokens, [s * 2 for s in scores], types)
    assert k != merges_cache.key(tokens, scores, [*types[:-1], 4])
    assert k != merges_cache.key([*tokens[:-1], tokens[-1] + "x"], scores, types)


@pytest.mark.parametrize(
    "content",
    [
        b"not a numpy file",
        b"",
        "ids out of range",
        "wrong dtype",
        "wrong shape",
        "an object array",
    ],
)
def test_a_bad_cache_file_is_derived_again(cache: Path, content: bytes | str) -> None:
    tokens, scores, types = _vocab()
    vocab = _unique_vocab(tokens)
    path = merges_cache.path_for(merges_cache.key(tokens, scores, types))
    path.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "ids out of range":
        np.save(path, np.array([[0, len(tokens)]], dtype=np.int32))
    elif content == "wrong dtype":
        np.save(path, np.array([[3, 4]], dtype=np.float32))
    elif content == "wrong shape":
        np.save(path, np.array([3, 4, 5], dtype=np.int32))
    else:
        np.save(path, np.array([[object(), 1]], dtype=object), allow_pickle=True)
    derive = _Derive(tokens, scores, types, vocab)
    got = merges_cache.cached_merges(tokens, scores, types, vocab, derive)
    assert derive.calls == 1
    assert got == _sentencepiece_merges(tokens, scores, types, vocab)
    # and the bad file was replaced by a good one
    assert merges_cache.cached_merges(tokens, scores, types, vocab, derive) == got
    assert derive.calls == 1


def test_an_unwritable_cache_costs_only_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache directory cannot be made under a file")
    monkeypatch.setenv("TUI_GEN_CACHE_DIR", str(blocker))
    monkeypatch.setattr(merges_cache, "MIN_PIECES", 0)
    tokens, scores, types = _vocab()
    vocab = _unique_vocab(tokens)
    derive = _Derive(tokens, scores, types, vocab)
    for _ in range(2):
        got = merges_cache.cached_merges(tokens, scores, types, vocab, derive)
        assert got == _sentencepiece_merges(tokens, scores, types, vocab)
    assert derive.calls == 2


def test_small_vocabularies_are_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUI_GEN_CACHE_DIR", str(tmp_path))
    tokens, scores, types = _vocab()
    assert len(tokens) < merges_cache.MIN_PIECES
    vocab = _unique_vocab(tokens)
    merges_cache.cached_merges(tokens, scores, types, vocab, _Derive(tokens, scores, types, vocab))
    assert not (tmp_path / "tokenizers").exists()


def test_a_tokenizer_built_from_the_cache_encodes_alike(cache: Path) -> None:
    tokens, scores, types = _vocab()
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": np.asarray(scores, dtype=np.float32),
        "tokenizer.ggml.token_type": np.asarray(types, dtype=np.int32),
    }
    # the `tokenizers` model (what `tui-gen import` writes) derives merges; loading does not
    native, _ = build_tokenizer(meta)
    assert not list(cache.glob("*.npy"))
    fresh, _ = build_tokenizer(meta, native=False)
    assert len(list(cache.glob("*.npy"))) == 1
    cached, _ = build_tokenizer(meta, native=False)
    rng = random.Random(1)
    for _ in range(50):
        text = " ".join("".join(rng.choices("abcdefgh", k=rng.randint(1, 12))) for _ in range(5))
        assert cached.encode(text).ids == fresh.encode(text).ids == native.encode(text).ids
