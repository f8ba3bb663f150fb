"""engine/loading/spm.py: our SentencePiece BPE gives the ids of the `tokenizers` model built
from the derived merges (what GGUF SentencePiece vocabularies loaded through before), and its
stream decoder adds up to its full decode."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gen.engine.loading.gguf_tokenizer import build_tokenizer
from tui_gen.engine.loading.spm import SentencePieceBPE
from tui_gen.engine.loading.tokenizer import HFTokenizer

ALPHABET = "abcdef▁"
BYTES = [f"<0x{b:02X}>" for b in range(256)]
ADDED = ["<ctl>", "<ctl_long>", "\n", "\n\n", "  "]  # CONTROL, CONTROL, USER_DEFINED x 3


def _meta(seed: int, prefix: bool, ties: bool) -> dict:
    """A random SentencePiece vocabulary: pieces joined from shorter ones (some containing
    "x▁y" inside, so the encoder may not split there), scores with many ties if asked, byte
    pieces, control and user-defined tokens."""
    rng = random.Random(seed)
    pieces = ["<unk>", "<s>", "</s>", *BYTES, *ADDED, *ALPHABET, "x", "y"]
    types = [2, 3, 3] + [6] * 256 + [3, 3, 4, 4, 4] + [1] * (len(ALPHABET) + 2)
    seen = set(pieces)
    normal = [*ALPHABET, "x", "y"]
    while len(pieces) < 700:
        a, b = rng.choice(normal), rng.choice(normal)
        if a + b not in seen and len(a + b) <= 7:
            seen.add(a + b)
            pieces.append(a + b)
            normal.append(a + b)
            types.append(1)
    for glued in ("▁y", "x▁y", "ab▁", "a▁▁b"):
        if glued not in seen:
            pieces.append(glued)
            types.append(1)
    scores = [float(-(rng.randrange(40) if ties else i)) for i in range(len(pieces))]
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": pieces,
        "tokenizer.ggml.scores": np.asarray(scores, dtype=np.float32),
        "tokenizer.ggml.token_type": np.asarray(types, dtype=np.int32),
        "tokenizer.ggml.add_space_prefix": prefix,
    }


_PAIRS = {
    (seed, prefix, ties): (build_tokenizer(m)[0], build_tokenizer(m, native=False)[0])
    for seed, prefix, ties in [(0, True, False), (1, False, True), (2, True, True)]
    for m in [_meta(seed, prefix, ties)]
}

texts = st.lists(
    st.one_of(
        st.sampled_from([*"abcdefxy", " ", "  ", "▁", "\n", "<ctl>", "<ctl_long>", "<ct", "é"]),
        st.sampled_from(["中文", "🦙", "x y", "ab ", "a  b", "<s>", "</s>", "<unk>"]),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=40,
).map("".join)


@pytest.mark.parametrize("key", list(_PAIRS))
@settings(max_examples=150, deadline=None)
@given(text=texts)
def test_encode_equals_the_tokenizers_model(key, text: str) -> None:
    ours, ref = _PAIRS[key]
    assert isinstance(ours, SentencePieceBPE)
    for special in (True, False):
        ids = ours.encode(text, add_special_tokens=special).ids
        assert ids == ref.encode(text, add_special_tokens=special).ids


@pytest.mark.parametrize("key", list(_PAIRS))
@settings(max_examples=150, deadline=None)
@given(text=texts)
def test_decode_equals_the_tokenizers_model_on_encoded_text(key, text: str) -> None:
    ours, ref = _PAIRS[key]
    ids = ref.encode(text).ids
    for skip in (True, False):
        assert ours.decode(ids, skip) == ref.decode(ids, skip)


def test_the_encoder_does_not_split_inside_a_piece_that_holds_a_space() -> None:
    ours, ref = _PAIRS[(0, True, False)]
    ids = ours.encode("x y", add_special_tokens=False).ids
    assert ours.token_to_id("x▁y") in ids
    assert ids == ref.encode("x y", add_special_tokens=False).ids


@pytest.mark.parametrize(
    ("pieces", "scores", "text", "expected"),
    [
        # "abc" (ab + c) and "cd" (c + d) score alike: the longer left part goes first
        (["ab", "abc", "cd"], [0.0, -5.0, -5.0], "abcd", ["abc", "d"]),
        # equal scores and equal lengths: the lower id of the joined piece goes first
        (["ab", "bc"], [-1.0, -1.0], "abc", ["ab", "c"]),
        (["bc", "ab"], [-1.0, -1.0], "abc", ["a", "bc"]),
        # a better score wins wherever it is
        (["ab", "bc"], [-2.0, -1.0], "abc", ["a", "bc"]),
    ],
)
def test_ties_follow_the_derived_merge_order(pieces, scores, text, expected) -> None:
    tokens = ["<unk>", "<s>", "</s>", "a", "b", "c", "d", *pieces]
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": [0.0] * 7 + scores,
        "tokenizer.ggml.token_type": [2, 3, 3] + [1] * (len(tokens) - 3),
        "tokenizer.ggml.add_space_prefix": False,
    }
    for native in (True, False):  # ours and the `tokenizers` model agree
        tok = build_tokenizer(meta, native=native)[0]
        ids = tok.encode(text, add_special_tokens=False).ids
        assert [tok.id_to_token(i) for i in ids] == expected, native


def test_bos_and_fallbacks() -> None:
    ours, _ = _PAIRS[(0, True, False)]
    assert ours.encode("a").ids[0] == ours.token_to_id("<s>")  # add_bos_token by default
    ids = ours.encode("中", add_special_tokens=False).ids
    assert [ours.id_to_token(i) for i in ids] == ["▁", "<0xE4>", "<0xB8>", "<0xAD>"]
    assert ours.decode(ids) == "中"
    assert ours.decode([ours.token_to_id("<ctl>"), *ids], skip_special_tokens=False) == "<ctl> 中"


@pytest.mark.parametrize("key", list(_PAIRS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_stream_adds_up_to_the_full_decode(key, data) -> None:
    """Any ids (byte pieces cut mid-character, invalid runs, specials): the stream's pieces
    join to decode(ids), and no piece before the end holds a half character."""
    ours, _ = _PAIRS[key]
    byte_ids = [ours.token_to_id(b) for b in BYTES]
    ids = data.draw(
        st.lists(
            st.one_of(st.sampled_from(byte_ids), st.integers(0, ours.get_vocab_size() - 1)),
            max_size=30,
        )
    )
    stream = HFTokenizer(ours, {}).stream_decoder()
    parts = [stream.step(i) for i in ids]
    parts.append(stream.flush())
    assert "".join(parts) == ours.decode(ids)


def test_stream_holds_a_character_until_its_last_byte() -> None:
    ours, _ = _PAIRS[(0, True, False)]
    stream = ours.stream_decoder()
    ids = ours.encode("a中b", add_special_tokens=False).ids
    out = [stream.step(i) for i in ids]
    assert "".join(out) == "a中b" and "\ufffd" not in "".join(out)
    assert "中" in out  # shown whole, once its third byte arrived


def test_export_writes_the_tokenizers_model() -> None:
    from tokenizers import Tokenizer

    ours, ref = _PAIRS[(1, False, True)]
    exported = Tokenizer.from_str(ours.to_str())
    assert exported.encode("ab cd\n\nx y<ctl>").ids == ref.encode("ab cd\n\nx y<ctl>").ids


@pytest.mark.gemma3
def test_gemma3_vocabulary_encodes_like_the_tokenizers_model() -> None:
    """The real 262,144-piece vocabulary on README text and odd strings (opt-in, -m gemma3)."""
    from gemma3 import require_gguf

    from tui_gen.engine.loading.gguf_file import read_header

    meta = read_header(require_gguf())[0]
    ours, ref = build_tokenizer(meta)[0], build_tokenizer(meta, native=False)[0]
    rng = random.Random(0)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    samples = [readme[a : a + rng.randrange(1, 300)] for a in rng.sample(range(len(readme)), 200)]
    samples += ["<start_of_turn>user\nHi!<end_of_turn>\n", "  a   b\n\n\n", "a>▁</b", "🧑‍🍳 中文"]
    for text in samples:
        assert ours.encode(text).ids == ref.encode(text).ids, text
        ids = ref.encode(text).ids
        assert ours.decode(ids) == ref.decode(ids)


def test_a_byte_run_after_a_dropped_space_is_shown_once() -> None:
    """Found by the property above: with add_space_prefix, the stream dropped the space byte
    that opened a run, then (having emitted) stopped dropping it and showed the run's next
    character again at flush."""
    ours, _ = _PAIRS[(2, True, True)]
    assert ours._prefix
    ids = [ours.token_to_id("<0x20>"), ours.token_to_id("<0x00>")]
    stream = HFTokenizer(ours, {}).stream_decoder()
    parts = [stream.step(i) for i in ids] + [stream.flush()]
    assert "".join(parts) == ours.decode(ids) == "\x00"
