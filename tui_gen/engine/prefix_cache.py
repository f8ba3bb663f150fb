"""The keys and values of recent prompts, so that a prompt starting the same way is prefilled
only from where it differs (the server's scheduler, engine/scheduler.py).

Why: an OpenAI client re-sends the whole conversation at every turn, and many clients send
the same system prompt; without this each request prefilled everything again, so the time to
first token grew with the conversation (llama.cpp's server keeps the prompt cache the same
way). Entries are single-row KVCaches holding a prompt's positions, looked up by the longest
common prefix of token ids, evicted least recently used under a byte budget.
"""

from __future__ import annotations

from collections import OrderedDict

from tui_gen.models.kv_cache import KVCache

#: bytes of keys and values kept at most (the oldest entries go first)
DEFAULT_BUDGET = 256 * 2**20
#: a shared prefix shorter than this is not worth the copy
MIN_PREFIX = 8


def common_prefix(a: tuple[int, ...] | list[int], b: tuple[int, ...] | list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """Prompts' keys and values by their token ids. Not thread-safe: the scheduler's thread
    owns it."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._entries: OrderedDict[tuple[int, ...], KVCache] = OrderedDict()
        self.hits = 0  # lookups that reused a prefix (for tests and logs)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, ids: list[int]) -> tuple[int, KVCache | None]:
        """(n, cache): the entry sharing the longest prefix with `ids`, n < len(ids) so that
        at least one token is left to prefill (its logits are the first token's); (0, None)
        when no entry shares MIN_PREFIX tokens."""
        best, best_key = 0, None
        for key in self._entries:
            n = min(common_prefix(key, ids), len(ids) - 1)
            if n > best:
                best, best_key = n, key
        if best < MIN_PREFIX or best_key is None:
            return 0, None
        self._entries.move_to_end(best_key)
        self.hits += 1
        return best, self._entries[best_key]

    def add(self, ids: list[int], cache: KVCache) -> None:
        """Keep `cache` (one row whose first len(ids) positions hold `ids`) for later prompts.
        It must not be written to afterwards: pass a copy of a cache that lives on."""
        key = tuple(ids)
        if cache.nbytes > self.budget:
            return
        self._entries.pop(key, None)
        # an entry whose ids are a prefix of the new one is covered by it
        for old in [k for k in self._entries if len(k) <= len(key) and key[: len(k)] == k]:
            del self._entries[old]
        self._entries[key] = cache
        while self.nbytes > self.budget:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def copy_prefix(src: KVCache, dst: KVCache, n: int) -> None:
    """dst's first n positions (row 0) = src's (row 0)."""
    for layer in range(len(dst.k)):
        dst.k[layer][0, :, :n] = src.k[layer][0, :, :n]
        dst.v[layer][0, :, :n] = src.v[layer][0, :, :n]
    dst.length = n


def snapshot(cache: KVCache, n: int) -> KVCache:
    """A new one-row KVCache holding exactly cache's first n positions (row 0), as
    KVCache.select_rows builds its copies."""
    out = KVCache.__new__(KVCache)
    out.k = [t[:1, :, :n].clone() for t in cache.k]
    out.v = [t[:1, :, :n].clone() for t in cache.v]
    out.batch_size, out.max_seq_len, out.length = 1, n, n
    return out
