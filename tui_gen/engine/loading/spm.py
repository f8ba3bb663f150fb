"""SentencePiece BPE for GGUF vocabularies (`tokenizer.ggml.model = "llama"`: Gemma, Llama 2,
Mistral, TinyLlama) in plain Python, from the pieces and their scores alone.

Why: such a file stores scores, not merges. Handing `tokenizers` a BPE model means deriving
every merge the scores imply (Gemma 3: 514,847 of them, ~2 s, cached by merges_cache.py) and
then building its merge table (~0.55 s), which was most of a warm Gemma load and ~100 MB of
memory. SentencePiece BPE needs neither: it repeatedly joins the adjacent pair of pieces whose
joined piece ranks first (llama.cpp's llm_tokenizer_spm does the same over the same scores).

The rank is the one the derived merge list had (best score, then the longer left part, the
longer right part, the joined piece's id, the parts' ids; equal pairs: leftmost first), so the
ids are those of the `tokenizers` model gguf_tokenizer builds for export (tests compare both
on many texts). Added tokens (CONTROL, UNKNOWN and USER_DEFINED types) are cut out of the raw
text first, longest match at the leftmost position, like `tokenizers`' added vocabulary.

Text between added tokens is split before each "▁" that follows another character when no
piece holds such a pair (Gemma's only one is ">▁</", whose ">" is then not split before): no
merge can cross those points, so each chunk is encoded alone and cached.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: llama.cpp token types
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
#: pieces longer than this are kept as tokens but never formed by merging (no real
#: SentencePiece piece comes close; deriving merges for one costs time quadratic in its length)
MAX_MERGED_PIECE = 1024
#: how a vocabulary renames the second and later copies of a duplicated piece, so every id
#: keeps a token (gguf_tokenizer._unique_vocab)
DUPLICATE_PREFIX = "<gguf-duplicate-"
#: chunks remembered by the encoder (words, mostly); a dict, emptied when full
CACHE_CHUNKS = 50_000
#: chunks longer than this are not cached (a pasted run without spaces)
CACHE_MAX_CHARS = 64
SPACE = "▁"
REPLACEMENT = "\ufffd"


def duplicate_name(token_id: int) -> str:
    return f"{DUPLICATE_PREFIX}{token_id}>"


@dataclass(frozen=True)
class Encoding:
    """What `tokenizers.Tokenizer.encode` returns, as far as tui-gen reads it."""

    ids: list[int]


class SentencePieceBPE:
    """Text <-> ids for a SentencePiece BPE vocabulary, with the `tokenizers.Tokenizer` methods
    the engine calls (encode(...).ids, decode, token_to_id, id_to_token, get_vocab_size)."""

    def __init__(
        self,
        tokens: Sequence[str],
        scores: Sequence[float],
        types: Sequence[int],
        vocab: dict[str, int],
        *,
        unk_id: int | None,
        add_space_prefix: bool,
        bos_id: int | None = None,
        eos_id: int | None = None,
        export: Callable[[], Any] | None = None,
    ) -> None:
        self._tokens = list(tokens)
        self._scores = scores
        self._types = types
        self._vocab = vocab
        self._unk = unk_id if unk_id is not None and 0 <= unk_id < len(tokens) else None
        self._prefix = add_space_prefix
        self._bos, self._eos = bos_id, eos_id  # added around the text when not None
        self._export = export
        self._cache: dict[str, list[int]] = {}
        self._bytes = [vocab.get(f"<0x{b:02X}>") for b in range(256)]
        self._byte_value = {i: b for b, i in enumerate(self._bytes) if i is not None}
        kinds = np.asarray(types)
        self._special = set(np.flatnonzero((kinds == CONTROL) | (kinds == UNKNOWN)).tolist())
        # added tokens by first character, longest first (leftmost-longest matching)
        added: dict[str, list[str]] = {}
        for i in np.flatnonzero((kinds == CONTROL) | (kinds == UNKNOWN) | (kinds == USER_DEFINED)):
            t = self._tokens[i]
            if t:
                added.setdefault(t[0], []).append(t)
        self._added = {c: sorted(set(ts), key=len, reverse=True) for c, ts in added.items()}
        # characters after which a "▁" may still merge (some piece holds "x▁"): no split
        # there. Taken over every piece, whatever its type: a few too many only split less.
        self._glue = set(re.findall(f"([^{SPACE}\0]){SPACE}", "\0".join(self._tokens)))

    # ------------------------------------------------------------------ tokenizers' API
    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        return len(self._tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def id_to_token(self, token_id: int) -> str | None:
        if not 0 <= token_id < len(self._tokens):
            return None
        token = self._tokens[token_id]
        return token if self._vocab.get(token) == token_id else duplicate_name(token_id)

    def encode(self, text: str, add_special_tokens: bool = True) -> Encoding:
        ids: list[int] = []
        if add_special_tokens and self._bos is not None:
            ids.append(self._bos)
        for piece, is_added in self._split_added(text):
            if is_added:
                ids.append(self._vocab[piece])
            else:
                ids.extend(self._encode_text(piece))
        if add_special_tokens and self._eos is not None:
            ids.append(self._eos)
        return Encoding(ids)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self._decode(list(ids), skip_special_tokens, strip=self._prefix)

    def stream_decoder(self) -> SentencePieceStream:
        return SentencePieceStream(self)

    def to_str(self, pretty: bool = False) -> str:
        """The same tokenizer as a tokenizer.json (`tui-gen import` writes it): built with
        `tokenizers` on demand, which only an export pays for."""
        if self._export is None:
            raise ValueError("this tokenizer cannot be exported")
        out: str = self._export().to_str(pretty=pretty)
        return out

    def __repr__(self) -> str:
        return f"SentencePieceBPE({len(self._tokens)} pieces)"

    # ------------------------------------------------------------------ encoding
    def _split_added(self, text: str) -> list[tuple[str, bool]]:
        """The text cut at added tokens: (text, False) and (token, True) in order."""
        out: list[tuple[str, bool]] = []
        start = i = 0
        added = self._added
        n = len(text)
        while i < n:
            cands = added.get(text[i])
            if cands:
                for t in cands:
                    if text.startswith(t, i):
                        if start < i:
                            out.append((text[start:i], False))
                        out.append((t, True))
                        i = start = i + len(t)
                        break
                else:
                    i += 1
                continue
            i += 1
        if start < n:
            out.append((text[start:], False))
        return out

    def _encode_text(self, text: str) -> list[int]:
        norm = text.replace(" ", SPACE)
        if self._prefix:
            norm = SPACE + norm
        ids: list[int] = []
        for chunk in self._chunks(norm):
            cached = self._cache.get(chunk)
            if cached is None:
                cached = self._bpe(chunk)
                if len(chunk) <= CACHE_MAX_CHARS:
                    if len(self._cache) >= CACHE_CHUNKS:
                        self._cache.clear()
                    self._cache[chunk] = cached
            ids.extend(cached)
        return self._fuse_unk(ids) if self._unk is not None else ids

    def _chunks(self, norm: str) -> list[str]:
        """Split before every "▁" that follows a character no piece joins to a "▁"."""
        out: list[str] = []
        start = 0
        glue = self._glue
        for i in range(1, len(norm)):
            if norm[i] == SPACE and norm[i - 1] != SPACE and norm[i - 1] not in glue:
                out.append(norm[start:i])
                start = i
        out.append(norm[start:])
        return out

    def _rank(self, left: str, right: str) -> tuple[Any, ...] | None:
        """The derived merge list's order for joining left + right, or None if no merge."""
        joined = left + right
        i = self._vocab.get(joined)
        if i is None or self._types[i] not in (NORMAL, USER_DEFINED):
            return None
        if len(joined) > MAX_MERGED_PIECE or joined.startswith(DUPLICATE_PREFIX):
            return None
        return (-self._scores[i], -len(left), -len(right), i, self._vocab[left], self._vocab[right])

    def _bpe(self, chunk: str) -> list[int]:
        vocab = self._vocab
        # symbols as a linked list; a character outside the vocabulary becomes its bytes
        sym: list[str | None] = []
        for ch in chunk:
            sym.append(ch if ch in vocab else None)
        n = len(sym)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        heap: list[tuple[Any, ...]] = []
        for i in range(n - 1):
            a, b = sym[i], sym[i + 1]
            if a is not None and b is not None:
                r = self._rank(a, b)
                if r is not None:
                    heap.append((r, i, a, b))
        heapq.heapify(heap)
        while heap:
            _, i, a, b = heapq.heappop(heap)
            j = nxt[i]
            if j >= n or sym[i] != a or sym[j] != b:
                continue  # a stale pair: one side was merged away since
            joined = a + b
            sym[i], sym[j] = joined, None
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            nxt[j] = n  # j is gone
            p, q = prv[i], nxt[i]
            if p >= 0 and sym[p] is not None:
                left = sym[p]
                assert left is not None
                r = self._rank(left, joined)
                if r is not None:
                    heapq.heappush(heap, (r, p, left, joined))
            if q < n and sym[q] is not None:
                right = sym[q]
                assert right is not None
                r = self._rank(joined, right)
                if r is not None:
                    heapq.heappush(heap, (r, i, joined, right))
        ids: list[int] = []
        i = 0
        while i < n:
            s = sym[i]
            if s is not None:
                ids.append(vocab[s])
            else:
                ids.extend(self._fallback(chunk[i]))
            i = nxt[i]
        return ids

    def _fallback(self, ch: str) -> list[int]:
        """A character outside the vocabulary: its UTF-8 bytes as <0xXX> pieces, or unk."""
        raw = ch.encode("utf-8", "surrogatepass")
        byte_ids = [self._bytes[b] for b in raw]
        if all(i is not None for i in byte_ids):
            return [i for i in byte_ids if i is not None]
        return [self._unk] if self._unk is not None else []

    def _fuse_unk(self, ids: list[int]) -> list[int]:
        unk = self._unk
        return [t for k, t in enumerate(ids) if not (t == unk and k and ids[k - 1] == unk)]

    # ------------------------------------------------------------------ decoding
    def _decode(self, ids: list[int], skip_special: bool, strip: bool) -> str:
        """Pieces with "▁" as spaces; runs of byte pieces as their UTF-8, invalid bytes as
        U+FFFD the way Python's decoder places them (`tokenizers`' ByteFallback shows one per
        byte of a whole invalid run; the two differ only on invalid output, and this way the
        stream below and a full decode always agree)."""
        parts: list[str] = []
        run = bytearray()
        for t in ids:
            b = self._byte_value.get(t)
            if b is not None:
                run.append(b)
                continue
            if run:
                parts.append(run.decode("utf-8", "replace"))
                run = bytearray()
            if not 0 <= t < len(self._tokens) or (skip_special and t in self._special):
                continue
            parts.append(self._tokens[t].replace(SPACE, " "))
        if run:
            parts.append(run.decode("utf-8", "replace"))
        text = "".join(parts)
        return text[1:] if strip and text.startswith(" ") else text


class SentencePieceStream:
    """Incremental decoding: a character spread over byte pieces appears once complete, and
    the pieces of text together equal `decode` of all the ids (the leading space of an
    add_space_prefix vocabulary is dropped only before the first text)."""

    def __init__(self, tok: SentencePieceBPE) -> None:
        self._tok = tok
        self._window: list[int] = []  # ids since the last text piece (a byte run at most)
        self._shown = 0  # characters of the window's text already returned
        self._emitted = False
        # whether the window's text drops a leading space: decided when the window opens, not
        # per step, or a byte run that starts with a space byte would show its next character
        # twice (" " then "\x00": the first step strips the space, the second no longer does)
        self._strip = False

    def _text(self) -> str:
        return self._tok._decode(self._window, True, strip=self._strip)

    def step(self, token_id: int) -> str:
        if not self._window:
            self._strip = self._tok._prefix and not self._emitted
        self._window.append(token_id)
        text = self._text()
        is_byte = token_id in self._tok._byte_value
        if is_byte and text.endswith(REPLACEMENT):
            return ""  # the character may still be incomplete
        out = text[self._shown :]
        if is_byte:
            self._shown = len(text)
        else:
            self._window, self._shown = [], 0
        self._emitted = self._emitted or bool(out)
        return out

    def flush(self) -> str:
        """What is still held at the end (an incomplete character, shown as U+FFFD)."""
        out = self._text()[self._shown :]
        self._window, self._shown = [], 0
        self._emitted = self._emitted or bool(out)
        return out
