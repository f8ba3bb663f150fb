"""The BPE merges a SentencePiece vocabulary implies, computed once per vocabulary and kept as
token ids in the user's cache directory (engine/cache_dir.py).

Why: a GGUF file from a SentencePiece model (Gemma, Llama 2, Mistral) stores scores, not
merges, and deriving Gemma 3's 514,847 merges from its 262,144 pieces takes ~2 s of Python on
every load, most of a warm load. Cached as an (n, 2) int32 array of vocabulary ids it reads
back in milliseconds.

The key is a hash of everything the merges depend on (pieces, scores, types, the derivation's
version), not the file's path or date: a copied or renamed file hits, an edited vocabulary
misses. The file is read with `allow_pickle=False` and checked (shape, dtype, id range);
anything unreadable, odd or unwritable (read-only home, full disk) falls back to computing
the merges, so the cache can only ever save time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tui_gen.engine.cache_dir import cache_dir

log = logging.getLogger(__name__)

#: bump when the derivation's output changes, so that old entries are not used
VERSION = 1
#: vocabularies smaller than this derive their merges faster than a file is read
MIN_PIECES = 20_000

Merges = list[tuple[str, str]]


def key(tokens: Sequence[str], scores: Sequence[float], types: Sequence[int]) -> str:
    h = hashlib.sha256(f"spm-merges v{VERSION} {len(tokens)}\0".encode())
    h.update("\0".join(tokens).encode("utf-8", "surrogatepass"))
    h.update(np.asarray(scores, dtype=np.float64).tobytes())
    h.update(np.asarray(types, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def path_for(digest: str) -> Path:
    return cache_dir("tokenizers") / f"spm-merges-{digest}.npy"


def cached_merges(
    tokens: Sequence[str],
    scores: Sequence[float],
    types: Sequence[int],
    vocab: dict[str, int],
    derive: Callable[[], Merges],
) -> Merges:
    """`derive()`'s merges, from the cache when it holds this vocabulary's."""
    if len(tokens) < MIN_PIECES:
        return derive()
    path = path_for(key(tokens, scores, types))
    ids = _read(path, len(tokens))
    if ids is not None:
        # a piece's text is its vocabulary key (duplicated pieces were renamed there)
        names: Sequence[str] = tokens
        if len(vocab) != len(tokens):
            names = [""] * len(tokens)
            for text, i in vocab.items():
                names[i] = text
        name = names.__getitem__  # by column: ~3x faster than a loop over rows
        return list(zip(map(name, ids[:, 0].tolist()), map(name, ids[:, 1].tolist()), strict=True))
    merges = derive()
    _write(path, np.array([(vocab[a], vocab[b]) for a, b in merges], dtype=np.int32))
    return merges


def _read(path: Path, n_tokens: int) -> np.ndarray | None:
    try:
        ids = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as e:
        log.debug("merges cache %s unreadable (%s): deriving again", path, e)
        return None
    if ids.dtype != np.int32 or ids.ndim != 2 or ids.shape[1] != 2:
        return None
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n_tokens):
        return None
    return ids


def _write(path: Path, ids: np.ndarray) -> None:
    """Atomically (a reader never sees half a file); failures only cost the next load time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npy", dir=path.parent)
    except OSError as e:
        log.debug("merges cache not written (%s)", e)
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, ids, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as e:
        log.debug("merges cache not written (%s)", e)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
