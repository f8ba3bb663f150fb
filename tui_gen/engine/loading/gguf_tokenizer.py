"""Build a `tokenizers.Tokenizer` from a GGUF file's metadata.

A GGUF carries no tokenizer.json, only llama.cpp's description of the vocabulary:

* `tokenizer.ggml.model == "gpt2"`: byte-level BPE (SmolLM2, Llama 3, Qwen2). Tokens are spelled
  in GPT-2's byte alphabet and `tokenizer.ggml.merges` lists the merges. How text is split before
  BPE is not stored as a regex but named by `tokenizer.ggml.pre`; we map the names to the
  splits llama.cpp uses for them (SmolLM2's "smollm" splits every digit on its own).
* `tokenizer.ggml.model == "llama"`: SentencePiece BPE (TinyLlama, Llama 2, Mistral). Tokens use
  "▁" for spaces, carry scores and 256 `<0xXX>` byte-fallback tokens, and list no merges: they are
  rebuilt from the scores (a piece made of two pieces merges with the priority of its score).

Tokens typed CONTROL/UNKNOWN are added as special tokens and USER_DEFINED ones as plain added
tokens, so `<|im_end|>` is one token wherever it appears in the text.
"""

from __future__ import annotations

import bisect
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tui_gen.engine.loading.merges_cache import cached_merges
from tui_gen.engine.loading.spm import (
    CONTROL,
    MAX_MERGED_PIECE,
    NORMAL,
    UNKNOWN,
    USER_DEFINED,
    SentencePieceBPE,
    duplicate_name,
)
from tui_gen.errors import ModelLoadError, UnsupportedModelError

log = logging.getLogger(__name__)


_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: tokenizer.ggml.pre -> how llama.cpp splits text before BPE ("gpt2": GPT-2's own regex,
#: "digits": each digit alone, then GPT-2's regex; otherwise a regex of its own).
PRE_TOKENIZERS: dict[str, str] = {
    **dict.fromkeys(("default", "gpt2", "gpt-2", "mpt", "olmo", "jais", "phi-2"), "gpt2"),
    **dict.fromkeys(
        ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"), "digits"
    ),
    **dict.fromkeys(
        ("llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx", "lfm2"), _LLAMA3
    ),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"), _QWEN2),
    **dict.fromkeys(("tekken", "pixtral"), _TEKKEN),
    **dict.fromkeys(("gpt-4o", "llama4"), _GPT4O),
}
#: pre-tokenizers for which llama.cpp looks a whole pre-token up before merging (ignore_merges)
IGNORE_MERGES = {"llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx"}


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used to spell byte-level tokens."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _split_pre_tokenizer(pre: str | None) -> tuple[Any, bool]:
    from tokenizers import Regex, pre_tokenizers

    kind = PRE_TOKENIZERS.get(pre or "default")
    if kind is None:
        log.warning("GGUF pre-tokenizer %r is not known; splitting text like GPT-2", pre)
        kind = "gpt2"
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if kind == "gpt2":
        return byte_level, False
    if kind == "digits":
        return pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        ), False
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(kind), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    ), pre in IGNORE_MERGES


def _unique_vocab(tokens: list[str]) -> dict[str, int]:
    vocab = dict(zip(tokens, range(len(tokens)), strict=True))
    if len(vocab) < len(tokens):  # duplicates would leave ids without a token; keep every id
        vocab = {}
        for i, tok in enumerate(tokens):
            vocab[duplicate_name(i) if tok in vocab else tok] = i
    return vocab


@lru_cache(maxsize=1)
def _outside_byte_alphabet():
    """A search for any character that GPT-2's byte alphabet does not have."""
    chars = "".join(sorted(bytes_to_unicode().values()))
    return re.compile(f"[^{re.escape(chars)}]").search


def _byte_level_model(meta: dict[str, Any], tokens: list[str], types: list[int]):
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import BPE

    # Added tokens are stored as plain text, normal ones in the byte alphabet, except from a few
    # converters that wrote some as text: re-spell those.
    outside, table = _outside_byte_alphabet(), bytes_to_unicode()
    tokens = list(tokens)
    for i, piece in enumerate(tokens):
        if outside(piece) and types[i] == NORMAL:
            tokens[i] = "".join(table[b] for b in piece.encode("utf-8"))
    vocab = _unique_vocab(tokens)
    # A merge whose parts or result the vocabulary lacks makes `tokenizers` panic: drop those.
    pairs = (m.partition(" ") for m in meta.get("tokenizer.ggml.merges") or ())
    merges = [(a, b) for a, _, b in pairs if a + b in vocab and a in vocab and b in vocab]
    pre = meta.get("tokenizer.ggml.pre")
    pre_tokenizer, ignore_merges = _split_pre_tokenizer(pre)
    model = BPE(vocab, merges, fuse_unk=False, byte_fallback=False, ignore_merges=ignore_merges)
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    return tok


def _sentencepiece_merges(
    tokens: list[str], scores: list[float], types: list[int], vocab: dict[str, int]
) -> list[tuple[str, str]]:
    """Merges implied by a SentencePiece BPE vocabulary: every way of writing a piece as two
    pieces, best score first (ties: longer left part, then longer right part, then vocab order),
    the order transformers' GGUF converter uses too."""
    found: list[tuple[float, int, int, str, str]] = []
    # Both parts of a split are shorter pieces, so only split points within the longest piece
    # below the token's own length can match: linear work per token, not quadratic (a hostile
    # 400k-character token took a minute). Longer pieces than MAX_MERGED_PIECE yield no merges.
    lengths = sorted({len(t) for t in tokens})
    for tok, score, kind in zip(tokens, scores, types, strict=True):
        n = len(tok)
        if kind not in (NORMAL, USER_DEFINED) or n < 2 or n > MAX_MERGED_PIECE:
            continue
        longest = lengths[bisect.bisect_left(lengths, n) - 1]  # longest piece shorter than tok
        local = []
        for k in range(max(1, n - longest), min(n - 1, longest) + 1):
            left, right = tok[:k], tok[k:]
            if left in vocab and right in vocab:
                local.append((vocab[left], vocab[right], left, right))
        local.sort()
        found.extend((score, len(left), len(right), left, right) for _, _, left, right in local)
    found.sort(key=lambda m: (m[0], m[1], m[2]), reverse=True)
    return [(left, right) for _, _, _, left, right in found]


def _scores(meta: dict[str, Any], n: int, path: Path | str) -> list[float]:
    """tokenizer.ggml.scores as floats, one per token (all 0 when the file has none)."""
    scores = meta.get("tokenizer.ggml.scores")
    if scores is None:
        return [0.0] * n
    try:
        out: list[float] = np.asarray(scores, np.float64).reshape(-1).tolist()
    except (TypeError, ValueError):
        raise ModelLoadError(
            f"{path}: tokenizer.ggml.scores holds values that are not numbers; the file is corrupt"
        ) from None
    if len(out) != n:
        raise ModelLoadError(
            f"{path}: {len(out)} tokenizer scores for {n} tokens; the file is corrupt"
        )
    return out


def _sentencepiece_model(
    meta: dict[str, Any], tokens: list[str], scores: list[float], types: list[int]
):
    from tokenizers import Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    vocab = _unique_vocab(tokens)
    merges = cached_merges(
        tokens, scores, types, vocab, lambda: _sentencepiece_merges(tokens, scores, types, vocab)
    )
    unk_id = meta.get("tokenizer.ggml.unknown_token_id", 0)
    unk = tokens[unk_id] if unk_id is not None and 0 <= unk_id < len(tokens) else None
    tok = Tokenizer(BPE(vocab, merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    # llama.cpp (like SentencePiece) puts a space before every piece of text, also after a
    # special token, and spells spaces "▁".
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    replace = normalizers.Replace(" ", "▁")
    tok.normalizer = (
        normalizers.Sequence([normalizers.Prepend("▁"), replace]) if prefix else replace
    )
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    tok.decoder = decoders.Sequence(steps)
    return tok


def _token(tokens: list[str], token_id: Any) -> str | None:
    if token_id is None:
        return None
    token_id = int(token_id)
    return tokens[token_id] if 0 <= token_id < len(tokens) else None


def build_tokenizer(meta: dict[str, Any], path: Path | str = "GGUF", native: bool = True):
    """(tokenizer, tokenizer_config dict) from GGUF metadata: a `tokenizers.Tokenizer`, or for
    a SentencePiece vocabulary our own spm.SentencePieceBPE (the same ids without deriving
    and building hundreds of thousands of merges; `native=False` builds the `tokenizers` one,
    which `tui-gen import` writes as tokenizer.json)."""
    model = meta.get("tokenizer.ggml.model")
    tokens = meta.get("tokenizer.ggml.tokens")
    if model is None or not tokens:
        raise ModelLoadError(
            f"{path}: the file has no tokenizer (tokenizer.ggml.tokens); re-convert it with "
            "llama.cpp's convert_hf_to_gguf.py, which embeds the tokenizer"
        )
    types = meta.get("tokenizer.ggml.token_type")
    types = [NORMAL] * len(tokens) if types is None else np.asarray(types, np.int64).tolist()
    if len(types) != len(tokens):
        raise ModelLoadError(f"{path}: {len(types)} token types for {len(tokens)} tokens")
    if model not in ("gpt2", "llama"):
        raise UnsupportedModelError(
            f"{path}: unsupported tokenizer {model!r}; supported: gpt2 (byte-level BPE) and "
            "llama (SentencePiece BPE)"
        )
    spm = model == "llama"
    ids = {
        "bos": meta.get("tokenizer.ggml.bos_token_id", 1 if spm else None),
        "eos": meta.get("tokenizer.ggml.eos_token_id", 2 if spm else None),
        "unk": meta.get("tokenizer.ggml.unknown_token_id", 0 if spm else None),
        "pad": meta.get("tokenizer.ggml.padding_token_id"),
    }
    names = {k: _token(tokens, v) for k, v in ids.items()}
    # llama.cpp's defaults when the file does not say: BOS for SentencePiece and Llama 3
    default_bos = spm or meta.get("tokenizer.ggml.pre") in IGNORE_MERGES
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", default_bos))
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    bos = names["bos"] if add_bos else None
    eos = names["eos"] if add_eos else None
    single = f"{bos + ':0 ' if bos else ''}$A:0{' ' + eos + ':0' if eos else ''}"
    pair = f"{single}{' ' + bos + ':1' if bos else ''} $B:1{' ' + eos + ':1' if eos else ''}"
    specials = [(bos, int(ids["bos"] or 0))] if bos else []  # (a name implies an id)
    if eos and eos != bos:
        specials.append((eos, int(ids["eos"] or 0)))
    config = {
        "bos_token": names["bos"],
        "eos_token": names["eos"],
        "pad_token": names["pad"],
        "unk_token": names["unk"],
        "chat_template": meta.get("tokenizer.chat_template"),
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
    }
    scores = _scores(meta, len(tokens), path) if spm else []
    if spm and native:
        unk = ids["unk"]
        native_tok = SentencePieceBPE(
            tokens,
            scores,
            types,
            _unique_vocab(tokens),
            unk_id=int(unk) if unk is not None else None,
            add_space_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", True)),
            bos_id=int(ids["bos"] or 0) if bos else None,  # as `specials` above
            eos_id=int(ids["eos"] or 0) if eos else None,
            export=lambda: build_tokenizer(meta, path, native=False)[0],
        )
        return native_tok, config
    from tokenizers import AddedToken, processors

    if model == "gpt2":
        tok = _byte_level_model(meta, tokens, types)
    else:
        tok = _sentencepiece_model(meta, tokens, scores, types)
    special = [
        AddedToken(t, special=True, normalized=False)
        for t, k in zip(tokens, types, strict=True)
        if k in (CONTROL, UNKNOWN)
    ]
    user = [
        AddedToken(t, special=False, normalized=False)
        for t, k in zip(tokens, types, strict=True)
        if k == USER_DEFINED
    ]
    if special:
        tok.add_special_tokens(special)
    if user:
        tok.add_tokens(user)

    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=specials
    )
    return tok, config
